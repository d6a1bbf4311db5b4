# shellcheck shell=bash
# ctr.sh - sourced by bench/bench: the ctr figure (--containers): container
# starts.
#
# `docker run` of Debian 12 images (debootstrap minbase + python3, perl or
# nginx; bench/ctr-image.sh builds them once per recipe, cached outside the
# repository), with dockerd's data root on the slow disk (--ctr-profile,
# default hdd40: 40 read IOPS).  The benchmark starts its own containerd and
# dockerd (bench/lib/docker.sh).  Budget "shared" (default): dockerd,
# containerd, yolofs and every container read through the one throttled
# blkio group, as everyone shares a real disk.  "per-container": each
# container has a --device-read-iops budget of its own and dockerd,
# containerd and yolofs share the group's (Docker's own per-container
# limits).
#
# Images: one layer each, distinct: image k is app k mod A's tarball (A apps) plus a
# file naming the variant, so each has its own layer directory (own
# blocks, inodes, page cache), like the replay figure's distinct copies.
# N=1 starts each app alone; N>1 starts the first N images at once.
# Each run of a cell is three starts in a row: cold (echo 3 >
# drop_caches: pages, dentries and inodes), echo1 (echo 1: pages only, the
# cold start just done), warm (the echo1 start just done); --ctr-states
# times fewer (e.g. "warm": an untimed start first makes the state, so a
# cell can have many runs cheaply); without yolofs,
# and with one yolofs per layer (`scripts/yolo-docker mount`, run in the
# throttled group, boot images from `scripts/yolo-docker capture` of the
# same command, taken once at set-up); with --before, also with that build's
# yolofs (policy yolofs@before: YOLOFS=its yolofs for the same yolo-docker,
# boot images captured with its yolo-capture into $WORK/ssd-before/ctr),
# run r of the two in pair_order.  After the mount, the cold start waits
# until every daemon has settled (its metrics say yolofs_background_jobs 0:
# the answers to its image's namespace questions read from the source, its
# blocks checked), as a layer mounted in production long before a container
# of it starts; a daemon that does not within --ctr-settle-timeout fails the
# run.  The cold row records mount_seconds, settle_seconds, the disk reads
# of the mount and settle (load_dev_reads, load_group_reads; traced and
# explained in logs/ctr/load-*) and the paths then answered from memory
# (load_ns_known_paths); every yolofs row the namespace questions answered
# from memory and asked of the source during the start (yolofs_ns_answered,
# yolofs_ns_unknown, yolofs_ns_dropped).  A start is timed from launching the
# docker client until it returns (the container ran its command and
# exited); the containers are removed afterwards, outside the time.  A run's
# seconds are those of its slowest start; every start's are in extra.
# Per run: reads the disk served and bytes (/proc/diskstats), reads and
# bytes charged to the throttled group, yolofs's counters, and what each
# read read (bench/lib/blocktrace.sh; logs/ctr/run-*/explain.txt names each
# request's file, directory or inodes and the process that issued it).
# YOLO_BENCH_CTR_STRACE=1 (diagnosis) also straces the yolofs daemons during
# each start (logs/ctr/run-*/strace-*).

read -r -d '' CTR_NGINX <<'EOF' || true
nginx -g 'daemon off;' &
exec 9<> <(:)
for ((i = 0; i < 60000; i++)); do
	{ exec 3<>/dev/tcp/127.0.0.1/80; } 2>/dev/null && break
	read -r -t 0.01 -u 9 || :
done
printf 'GET / HTTP/1.0\r\n\r\n' >&3
read -r line <&3
echo "${line%$'\r'}"
EOF

CTR_IMGDIR=""
CTR_FIGURE=ctr                           # the figure ctr_run writes rows of (newnode.sh: newnode)
CTR_IMAGES=() CTR_RUN_FLAGS=()
declare -A CTR_TAR=() CTR_APP_OF=()

ctr_check() {
	local b n a
	for b in dockerd containerd runc debootstrap; do
		command -v "$b" >/dev/null || die "the ctr figure needs $b (apt-get install docker.io debootstrap)"
	done
	[[ -x $CTR_DOCKER ]] || die "the ctr figure needs the docker client $CTR_DOCKER (apt-get install docker.io)"
	[[ $CTR_BUDGET == shared || $CTR_BUDGET == per-container ]] || die "bad --ctr-budget '$CTR_BUDGET' (shared, per-container)"
	slowdisk_profile_limits "$CTR_PROFILE" >/dev/null
	for n in $CTR_NS; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad --ctr-ns entry '$n'"; done
	[[ $CTR_SETTLE_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "bad --ctr-settle-timeout '$CTR_SETTLE_TIMEOUT'"
	for a in $CTR_APPS; do [[ " python3 perl nginx " == *" $a "* ]] || die "unknown --ctr-apps entry '$a' (python3 perl nginx)"; done
	[[ -n $CTR_STATES ]] || die "--ctr-states: empty"
	for a in $CTR_STATES; do [[ " cold echo1 warm " == *" $a "* ]] || die "unknown --ctr-states entry '$a' (cold echo1 warm)"; done
}

ctr_context() {
	context ctr_profile "$CTR_PROFILE"
	context ctr_ns "$CTR_NS"
	context ctr_runs "$CTR_RUNS"
	context ctr_budget "$CTR_BUDGET"
	context ctr_apps "$CTR_APPS"
	context ctr_states "$CTR_STATES"
	context ctr_settle_timeout "$CTR_SETTLE_TIMEOUT"
	[[ -n ${YOLO_BENCH_CTR_STRACE:-} ]] && context ctr_strace 1
	return 0
}

# The images' tarballs (built now), and room for them on the slow disk.
ctr_needs() {
	ctr_build_images
	disk_need_mib "$(ctr_disk_mib)"
}

# ctr_cleanup: stop what the figure started (containers, yolofs mounts,
# dockerd, containerd, their shims, the block trace) and unmount what they
# left; idempotent.
ctr_cleanup() {
	ctr_strace_stop
	[[ -n $CTR_RUN ]] || return 0
	ctr_containers_remove
	if [[ -d $CTR_STATE ]]; then
		side yolofs
		yolo_docker_cmd
		"${YOLO_DOCKER[@]}" umount --all --force >>"$CTR_LOGS/yolo-docker.log" 2>&1
	fi
	ctr_daemons_stop
	# In the reverse of their opening: the FUSE trace's instance may live in
	# the tracefs the block trace mounted, which blocktrace_close unmounts.
	fusetrace_close
	blocktrace_close
	CTR_DOCKERD_PID="" CTR_CONTAINERD_PID="" CTR_NS_PID="" CTR_RUN=""
}

ctr_packages() {
	case $1 in
	python3 | perl | nginx) echo "$1" ;;
	*) die "unknown container app '$1' (python3 perl nginx)" ;;
	esac
}

# ctr_cmd APP: CTR_CMD, what a container of APP runs, and CTR_EXPECT, the
# output it must print.
ctr_cmd() {
	case $1 in
	python3) CTR_CMD=(python3 -c 'import json, sqlite3; print("ok")') CTR_EXPECT=ok ;;
	perl) CTR_CMD=(perl -MData::Dumper -MStorable -MTime::HiRes -e 'print "ok\n"') CTR_EXPECT=ok ;;
	nginx) CTR_CMD=(bash -c "$CTR_NGINX") CTR_EXPECT="HTTP/1.1 200 OK" ;;
	esac
}

# ctr_build_images: the apps' tarballs (cached by bench/ctr-image.sh), and
# CTR_IMAGES / CTR_APP_OF: the names of the distinct images, round robin
# over the apps (image k: app k mod A, variant k / A + 1).
ctr_build_images() {
	local app apps nimg=0 n k name
	read -r -a apps <<<"$CTR_APPS"
	for app in "${apps[@]}"; do
		say "container image $app: bench/ctr-image.sh (cached after the first build)"
		CTR_TAR[$app]=$("$ROOT/bench/ctr-image.sh" "$app" "$(ctr_packages "$app")") ||
			die "building the $app image failed"
	done
	for n in $CTR_NS; do
		((n == 1)) && n=${#apps[@]}
		((n > nimg)) && nimg=$n
	done
	for ((k = 0; k < nimg; k++)); do
		app=${apps[k % ${#apps[@]}]}
		name=ybench-$app:v$((k / ${#apps[@]} + 1))
		CTR_IMAGES+=("$name")
		CTR_APP_OF[$name]=$app
	done
}

# ctr_disk_mib: room the images need on the slow disk.
ctr_disk_mib() {
	local img mib=1024
	for img in "${CTR_IMAGES[@]}"; do
		mib=$((mib + $(du -m "${CTR_TAR[${CTR_APP_OF[$img]}]}" | cut -f1) * 13 / 10))
	done
	echo "$mib"
}

# ctr_images_for MODE N: the images of a cell (MODE an app: its first variant).
ctr_images_for() {
	local img k
	if [[ $1 == distinct ]]; then
		for ((k = 0; k < $2; k++)); do echo "${CTR_IMAGES[k]}"; done
	else
		for img in "${CTR_IMAGES[@]}"; do
			[[ ${CTR_APP_OF[$img]} == "$1" ]] && { echo "$img"; return; }
		done
	fi
}

# ctr_setup: daemons, the distinct images imported (unthrottled), their
# boot images captured, the disk's block map, tracing.
ctr_setup() {
	local img app tmp d side
	CTR_LOGS=$LOGS/ctr
	CTR_STATE=$WORK/ctr-state
	CTR_IMGDIR=$WORK/ssd/ctr
	mkdir -p "$CTR_LOGS" "$CTR_STATE" "$CTR_IMGDIR"
	chmod 0755 "$WORK" "$WORK/ssd" "$CTR_IMGDIR"
	if [[ -n $BEFORE ]]; then
		mkdir -p "$WORK/ssd-before/ctr"
		chmod 0755 "$WORK/ssd-before" "$WORK/ssd-before/ctr"
	fi
	local limits
	limits=$(slowdisk_profile_limits "$CTR_PROFILE")
	CTR_RUN_FLAGS=(--network none)
	if [[ $CTR_BUDGET == per-container && ${limits% *} != 0 ]]; then
		CTR_RUN_FLAGS+=(--device-read-iops "$SLOWDISK_DEV:${limits% *}" --device-read-bps "$SLOWDISK_DEV:${limits#* }")
	fi
	slowdisk_profile none
	ctr_daemons_start
	context ctr_docker_version "$(dk version -f '{{.Server.Version}}' 2>/dev/null)"
	context ctr_containerd_version "$(containerd --version | awk '{print $3}')"
	tmp=$WORK/ctr-import
	mkdir -p "$tmp/etc"
	for img in "${CTR_IMAGES[@]}"; do
		app=${CTR_APP_OF[$img]}
		say "importing $img and capturing its boot image"
		cp "${CTR_TAR[$app]}" "$tmp/image.tar"
		echo "$img" >"$tmp/etc/yolo-bench-variant"
		tar --numeric-owner --owner=0 --group=0 -rf "$tmp/image.tar" -C "$tmp" ./etc/yolo-bench-variant
		dk import "$tmp/image.tar" "$img" >/dev/null || die "docker import of $img failed"
		ctr_cmd "$app"
		for side in yolofs ${BEFORE:+yolofs@before}; do
			side "$side"
			yolo_docker_cmd
			"${YOLO_DOCKER[@]}" capture "$img" -o "$SIDE_SSD/ctr" -- \
				--rm "${CTR_RUN_FLAGS[@]}" "$img" "${CTR_CMD[@]}" >"$CTR_LOGS/capture-$app$SIDE_TAG.out" \
				2>>"$CTR_LOGS/capture.log" || die "yolo-docker capture of $img failed (see $CTR_LOGS/capture.log)"
			[[ $(cat "$CTR_LOGS/capture-$app$SIDE_TAG.out") == "$CTR_EXPECT" ]] ||
				die "$img printed '$(head -c 200 "$CTR_LOGS/capture-$app$SIDE_TAG.out")' while captured, not '$CTR_EXPECT'"
		done
		dk image inspect -f '{{.GraphDriver.Data.UpperDir}}' "$img" >>"$WORK/ctr-layers"
	done
	rm -rf "$tmp"
	context ctr_images "${CTR_IMAGES[*]}"
	for app in $CTR_APPS; do
		context "ctr_recipe_$app" "$(cat "${CTR_TAR[$app]%.tar}.stamp")"
	done
	context ctr_boot_image_mib "$(du -cm "$CTR_IMGDIR"/*.yolo | tail -1 | cut -f1)"
	sync
	python3 "$ROOT/bench/blockmap.py" map "$MNT" "$SLOWDISK_DEV" "$MNT/docker" "$WORK/ctr-layers" \
		"$WORK/ctr-blockmap.tsv" 2>>"$CTR_LOGS/blockmap.log" ||
		{ say "bench/blockmap.py map failed (see logs/ctr/blockmap.log): reads not attributed"; rm -f "$WORK/ctr-blockmap.tsv"; }
	[[ -f $WORK/ctr-blockmap.tsv ]] && blocktrace_open "$WORK/ctr-blockmap.tsv"
	fusetrace_open
	d=$(du -sm "$MNT/docker/overlay2" | cut -f1)
	say "container images ready: ${#CTR_IMAGES[@]} distinct, $d MiB of layers on the slow disk"
}

# ctr_one NAME IMAGE OUT: one timed start (in the background); writes
# OUT.out, OUT.err and OUT.time ("RC START END").
ctr_one() {
	local t0=$EPOCHREALTIME rc=0
	dk run --name "$1" "${CTR_RUN_FLAGS[@]}" "$2" "${CTR_CMD[@]}" >"$3.out" 2>"$3.err" || rc=$?
	echo "$rc $t0 $EPOCHREALTIME" >"$3.time"
}

# ctr_prepare IMAGE...: an untimed start of each image, one after another,
# before a run whose first timed state (--ctr-states) is not cold: what the
# cold start does for the states after it (the inodes and pages it leaves,
# the page cache drops counted from here).  @return 1 with CTR_PREPARE_ERR
# set when a start failed: the state the run would claim was not made.
ctr_prepare() {
	local img i=0 tmp=$WORK/ctr-prepare
	mkdir -p "$tmp"
	CTR_DROP_BASE=$(cache_drops)
	for img in "$@"; do
		ctr_cmd "${CTR_APP_OF[$img]}"
		ctr_one "ybench-$$-prepare-$i" "$img" "$tmp/$i"
		dk rm -f "ybench-$$-prepare-$i" >/dev/null 2>&1
		CTR_PREPARE_ERR=$(ctr_start_err "$tmp/$i" "$img")
		[[ -z $CTR_PREPARE_ERR ]] || { CTR_PREPARE_ERR="the untimed start before the run: $CTR_PREPARE_ERR"; return 1; }
		i=$((i + 1))
	done
}

# ctr_start_err OUT IMAGE: why the start ctr_one recorded in OUT.* failed,
# or nothing when it exited 0 and printed what its app prints (CTR_EXPECT,
# as ctr_cmd set it for IMAGE's app).
ctr_start_err() {
	local rc out
	read -r rc _ <"$1.time" 2>/dev/null || rc=no-time
	out=$(cat "$1.out" 2>/dev/null)
	if [[ $rc != 0 ]]; then
		echo "docker run of $2 exited $rc: $(head -c 200 "$1.err")"
	elif [[ $out != "$CTR_EXPECT" ]]; then
		echo "$2 printed '$(head -c 100 <<<"$out")', not '$CTR_EXPECT'"
	fi
}

# ctr_run MODE N POLICY CACHE RUN ERR LOAD IMAGE...: N concurrent
# starts in one cache state; writes the row.  ERR: why the run cannot be
# (yolofs did not mount or settle).  LOAD: key=value fields of the mount and
# settle before it ("-": none), added to the cold row.
ctr_run() {
	local mode=$1 n=$2 policy=$3 cache=$4 r=$5 err=$6 load=$7
	shift 7
	local imgs=("$@") i tmp pids=() names=() times=() t0 t1 max=0 sum=0
	local d0 d1 c0 c1 m0 m1 fuse extra="" status=ok secs=- src=- misses=- load1
	case $cache in
	cold) drop_caches ;;
	echo1) pages_drop ;;
	warm) ;;
	esac
	# Drops by others since this state was made (for warm: since the echo1
	# drop) change the state the run claims.
	[[ $cache == warm ]] || CTR_DROP_BASE=$(cache_drops)
	[[ $policy != without ]] && ctr_metrics_settle
	tmp=$LOGS/ctr/run-$mode-$n-$policy-$cache-r$r
	mkdir -p "$tmp"
	[[ $policy != without && -n ${YOLO_BENCH_CTR_STRACE:-} && -z $err ]] && ctr_strace_start "$tmp"
	m0=$(ctr_metrics)
	read -r load1 _ </proc/loadavg       # the machine is shared: how busy it was
	blocktrace_start
	fusetrace_start
	c0=$(slowdisk_cg_reads)
	d0=$(disk_reads)
	if [[ -z $err ]]; then
		for i in "${!imgs[@]}"; do
			names+=("ybench-$$-$r-$i")
			ctr_cmd "${CTR_APP_OF[${imgs[i]}]}"
			ctr_one "${names[i]}" "${imgs[i]}" "$tmp/$i" &
			pids+=($!)
		done
		for i in "${!pids[@]}"; do wait "${pids[i]}" || true; done
	fi
	d1=$(disk_reads)
	c1=$(slowdisk_cg_reads)
	blocktrace_stop
	fuse=$(fusetrace_stop)
	ctr_strace_stop
	CTR_FOREIGN_DROPS=$(($(cache_drops) - CTR_DROP_BASE))
	if [[ $policy != without ]]; then
		ctr_metrics_settle
		m1=$(ctr_metrics)
	fi
	for i in "${!names[@]}"; do
		read -r _ t0 t1 <"$tmp/$i.time" 2>/dev/null || { t0=0 t1=0; }
		ctr_cmd "${CTR_APP_OF[${imgs[i]}]}"
		[[ -n $err ]] || err=$(ctr_start_err "$tmp/$i" "${imgs[i]}")
		t0=${t0/./} t1=${t1/./}
		times+=("$(us_to_s $((t1 - t0)))")
		((t1 - t0 > max)) && max=$((t1 - t0))
		sum=$((sum + t1 - t0))
	done
	((${#names[@]})) && dk rm -f "${names[@]}" >/dev/null 2>&1
	read -r -a d0 <<<"$d0"
	read -r -a d1 <<<"$d1"
	read -r -a c0 <<<"$c0"
	read -r -a c1 <<<"$c1"
	extra="budget=$CTR_BUDGET load1=$load1 dev_reads=$((d1[0] - d0[0])) group_reads=$((c1[0] - c0[0]))"
	extra+=" group_read_bytes=$((c1[1] - c0[1]))"
	if [[ $policy != without ]]; then
		read -r -a m0 <<<"$m0"
		read -r -a m1 <<<"$m1"
		src=$((m1[0] - m0[0])) misses=$((m1[1] - m0[1]))
		extra+=" yolofs_source_bytes=$src yolofs_hits=$((m1[2] - m0[2]))"
		extra+=" yolofs_prefilled_bytes=$((m1[3] - m0[3])) yolofs_passthrough_reads=$((m1[4] - m0[4]))"
		extra+=" yolofs_ns_answered=$((m1[5] - m0[5])) yolofs_ns_unknown=$((m1[6] - m0[6]))"
		extra+=" yolofs_ns_dropped=$((m1[7] - m0[7])) yolofs_files_matched=$((m1[8] - m0[8]))"
		extra+=" yolofs_ns_known_paths=${m1[9]}"
		[[ $cache == cold && $load != - ]] && extra+=" $load"
	fi
	blocktrace_on && extra+=" $(blocktrace_save "$tmp" classify)"
	[[ -n $fuse ]] && extra+=" $fuse"
	((CTR_FOREIGN_DROPS == 0)) || extra+=" cache_drops=$CTR_FOREIGN_DROPS"
	if [[ -n $err ]]; then
		status=failed
		extra="error=$err"
		say "FAILED: ctr $mode N=$n $policy $cache run $r: $err"
		CTR_TIME=FAILED
	else
		secs=$(us_to_s "$max")
		extra="start_seconds=$(IFS=,; echo "${times[*]}") mean_seconds=$(us_to_s $((sum / n))) $extra"
		CTR_TIME=$secs
	fi
	row "$CTR_FIGURE" "$CTR_PROFILE" "$mode" "$n" "$policy" - "$cache" "$r" "$status" "$secs" - \
		$(((d1[1] - d0[1]) * 512)) "$misses" "$extra"
}

# ctr_iteration MODE N POLICY RUN: one run of a cell in each cache state
# (POLICY without, yolofs or yolofs@before).
# Another process on this shared machine dropping the page cache during it
# (or, for echo1 and warm, since their state was made) makes it another
# experiment: it is repeated once; the second attempt's rows are kept
# either way (the report lists the runs that were still disturbed).
ctr_iteration() {
	local attempt pending
	pending=$(mktemp "$WORK/rows.XXXXXX")
	for attempt in 1 2; do
		: >"$pending"
		ROW_OUT=$pending ctr_attempt "$@"
		((CTR_DISTURBED == 0)) && break
		((attempt == 1)) && say "   another process dropped the page cache during that run; repeating it"
	done
	cat "$pending" >>"$RAW/runs.tsv"
	rm -f "$pending"
}

ctr_attempt() {
	local mode=$1 n=$2 policy=$3 r=$4 imgs img err="" load=- t0 cache times=() d0 d1 c0 c1 m ldir sd
	CTR_DISTURBED=0
	mapfile -t imgs < <(ctr_images_for "$mode" "$n")
	side "$policy"
	yolo_docker_cmd
	if [[ $policy != without ]]; then
		blocktrace_start
		read -r -a d0 <<<"$(disk_reads)"
		read -r -a c0 <<<"$(slowdisk_cg_reads)"
		now_us
		t0=$NOW_US
		for img in "${imgs[@]}"; do
			slowdisk_run "${YOLO_DOCKER[@]}" mount "$img" --images "$SIDE_SSD/ctr" >>"$CTR_LOGS/yolo-docker.log" 2>&1 ||
				{ err="yolo-docker mount $img failed: $(tail -1 "$CTR_LOGS/yolo-docker.log")"; break; }
		done
		now_us
		load="mount_seconds=$(us_to_s $((NOW_US - t0)))"
		# One layer per image: one daemon each.
		if [[ -z $err ]]; then
			if ctr_settle "${#imgs[@]}"; then
				read -r -a d1 <<<"$(disk_reads)"
				read -r -a c1 <<<"$(slowdisk_cg_reads)"
				read -r -a m <<<"$(ctr_metrics)"
				load+=" settle_seconds=$(us_to_s "$CTR_SETTLE_US")"
				load+=" load_dev_reads=$((d1[0] - d0[0])) load_group_reads=$((c1[0] - c0[0]))"
				load+=" load_ns_known_paths=${m[9]}"
				say "   $policy: ${#imgs[@]} daemons mounted, settled $(us_to_s "$CTR_SETTLE_US") s later;" \
					"mount and settle read the disk $((d1[0] - d0[0])) times; ${m[9]} paths answered from memory"
			else
				err=$CTR_SETTLE_ERR
				say "FAILED: ctr $mode N=$n $policy run $r: $err"
			fi
		fi
		if blocktrace_on; then
			# What the mount and settle read (not part of any start).
			blocktrace_stop
			ldir=$LOGS/ctr/load-$mode-$n$SIDE_TAG-r$r
			mkdir -p "$ldir"
			blocktrace_save "$ldir"
		fi
	fi
	if [[ -z $err && ${CTR_STATES%% *} != cold ]] && ! ctr_prepare "${imgs[@]}"; then
		err=$CTR_PREPARE_ERR
		say "FAILED: ctr $mode N=$n $policy run $r: $err"
	fi
	for cache in $CTR_STATES; do
		ctr_run "$mode" "$n" "$policy" "$cache" "$r" "$err" "$load" "${imgs[@]}"
		times+=("$cache=$CTR_TIME")
		CTR_DISTURBED=$((CTR_DISTURBED + CTR_FOREIGN_DROPS))
	done
	if [[ $policy != without ]]; then
		# The daemons' logs (yolo-docker removes their state directories).
		for sd in "$CTR_STATE"/*/; do
			[[ -f $sd/log ]] && cp "$sd/log" "$LOGS/ctr/yolofs-$mode-$n$SIDE_TAG-r$r-$(basename "$sd").log"
		done
		for img in "${imgs[@]}"; do
			"${YOLO_DOCKER[@]}" umount "$img" >>"$CTR_LOGS/yolo-docker.log" 2>&1 ||
				"${YOLO_DOCKER[@]}" umount --force "$img" >>"$CTR_LOGS/yolo-docker.log" 2>&1 || true
		done
	fi
	printf '   %-8s N=%-3s %-13s run %s: %s\n' "$mode" "$n" "$policy" "$r" "${times[*]}" >&2
}

# ctr_each_run RUN_POLICIES: RUN_POLICIES MODE N RUN for every run of every
# cell, in order: by N (N=1: each app alone, else N distinct images), then
# run (the ctr and newnode figures' cells).
ctr_each_run() {
	local n r mode modes
	for n in $CTR_NS; do
		modes=distinct
		((n == 1)) && modes=$CTR_APPS
		for mode in $modes; do
			for ((r = 1; r <= CTR_RUNS; r++)); do
				"$1" "$mode" "$n" "$r"
			done
		done
	done
}

# ctr_policies MODE N RUN: one run of a cell under each policy.
ctr_policies() {
	local policy
	for policy in $(pair_order "$3" without yolofs ${BEFORE:+yolofs@before}); do
		ctr_iteration "$1" "$2" "$policy" "$3"
	done
}

fig_ctr() {
	say "== ctr: container starts, profile $CTR_PROFILE ($CTR_BUDGET budget), N in $CTR_NS, $CTR_RUNS runs each"
	ctr_setup
	slowdisk_profile "$CTR_PROFILE"
	ctr_each_run ctr_policies
	ctr_cleanup
}
