#!/bin/bash
# test_takeover.sh - yolofs@.service replaced under running guests, under a
# real systemd (systemd_lib.sh), with no I/O error and no wrong byte.
#
# The unit serves a nova-style _base directory in place, with a boot image
# of the VM's kernel, initrd and the first 64 MiB of its disk.  Under it run:
#   - a qemu VM (scripts/vm-boot.sh, its base image on the mount, cache=none:
#     O_DIRECT) that boots to multi-user and then reads its own disk in a
#     loop for GUEST_S seconds (caches dropped, files checked against the
#     sums of the first pass), printing one line per pass on its console and
#     at the end its mismatches and the kernel's I/O errors;
#   - fio: random 4 KiB reads and writes with O_DIRECT, each write verified
#     (crc32c, verify_backlog), in runs of 10 s until the end;
#   - a container: an overlayfs whose lower layer is a busybox root on the
#     mount, a shell in its own PID, mount, UTS, IPC and network namespaces
#     chrooted into it checking the layer's files in a loop (the host drops
#     caches every 3 s, so the reads reach the lower layer);
#   - takeover_load.py: a descriptor held open and read at random (buffered
#     and O_DIRECT), a held shared mapping faulted in again and again, and a
#     held writer fsync'ing and checking each block on the source.
# Through (a) 20 upgrades in a row (`yolofs --upgrade`, systemd following
# the new main PID) and (b) 20 SIGKILLs of the daemon (systemd restarts it;
# it takes the session back from the descriptor store), every loop must end
# with 0 errors, the VM must finish its boot and every pass, and the pause
# per takeover is reported (median and maximum): for upgrades as the daemon
# measures it, for crashes as a caller sees it (an open with O_DIRECT from
# the kill until it returns).
# (c) The mutant: the daemon with the resend notification dropped
# (LD_PRELOAD noresend), killed 5 times under the same loops, must be
# caught (a loop hangs or fails).
source "$(dirname "$0")/../mount/lib.sh"
source "$(dirname "$0")/systemd_lib.sh"
source "$(dirname "$0")/busybox_lib.sh"

ROOT=${YOLO_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${YOLO_VM_CACHE:-/var/cache/yolo/vm}
NAME=debian12
GUEST_S=${YOLO_TAKEOVER_GUEST_S:-60}
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
command -v fio >/dev/null || skip "fio missing (apt-get install fio)"
[ -n "${NORESEND:-}" ] && [ -f "$NORESEND" ] || fail "NORESEND is not set (run through meson test)"
"$ROOT/scripts/vm-image.sh" --out "$CACHE" || fail "scripts/vm-image.sh could not build the VM image"
LOAD="/usr/bin/python3 $ROOT/tests/mount/takeover_load.py"

chmod 755 "$TMP"
BASE=$TMP/nova/instances/_base IMAGES=$TMP/images
mkdir -p "$BASE" "$IMAGES" "$TMP/ovl/up" "$TMP/ovl/work" "$TMP/ovl/root"
chmod -R 755 "$TMP/nova"
for f in $NAME.qcow2 $NAME.vmlinuz $NAME.initrd; do
	flock -s "$CACHE/.build.lock" cp --sparse=always "$CACHE/$f" "$BASE/$f" || fail "cannot copy $f"
done
head -c $((64 << 20)) /dev/urandom >"$BASE/disk"
head -c $((16 << 20)) /dev/urandom >"$BASE/held"
head -c 4096 /dev/urandom >"$BASE/probe"
busybox_rootfs "$BASE/layer"
for i in $(seq 40); do head -c $((256 << 10)) /dev/urandom >"$BASE/layer/data/f$i"; done
(cd "$BASE/layer" && md5sum data/f*) >"$BASE/layer/data/sums"
chmod -R a+rX "$BASE"
"$MKIMAGE" "$IMAGES/$NAME.yolo" "$BASE" $NAME.vmlinuz $NAME.initrd $NAME.qcow2:0:$((64 << 20)) ||
	fail "mkimage"

# The guest's loop, handed to it by qemu's fw_cfg and run by systemd.run=
# (its own target, so that it can start multi-user itself and wait for it).
sed "s/@GUEST_S@/$GUEST_S/" >"$TMP/guest.sh" <<'EOF'
out=/dev/ttyS0
systemctl start --no-block multi-user.target
until systemctl is-active -q ssh.service; do sleep 0.5; done
printf '\nYOLO: boot done\n' >$out
find /usr/bin /usr/sbin /usr/lib/x86_64-linux-gnu -type f -size -4M 2>/dev/null | head -n 600 >/run/list
xargs md5sum </run/list >/run/sums 2>/dev/null
end=$(( $(cut -d. -f1 /proc/uptime) + @GUEST_S@ ))
n=0 bad=0
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
	echo 3 >/proc/sys/vm/drop_caches
	if md5sum -c --quiet /run/sums >/run/bad 2>&1; then
		n=$((n + 1)); printf 'YOLO: pass %d ok\n' $n >$out
	else
		bad=$((bad + 1)); printf 'YOLO: MISMATCH\n' >$out; head -n 5 /run/bad >$out
	fi
done
errs=$(dmesg | grep -ciE 'i/o error|ext4-fs error|buffer i/o')
printf 'YOLO: passes %d mismatches %d io_errors %d\n' $n $bad $errs >$out
EOF
printf '#!/bin/sh\nexec qemu-system-x86_64 "$@" -fw_cfg name=opt/yolo/guest.sh,file=%s\n' "$TMP/guest.sh" >"$TMP/qemu"
chmod 755 "$TMP/qemu"
GUEST_ARGS="systemd.unit=kernel-command-line.target systemd.mask=yolo-boot-done.service"
GUEST_ARGS+=" modules-load=qemu_fw_cfg systemd.run=\"/bin/sh /sys/firmware/qemu_fw_cfg/by_name/opt/yolo/guest.sh/raw\""
GUEST_ARGS+=" systemd.run_success_action=poweroff systemd.run_failure_action=poweroff"

sd_prepare "$BASE" "images=$IMAGES,allow_other,metrics=$TMP/m.prom,metrics_interval=1"
sd_start
sc start "$UNIT" || { cat "$TMP/unit.log"; fail "start $UNIT"; }
wait_active "start"
live || fail "start: not mounted"

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t / 1000))"; }
# stats NAME VALUES...: "NAME: median M ms, max X ms" of the values.
stats() {
	local name=$1; shift
	printf '%s\n' "$@" | sort -n | awk -v n="$name" '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%s: %d, pause median %.1f ms, max %.1f ms\n", n, NR, m, v[NR] }'
}

# start_loads NAME [vm]: the loops (and the VM), until $TMP/NAME.stop.
start_loads() {
	local name=$1 m
	LOADERS=()
	rm -f "$TMP/$name.stop"
	for m in read direct mmap; do
		inns $LOAD $m "$BASE/disk" "$BASE/disk" "$TMP/$name.stop" >"$TMP/$name.$m" 2>&1 &
		LOADERS+=($!)
	done
	inns $LOAD write "$BASE/held" "$BASE/held" "$TMP/$name.stop" >"$TMP/$name.write" 2>&1 &
	LOADERS+=($!)
	inns sh -c "while [ ! -e '$TMP/$name.stop' ]; do
		fio --name=takeover --filename='$BASE/fio.dat' --size=32M --rw=randrw --bs=4k \
			--ioengine=psync --direct=1 --verify=crc32c --verify_backlog=32 --verify_fatal=1 \
			--time_based --runtime=10 --output='$TMP/$name.fio.last' || { echo 'fio failed'; cat '$TMP/$name.fio.last'; exit 1; }
		echo 'fio run ok'; done" >"$TMP/$name.fio" 2>&1 &
	LOADERS+=($!)
	inns sh -c "mount -t overlay overlay -o 'lowerdir=$BASE/layer,upperdir=$TMP/ovl/up,workdir=$TMP/ovl/work' '$TMP/ovl/root' &&
		exec unshare --pid --fork --mount --uts --ipc --net --root='$TMP/ovl/root' /bin/sh -c '
			n=0; cd /
			while [ ! -e /stop ]; do
				sleep 1
				if md5sum -c data/sums >/tmp/check 2>&1; then n=\$((n + 1)); echo pass \$n
				else echo MISMATCH; head -n 3 /tmp/check; fi
			done'" >"$TMP/$name.container" 2>&1 &
	CONTAINER=$!
	( while [ ! -e "$TMP/$name.stop" ]; do sleep 3; echo 3 >/proc/sys/vm/drop_caches; done ) &
	LOADERS+=($!)
	if [ "${2:-}" = vm ]; then
		inns env YOLO_QEMU="$TMP/qemu" TMPDIR="$TMP" "$ROOT/scripts/vm-boot.sh" --backing-dir "$BASE" \
			--image $NAME.qcow2 --cache none --timeout 900 --log "$TMP/serial.log" \
			--append "$GUEST_ARGS" >"$TMP/vm.out" 2>"$TMP/vm.err" &
		VM=$!
	fi
	sleep 2
}
# stop_loads NAME: stop them; @return how many failed or hung (a caller
# whose request was lost cannot even be killed until the session ends: the
# hung ones are left in HUNG).
HUNG=()
stop_loads() {
	local name=$1 bad=0 p i alive
	touch "$TMP/$name.stop"
	inns touch "$TMP/ovl/root/stop"
	for i in $(seq 300); do
		alive=0
		for p in "${LOADERS[@]}" "$CONTAINER"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${LOADERS[@]}" "$CONTAINER"; do
		if kill -0 "$p" 2>/dev/null; then
			HUNG+=("$p")
			bad=$((bad + 1))
		elif ! wait "$p"; then
			bad=$((bad + 1))
		fi
	done
	grep -q MISMATCH "$TMP/$name.container" && bad=$((bad + 1))
	grep -q "^pass " "$TMP/$name.container" || bad=$((bad + 1))
	inns umount -l "$TMP/ovl/root" 2>/dev/null
	cat "$TMP/$name".{read,direct,mmap,write} 2>/dev/null | sed 's/^/  /'
	echo "  fio: $(grep -c 'fio run ok' "$TMP/$name.fio") verified runs$(grep -q 'fio failed' "$TMP/$name.fio" && echo ', FAILED')"
	echo "  container: $(grep -c '^pass ' "$TMP/$name.container") passes, $(grep -c MISMATCH "$TMP/$name.container") mismatches"
	return $bad
}
trap 'kill -KILL "${LOADERS[@]}" $CONTAINER ${VM:-} 2>/dev/null; sd_teardown; cleanup' EXIT

note "guests running: a VM booting from the mount, fio, a container, held files"
start_loads a vm

note "(a) 20 upgrades in a row"
UP=()
for i in $(seq 20); do
	old=$(prop MainPID)
	out=$(inns timeout 300 "$EXEC" --upgrade "$BASE") || fail "upgrade $i: $out"
	p=$(sed -n 's/.*paused \([0-9.]*\) ms.*/\1/p' <<<"$out")
	new=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$out")
	[ -n "$p" ] && [ -n "$new" ] || fail "upgrade $i: '$out'"
	# RELOADING=1 from the old daemon, READY=1 from the new one.
	for j in $(seq 50); do
		[ "$(prop MainPID)" = "$new" ] && [ "$(prop ActiveState)" = active ] && break
		sleep 0.1
	done
	[ "$(prop MainPID)" = "$new" ] || fail "upgrade $i: systemd follows $(prop MainPID), not the new daemon $new"
	[ "$(prop ActiveState)" = active ] || fail "upgrade $i: the unit is $(prop ActiveState)"
	UP+=("$p")
	sleep 1
done
[ "$(prop NRestarts)" = 0 ] || fail "(a): the unit restarted $(prop NRestarts) times"
stats "upgrades" "${UP[@]}"

note "(b) 20 SIGKILLs, systemd restarting the daemon"
KILLS=()
for i in $(seq 20); do
	old=$(prop MainPID)
	t0=$(now_ms)
	inns kill -KILL "$old"
	inns dd if="$BASE/probe" of=/dev/null bs=4096 count=1 iflag=direct status=none ||
		fail "kill $i: a caller's read failed"
	KILLS+=($(($(now_ms) - t0)))
	wait_active "restart $i" "$old"
	sleep 2
done
[ "$(prop NRestarts)" = 20 ] || fail "(b): NRestarts $(prop NRestarts), not 20"
[ "$(grep -c 'took the session over after a restart' "$TMP/unit.log")" = 20 ] ||
	fail "(b): not every restart took the session over"
stats "crashes" "${KILLS[@]}"

note "the VM finishes its loop"
wait "$VM"; vmrc=$?
VM=
cat "$TMP/vm.out"
[ $vmrc = 0 ] || { tail -n 20 "$TMP/vm.err"; fail "the VM did not boot and power off cleanly"; }
grep -a 'YOLO: passes' "$TMP/serial.log" || fail "the VM did not finish its loop"
grep -aq 'YOLO: passes [1-9][0-9]* mismatches 0 io_errors 0' "$TMP/serial.log" ||
	fail "the VM saw mismatches or I/O errors"
stop_loads a || fail "$? of the loops failed or hung across the takeovers"
sleep 1.5
echo "takeovers counted: $(metric takeovers "$TMP/m.prom")"
[ "$(metric takeovers "$TMP/m.prom")" = 40 ] || fail "the takeovers counter is $(metric takeovers "$TMP/m.prom"), not 40"

note "(c) the mutant without resend is caught"
sc stop "$UNIT"
[ "$(mounts)" = 0 ] || fail "stop: still mounted"
printf '[Service]\nEnvironment=LD_PRELOAD=%s\n' "$NORESEND" >"$U/yolofs@.service.d/60-mutant.conf"
sc daemon-reload
sc reset-failed "$UNIT" 2>/dev/null
sc start "$UNIT" || fail "start the mutant"
wait_active "mutant start"
start_loads c
for i in $(seq 5); do
	old=$(prop MainPID)
	inns kill -KILL "$old"
	wait_active "mutant restart $i" "$old"
	sleep 2
done
stop_loads c && fail "the mutant without resend went unnoticed: the test cannot tell"
echo "caught: $? of the loops failed or hung without the resend"
# The hung callers wait in the kernel for answers nobody will send (and may
# hold up the exit of the daemons they outlived): end the session.
fuse_abort "$(inns findmnt -no MAJ:MIN "$BASE")"
sc stop "$UNIT"
for p in "${HUNG[@]}"; do wait "$p" 2>/dev/null; done
echo PASS
