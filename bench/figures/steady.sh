# shellcheck shell=bash
# steady.sh - sourced by bench/bench: the steady figure (thesis Table 5.2).
#
# A sequential read of a 2.5 GB file and random reads of 868 MB of it, ext4
# vs yolofs, cold and warm, ssd profile and unthrottled.  No image covers
# the file: yolofs makes its opens kernel passthrough opens where the kernel
# and libfuse can (extra: daemon_reads=N, the READ requests of the run that
# reached the daemon, from its reads_passthrough counter; passthrough=0|1,
# its kernel_passthrough gauge).  Reads imgseq and imgrand (a third of it)
# do the same with the base image the d1 boot image covers (the trace's
# largest file), held open through the mount as qemu holds it after the
# boot: the reads a guest makes after its boot, which yolofs serves itself
# (extra: image_hits and image_misses, the blocks of the run served from
# the boot image and read from the source).  Every row's extra has
# page_reported_mib=N: the free memory the guest handed back to the host
# (virtio-balloon free page reporting) during the run; on this VM a cold
# unthrottled read with a pass of it in its middle is 1.5-2x slower on any
# file system (docs/design.md, issue 24), so the figure turns reporting off
# while it runs (bench/lib/cache.sh, context steady_page_reporting) and the
# field says it stayed off.  ext4 and yolofs
# runs alternate (same conditions for both); yolofs serves d1 (with its boot
# image loaded) at a second mountpoint, so the ext4 path stays visible.  A
# third mount with readahead=128K (the kernel's own default window) shows
# what the default 1M window buys.
# A warm run is the third read after dropping the caches, the first two
# through the same path: how fast cached data reads depends on how the first
# read laid the pages out in memory (2.5 GB of FUSE pages allocated along
# with the source's own cache copy read in ~0.15 s, allocated alone in
# ~0.11), so each path is measured as its own first read left it.  Other
# processes on this machine may drop the page cache in the middle of a warm
# run: such a run (the slow disk was read during it) is repeated, up to 3
# times, and fails after that (repeated=K in its extra).  With --before, the
# other build's yolofs (yolofs@before, yolofs-ra128K@before) has mounts of
# its own, right after this build's in each run's order (pair_order).

steady_context() { context steady_runs "$STEADY_RUNS"; }

# d1, and room for the 2.5 GB file.
steady_needs() {
	disk_need_copies 1
	disk_need_mib 2600
}

# steady_run PROFILE KIND TEMP RUN FS FILE: one read of FILE (through FS's
# path), KIND seq or rand, TEMP cold or warm; writes its row.
steady_run() {
	local profile=$1 kind=$2 temp=$3 r=$4 fs=$5 f=$6 prom=${7:-} args try out d0 d1 status secs
	local bytes extra reads0=0 hits0=0 misses0=0 rep0 rep1
	case $kind in
	*seq) args=(seq "$f") ;;
	rand) args=(rand --bytes 868M "$f") ;;
	imgrand) args=(rand --bytes $(($(stat -c %s "$f") / 3)) "$f") ;;
	esac
	status=ok extra=-
	for ((try = 1; try <= 3; try++)); do
		drop_caches
		if [[ $temp == warm ]]; then
			"$READBENCH" "${args[@]}" >/dev/null
			"$READBENCH" "${args[@]}" >/dev/null
		fi
		if [[ -n $prom ]]; then
			reads0=$(metrics_now reads_passthrough_total "$prom")
			hits0=$(metrics_sum hits_total "$prom") misses0=$(metrics_sum misses_total "$prom")
		fi
		d0=$(disk_read_bytes) rep0=$(page_reported_kib)
		out=$(slowdisk_run "$READBENCH" "${args[@]}" 2>&1) || status=failed
		d1=$(disk_read_bytes) rep1=$(page_reported_kib)
		[[ $status == ok ]] || { extra="error=yolo-readbench: $out"; break; }
		[[ $temp == cold ]] || ((d1 - d0 < 8 << 20)) && break
		say "   the page cache was dropped during a warm $fs run; repeating it"
		((try < 3)) || { status=failed extra="error=the page cache was dropped during the warm run 3 times"; }
	done
	((try > 1 && try <= 3)) && [[ $status == ok ]] && extra="repeated=$((try - 1))"
	if [[ -n $rep0 && $status == ok ]]; then
		[[ $extra == - ]] && extra="" || extra+=" "
		extra+="page_reported_mib=$(((rep1 - rep0) >> 10))"
	fi
	if [[ -n $prom && $status == ok ]]; then
		local more="daemon_reads=$(($(metrics_now reads_passthrough_total "$prom") - reads0))"
		more+=" passthrough=$(metrics_sum kernel_passthrough "$prom")"
		more+=" image_hits=$(($(metrics_sum hits_total "$prom") - hits0))"
		more+=" image_misses=$(($(metrics_sum misses_total "$prom") - misses0))"
		[[ $extra == - ]] && extra=$more || extra+=" $more"
	fi
	secs=- bytes=-
	if [[ $status == ok ]]; then
		secs=$(seconds_of <<<"$out")
		bytes=$(bytes_of <<<"$out")
	fi
	row steady "$profile" "$kind-$temp" - "$fs" - - "$r" "$status" "$secs" "$bytes" $((d1 - d0)) - "$extra"
}

fig_steady() {
	local profile kind temp r fs f opts base holders=()
	local fss="ext4 yolofs yolofs-ra128K"
	[[ -n $BEFORE ]] && fss="ext4 yolofs yolofs@before yolofs-ra128K yolofs-ra128K@before"
	say "== steady: 2.5 GB file, sequential and 868 MB random, $fss, $STEADY_RUNS runs each"
	slowdisk_profile none
	head -c 2500M /dev/urandom >"$MNT/d1/steady.bin"
	sync
	# yolofs[-ra128K][@before] is daemon steady[-ra128K][-before], serving d1
	# at $WORK/steadymnt[-ra128K][-before].
	local -A name=()
	for fs in $fss; do
		[[ $fs == ext4 ]] && continue
		side "$fs"
		name[$fs]=${fs#yolofs}
		name[$fs]=steady${name[$fs]%@before}$SIDE_TAG
		opts=metrics_interval=1
		[[ $fs == yolofs-ra128K* ]] && opts+=,readahead=128K
		mkdir -p "$WORK/${name[$fs]/steady/steadymnt}"
		yolofs_mount "${name[$fs]}" "$MNT/d1" "$SIDE_SSD/d1.yolo" memory "$WORK/${name[$fs]/steady/steadymnt}" \
			"$opts" "$SIDE_YOLOFS" || die "$MOUNT_ERR"
	done
	local size largest=0
	for f in "$MNT"/d1/*; do
		size=$(stat -c %s "$f")
		[[ $f != */steady.bin ]] && ((size > largest)) && largest=$size base=${f##*/}
	done
	context steady_image_file "$base $((largest >> 20)) MiB"
	for fs in $fss; do
		[[ $fs == ext4 ]] && f=$MNT/d1/$base || f=$WORK/${name[$fs]/steady/steadymnt}/$base
		# shellcheck disable=SC2217 # sleep holds the file open: its stdin
		sleep infinity <"$f" &
		holders+=($!)
	done
	page_reporting_pause
	context steady_page_reporting "$([[ -n $PAGE_REPORTING_ORDER ]] &&
		echo "off during the runs (page_reporting_order 11, was $PAGE_REPORTING_ORDER)" || echo "not controlled")"
	for profile in ssd none; do
		slowdisk_profile "$profile"
		for kind in seq rand imgseq imgrand; do
			for temp in cold warm; do
				for ((r = 1; r <= STEADY_RUNS; r++)); do
					# shellcheck disable=SC2086 # the list is meant to split
					for fs in $(pair_order "$r" $fss); do
						f=steady.bin prom=""
						[[ $kind == img* ]] && f=$base
						if [[ $fs == ext4 ]]; then
							f=$MNT/d1/$f
						else
							f=$WORK/${name[$fs]/steady/steadymnt}/$f
							prom=$LOGS/metrics-${name[$fs]}.prom
						fi
						steady_run "$profile" "$kind" "$temp" "$r" "$fs" "$f" "$prom"
					done
				done
				say "   steady $profile $kind $temp: $STEADY_RUNS runs"
			done
		done
	done
	page_reporting_resume
	kill "${holders[@]}" 2>/dev/null
	wait "${holders[@]}" 2>/dev/null || true   # killed: 143, which set -e took for a failure
	unmount_all
}

steady_cleanup() { page_reporting_resume; }
