#!/bin/bash
# -o detach_when_emptied (yolofs/detach.c): removing a directory that yolofs
# is mounted on in place, the way container engines remove a layer (empty
# it through the mount, then rmdir it; here `rm -rf`, which does the same
# as Go's os.RemoveAll), works and leaves no mount and no daemon.
#
# Without the option the rmdir fails with EBUSY (so this test can fail).
# With it: removing some entries, or failing to remove the last one, does
# not detach; removing the last entry detaches the mount before the reply,
# so the rmdir succeeds; a file still open on the detached mount keeps the
# daemon serving (correct data) until it is closed, then the daemon exits
# 0; a mount stacked on top is never detached by mistake.
. "$(dirname "$0")/lib.sh"

# running PID: the process exists and is not a zombie.
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st%% *}" != Z ]; }

# layer DIR: a small directory tree like a layer's.
layer() {
	mkdir -p "$1/bin" "$1/etc/empty" "$1/data"
	head -c 300000 /dev/urandom >"$1/data/big.bin"
	echo v1 >"$1/etc/version"
	ln -s ../data/big.bin "$1/bin/link"
	mknod "$1/data/whiteout" c 0 0
}

note "without the option: rm -rf fails with EBUSY and leaves the mount"
L=$TMP/plain
layer "$L"
yolofs_start "$L" "$L"
rc=0; rm -rf "$L" 2>"$TMP/rm.err" || rc=$?
cat "$TMP/rm.err"
[ "$rc" != 0 ] && grep -q "busy" "$TMP/rm.err" || fail "rm -rf of a mounted directory: exit $rc, $(cat "$TMP/rm.err")"
is_mounted "$L" || fail "the mount went without the option"
yolofs_stop
rmdir "$L" || fail "rmdir after unmounting"

note "partial removals do not detach"
L=$TMP/layer
layer "$L"
cp "$L/data/big.bin" "$TMP/big.expected"
: >"$TMP/yolofs.log"
yolofs_start "$L" "$L" -o detach_when_emptied
pid=${PIDS[-1]}
rm -rf "$L/bin" "$L/etc"
is_mounted "$L" || fail "removing two of three top entries detached the mount"
# The last top entry, a directory that is not empty: rmdir fails, no detach.
! rmdir "$L/data" 2>/dev/null || fail "rmdir of a non-empty directory succeeded"
is_mounted "$L" || fail "a failed rmdir of the last entry detached the mount"

note "rm -rf with a file still open: succeeds, the daemon serves the file until it is closed"
exec 3<"$L/data/big.bin"
rm -rf "$L" || fail "rm -rf of the mounted directory (detach_when_emptied)"
[ ! -e "$L" ] || fail "the directory is still there"
! is_mounted "$L" || fail "the mount is still there"
grep -q "the source is being removed" "$TMP/yolofs.log" || fail "yolofs did not log the detach"
running "$pid" || fail "yolofs exited while a file was still open on its detached mount"
cmp - "$TMP/big.expected" <&3 || fail "wrong data through the detached mount"
exec 3<&-
wait_until "yolofs exits once nothing holds its detached mount" '! running "$pid"'
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "yolofs exited with status $rc after its mount was detached"
unset 'PIDS[-1]' 'MNTS[-1]'

note "a mount stacked on top is not detached by mistake"
L=$TMP/under
layer "$L"
: >"$TMP/yolofs.log"
yolofs_start "$L" "$L" -o detach_when_emptied
pid=${PIDS[-1]}
# A shell whose working directory is yolofs's root removes its entries
# after a tmpfs was mounted over the same path.
mkfifo "$TMP/ready" "$TMP/go"
(cd "$L" && echo ready >"$TMP/ready" && read -r _ <"$TMP/go" && rm -rf ./bin ./etc ./data) &
rmpid=$!
read -r _ <"$TMP/ready"
mount -t tmpfs none "$L" || fail "mount tmpfs over the yolofs mount"
EXTRA_MNTS+=("$L")
echo go >"$TMP/go"
wait "$rmpid" || fail "removing the entries through the covered mount"
grep -q "topmost mount there is not ours; not detaching" "$TMP/yolofs.log" ||
	fail "yolofs did not refuse to detach: $(tail -n 3 "$TMP/yolofs.log")"
umount "$L" && unset 'EXTRA_MNTS[-1]'
is_mounted "$L" || fail "yolofs's mount went although another was on top"
running "$pid" || fail "yolofs exited"
echo PASS
