# shellcheck shell=bash
# fusetrace.sh - sourced by bench/bench: the requests the kernel sent to
# FUSE daemons during a measured start, by operation.  A fuse:fuse_request_send
# trace (Linux >= 6.16) in a tracefs instance of our own, so it counts the
# same way for any yolofs build (--before included) and never depends on
# the daemon's own counters.  Every FUSE connection of the machine is
# counted: run the benchmark with no other FUSE mount in use.

FUSETRACE="" FUSETRACE_TRACEFS="" FUSETRACE_ENDS=0   # 1: answers traced too (fuse_request_end)

# fusetrace_open: the instance made; FUSETRACE stays empty (and every other
# call does nothing) where the kernel has no FUSE tracepoints.
fusetrace_open() {
	local tfs inst
	tfs=$(findmnt -rn -t tracefs -o TARGET | head -1 || true)
	if [[ -z $tfs ]]; then
		mkdir -p "$WORK/fusetracefs"
		mount -t tracefs nodev "$WORK/fusetracefs" 2>/dev/null || { say "no tracefs: FUSE requests not counted"; return 0; }
		tfs=$WORK/fusetracefs FUSETRACE_TRACEFS=$tfs
	fi
	[[ -d $tfs/events/fuse/fuse_request_send ]] || { say "no FUSE tracepoints: FUSE requests not counted"; return 0; }
	inst=$tfs/instances/yolo-bench-fuse-$$
	mkdir "$inst" 2>/dev/null || { say "cannot make a tracefs instance: FUSE requests not counted"; return 0; }
	echo 4096 >"$inst/buffer_size_kb"
	echo 0 >"$inst/tracing_on"
	echo 1 >"$inst/events/fuse/fuse_request_send/enable"
	FUSETRACE_ENDS=0
	echo 1 2>/dev/null >"$inst/events/fuse/fuse_request_end/enable" && FUSETRACE_ENDS=1
	FUSETRACE=$inst
}

# fusetrace_start: an empty trace, recording.
fusetrace_start() {
	[[ -n $FUSETRACE ]] || return 0
	echo >"$FUSETRACE/trace"
	echo 1 >"$FUSETRACE/tracing_on"
}

# fusetrace_stop: prints "fuse_requests=N fuse_OP=N ... fuse_wait_ms=T"
# (OP lower case, as the kernel names it without FUSE_; the operations in
# name order) for the requests sent since fusetrace_start, and stops
# recording.  fuse_wait_ms (where the kernel traces answers too): the time
# from send to answer (fuse_request_end) summed over the requests a caller
# waits for (not RELEASE, RELEASEDIR, FORGET, BATCH_FORGET, which the kernel
# sends without waiting); requests of concurrent callers overlap, so it may
# exceed the wall time.  A trace that lost events says so (fuse_lost=N)
# rather than undercount in silence.
fusetrace_stop() {
	[[ -n $FUSETRACE ]] || return 0
	echo 0 >"$FUSETRACE/tracing_on"
	local lost
	lost=$(awk '/^overrun:/ { print $2 }' "$FUSETRACE/per_cpu/cpu"*/stats 2>/dev/null |
		awk '{ s += $1 } END { print s + 0 }')
	awk -v lost="$lost" -v ends="$FUSETRACE_ENDS" '
		# the timestamp ("SECONDS:") and the request ("connection C req R")
		function ts() { return match($0, / [0-9]+\.[0-9]+: /) ? substr($0, RSTART + 1, RLENGTH - 3) : "" }
		function key() { return match($0, /connection [0-9]+ req [0-9]+/) ? substr($0, RSTART, RLENGTH) : "" }
		/fuse_request_send:/ && match($0, /\(FUSE_[A-Z_0-9]+\)/) {
			op = tolower(substr($0, RSTART + 6, RLENGTH - 7)); n[op]++; total++
			if (op !~ /^(release|releasedir|forget|batch_forget)$/) sent[key()] = ts()
		}
		/fuse_request_end:/ { k = key(); if (k in sent) { wait += ts() - sent[k]; delete sent[k] } }
		END {
			printf "fuse_requests=%d", total
			k = 0
			for (op in n) names[++k] = op
			for (i = 2; i <= k; i++)             # insertion sort: awk has no sort
				for (j = i; j > 1 && names[j - 1] > names[j]; j--) {
					t = names[j]; names[j] = names[j - 1]; names[j - 1] = t
				}
			for (i = 1; i <= k; i++) printf " fuse_%s=%d", names[i], n[names[i]]
			if (ends && total > 0) printf " fuse_wait_ms=%.1f", wait * 1000
			if (lost > 0) printf " fuse_lost=%d", lost
		}' "$FUSETRACE/trace"
}

# fusetrace_close: the instance removed (and tracefs unmounted if we
# mounted it); idempotent.
fusetrace_close() {
	if [[ -n $FUSETRACE && -d $FUSETRACE ]]; then
		echo 0 2>/dev/null >"$FUSETRACE/tracing_on"
		echo 0 2>/dev/null >"$FUSETRACE/events/fuse/fuse_request_send/enable"
		echo 0 2>/dev/null >"$FUSETRACE/events/fuse/fuse_request_end/enable"
		rmdir "$FUSETRACE" 2>/dev/null || true
	fi
	FUSETRACE=""
	if [[ -n $FUSETRACE_TRACEFS ]]; then
		umount "$FUSETRACE_TRACEFS" 2>/dev/null || true
		FUSETRACE_TRACEFS=""
	fi
}
