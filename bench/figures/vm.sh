# shellcheck shell=bash
# vm.sh - sourced by bench/bench: the vm figure (real qemu TCG boots).
#
# Real qemu TCG boots of $VM_CACHE/debian12, alone and as one of 1+P
# concurrent boots (P think-time replays), cold / yolofs / yolofs-echo1 (a
# first boot, then echo 1, as in the replay figure) / warm.
#
# A lone TCG boot is CPU-bound here: qemu emulates the guest for ~20 s on one
# of the two CPUs, and the boot's ~650 reads of the backing store (4.3 s of
# the hdd profile's 150 IOPS) overlap with that, so cold, yolofs and warm
# take about the same time (the "alone" rows).  The thesis's situation is a
# boot storm: many VMs booting at once from one store.  Two CPUs cannot run
# 16 TCG guests, so the VM also boots together with P replayed boots of the
# trace (distinct copies d1..dP, paced by the recorded think time like
# booting TCG VMs), all under the same policy: cold (page cache dropped),
# yolofs (the VM's directory and every copy behind its own yolofs, boot
# images in memory) or warm (everything cached).  The figure is the VM's
# boot_done_seconds; the peers are stopped when it is done.

vm_check() {
	[[ -f $VM_CACHE/debian12.qcow2 ]] || die "the vm figure needs $VM_CACHE/debian12.qcow2 (scripts/vm-image.sh builds it)"
}

vm_context() {
	context vm_runs "$VM_RUNS"
	context vm_peers "$VM_PEERS"
}

# The peers' copies, and room for the VM's files.
vm_needs() {
	# shellcheck disable=SC2086 # the list is meant to split
	disk_need_copies $VM_PEERS
	disk_need_mib $(($(du -smL "$VM_CACHE"/debian12.* | awk '{s+=$1} END {print s}') + 64))
}

# vm_run PEERS POLICY RUN: one VM boot among PEERS replayed boots, all
# under POLICY; writes its row.
vm_run() {
	local peers=$1 policy=$2 r=$3 i p t d0 d1 ppids status extra proms misses misses0 src0
	status=ok extra=- proms=() misses=- misses0=0 src0=0
	case $policy in
	cold) drop_caches ;;
	yolofs | yolofs-echo1)
		drop_caches
		proms=("$LOGS/metrics-vm.prom")
		yolofs_mount vm "$MNT/vm" "$WORK/ssd/vm.yolo" memory "" metrics_interval=1 ||
			{ status=failed extra="error=$MOUNT_ERR"; }
		for ((i = 1; i <= peers; i++)); do
			[[ $status == ok ]] || break
			proms+=("$LOGS/metrics-d$i.prom")
			yolofs_mount "d$i" "$MNT/d$i" "$WORK/ssd/d$i.yolo" memory "" metrics_interval=1 ||
				{ status=failed extra="error=$MOUNT_ERR"; }
		done
		drop_caches
		if [[ $policy == yolofs-echo1 && $status == ok ]]; then
			# A first boot on the same daemons (untimed), then
			# memory pressure: pages dropped, inodes kept.
			for ((i = 1; i <= peers; i++)); do
				"$REPLAY" "$TRACE" "$MNT/d$i" >/dev/null 2>&1 ||
					{ status=failed extra="error=the first replay of d$i failed"; }
			done
			slowdisk_run "$ROOT/scripts/vm-boot.sh" --backing-dir "$MNT/vm" >/dev/null 2>>"$LOGS/vm-boot.log" ||
				{ status=failed extra="error=the first VM boot failed (see logs/vm-boot.log)"; }
			pages_drop
		fi
		if [[ $status == ok ]]; then
			misses0=$(metrics_now misses_total "${proms[@]}")
			src0=$(metrics_now bytes_source_total "${proms[@]}")
		fi
		;;
	warm)
		cat "$MNT/vm"/* >/dev/null
		for ((i = 1; i <= peers; i++)); do
			"$REPLAY" "$TRACE" "$MNT/d$i" >/dev/null 2>&1 ||
				{ status=failed extra="error=the warm-up replay of d$i failed"; }
		done
		;;
	esac
	ppids=() t=""
	d0=$(disk_read_bytes)
	if [[ $status == ok ]]; then
		for ((i = 1; i <= peers; i++)); do
			slowdisk_spawn "$REPLAY" --think "$TRACE" "$MNT/d$i" >/dev/null 2>&1
			ppids+=($!)
		done
		t=$(slowdisk_run "$ROOT/scripts/vm-boot.sh" --backing-dir "$MNT/vm" 2>>"$LOGS/vm-boot.log" |
			sed -n 's/^boot_done_seconds=//p') || true
		for p in "${ppids[@]}"; do kill "$p" 2>/dev/null || true; done
		for p in "${ppids[@]}"; do wait "$p" 2>/dev/null || true; done
		[[ -n $t ]] || { status=failed extra="error=the VM did not reach boot done (see logs/vm-boot.log)"; }
	fi
	d1=$(disk_read_bytes)
	if [[ $policy == yolofs* ]]; then
		unmount_all
		if [[ $status == ok ]]; then
			# the final metrics, written at exit
			misses=$(($(metrics_sum misses_total "${proms[@]}") - misses0))
			extra="yolofs_source_bytes=$(($(metrics_sum bytes_source_total "${proms[@]}") - src0))"
		fi
	fi
	[[ $status == ok ]] || { t=-; say "FAILED: vm boot, $peers peers, $policy, run $r: ${extra#error=}"; }
	row vm hdd - "$peers" "$policy" 1 - "$r" "$status" "$t" - $((d1 - d0)) "$misses" "$extra"
	say "   vm, $peers peers, $policy, run $r: $t"
}

fig_vm() {
	local peers policy r
	say "== vm: real qemu TCG boots, backing store on the hdd-throttled disk, $VM_RUNS runs each, peers: $VM_PEERS"
	mkdir -p "$MNT/vm"
	cp -p "$VM_CACHE"/debian12.{qcow2,vmlinuz,initrd} "$MNT/vm/"
	# the VM image may have been rebuilt since tests/data's trace was recorded:
	# capture this copy's boot image with a real (unthrottled) boot.
	slowdisk_profile none
	mkdir -p "$WORK/capmnt"
	"$CAPTURE" -o "$WORK/ssd/vm.yolo" --mountpoint "$WORK/capmnt" "$MNT/vm" -- \
		"$ROOT/scripts/vm-boot.sh" --backing-dir "$WORK/capmnt" >>"$LOGS/vm-boot.log" 2>&1 ||
		die "capturing the VM's boot image failed; see $LOGS/vm-boot.log"
	sync
	slowdisk_profile hdd
	for peers in $VM_PEERS; do
		for policy in cold yolofs yolofs-echo1 warm; do
			for ((r = 1; r <= VM_RUNS; r++)); do
				vm_run "$peers" "$policy" "$r"
			done
		done
	done
}
