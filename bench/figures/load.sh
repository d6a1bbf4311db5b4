# shellcheck shell=bash
# load.sh - sourced by bench/bench: the load figure (boot-image load speed)
# and its ssdread rows (serve=ssd reads).
#
# For the yolofs team's load-speed work, unthrottled (the images are on the
# machine's own disk, the "dedicated SSD"; no slow disk is involved):
#  - load, one image: the time from starting yolofs (-o serve=memory) with one
#    LOAD_MIB image to the mount being up and the image's "bytes loaded in"
#    line logged, page cache dropped first; against dd iflag=direct of the
#    same file (what the disk gives a plain sequential reader);
#  - load, LOAD_DAEMONS images: as many daemons, each loading its own image,
#    started at once; the time until every one is mounted and loaded, and
#    the aggregate rate; against as many dd iflag=direct at once;
#  - ssdread: a cold sequential read (1 MiB requests) of a file fully
#    covered by its image, through yolofs -o serve=ssd (open included: a
#    first open may push the file's image blocks into the page cache), the
#    same file read directly from its filesystem (source-file), and dd
#    iflag=direct of the image file.
# The images hold random data (nothing to dedup or compress), made with the
# test helper mkimage from one source file each (with --before, also with
# that build's mkimage: imgN-before.yolo, loaded and served by its yolofs,
# rows yolofs@before and yolofs-ssd@before, in turn with this build's).
# Drops of the page cache by others during a run are in extra (cache_drops=).

load_check() {
	[[ -x $MKIMAGE ]] || die "$MKIMAGE missing (the load figure builds its images with it; meson -Dtests=true)"
}

load_context() {
	context load_mib "$LOAD_MIB"
	context load_daemons "$LOAD_DAEMONS"
	context dd_bs "$DD_BS"
}

load_setup() {
	local i
	say "load: $LOAD_DAEMONS source files of $LOAD_MIB MiB and their boot images in $WORK/load"
	mkdir -p "$WORK/load"
	context load_filesystem "$(findmnt -no FSTYPE -T "$WORK/load") on $(findmnt -no SOURCE -T "$WORK/load")"
	for ((i = 1; i <= LOAD_DAEMONS; i++)); do
		mkdir -p "$WORK/load/src$i" "$WORK/load/mnt$i"
		head -c "${LOAD_MIB}M" /dev/urandom >"$WORK/load/src$i/disk.img"
		"$MKIMAGE" "$WORK/load/img$i.yolo" "$WORK/load/src$i" disk.img
		[[ -z $BEFORE ]] || "$BEFORE_MKIMAGE" "$WORK/load/img$i-before.yolo" "$WORK/load/src$i" disk.img
	done
	sync
}

# log_has_load LOG: yolofs logged an image's load ("... bytes loaded in N ms"); no fork.
log_has_load() {
	local l
	while IFS= read -r l; do [[ $l == *" bytes loaded in "* ]] && return 0; done <"$1"
	return 1
}

# load_yolofs N RUN [POLICY]: N daemons start at once, one image each; the
# run ends when all are mounted and have logged their load.  POLICY:
# yolofs (default) or yolofs@before.
load_yolofs() {
	local n=$1 r=$2 policy=${3:-yolofs} i t0 t1 ok err="" bytes=0 ms max_ms=0 line drops
	local mode=one
	((n > 1)) && mode=parallel
	side "$policy"
	drop_caches
	drops=$(cache_drops)
	now_us
	t0=$NOW_US
	for ((i = 1; i <= n; i++)); do
		yolofs_start "load$i$SIDE_TAG" 0 "$WORK/load/src$i" "$WORK/load/mnt$i" \
			"images=$WORK/load/img$i$SIDE_TAG.yolo,serve=memory" "$SIDE_YOLOFS"
	done
	local -A loaded=()
	while :; do
		ok=1
		for ((i = 1; i <= n; i++)); do
			[[ -n ${loaded[$i]:-} ]] && continue
			if is_mounted "$WORK/load/mnt$i" && log_has_load "$LOGS/yolofs-load$i$SIDE_TAG.log"; then
				loaded[$i]=1
			else
				ok=0
			fi
		done
		now_us
		((ok)) && break
		for ((i = 1; i <= n; i++)); do
			[[ -n ${loaded[$i]:-} ]] || kill -0 "${YOLOFS_PIDS[$((i - 1))]}" 2>/dev/null ||
				{ err="yolofs $i exited: $(tail -1 "$LOGS/yolofs-load$i$SIDE_TAG.log")"; break 2; }
		done
		((NOW_US - t0 < 300000000)) || { err="not all mounted and loaded after 300 s"; break; }
		nap
	done
	t1=$NOW_US
	for ((i = 1; i <= n; i++)); do
		line=$(grep -o "[0-9]* bytes loaded in [0-9.]* ms" "$LOGS/yolofs-load$i$SIDE_TAG.log" | head -1) || true
		[[ -n $line ]] || continue
		bytes=$((bytes + ${line%% *}))
		ms=${line##*in }
		ms=${ms% ms}
		max_ms=$(awk -v a="$ms" -v b="$max_ms" 'BEGIN { print (a > b) ? a : b }')
	done
	drops=$(foreign_drops "$drops")
	unmount_all
	if [[ -n $err ]]; then
		say "FAILED: load, $n daemons, $policy, run $r: $err"
		row load none "$mode" "$n" "$policy" - - "$r" failed - - - - "error=$err"
	else
		row load none "$mode" "$n" "$policy" - - "$r" ok "$(us_to_s $((t1 - t0)))" "$bytes" - - \
			"yolofs_load_ms=$max_ms$drops"
	fi
}

# load_dd N RUN: dd iflag=direct of the first N images at once.
load_dd() {
	local n=$1 r=$2 i t0 t1 pids=() err="" bytes=0 mode=one drops
	((n > 1)) && mode=parallel
	drop_caches
	drops=$(cache_drops)
	now_us
	t0=$NOW_US
	for ((i = 1; i <= n; i++)); do
		dd if="$WORK/load/img$i.yolo" of=/dev/null bs="$DD_BS" iflag=direct status=none 2>>"$LOGS/dd.log" &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || err="dd of image $((i + 1)) failed (see logs/dd.log)"; done
	now_us
	t1=$NOW_US
	for ((i = 1; i <= n; i++)); do bytes=$((bytes + $(stat -c %s "$WORK/load/img$i.yolo"))); done
	if [[ -n $err ]]; then
		row load none "$mode" "$n" dd - - "$r" failed - - - - "error=$err"
	else
		row load none "$mode" "$n" dd - - "$r" ok "$(us_to_s $((t1 - t0)))" "$bytes" - - "bs=$DD_BS$(foreign_drops "$drops")"
	fi
}

# ssdread_run POLICY RUN: one cold sequential read of src1/disk.img
# (POLICY yolofs-ssd, yolofs-ssd@before, source-file or dd-image).
ssdread_run() {
	local policy=$1 r=$2 t0 t1 out="" err="" bytes misses=- extra=- drops
	local file=$WORK/load/src1/disk.img
	side "$policy"
	if [[ $policy == yolofs-ssd* ]]; then
		yolofs_start "ssdread$SIDE_TAG" 0 "$WORK/load/src1" "$WORK/load/mnt1" \
			"images=$WORK/load/img1$SIDE_TAG.yolo,serve=ssd" "$SIDE_YOLOFS"
		local t
		for ((t = 0; t < 3000; t++)); do is_mounted "$WORK/load/mnt1" && break; nap; done
		is_mounted "$WORK/load/mnt1" ||
			err="yolofs serve=ssd did not mount: $(tail -1 "$LOGS/yolofs-ssdread$SIDE_TAG.log")"
		file=$WORK/load/mnt1/disk.img
	fi
	drop_caches
	drops=$(cache_drops)
	now_us
	t0=$NOW_US
	if [[ -z $err ]]; then
		if [[ $policy == dd-image ]]; then
			dd if="$WORK/load/img1.yolo" of=/dev/null bs="$DD_BS" iflag=direct status=none 2>>"$LOGS/dd.log" ||
				err="dd failed (see logs/dd.log)"
			bytes=$(stat -c %s "$WORK/load/img1.yolo")
			extra="bs=$DD_BS"
		else
			out=$("$READBENCH" seq "$file" 2>&1) || err="yolo-readbench: $out"
			bytes=$(bytes_of <<<"$out")
		fi
	fi
	now_us
	t1=$NOW_US
	drops=$(foreign_drops "$drops")
	if [[ $policy == yolofs-ssd* ]]; then
		unmount_all
		local met=$LOGS/metrics-ssdread$SIDE_TAG.prom
		misses=$(metrics_sum misses_total "$met")
		extra="bytes_ssd=$(metrics_sum bytes_ssd_total "$met")"
		extra+=" bytes_prefilled=$(metrics_sum bytes_prefilled_total "$met")"
	fi
	[[ -z $drops ]] || extra="${extra#-}$drops"
	if [[ -n $err ]]; then
		say "FAILED: ssdread $policy run $r: $err"
		row ssdread none seq 1 "$policy" - - "$r" failed - - - - "error=$err"
	else
		row ssdread none seq 1 "$policy" - - "$r" ok "$(us_to_s $((t1 - t0)))" "$bytes" - "$misses" "$extra"
	fi
}

fig_load() {
	local r policy n ys=yolofs ss="yolofs-ssd source-file dd-image"
	[[ -n $BEFORE ]] && ys="yolofs yolofs@before" ss="yolofs-ssd yolofs-ssd@before source-file dd-image"
	say "== load: one $LOAD_MIB MiB image, $LOAD_DAEMONS at once, serve=ssd read; $RUNS runs each"
	load_setup
	for ((r = 1; r <= RUNS; r++)); do
		for n in 1 "$LOAD_DAEMONS"; do
			# shellcheck disable=SC2086 # the lists are meant to split
			for policy in $(pair_order "$r" $ys); do load_yolofs "$n" "$r" "$policy"; done
			load_dd "$n" "$r"
		done
		# shellcheck disable=SC2086
		for policy in $(pair_order "$r" $ss); do ssdread_run "$policy" "$r"; done
	done
	rm -rf "$WORK/load"
}
