# shellcheck shell=bash
# yolo-docker.sh - sourced by bench/bench: the yolofs daemons
# scripts/yolo-docker runs over the ctr figure's image layers (one per
# layer, its state directory under CTR_STATE): the command line, their
# metrics, waiting for them to settle, and strace for diagnosis.

YOLO_DOCKER=()
CTR_STATE=""

# yolo_docker_cmd: YOLO_DOCKER, the command line of scripts/yolo-docker on
# our dockerd (its state in CTR_STATE) with the yolofs and yolo-capture of
# the build `side` last chose.
yolo_docker_cmd() {
	YOLO_DOCKER=(env YOLO_DOCKER_STATE="$CTR_STATE" DOCKER="$CTR_DOCKER" YOLOFS="$SIDE_YOLOFS"
		YOLO_CAPTURE="$SIDE_CAPTURE" "$ROOT/scripts/yolo-docker" -H "unix://$CTR_SOCK")
}

# ctr_metrics: "bytes_source misses hits bytes_prefilled reads_passthrough
# ns_answered ns_unknown ns_dropped files_matched ns_known_paths" summed over
# the running yolofs daemons' metrics files (the last a gauge, the others
# counters).
ctr_metrics() {
	local all=$WORK/ctr-metrics.prom name out=()
	cat "$CTR_STATE"/*/metrics.prom >"$all" 2>/dev/null || :
	for name in bytes_source_total misses_total hits_total bytes_prefilled_total reads_passthrough_total \
		ns_answered_total ns_unknown_total ns_dropped_total files_matched_total ns_known_paths; do
		out+=("$(metrics_sum "$name" "$all")")
	done
	echo "${out[*]}"
}

# ctr_settle N: wait until the N yolofs daemons just mounted have settled:
# each has written its metrics file (every second) and reports
# yolofs_background_jobs 0.  A daemon queues its background jobs (reading
# the answers to its image's namespace questions from the source, checking
# the image's blocks) before it mounts, so a metrics file that says 0 comes
# after they ran.  In production a layer is mounted long before a container
# of it starts; the cold start measured next must not race these reads.
# Sets CTR_SETTLE_US.  @return 1 with CTR_SETTLE_ERR set when a daemon died
# or they did not settle within --ctr-settle-timeout.
ctr_settle() {
	local want=$1 t0 sd m n busy jobs detail pid
	now_us
	t0=$NOW_US
	CTR_SETTLE_ERR=""
	while :; do
		n=0 busy=0 detail=""
		for sd in "$CTR_STATE"/*/; do
			[[ -f $sd/pid ]] || continue
			n=$((n + 1))
			pid=$(cat "$sd/pid")
			if ! kill -0 "$pid" 2>/dev/null; then
				CTR_SETTLE_ERR="yolofs (pid $pid) of $(cat "$sd/source") exited before it settled: $(tail -1 "$sd/log")"
				return 1
			fi
			m=$sd/metrics.prom
			if [[ ! -f $m ]]; then
				busy=$((busy + 1)) detail+=" $(basename "$sd"): no metrics file yet;"
			elif ! grep -q '^yolofs_background_jobs ' "$m"; then
				CTR_SETTLE_ERR="$m has no yolofs_background_jobs gauge (yolofs older than commit fec017b?)"
				return 1
			else
				jobs=$(metrics_sum background_jobs "$m")
				((jobs == 0)) || { busy=$((busy + 1)) detail+=" $(basename "$sd"): background_jobs=$jobs;"; }
			fi
		done
		now_us
		CTR_SETTLE_US=$((NOW_US - t0))
		((n >= want && busy == 0)) && return 0
		((n >= want)) || detail+=" $n of $want daemons have a state directory;"
		if ((CTR_SETTLE_US > CTR_SETTLE_TIMEOUT * 1000000)); then
			CTR_SETTLE_ERR="yolofs did not settle within $CTR_SETTLE_TIMEOUT s of its mount:${detail%;}"
			return 1
		fi
		sleep 0.2
	done
}

# ctr_metrics_settle: wait until every daemon has rewritten its metrics
# file since now (they do every second), so they include what just happened.
ctr_metrics_settle() {
	local f t0 t
	t0=$(date +%s.%N)
	for ((t = 0; t < 40; t++)); do
		local stale=0
		for f in "$CTR_STATE"/*/metrics.prom; do
			[[ -f $f ]] || continue
			awk -v a="$(stat -c %.6Y "$f")" -v b="$t0" 'BEGIN { exit !(a < b) }' && stale=1
		done
		((stale)) || return 0
		sleep 0.1
	done
}

# ctr_strace_start DIR (diagnosis: YOLO_BENCH_CTR_STRACE=1): strace every
# yolofs daemon's calls on the source during the run, into DIR/strace-LAYER.
# ptrace slows each call: the run's times are not comparable (the context
# says ctr_strace=1).
CTR_STRACE_PIDS=()
ctr_strace_start() {
	local sd pid
	for sd in "$CTR_STATE"/*/; do
		[[ -f $sd/pid ]] || continue
		pid=$(cat "$sd/pid")
		strace -f -qq -tt -y -o "$1/strace-$(basename "$sd")" -p "$pid" \
			-e trace=openat,openat2,open_by_handle_at,name_to_handle_at,newfstatat,statx,fstat,getdents64,readlinkat,fgetxattr,lgetxattr,getxattr,flistxattr,llistxattr,listxattr,pread64,preadv,preadv2,read,ioctl,close \
			2>>"$1/strace.err" &
		CTR_STRACE_PIDS+=($!)
	done
	sleep 1   # attached to every thread
}
ctr_strace_stop() {
	local p
	for p in "${CTR_STRACE_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${CTR_STRACE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	CTR_STRACE_PIDS=()
}
