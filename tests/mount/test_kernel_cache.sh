#!/bin/bash
# The kernel keeps what yolofs answers from memory (answer_timeout, 86400 s
# by default): a warm walk of the answered tree sends no LOOKUP and no
# GETATTR to the daemon, a warm listing no READDIR(PLUS) (the answered
# listing stays in the kernel's directory cache) and a warm symlink no
# READLINK (CACHE_SYMLINKS), and every change on the source still reaches the
# mount at once, because each inotify report that drops an answer also
# drops the kernel's copy (notify_inval_inode / notify_inval_entry).
# Without that drop each change below would stay hidden for a day.  Each
# check changes the source directly and looks through the mount within
# half a second (the reader's wake-up is microseconds; the margin is for a
# busy machine), as root and as nobody (the kernel checks permissions
# against the attributes and ACLs it keeps, default_permissions).
. "$(dirname "$0")/lib.sh"
command -v setfacl >/dev/null || skip "setfacl (acl) is missing"
SRC=$TMP/src MNT=$TMP/mnt
chmod 0755 "$TMP"                    # nobody reaches the mount
mkdir -p "$SRC"/{etc,open,acl,sub,many} "$MNT"
echo conf >"$SRC/etc/conf"
echo old >"$SRC/etc/name"
echo other >"$SRC/etc/other"
echo data >"$SRC/open/file"
echo data >"$SRC/acl/file"
echo mode >"$SRC/etc/mode"
echo linked >"$SRC/etc/linked"
touch "$SRC/sub/keep"
ln -s conf "$SRC/etc/link"
for i in $(seq 300); do echo "$i" >"$SRC/many/f$i"; done
chmod -R a+rX "$SRC"

"$YOLO_CAPTURE" -q -o "$TMP/ns.yolo" "$SRC" -- sh -c "
	ls -laR '$SRC' >/dev/null; cat '$SRC/etc/conf' >/dev/null
	stat '$SRC/etc/absent' 2>/dev/null; true" 2>"$TMP/capture.err" ||
	{ cat "$TMP/capture.err"; fail "capture"; }
yolofs_start "$SRC" "$MNT" -d -o "images=$TMP/ns.yolo,allow_other"
wait_until "the answers are primed" "grep -q 'namespace paths answered from memory' '$TMP/yolofs.log'"
ops() { grep -c "opcode: $1 " "$TMP/yolofs.log"; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# seen DESCRIPTION 'CODE': CODE (quoted) succeeds within half a second.
seen() {
	local i
	for i in $(seq 50); do
		eval "$2" 2>/dev/null && { echo "$1: seen after ~$((i * 10)) ms"; return 0; }
		sleep 0.01
	done
	fail "$1: not seen through the mount within 0.5 s"
}

note "A: a warm walk sends no LOOKUP and no GETATTR"
# stat of every path (no listing: after a READDIR the kernel asks for a
# directory's attributes again, its atime may have moved), then ls -laR.
(cd "$SRC" && find . -mindepth 1) | sed "s|^\.|$MNT|" >"$TMP/paths"
walk() { xargs -a "$TMP/paths" stat >/dev/null; stat "$MNT/etc/absent" 2>/dev/null; }
walk
# stat reads each symlink's target: the kernel keeps it from then on, but
# marks the link's atime as unknown once, when it fills that cache.
walk
sleep 1.2                            # past the 1 s timeout= of what is not answered
lookups=$(ops LOOKUP) getattrs=$(ops GETATTR)
walk
echo "warm walk of $(wc -l <"$TMP/paths") paths: $(($(ops LOOKUP) - lookups)) LOOKUP," \
     "$(($(ops GETATTR) - getattrs)) GETATTR"
[ "$(ops LOOKUP)" = "$lookups" ] || fail "a warm walk sent $(($(ops LOOKUP) - lookups)) LOOKUP"
[ "$(ops GETATTR)" = "$getattrs" ] || fail "a warm walk sent $(($(ops GETATTR) - getattrs)) GETATTR"
ls -laR "$MNT" >/dev/null
readlink "$MNT/etc/link" >/dev/null
lookups=$(ops LOOKUP) listings=$(($(ops READDIRPLUS) + $(ops READDIR))) readlinks=$(ops READLINK)
ls -laR "$MNT" >/dev/null
[ "$(readlink "$MNT/etc/link")" = conf ] || fail "readlink through the mount"
[ "$(cat "$MNT/etc/link")" = "$(cat "$SRC/etc/conf")" ] || fail "reading through the symlink"
[ "$(ops LOOKUP)" = "$lookups" ] || fail "a warm ls -laR sent $(($(ops LOOKUP) - lookups)) LOOKUP"
n=$(($(ops READDIRPLUS) + $(ops READDIR) - listings))
echo "warm ls -laR: $n READDIR(PLUS), $(($(ops READLINK) - readlinks)) READLINK"
[ "$n" = 0 ] || fail "a warm ls -laR of answered listings sent $n READDIR(PLUS)"
[ "$(ops READLINK)" = "$readlinks" ] || fail "a warm symlink sent $(($(ops READLINK) - readlinks)) READLINK"

note "B: changes on the source, at once"
stat "$MNT/etc/mode" "$MNT/etc/name" "$MNT/sub/keep" >/dev/null
chmod 0600 "$SRC/etc/mode"
seen "chmod" '[ "$(stat -c %a "$MNT/etc/mode")" = 600 ]'
seen "chmod enforced for nobody" '! as_nobody cat "$MNT/etc/mode" >/dev/null'
touch -d @1000000000 "$SRC/etc/conf"
seen "mtime" '[ "$(stat -c %Y "$MNT/etc/conf")" = 1000000000 ]'
echo more >>"$SRC/etc/conf"
seen "size" 'cmp -s "$SRC/etc/conf" "$MNT/etc/conf"'
mv "$SRC/etc/other" "$SRC/etc/name"          # the name now holds another file
seen "rename over" '[ "$(cat "$MNT/etc/name")" = other ] && ! [ -e "$MNT/etc/other" ]'
rm "$SRC/etc/name" && echo recreated >"$SRC/etc/name"
seen "unlink and recreate" '[ "$(cat "$MNT/etc/name")" = recreated ]'
echo now >"$SRC/etc/absent"
seen "created where absence was answered" '[ "$(cat "$MNT/etc/absent")" = now ]'
ln "$SRC/etc/linked" "$TMP/outside-link"     # a link made after load, outside the tree
chmod 0640 "$TMP/outside-link"
seen "chmod through a later hard link" '[ "$(stat -c %a "$MNT/etc/linked")" = 640 ]'
chmod 0700 "$SRC/open"
seen "a directory closed to nobody" '! as_nobody stat "$MNT/open/file" >/dev/null'
chmod 0755 "$SRC/open"
seen "and opened again" 'as_nobody stat "$MNT/open/file" >/dev/null'
as_nobody cat "$MNT/acl/file" >/dev/null || fail "nobody cannot read acl/file before the ACL"
setfacl -m u:nobody:--- "$SRC/acl"
seen "an ACL closing a directory to nobody" '! as_nobody cat "$MNT/acl/file" >/dev/null'
# Listings the kernel keeps: each change with the directory's mtime set
# back, so only the drop of the kernel's listing can show it; a process
# working in the directory keeps its inode (and so that listing) in the
# kernel when its entry is dropped.
(cd "$MNT/many" && exec sleep 300) &
holder=$!
ls "$MNT/many" >/dev/null
old_mtime=$(stat -c %Y "$SRC/many")
listed() { ls "$MNT/many" | grep -qx "$1"; }
echo new >"$SRC/many/new" && touch -d "@$old_mtime" "$SRC/many"
seen "a file created in a kept listing" 'listed new'
rm "$SRC/many/f7" && touch -d "@$old_mtime" "$SRC/many"
seen "a file removed from a kept listing" '! listed f7'
mv "$SRC/many/f8" "$SRC/many/renamed" && touch -d "@$old_mtime" "$SRC/many"
seen "a rename in a kept listing" 'listed renamed && ! listed f8'
kill "$holder" && wait "$holder" 2>/dev/null
rm "$SRC/etc/link" && ln -s mode "$SRC/etc/link"
seen "a symlink replaced" '[ "$(readlink "$MNT/etc/link")" = mode ]'
mount -t tmpfs -o size=1m none "$SRC/sub" && LATE_MNTS+=("$SRC/sub")
touch "$SRC/sub/on-tmpfs"
seen "a mount over a directory" '[ -e "$MNT/sub/on-tmpfs" ] && ! [ -e "$MNT/sub/keep" ]'
umount "$SRC/sub" && unset 'LATE_MNTS[-1]'
seen "and its umount" '[ -e "$MNT/sub/keep" ] && ! [ -e "$MNT/sub/on-tmpfs" ]'
rm "$TMP/outside-link"
yolofs_stop
echo PASS
