#!/bin/bash
# test_systemd.sh - yolofs@.service under a real systemd (systemd_lib.sh:
# PID 1 of its own namespaces, seeing only this test's units), with a
# drop-in that checks the mount at READY.
#
# First, without systemd, strace shows yolofs sending READY=1 only after
# its mount(2) and STOPPING=1 at the end.  Then, in place over a nova-style
# _base directory with a boot image:
#   start over a stale mount -> yolofs unmounts it, READY=1 arrives
#     with the mount live (ExecStartPost checks), reads as another user hit
#     the image; a start over a live yolofs mount is refused;
#   reload -> SIGHUP, same daemon still serving, an image added to the
#     images directory serves new opens;
#   kill -9 -> the mount stays while Restart=on-failure waits; the
#     restarted daemon takes the session over from systemd's descriptor
#     store, and a file held open across the crash reads right;
#   stop -> unmounted cleanly, the unit inactive (not failed);
#   the documented fstab line, turned into a mount unit by systemd's fstab
#     generator -> mounted through mount(8) and mount.fuse3, served, stopped.
source "$(dirname "$0")/../mount/lib.sh"
source "$(dirname "$0")/systemd_lib.sh"

chmod 755 "$TMP"
BASE=$TMP/nova/instances/_base IMAGES=$TMP/images
mkdir -p "$BASE" "$IMAGES"
chmod -R 755 "$TMP/nova"
head -c $((4 << 20)) /dev/urandom >"$BASE/0123abcd"
head -c $((1 << 20)) /dev/urandom >"$BASE/89abcdef"
chmod 644 "$BASE"/*
(cd "$BASE" && md5sum 0123abcd 89abcdef) >"$TMP/expected"
"$MKIMAGE" "$IMAGES/0123abcd.yolo" "$BASE" 0123abcd:0:1048576 || fail "mkimage"

# The ordering the unit relies on, exactly (a READY=1 sent a moment before
# the mount can win the race against any check run after it): yolofs sends
# READY=1 only after its mount(2) succeeded, and STOPPING=1 when it leaves.
command -v strace >/dev/null || skip "strace missing (apt-get install strace)"
note "READY=1 follows mount(2)"
mkdir "$TMP/order"
NOTIFY_SOCKET=$TMP/no-listener strace -f -qq -e trace=mount,sendto,sendmsg -o "$TMP/strace.log" \
	"$YOLOFS" -f "$TMP/order" "$TMP/order" 2>>"$TMP/yolofs.log" &
tracer=$!
for i in $(seq 200); do grep -q 'READY=1' "$TMP/strace.log" 2>/dev/null && break; sleep 0.05; done
umount "$TMP/order" || fail "umount of the traced yolofs"
wait $tracer || fail "traced yolofs exited with status $?"
order=$(awk '/mount\(.*"fuse\.yolofs".*= 0$/ && !m { m = NR } /send(to|msg)\(.*"READY=1/ && !r { r = NR }
	/send(to|msg)\(.*"STOPPING=1/ && !s { s = NR } END { print m + 0, r + 0, s + 0 }' "$TMP/strace.log")
read -r m r s <<<"$order"
[ "$m" -gt 0 ] && [ "$r" -gt "$m" ] && [ "$s" -gt "$r" ] ||
	{ cat "$TMP/strace.log" >&2; fail "mount(2) / READY=1 / STOPPING=1 out of order (lines $order)"; }
echo "mount(2), then READY=1, then STOPPING=1"

sd_prepare "$BASE" "images=$IMAGES,allow_other,metrics=$TMP/m.prom,metrics_interval=1"
# ExecStartPost runs right after READY=1: the mount must be live by then.
cat >"$U/yolofs@.service.d/50-test.conf" <<EOF
[Service]
ExecStartPost=/bin/sh -c 'if findmnt -rn -t fuse.yolofs -M "\$\$1" >/dev/null && stat -f "\$\$1" >/dev/null; then echo live-at-ready; else echo "NOT LIVE AT READY"; exit 1; fi' check %f
EOF
sd_start

mkdir "$TMP/verify.d"
ln -s "$U/yolofs@.service" "$TMP/verify.d/$UNIT"
inns env SYSTEMD_UNIT_PATH="$U" systemd-analyze verify --man=no "$TMP/verify.d/$UNIT" >"$TMP/verify" 2>&1 ||
	{ cat "$TMP/verify"; fail "systemd-analyze verify $UNIT"; }
[ ! -s "$TMP/verify" ] || { cat "$TMP/verify"; fail "systemd-analyze verify printed warnings"; }
echo "systemd-analyze verify $UNIT: clean"

# check_reads WHAT: reads as nobody through the mount match the source.
check_reads() {
	drop_caches
	inns setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "cd '$BASE' && md5sum 0123abcd 89abcdef" \
		>"$TMP/got" || fail "$1: reading as nobody"
	diff -u "$TMP/expected" "$TMP/got" || fail "$1: contents differ through the mount"
}
# served_now [IMAGE]: image use so far, of all images or of IMAGE (waits
# for the metrics file to catch up).
served_now() {
	sleep 1.2
	if [ $# = 0 ]; then served "$TMP/m.prom"; return; fi
	awk -v img="image=\"$1\"" 'index($1, img) && $1 ~ /^yolofs_(hits|bytes_prefilled)_total[{]/ { s += $2 }
		END { print s + 0 }' "$TMP/m.prom"
}

note "start over a stale mount"
inns sh -c "'$YOLOFS' -f '$BASE' '$BASE' 2>/dev/null & p=\$!
	for i in \$(seq 100); do findmnt -n -M '$BASE' >/dev/null && break; sleep 0.05; done
	kill -KILL \$p"
[ "$(mounts)" = 1 ] && ! inns stat -f "$BASE" >/dev/null 2>&1 || fail "could not make a stale mount"
sc start --no-block "$UNIT"
wait_active "start"
live || fail "start: $(mounts) yolofs mounts at _base, or not live"
grep -q "unmounting a stale yolofs mount" "$TMP/unit.log" && [ "$(prop NRestarts)" = 0 ] ||
	fail "start: ExecStartPre did not clean the stale mount (NRestarts $(prop NRestarts))"
[ "$(prop Type)/$(prop NotifyAccess)" = notify/main ] || fail "start: Type/NotifyAccess $(prop Type)/$(prop NotifyAccess)"
grep -q "live-at-ready" "$TMP/unit.log" || fail "start: READY=1 came before the mount was live"
[ "$(prop StatusText)" = "serving 1 boot images" ] || fail "start: StatusText '$(prop StatusText)'"
PID1=$(prop MainPID)
check_reads "start"
s=$(served_now)
[ "$s" -gt 0 ] || fail "start: reads did not use the boot image"
echo "start: active, main PID $PID1, status '$(prop StatusText)', image served $s"

note "a start over a live yolofs mount is refused"
sc stop "$UNIT"
[ "$(prop ActiveState)" = inactive ] || fail "stop before the refusal check"
inns sh -c "'$YOLOFS' -f '$BASE' '$BASE' >/dev/null 2>&1 & echo \$! >'$TMP/manual.pid'"
for i in $(seq 100); do live && break; sleep 0.05; done
live || fail "manual yolofs did not mount"
sc start "$UNIT" 2>/dev/null && fail "start over a live yolofs mount succeeded"
grep -q "a running yolofs is mounted here already" "$TMP/unit.log" || fail "refusal not logged"
live || fail "the refused start disturbed the live mount"
sc stop "$UNIT"                      # ends the on-failure retries
sc reset-failed "$UNIT" 2>/dev/null
inns kill -TERM "$(cat "$TMP/manual.pid")"
for i in $(seq 100); do [ "$(mounts)" = 0 ] && break; sleep 0.05; done
[ "$(mounts)" = 0 ] || fail "manual yolofs did not unmount"
sc start --no-block "$UNIT"
wait_active "restart after the refusal"
PID1=$(prop MainPID)
echo "refused while another yolofs served _base; started after it left"

note "reload (SIGHUP) with an image added"
"$MKIMAGE" "$IMAGES/89abcdef.yolo" "$BASE" 89abcdef || fail "mkimage 2"
sc reload "$UNIT" || fail "systemctl reload failed"
for i in $(seq 50); do [ "$(prop ActiveState)" = active ] && break; sleep 0.1; done
[ "$(prop ActiveState)" = active ] || fail "reload: unit is $(prop ActiveState)"
[ "$(prop MainPID)" = "$PID1" ] || fail "reload: main PID changed from $PID1 to $(prop MainPID)"
live || fail "reload: mount not live"
check_reads "reload"
s1=$(served_now "$IMAGES/89abcdef.yolo")
[ "$s1" -gt 0 ] || fail "reload: the added image was not used"
echo "reload: same daemon $PID1, status '$(prop StatusText)', added image served $s1"

note "kill -9 the daemon: Restart=on-failure takes the session over"
# A reader holds a file open across the crash: its next read waits for the
# restarted daemon, which takes the session over from systemd's descriptor
# store (the mount never goes away), and gets the right bytes.
inns sh -c "exec 3<'$BASE/0123abcd'; echo ready >'$TMP/held.ready'; while [ ! -e '$TMP/held.go' ]; do sleep 0.05; done; md5sum <&3 >'$TMP/held.sum'" &
HELD=$!
for i in $(seq 100); do [ -e "$TMP/held.ready" ] && break; sleep 0.05; done
inns kill -KILL "$PID1"
seen=
for i in $(seq 100); do
	[ "$(prop SubState)" = auto-restart ] && { seen=$(mounts); break; }
	sleep 0.01
done
[ -n "$seen" ] || echo "(the restart came before the auto-restart state was seen)"
[ "${seen:-1}" = 1 ] || fail "crash: the mount went away while the unit waited to restart"
touch "$TMP/held.go"
wait_active "restart after SIGKILL" "$PID1"
PID2=$(prop MainPID)
wait $HELD || fail "the reader holding a file across the crash failed"
[ "$(cut -d' ' -f1 "$TMP/held.sum")" = "$(grep 0123abcd "$TMP/expected" | cut -d' ' -f1)" ] ||
	fail "the reader holding a file across the crash read other bytes"
live || fail "restart: $(mounts) yolofs mounts at _base, or not live"
[ "$(prop NRestarts)" = 1 ] || fail "restart: NRestarts=$(prop NRestarts)"
grep -q "took the session over after a restart" "$TMP/unit.log" || fail "restart: the session was not taken over"
check_reads "restart"
s=$(served_now)
[ "$s" -gt 0 ] || fail "restart: reads did not use the boot images"
echo "restart: the mount stayed; main PID $PID1 -> $PID2 took the session over, NRestarts 1, a held file read right, images served $s"

note "stop"
sc stop "$UNIT" || fail "systemctl stop"
[ "$(prop ActiveState)" = inactive ] || fail "stop: unit is $(prop ActiveState)"
[ "$(prop Result)" = success ] || fail "stop: result $(prop Result)"
[ "$(mounts)" = 0 ] || fail "stop: still mounted"
inns kill -0 "$PID2" 2>/dev/null && fail "stop: daemon $PID2 still running"
grep -q "unmounting $BASE" "$TMP/unit.log" || fail "stop: yolofs did not log its unmount"
(cd "$BASE" && md5sum 0123abcd 89abcdef) | diff -u "$TMP/expected" - || fail "source changed"
echo "stop: inactive (success), unmounted"

# The same service from an fstab line (docs/operators.md): the mount unit
# systemd's fstab generator makes of it runs mount(8), mount.fuse3 and a
# daemonized yolofs found on /bin/sh's default PATH.
note "the fstab line as a mount unit (systemd-fstab-generator)"
GEN=/lib/systemd/system-generators/systemd-fstab-generator
[ -x $GEN ] || fail "$GEN missing"
printf '%s %s fuse.yolofs images=%s,allow_other,nofail,x-systemd.before=nova-compute.service,x-systemd.requires-mounts-for=%s 0 0\n' \
	"$BASE" "$BASE" "$IMAGES" "$IMAGES" >"$TMP/fstab"
mkdir "$TMP/gen"
SYSTEMD_FSTAB=$TMP/fstab $GEN "$TMP/gen" "$TMP/gen" "$TMP/gen" || fail "fstab generator"
MU=$(systemd-escape --path --suffix=mount "$BASE")
[ -f "$TMP/gen/$MU" ] || fail "the generator made no $MU"
cp "$TMP/gen/$MU" "$U/"
sc daemon-reload
sc start "$MU" || { sc status --no-pager "$MU" >&2; fail "start $MU"; }
live || fail "$MU: $(mounts) yolofs mounts at _base, or not live"
inns pgrep -x yolofs >"$TMP/mpids" || fail "$MU: no yolofs daemon"
check_reads "$MU"
s=$(served_now)
[ "$s" -gt 0 ] || fail "$MU: reads did not use the boot images"
sc stop "$MU" || fail "stop $MU"
[ "$(mounts)" = 0 ] || fail "$MU: still mounted after stop"
for i in $(seq 50); do inns pgrep -x yolofs >/dev/null || break; sleep 0.1; done
! inns pgrep -x yolofs >/dev/null || fail "$MU: yolofs still running after stop"
echo "$MU: mounted by yolofs $(cat "$TMP/mpids"), reads served ($s), stopped and unmounted"
echo PASS
