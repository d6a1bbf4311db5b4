# shellcheck shell=bash
# learn.sh - sourced by bench/bench: the learn figure (zero-touch learning).
#
# The zero-touch cost and gain: one boot replay of the trace (copy d1, no
# think time) on the hdd profile, cold, under four policies per run:
# without yolofs (cold), yolofs with no image and no learning (passthrough),
# yolofs -o learn= over the same copy with an empty learn directory
# (learning: the boot that is recorded), and, once that daemon has written
# and loaded what it learnt, the next boot on the same mount (learnt).
# learning / passthrough is the recording's own cost (target <= 1.03),
# learning / cold the first boot's cost against no yolofs, cold / learnt
# the next boot's speed-up.  learn_idle is LEARN_IDLE s: a replay with no
# think time has no long pause, unlike a TCG guest (the default 15 s).
LEARN_IDLE=3

learn_context() { context learn_idle "$LEARN_IDLE"; }

learn_needs() { disk_need_copies 1; }

# learn_run POLICY RUN: one boot under POLICY; writes its row.
learn_run() {
	local policy=$1 r=$2 d=$MNT/d1 tmp d0 d1 drops0 err="" secs=- bytes=- misses=- extra="" status=ok
	local name=learn-$policy-r$r ldir=$WORK/learn/r$r nfiles t
	tmp=$(mktemp -d "$WORK/run.XXXXXX")
	case $policy in
	cold) ;;
	passthrough | learning)
		local opts=serve=memory
		if [[ $policy == learning ]]; then
			rm -rf "$ldir"
			mkdir -p "$ldir"
			chmod 700 "$WORK/learn" "$ldir"
			opts=learn=$ldir,learn_idle=$LEARN_IDLE
		fi
		yolofs_start "$name" 1 "$d" "$d" "$opts"
		for ((t = 0; t < 300; t++)); do is_mounted "$d" && break; sleep 0.1; done
		is_mounted "$d" || err="yolofs $opts on $d did not mount: $(tail -1 "$LOGS/yolofs-$name.log")"
		;;
	learnt) is_mounted "$d" || err="the learning daemon is gone" ;;
	esac
	drop_caches
	drops0=$(cache_drops)
	d0=$(disk_read_bytes)
	if [[ -z $err ]]; then
		slowdisk_spawn "$REPLAY" "$TRACE" "$d" >"$tmp/out" 2>"$tmp/err"
		wait $! || err="replay exited $?: $(head -c 200 "$tmp/err")"
	fi
	d1=$(disk_read_bytes)
	if [[ -z $err ]]; then
		read -r secs _ bytes < <(replay_stats 1 "$tmp/out")
		[[ $secs == bad ]] && { err="the replay printed no time or reported read errors: $(head -c 200 "$tmp/out")"; secs=-; }
	fi
	if [[ $policy == learning && -z $err ]]; then
		# The boot's sessions end LEARN_IDLE s after its last read; then
		# each file read is written as an image and loaded.
		nfiles=$(find "$d" -maxdepth 1 -type f | wc -l)
		for ((t = 0; t < 600; t++)); do
			(($(grep -c "learn: .*\.yolo: " "$LOGS/yolofs-$name.log") >= nfiles)) &&
				(($(grep -c "image $ldir/.* loaded" "$LOGS/yolofs-$name.log") >= nfiles)) && break
			sleep 0.1
		done
		((t < 600)) || err="the learnt images of $nfiles files were not written and loaded within 60 s: $(grep -c "learn: " "$LOGS/yolofs-$name.log") written"
		extra+=" learnt_bytes=$(du -cb "$ldir" | tail -1 | cut -f1) learnt_after_seconds=$(awk -v t="$t" 'BEGIN { printf "%.1f", t / 10 }')"
	fi
	if [[ $policy == passthrough || $policy == learnt ]] || [[ $policy == learning && -n $err ]]; then
		unmount_all
		# the learnt boot's daemon is the learning one
		local daemon=learning
		[[ $policy == passthrough ]] && daemon=passthrough
		local m=$LOGS/metrics-learn-$daemon-r$r.prom
		misses=$(metrics_sum misses_total "$m")
		extra+=" yolofs_source_bytes=$(metrics_sum bytes_source_total "$m") yolofs_hits=$(metrics_sum hits_total "$m")"
	fi
	[[ $(cache_drops) == "$drops0" ]] || extra+=" cache_drops=$(($(cache_drops) - drops0))"
	if [[ -n $err ]]; then
		status=failed secs=- extra="error=$err"
		keep_failed "$tmp" "$name"
		say "FAILED: learn $policy run $r: $err"
		unmount_all
	fi
	row learn hdd distinct 1 "$policy" 0 - "$r" "$status" "$secs" "$bytes" $((d1 - d0)) "$misses" "${extra# }"
	LEARN_TIMES[$policy]+=" ${secs/-/FAILED}"
	rm -rf "$tmp"
}

fig_learn() {
	local r p
	local -A LEARN_TIMES=()
	say "== learn: boot replay of copy d1, hdd profile: cold, passthrough, learning, learnt; $RUNS runs"
	set_profile hdd
	for ((r = 1; r <= RUNS; r++)); do
		# The two baselines swap places every run; the learnt boot follows
		# the learning one on its daemon.
		if ((r % 2)); then p="cold passthrough"; else p="passthrough cold"; fi
		for p in $p learning learnt; do learn_run "$p" "$r"; done
	done
	for p in cold passthrough learning learnt; do printf '   learn %-12s%s\n' "$p" "${LEARN_TIMES[$p]}" >&2; done
}
