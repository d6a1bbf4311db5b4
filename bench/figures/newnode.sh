# shellcheck shell=bash
# newnode.sh - sourced by bench/bench: the newnode figure (issue 20): the
# first start of an image on a node that has never run it, as when a fleet
# scales out.
#
# Containers: the ctr figure's images, daemons and slow disk (ctr.sh:
# dockerd's data root on it, --ctr-profile, the shared budget) and its cells
# (N = 1: each app alone; N > 1: distinct images at once), cold starts only
# (pages, dentries and inodes dropped: an image just pulled).  Policies, in
# pair_order per run:
#   without   no yolofs;
#   learning  yolo-docker mount --learn on an empty learn directory: a new
#             node today (the start is recorded; nothing is served yet);
#   fetched   yolo-docker fetch from the registry, then mount --images
#             --learn: what another node learnt and published.
# The registry is Debian's docker-registry on 127.0.0.1, its storage off the
# slow disk (a registry is another machine).  At set-up the images are
# pushed there and one learnt start of each is published, as node A would
# (this machine's layers: the comparison a fetch makes is the same work).
# A fetch runs throttled like everything else, before the mount; its time
# and disk reads are in the row (fetch_seconds, fetch_dev_reads), not in
# the start's.
#
# VM: one qemu TCG boot of $VM_CACHE/debian12 per policy and run
# (--newnode-vm-runs), its directory on the slow disk, cache=none as nova:
# without yolofs; yolofs learn= (empty); yolo-share fetch, then yolofs
# images= and learn=.  Node A's image is learnt from one boot at set-up
# (learn_idle NEWNODE_VM_IDLE: a TCG guest pauses for seconds).

NEWNODE_VM_RUNS=""
NEWNODE_VM_IDLE=40
NEWNODE_REG="" NEWNODE_REG_PID=""

newnode_check() {
	has_figure ctr && die "run the newnode figure without ctr (it sets up the same images and daemons itself)"
	ctr_check
	command -v docker-registry >/dev/null || die "the newnode figure needs docker-registry (apt-get install docker-registry)"
	[[ -f $VM_CACHE/debian12.qcow2 ]] || die "the newnode figure needs $VM_CACHE/debian12.qcow2 (scripts/vm-image.sh)"
}

newnode_context() {
	ctr_context
	context newnode_vm_runs "${NEWNODE_VM_RUNS:-$RUNS}"
	context newnode_vm_idle "$NEWNODE_VM_IDLE"
}

newnode_needs() {
	ctr_needs
	disk_need_mib $(($(du -smL "$VM_CACHE"/debian12.* | awk '{s+=$1} END {print s}') + 64))
}

newnode_cleanup() {
	ctr_cleanup
	[[ -n $NEWNODE_REG_PID ]] && kill "$NEWNODE_REG_PID" 2>/dev/null
	NEWNODE_REG_PID=""
}

# newnode_registry: docker-registry on a free port of 127.0.0.1; sets NEWNODE_REG.
newnode_registry() {
	local port t dir=$WORK/registry
	rm -rf "$dir"
	mkdir -p "$dir"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	NEWNODE_REG=127.0.0.1:$port
	printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
		"$dir/data" "$NEWNODE_REG" >"$dir/config.yml"
	docker-registry serve "$dir/config.yml" >"$LOGS/registry.log" 2>&1 &
	NEWNODE_REG_PID=$!
	for ((t = 0; t < 100; t++)); do
		python3 -c "import urllib.request; urllib.request.urlopen('http://$NEWNODE_REG/v2/', timeout=2)" 2>/dev/null && return
		sleep 0.1
	done
	die "docker-registry did not start (see logs/registry.log)"
}

# newnode_learn_image IMG: node A: a learnt start of IMG, published.
newnode_learn_image() {
	local img=$1 ldir=$WORK/newnode/learnA t
	yolo_docker_cmd
	"${YOLO_DOCKER[@]}" mount "$NEWNODE_REG/$img" --learn "$ldir" -o learn_idle=3 >>"$CTR_LOGS/yolo-docker.log" 2>&1 ||
		die "newnode: yolo-docker mount --learn $img failed (see logs/ctr/yolo-docker.log)"
	ctr_cmd "${CTR_APP_OF[$img]}"
	drop_caches
	[[ $(dk run --rm "${CTR_RUN_FLAGS[@]}" "$img" "${CTR_CMD[@]}" 2>&1) == "$CTR_EXPECT" ]] ||
		die "newnode: the learnt start of $img failed"
	for ((t = 0; t < 600; t++)); do
		[[ $(metrics_sum learned_images_total "$CTR_STATE"/*/metrics.prom) -ge 1 ]] && break
		sleep 0.1
	done
	"${YOLO_DOCKER[@]}" publish "$NEWNODE_REG/$img" >>"$CTR_LOGS/yolo-docker.log" 2>&1 ||
		die "newnode: yolo-docker publish $img failed (see logs/ctr/yolo-docker.log)"
	"${YOLO_DOCKER[@]}" umount --force "$NEWNODE_REG/$img" >>"$CTR_LOGS/yolo-docker.log" 2>&1 || true
}

newnode_setup() {
	local img d=$MNT/newnode-vm
	CTR_FIGURE=newnode
	ctr_setup
	newnode_registry
	side yolofs
	for img in "${CTR_IMAGES[@]}"; do
		say "newnode: $img pushed to $NEWNODE_REG, one start learnt and published (node A)"
		dk tag "$img" "$NEWNODE_REG/$img" && dk push "$NEWNODE_REG/$img" >>"$CTR_LOGS/push.log" 2>&1 ||
			die "newnode: docker push of $img failed (see logs/ctr/push.log)"
		newnode_learn_image "$img"
	done
	say "newnode: the VM's files on the slow disk, one boot learnt and published (node A)"
	mkdir -p "$d"
	cp -p "$VM_CACHE"/debian12.{qcow2,vmlinuz,initrd} "$d/"
	mkdir -p -m 0700 "$WORK/newnode/vmlearnA"
	yolofs_start newnode-vm-a 1 "$d" "$d" "learn=$WORK/newnode/vmlearnA,learn_idle=$NEWNODE_VM_IDLE,learn_window=600"
	drop_caches
	slowdisk_run "$ROOT/scripts/vm-boot.sh" --backing-dir "$d" --cache none >/dev/null 2>>"$LOGS/vm-boot.log" ||
		die "newnode: the learnt VM boot failed (see logs/vm-boot.log)"
	sleep $((NEWNODE_VM_IDLE + 5))
	unmount_all
	for f in debian12.qcow2 debian12.vmlinuz debian12.initrd; do
		"$ROOT/scripts/yolo-share" publish --to "$NEWNODE_REG/bench/base" --learn "$WORK/newnode/vmlearnA" "$d" "$f" \
			>>"$LOGS/yolo-share.log" 2>&1 || die "newnode: yolo-share publish $f failed (see logs/yolo-share.log)"
	done
}

# newnode_ctr MODE N POLICY RUN: one cold start of a cell under POLICY.
newnode_ctr() {
	local mode=$1 n=$2 policy=$3 r=$4 imgs img err="" load=- t0 d0 d1 dir=$WORK/newnode/r$r served=()
	mapfile -t imgs < <(ctr_images_for "$mode" "$n")
	side yolofs
	yolo_docker_cmd
	rm -rf "$dir"
	mkdir -p -m 0700 "$dir"
	if [[ $policy != without ]]; then
		load=""
		if [[ $policy == fetched ]]; then
			drop_caches
			read -r -a d0 <<<"$(disk_reads)"
			now_us
			t0=$NOW_US
			for img in "${imgs[@]}"; do
				slowdisk_run "${YOLO_DOCKER[@]}" fetch "$NEWNODE_REG/$img" --images "$dir/images" \
					>>"$CTR_LOGS/yolo-docker.log" 2>&1 || { err="yolo-docker fetch $img failed"; break; }
			done
			now_us
			read -r -a d1 <<<"$(disk_reads)"
			load="fetch_seconds=$(us_to_s $((NOW_US - t0))) fetch_dev_reads=$((d1[0] - d0[0])) "
		fi
		[[ $policy == fetched ]] && served=(--images "$dir/images")
		for img in "${imgs[@]}"; do
			[[ -z $err ]] || break
			slowdisk_run "${YOLO_DOCKER[@]}" mount "$NEWNODE_REG/$img" --learn "$dir/learn" "${served[@]}" \
				>>"$CTR_LOGS/yolo-docker.log" 2>&1 || err="yolo-docker mount $img failed: $(tail -1 "$CTR_LOGS/yolo-docker.log")"
		done
		[[ -n $err ]] || ctr_settle "${#imgs[@]}" || err=$CTR_SETTLE_ERR
		load+="settle_seconds=$(us_to_s "${CTR_SETTLE_US:-0}")"
	fi
	ctr_run "$mode" "$n" "$policy" cold "$r" "$err" "$load" "${imgs[@]}"
	if [[ $policy != without ]]; then
		for img in "${imgs[@]}"; do
			"${YOLO_DOCKER[@]}" umount --force "$NEWNODE_REG/$img" >>"$CTR_LOGS/yolo-docker.log" 2>&1 || true
		done
	fi
	printf '   %-8s N=%-3s %-9s run %s: %s\n' "$mode" "$n" "$policy" "$r" "$CTR_TIME" >&2
}

# newnode_vm POLICY RUN: one cold TCG boot of the VM under POLICY.
newnode_vm() {
	local policy=$1 r=$2 d=$MNT/newnode-vm dir=$WORK/newnode/vm-r$r status=ok extra="" t="" d0 d1 t0 f
	local met=$LOGS/metrics-newnode-vm-$policy-r$r.prom
	rm -rf "$dir"
	mkdir -p -m 0700 "$dir"
	if [[ $policy == fetched ]]; then
		drop_caches
		d0=$(disk_read_bytes)
		now_us
		t0=$NOW_US
		slowdisk_run "$ROOT/scripts/yolo-share" fetch --from "$NEWNODE_REG/bench/base" --images "$dir/images" "$d" \
			debian12.qcow2 debian12.vmlinuz debian12.initrd >>"$LOGS/yolo-share.log" 2>&1 ||
			{ status=failed extra="error=yolo-share fetch failed (see logs/yolo-share.log)"; }
		now_us
		extra="fetch_seconds=$(us_to_s $((NOW_US - t0))) fetch_read_bytes=$(($(disk_read_bytes) - d0))"
	fi
	if [[ $policy != without && $status == ok ]]; then
		local opts="learn=$dir/learn,learn_idle=$NEWNODE_VM_IDLE,learn_window=600,metrics_interval=1"
		mkdir -p -m 0700 "$dir/learn"
		[[ $policy == fetched ]] && opts+=",images=$dir/images"
		yolofs_start "newnode-vm-$policy-r$r" 1 "$d" "$d" "$opts"
		for ((f = 0; f < 600; f++)); do
			is_mounted "$d" && [[ -f $LOGS/metrics-newnode-vm-$policy-r$r.prom ]] &&
				[[ $(metrics_now background_jobs "$LOGS/metrics-newnode-vm-$policy-r$r.prom") == 0 ]] && break
			sleep 0.1
		done
		is_mounted "$d" || { status=failed extra="error=yolofs on $d did not mount"; }
	fi
	drop_caches
	d0=$(disk_read_bytes)
	if [[ $status == ok ]]; then
		t=$(slowdisk_run "$ROOT/scripts/vm-boot.sh" --backing-dir "$d" --cache none 2>>"$LOGS/vm-boot.log" |
			sed -n 's/^boot_done_seconds=//p') || true
		[[ -n $t ]] || { status=failed extra="error=the VM did not reach boot done (see logs/vm-boot.log)"; }
	fi
	d1=$(disk_read_bytes)
	if [[ $policy != without ]]; then
		unmount_all
		[[ $status == ok ]] && extra+=" yolofs_source_bytes=$(metrics_sum bytes_source_total "$met")" &&
			extra+=" yolofs_prefilled_bytes=$(metrics_sum bytes_prefilled_total "$met")"
	fi
	[[ $status == ok ]] || { t=-; say "FAILED: newnode vm $policy run $r: ${extra#error=}"; }
	row newnode "$CTR_PROFILE" vm 1 "$policy" - cold "$r" "$status" "$t" - $((d1 - d0)) - "${extra:--}"
	say "   vm       N=1   $policy run $r: $t"
}

# newnode_policies MODE N RUN: one run of a cell under each policy.
newnode_policies() {
	local policy
	for policy in without learning fetched; do
		newnode_ctr "$1" "$2" "$policy" "$3"
	done
}

fig_newnode() {
	local r policy
	say "== newnode: first starts on a new node, profile $CTR_PROFILE, N in $CTR_NS, $CTR_RUNS runs each"
	newnode_setup
	slowdisk_profile "$CTR_PROFILE"
	ctr_each_run newnode_policies
	for ((r = 1; r <= ${NEWNODE_VM_RUNS:-$RUNS}; r++)); do
		for policy in without learning fetched; do
			newnode_vm "$policy" "$r"
		done
	done
	newnode_cleanup
}
