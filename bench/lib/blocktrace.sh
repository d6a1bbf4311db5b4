# shellcheck shell=bash
# blocktrace.sh - sourced by bench/bench: what each read of the slow disk
# read.  A block:block_rq_issue trace of the loop device in a tracefs
# instance of our own; each request's first block is mapped by
# bench/blockmap.py (with the block map it made at set-up) to layer file
# data, layer directories, dockerd's own files, inode tables, other ext4
# metadata, or blocks new since set-up, and explained (the file, directory
# or inodes it read, and the process that issued it).

BLOCKTRACE="" BLOCKTRACE_TRACEFS="" BLOCKTRACE_MAP=""

# blocktrace_open MAP: a tracefs instance of our own recording the loop
# device's block requests, explained with the block map MAP; BLOCKTRACE
# stays empty (and every other call does nothing) if tracing is unavailable.
blocktrace_open() {
	local tfs majmin inst
	BLOCKTRACE_MAP=$1
	tfs=$(findmnt -rn -t tracefs -o TARGET | head -1 || true)
	if [[ -z $tfs ]]; then
		mkdir -p "$WORK/tracefs"
		mount -t tracefs nodev "$WORK/tracefs" 2>/dev/null || { say "no tracefs: reads not attributed"; return 0; }
		tfs=$WORK/tracefs BLOCKTRACE_TRACEFS=$tfs
	fi
	inst=$tfs/instances/yolo-bench-$$
	mkdir "$inst" 2>/dev/null || { say "cannot make a tracefs instance: reads not attributed"; return 0; }
	majmin=$(lsblk -dno MAJ:MIN "$SLOWDISK_DEV" | tr -d ' ')
	echo 8192 >"$inst/buffer_size_kb"
	echo 0 >"$inst/tracing_on"
	echo "dev == $(((${majmin%:*} << 20) | ${majmin#*:}))" >"$inst/events/block/block_rq_issue/filter"
	echo 1 >"$inst/events/block/block_rq_issue/enable"
	BLOCKTRACE=$inst
}

# blocktrace_on: the reads are traced.
blocktrace_on() { [[ -n $BLOCKTRACE ]]; }

# blocktrace_start: an empty trace, recording.
blocktrace_start() {
	blocktrace_on || return 0
	echo >"$BLOCKTRACE/trace"
	echo 1 >"$BLOCKTRACE/tracing_on"
}

# blocktrace_stop: recording stopped (the trace is kept).
blocktrace_stop() {
	blocktrace_on || return 0
	echo 0 >"$BLOCKTRACE/tracing_on"
}

# blocktrace_save DIR [classify]: the trace into DIR/trace.txt.gz and each
# request explained in DIR/explain.txt; with "classify", prints the count of
# requests and bytes of each kind (blockmap.py classify: key=value words).
blocktrace_save() {
	cat "$BLOCKTRACE/trace" >"$1/trace.txt"
	[[ ${2:-} != classify ]] ||
		python3 "$ROOT/bench/blockmap.py" classify "$BLOCKTRACE_MAP" "$1/trace.txt" 2>&1 | tr '\n' ' '
	python3 "$ROOT/bench/blockmap.py" explain "$BLOCKTRACE_MAP" "$1/trace.txt" --requests \
		>"$1/explain.txt" 2>&1 || true
	gzip -f "$1/trace.txt"
}

# blocktrace_close: the instance removed (and tracefs unmounted if we
# mounted it); idempotent.
blocktrace_close() {
	if [[ -n $BLOCKTRACE ]]; then
		echo 0 >"$BLOCKTRACE/tracing_on" 2>/dev/null
		echo 0 >"$BLOCKTRACE/events/block/block_rq_issue/enable" 2>/dev/null
		rmdir "$BLOCKTRACE" 2>/dev/null || true
		BLOCKTRACE=""
	fi
	if [[ -n $BLOCKTRACE_TRACEFS ]]; then
		umount "$BLOCKTRACE_TRACEFS" 2>/dev/null || true
		BLOCKTRACE_TRACEFS=""
	fi
}
