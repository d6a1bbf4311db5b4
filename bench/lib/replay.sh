# shellcheck shell=bash
# replay.sh - sourced by bench/bench: boot replays, the runs the replay and
# think figures are made of: N concurrent replays of the trace under one
# policy (replay_run), and a cell's runs (replay_cell).
#
# A cell whose first run takes over SLOW_SECONDS (the throttle-bound cold
# and prefetch runs at large N, whose spread is under 1 %) stops after
# SLOW_RUNS runs: this keeps the default run near 13 min instead of 23.

declare -A MEASURED                  # cells already measured in this run

# replay_run PROFILE MODE N POLICY SCALE RUN: N concurrent replays of the
# trace under POLICY; writes the run's row and sets RUN_SECONDS (the slowest
# boot; empty when the run failed).  Any replay that exits non-zero, reports
# read errors or prints no time, or a yolofs that does not mount, fails the
# whole run: the slowest of the others would understate it.
replay_run() {
	local profile=$1 mode=$2 n=$3 policy=$4 scale=$5 r=$6
	local dirs=() uniq=() flags=() errs=() pids=() i d p
	for ((i = 1; i <= n; i++)); do
		if [[ $mode == shared ]]; then dirs+=("$MNT/d1"); else dirs+=("$MNT/d$i"); fi
	done
	if [[ $mode == shared ]]; then uniq=("$MNT/d1"); else uniq=("${dirs[@]}"); fi
	[[ $scale == 0 ]] || flags+=(--think-scale "$scale")
	side "$policy"
	case $policy in
	yolofs-memory | yolofs-ssd | yolofs-echo1 | yolofs-memory@before | yolofs-ssd@before | yolofs-echo1@before)
		drop_caches
		local serve=${policy%@before}
		serve=${serve#yolofs-}
		[[ $serve == echo1 ]] && serve=memory
		for d in "${uniq[@]}"; do
			yolofs_mount "$(basename "$d")$SIDE_TAG" "$d" "$SIDE_SSD/$(basename "$d").yolo" "$serve" \
				"" metrics_interval=1 "$SIDE_YOLOFS" || { errs+=("$MOUNT_ERR"); break; }
		done
		drop_caches # the images stay pinned in yolofs; the page cache is cold
		if [[ $policy == yolofs-echo1* && ${#errs[@]} == 0 ]]; then
			# An earlier boot on the same daemons, then memory pressure:
			# pages dropped, inodes kept (the open-time prefill is not
			# redone for an inode the kernel kept).
			for d in "${uniq[@]}"; do
				"$REPLAY" "$TRACE" "$d" >/dev/null 2>&1 || errs+=("the first replay of $d failed")
			done
			pages_drop
		fi
		;;
	warm)
		for d in "${uniq[@]}"; do
			"$REPLAY" "$TRACE" "$d" >/dev/null 2>&1 || errs+=("the warm-up replay of $d failed")
		done
		;;
	prefetch) flags+=(--prefetch); drop_caches ;;
	cold) drop_caches ;;
	*) die "unknown policy $policy" ;;
	esac
	local tmp d0 d1 drops0 drops1 rep0 rep1 proms=() misses0=0
	tmp=$(mktemp -d "$WORK/run.XXXXXX")
	if [[ $policy == yolofs-* ]]; then
		for d in "${uniq[@]}"; do proms+=("$LOGS/metrics-$(basename "$d")$SIDE_TAG.prom"); done
		# misses before the timed boot (the echo1 policy's first boot)
		[[ $policy == yolofs-echo1* && ${#errs[@]} == 0 ]] && misses0=$(metrics_now misses_total "${proms[@]}")
	fi
	drops0=$(cache_drops)
	d0=$(disk_read_bytes) rep0=$(page_reported_kib)
	if ((${#errs[@]} == 0)); then
		for ((i = 0; i < n; i++)); do
			slowdisk_spawn "$REPLAY" "${flags[@]}" "$TRACE" "${dirs[$i]}" >"$tmp/$i.out" 2>"$tmp/$i.err"
			pids+=($!)
		done
		for i in "${!pids[@]}"; do
			wait "${pids[$i]}" || errs+=("replay $((i + 1)) of $n exited $?: $(head -c 200 "$tmp/$i.err")")
		done
	fi
	d1=$(disk_read_bytes) rep1=$(page_reported_kib)
	drops1=$(cache_drops)
	local misses=-
	if [[ $policy == yolofs-* ]]; then
		unmount_all
		misses=$(($(metrics_sum misses_total "${proms[@]}") - misses0))
	fi
	local stats="" status=ok secs=- bytes=- extra
	if ((${#errs[@]} == 0)); then
		# max and mean of the N times, total bytes; "bad" when a replay
		# printed no time or reported read errors.
		stats=$(replay_stats "$n" "$tmp"/*.out)
		[[ $stats == bad ]] && errs+=("a replay printed no time or reported read errors: $(cat "$tmp"/*.out | tr '\n' ' ' | head -c 300)")
	fi
	if ((${#errs[@]})); then
		status=failed
		extra="error=${errs[0]}"
		keep_failed "$tmp" "replay-$profile-$mode-$n-$policy-$scale-r$r"
		say "FAILED: replay $profile $mode N=$n $policy think=$scale run $r: ${errs[0]}"
		RUN_SECONDS=""
	else
		read -r secs mean bytes <<<"$stats"
		extra="mean_seconds=$mean"
		((drops1 == drops0)) || extra+=" cache_drops=$((drops1 - drops0))"
		[[ -z $rep0 ]] || extra+=" page_reported_mib=$(((rep1 - rep0) >> 10))"
		RUN_SECONDS=$secs
	fi
	row replay "$profile" "$mode" "$n" "$policy" "$scale" - "$r" "$status" "$secs" "$bytes" $((d1 - d0)) "$misses" "$extra"
	rm -rf "$tmp"
}

# replay_cell PROFILE MODE N POLICY SCALE: RUNS runs of one figure cell
# (SLOW_RUNS when the first took over SLOW_SECONDS), once per driver run;
# with --before, POLICY's @before twin's cell in turn with it (run r of one,
# then of the other; pair_order).
replay_cell() {
	local key=$1/$2/$3/$4/$5 r runs=$RUNS p pols=("$4")
	local -A ptimes=()
	[[ -n ${MEASURED[$key]:-} ]] && return 0
	[[ $4 == *@before ]] && return 0       # run with its twin
	MEASURED[$key]=1
	[[ " $POLICIES " == *" $4@before "* ]] && pols+=("$4@before")
	for ((r = 1; r <= runs; r++)); do
		for p in $(pair_order "$r" "${pols[@]}"); do
			replay_run "$1" "$2" "$3" "$p" "$5" "$r"
			ptimes[$p]+=" ${RUN_SECONDS:-FAILED}"
			# Throttle-bound figures barely vary: fewer runs.
			if ((r == 1)) && [[ $p == "$4" && -n $RUN_SECONDS ]] &&
				awk -v t="$RUN_SECONDS" -v s="$SLOW_SECONDS" 'BEGIN { exit !(t > s) }'; then
				runs=$SLOW_RUNS
			fi
		done
	done
	for p in "${pols[@]}"; do
		printf '   %-10s %-8s N=%-3s %-21s think=%-4s%s\n' "$1" "$2" "$3" "$p" "$5" "${ptimes[$p]}" >&2
	done
}
