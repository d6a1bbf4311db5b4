#!/bin/bash
# test_fstab.sh - a `fuse.yolofs` fstab line works through util-linux
# mount(8) and Debian's mount.fuse3 helper, in place over a nova-style _base
# directory with a boot image captured by yolo-capture.
#
# mount(8) finds no /sbin/mount.fuse.yolofs and runs /sbin/mount.fuse with
# `-t fuse.yolofs`; that helper drops the fstab-only options (nofail,
# _netdev, noauto, ...; mount(8) already dropped x-* and comment=), adds
# dev,suid for root and starts `yolofs SOURCE MOUNTPOINT -o ...` through
# /bin/sh with the PATH mount(8) leaves: none, so the shell's default.  The
# test runs in its own mount namespace and puts the built yolofs on that
# default PATH with an overlay, so the host's directories stay untouched.
# Checked: explicit `mount -T FSTAB MNT` with nofail/_netdev/x-systemd.*
# options, `mount -a` twice (mounted once), the command-line form; reads as
# another user (allow_other) match the source and hit the image; `umount`
# ends the daemon and leaves nothing mounted.
if [ -z "${YOLO_FSTAB_NS:-}" ] && [ "$(id -u)" = 0 ]; then
	# Before lib.sh (sourced in the namespace): its skip() by hand.
	if ! unshare --mount --propagation private true 2>/dev/null; then
		[ "${CI:-}" = true ] && { echo "FAIL (CI): would skip: cannot create a mount namespace" >&2; exit 1; }
		echo "SKIP: cannot create a mount namespace"
		exit 77
	fi
	YOLO_FSTAB_NS=1 exec unshare --mount --propagation private -- "$0" "$@"
fi
source "$(dirname "$0")/../mount/lib.sh"

[ -n "${YOLO_CAPTURE:-}" ] || fail "YOLO_CAPTURE is not set (run through meson test)"
[ -x /sbin/mount.fuse.yolofs ] || [ -x /sbin/mount.fuse ] || skip "no /sbin/mount.fuse (apt-get install fuse3)"
command -v setpriv >/dev/null || skip "setpriv missing (util-linux)"

# The first directory of /bin/sh's default PATH that exists gets yolofs.
DEFPATH=$(env -i /bin/sh -c 'echo "$PATH"')
BINDIR=
IFS=: read -ra dirs <<<"$DEFPATH"
for d in "${dirs[@]}"; do [ -d "$d" ] && { BINDIR=$d; break; }; done
[ -n "$BINDIR" ] || skip "no directory of /bin/sh's default PATH ($DEFPATH) exists"
mkdir -p "$TMP/bin.up" "$TMP/bin.work"
ln -s "$(realpath "$YOLOFS")" "$TMP/bin.up/yolofs"
mount -t overlay overlay -o "lowerdir=$BINDIR,upperdir=$TMP/bin.up,workdir=$TMP/bin.work" "$BINDIR" ||
	skip "cannot overlay $BINDIR to put yolofs on the default PATH"
EXTRA_MNTS+=("$BINDIR")
note "yolofs on the default PATH via $BINDIR"

chmod 755 "$TMP"                     # reads as nobody below (allow_other)
BASE=$TMP/nova/instances/_base IMAGES=$TMP/images
mkdir -p "$BASE" "$IMAGES"
chmod -R 755 "$TMP/nova"
head -c $((8 << 20)) /dev/urandom >"$BASE/0123abcd"              # a raw backing file
head -c $((1 << 20)) /dev/urandom >"$BASE/4567ef01"
head -c $((2 << 20)) /dev/urandom >"$BASE/unread"
chmod 644 "$BASE"/*
(cd "$BASE" && md5sum 0123abcd 4567ef01 unread) >"$TMP/expected"

note "capturing a boot's reads in place over _base"
"$YOLO_CAPTURE" -q -o "$IMAGES/nova-base.yolo" "$BASE" -- sh -c "
	dd if='$BASE/0123abcd' of=/dev/null bs=64k count=8 status=none &&
	dd if='$BASE/0123abcd' of=/dev/null bs=64k skip=64 count=4 status=none &&
	cat '$BASE/4567ef01' >/dev/null" 2>"$TMP/capture.err" || { cat "$TMP/capture.err"; fail "yolo-capture"; }
"$YOLO_IMAGE" verify --source "$BASE" "$IMAGES/nova-base.yolo" >/dev/null || fail "image does not verify"

# daemon_pid: the yolofs serving $BASE (started by the mount helper).
daemon_pid() {
	local p
	for p in $(pgrep -x yolofs); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- " $BASE $BASE " && { echo "$p"; return 0; }
	done
	return 1
}
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
mounts_at_base() { findmnt -rn -t fuse.yolofs -M "$BASE" | wc -l; }

# check_mounted WHAT: one live yolofs mount at $BASE from the built binary,
# allow_other, and a reader that is not root sees the source's bytes.
check_mounted() {
	local what=$1 pid
	[ "$(mounts_at_base)" = 1 ] || fail "$what: $(mounts_at_base) yolofs mounts at _base"
	findmnt -rn -M "$BASE" -o SOURCE,FSTYPE,OPTIONS | grep -q "^$BASE fuse.yolofs .*allow_other" ||
		fail "$what: unexpected mount: $(findmnt -rn -M "$BASE" -o SOURCE,FSTYPE,OPTIONS)"
	pid=$(daemon_pid) || fail "$what: no yolofs daemon for _base"
	[ "$(readlink "/proc/$pid/exe")" = "$(realpath "$YOLOFS")" ] ||
		fail "$what: the helper ran $(readlink "/proc/$pid/exe"), not the built yolofs"
	drop_caches
	(cd "$BASE" && setpriv --reuid=65534 --regid=65534 --clear-groups md5sum 0123abcd 4567ef01 unread) >"$TMP/got" ||
		fail "$what: reading as nobody through the mount"
	diff -u "$TMP/expected" "$TMP/got" || fail "$what: contents differ through the mount"
	echo "$what: mounted by pid $pid, reads as nobody match"
}

# check_umount WHAT: `umount` ends the daemon; nothing stays mounted.
check_umount() {
	local what=$1 pid i
	pid=$(daemon_pid) || fail "$what: no daemon before umount"
	umount "$BASE" || fail "$what: umount failed"
	for i in $(seq 100); do alive "$pid" || break; sleep 0.05; done
	! alive "$pid" || fail "$what: yolofs $pid still running after umount"
	[ "$(mounts_at_base)" = 0 ] || fail "$what: still mounted after umount"
	(cd "$BASE" && md5sum 0123abcd 4567ef01 unread) | diff -u "$TMP/expected" - || fail "$what: source changed"
	echo "$what: umount ended yolofs $pid, nothing mounted"
}

note "mount -T FSTAB MNT (noauto, nofail, _netdev, x-systemd.*, comment=)"
cat >"$TMP/fstab" <<EOF
# nova's base images, served in place from boot images
$BASE $BASE fuse.yolofs images=$IMAGES,allow_other,metrics=$TMP/m.prom,metrics_interval=1,noauto,nofail,_netdev,x-systemd.before=nova-compute.service,x-systemd.requires-mounts-for=$IMAGES,x-systemd.mount-timeout=30,comment=yolo 0 0
EOF
mount -T "$TMP/fstab" "$BASE" || fail "mount -T fstab"
PIDS+=("$(daemon_pid)") MNTS+=("$BASE")    # cleanup() stops it if a check fails
check_mounted "mount -T fstab"
check_umount "mount -T fstab"
unset 'PIDS[-1]' 'MNTS[-1]'
hits=$(metric hits "$TMP/m.prom") prefilled=$(metric bytes_prefilled "$TMP/m.prom")
echo "image use: hits $hits, bytes prefilled $prefilled, stale $(metric files_stale "$TMP/m.prom")"
[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "reads did not use the boot image"
[ "$(metric files_stale "$TMP/m.prom")" = 0 ] || fail "files reported stale"

note "mount -a twice (defaults, nofail, x-systemd.after=): mounted once"
cat >"$TMP/fstab.auto" <<EOF
$BASE $BASE fuse.yolofs defaults,images=$IMAGES,allow_other,nofail,x-systemd.after=network-online.target 0 0
EOF
mount -a -T "$TMP/fstab.auto" || fail "mount -a"
PIDS+=("$(daemon_pid)") MNTS+=("$BASE")
mount -a -T "$TMP/fstab.auto" || fail "second mount -a"
check_mounted "mount -a"
check_umount "mount -a"
unset 'PIDS[-1]' 'MNTS[-1]'

note "mount -t fuse.yolofs -o images=...,allow_other SRC MNT"
mount -t fuse.yolofs -o "images=$IMAGES/nova-base.yolo,allow_other" "$BASE" "$BASE" || fail "mount -t fuse.yolofs"
PIDS+=("$(daemon_pid)") MNTS+=("$BASE")
check_mounted "mount -t"
check_umount "mount -t"
unset 'PIDS[-1]' 'MNTS[-1]'
echo PASS
