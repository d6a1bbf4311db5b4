#!/bin/bash
# yolofs acts as its caller: an unprivileged user (uid 65534, one
# supplementary group) runs the same cases against plain ext4 and against a
# yolofs mount (allow_other) of an identical ext4, and every answer must be
# the same: umask 0/022/077 and default ACLs, ACL grants and denials (user
# and group), trusted.* xattrs, append-only and immutable files and
# lsattr/chattr, sticky and setgid directories, chown, protected hard
# links, setuid bits cleared on write, root's reserved blocks, permission
# changes made on the source directly, and races in which root replaces a
# name the user is creating (create, mkdir, mknod, symlink, link).
. "$(dirname "$0")/lib.sh"
for t in setfacl setpriv mkfs.ext4 losetup; do
	command -v $t >/dev/null || skip "$t is missing"
done
PY=/usr/bin/python3                       # not a PATH shim the user cannot run
[ -x $PY ] || skip "$PY is missing"
# A copy the other users can read: the checkout may be under /root (0700).
HELPER=$TMP/as_caller.py
install -m 0644 "$(dirname "$0")/as_caller.py" "$HELPER" || fail "copying as_caller.py"
RACE_N=${RACE_N:-2000}

EXT=$TMP/ext SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$EXT" "$SRC" "$MNT"
chmod 755 "$TMP"                          # the user must reach the directories
# Two identical small ext4 file systems (5 % reserved for root, ACLs and
# user xattrs on by default): one used directly, one under the mount.
for d in "$EXT" "$SRC"; do
	truncate -s 96M "$d.img"
	mkfs.ext4 -q -F -b 4096 -i 4096 -m 5 "$d.img" || fail "mkfs.ext4"
	mount -o loop "$d.img" "$d" || skip "cannot loop-mount ext4 here"
	LATE_MNTS+=("$d")
	$PY "$HELPER" setup "$d" || fail "setting up $d"
done
yolofs_start "$SRC" "$MNT" -o allow_other

as_user() { setpriv --reuid=65534 --regid=65534 --groups=4242 "$PY" "$HELPER" "$@"; }

note "cases"
(cd / && as_user cases "$EXT") >"$TMP/out.ext" 2>&1
(cd / && as_user cases "$MNT") >"$TMP/out.mnt" 2>&1
cat "$TMP/out.mnt"
for o in ext mnt; do
	[ "$(grep -c ': ' "$TMP/out.$o")" -ge 44 ] || fail "the cases did not all run on $o"
done
diff -u "$TMP/out.ext" "$TMP/out.mnt" || fail "the mount answers differently from ext4 (- ext4, + yolofs)"

note "permission changes made on the source directly"
# The source decides at open, for the caller: no window, whatever the
# kernel's attribute cache holds.
check_open() {   # check_open NAME EXPECTED
	local a b
	a=$(cd / && as_user open "$EXT" "$1") b=$(cd / && as_user open "$MNT" "$1")
	echo "ext4: $a / yolofs: $b"
	[ "$a" = "$b" ] && [ "$a" = "$1: $2" ] || fail "open of $1: expected $2"
}
check_open changing visible
chmod 600 "$EXT/changing" "$SRC/changing"
check_open changing EACCES
chmod 644 "$EXT/changing" "$SRC/changing"
check_open changing visible
setfacl -m u:65534:--- "$EXT/changing" "$SRC/changing"
check_open changing EACCES

note "races: root replaces the name the user is creating ($RACE_N each)"
for kind in ${KINDS:-create mkdir mknod symlink link}; do
	for d in "$EXT" "$MNT"; do
		src=$d; [ "$d" = "$MNT" ] && src=$SRC
		$PY "$HELPER" race-victim "$src" "$RACE_N" "$kind" &
		victim=$!
		leaked=$(cd / && as_user race-attacker "$d" "$RACE_N" "$kind")
		wait $victim
		gained=$($PY "$HELPER" race-check "$src" "$RACE_N" "$kind")
		echo "$kind on $(basename "$d"): $leaked; $gained"
		[ "$leaked" = "read root's secret: 0" ] && [ "$gained" = "root's objects now owned by the user: 0" ] \
			|| fail "$kind race: the user gained root's object through $(basename "$d")"
		find "$src/race" -mindepth 1 -delete
	done
done

yolofs_stop
echo PASS
