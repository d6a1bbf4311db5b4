#!/bin/bash
# Namespace answers: the lookups, attributes, xattrs, symlink targets and
# listings a boot asked for (recorded by yolo-capture) are answered to root
# callers from memory, and never stale.  They are read from the source at
# load and dropped by inotify reports, so each check below changes the
# source directly (not through the mount) and looks through the mount at
# once, with the kernel's own caches off (timeout=0): a change made before
# a question is asked must always be seen.  Others are answered by the
# source as themselves; a source that cannot report changes (FUSE here,
# NFS in real life) is never answered from memory, nor is anything with
# -o no_namespace (which holds no inotify instance).
. "$(dirname "$0")/lib.sh"
command -v setfattr >/dev/null || skip "setfattr (attr) is missing"
SRC=$TMP/src MNT=$TMP/mnt
chmod 0755 "$TMP"                    # others reach the mount (B)
mkdir -p "$SRC"/{etc/secret,usr/bin,many} "$MNT"
echo conf >"$SRC/etc/conf"
setfattr -n user.origin -v debian "$SRC/etc/conf"
echo hidden >"$SRC/etc/secret/key"
chmod 0700 "$SRC/etc/secret"
head -c 20000 /dev/urandom >"$SRC/usr/bin/prog"
chmod 0755 "$SRC/usr/bin/prog"
ln -s ../etc/conf "$SRC/usr/link"
echo one >"$SRC/usr/a" && ln "$SRC/usr/a" "$SRC/usr/b"   # two links: watched itself
for i in $(seq 1000); do echo "$i" >"$SRC/many/f$i"; done

note "capture: the questions of a root caller"
"$YOLO_CAPTURE" -q -o "$TMP/ns.yolo" "$SRC" -- sh -c "
	ls -laR '$SRC' >/dev/null
	find '$SRC' ! -type l -exec getfattr -h -d -m - {} + >/dev/null 2>&1
	readlink '$SRC/usr/link' >/dev/null; cat '$SRC/usr/bin/prog' >/dev/null
	stat '$SRC/usr/absent' 2>/dev/null; true" 2>"$TMP/capture.err" ||
	{ cat "$TMP/capture.err"; fail "capture"; }
"$YOLO_IMAGE" inspect --namespace "$TMP/ns.yolo" >"$TMP/inspect" || fail "inspect"
paths=$(awk '/^namespace:/ { print $2 }' "$TMP/inspect")
grep '^namespace:' "$TMP/inspect"
[ "${paths:-0}" -ge 1010 ] || fail "the image records ${paths:-0} namespace paths, expected >= 1010"

yolofs_start "$SRC" "$MNT" -o "images=$TMP/ns.yolo,metrics=$TMP/m.prom,metrics_interval=1,timeout=0,allow_other"
wait_until "the answers are learned" "grep -q 'namespace paths answered from memory' '$TMP/yolofs.log'"
grep 'namespace paths' "$TMP/yolofs.log"
known=$(grep -o '[0-9]* of [0-9]* namespace paths' "$TMP/yolofs.log" | tail -n1 | cut -d' ' -f1)
[ "$known" = "$paths" ] || fail "$known of $paths paths learned, expected all"

note "A: the same tree through the mount, answered from memory"
same_tree "$SRC" "$MNT"
readlink "$MNT/usr/link" >/dev/null
! stat "$MNT/usr/absent" 2>/dev/null || fail "an absent file is present through the mount"
wait_until "metrics are written" "[ -s '$TMP/m.prom' ]"
sleep 1.2
answered=$(metric ns_answered "$TMP/m.prom")
echo "answered from memory: $answered, asked of the source: $(metric ns_unknown "$TMP/m.prom")"
[ "$answered" -ge 1000 ] || fail "only $answered questions answered from memory"

note "B: non-root callers are answered by the source, as themselves"
before=$(metric ns_answered "$TMP/m.prom")
setpriv --reuid=65534 --regid=65534 --clear-groups ls "$MNT/etc/secret" >/dev/null 2>&1 &&
	fail "nobody listed a 0700 root directory through the mount"
setpriv --reuid=65534 --regid=65534 --clear-groups stat "$MNT/etc/secret/key" >/dev/null 2>&1 &&
	fail "nobody looked up a file in a 0700 root directory through the mount"
setpriv --reuid=65534 --regid=65534 --clear-groups getfattr -n user.origin "$MNT/etc/conf" >/dev/null ||
	fail "nobody cannot read a user xattr of a 0644 file"
setpriv --reuid=65534 --regid=65534 --clear-groups stat -c %s "$MNT/many/f7" >/dev/null ||
	fail "nobody cannot stat a file"
sleep 1.2
[ "$(metric ns_answered "$TMP/m.prom")" = "$before" ] || fail "a non-root caller was answered from memory"

note "C: a change to the source is seen by the very next question"
# A new daemon: nothing was opened yet, so every attribute comes from the
# answers (an opened object's attributes come from its descriptor).
yolofs_stop
yolofs_start "$SRC" "$MNT" -o "images=$TMP/ns.yolo,metrics=$TMP/m.prom,metrics_interval=1,timeout=0,allow_other"
wait_until "the answers are learned again" "[ \$(grep -c 'namespace paths answered from memory' '$TMP/yolofs.log') -ge 2 ]"
mkdir "$SRC/flood"
/usr/bin/python3 - "$SRC" "$MNT" <<'PY' || fail "a stale answer was given"
import os, subprocess, sys
src, mnt = sys.argv[1:3]
def same(rel, what):
    a, b = os.lstat(os.path.join(src, rel)), os.lstat(os.path.join(mnt, rel))
    fa = (a.st_mode, a.st_uid, a.st_gid, a.st_size, a.st_mtime_ns, a.st_nlink, a.st_ino)
    fb = (b.st_mode, b.st_uid, b.st_gid, b.st_size, b.st_mtime_ns, b.st_nlink, b.st_ino)
    if fa != fb:
        sys.exit("%s: %s: source %s, mount %s" % (rel, what, fa, fb))
def change(i):
    rel = "many/f%d" % i
    p = os.path.join(src, rel)
    kind = i % 5
    if kind == 0:
        os.chmod(p, 0o600); same(rel, "chmod")
    elif kind == 1:
        os.utime(p, ns=(i * 10**9, i * 10**9)); same(rel, "utime")
    elif kind == 2:
        os.chown(p, 1000 + i, 1000 + i); same(rel, "chown")
    elif kind == 3:
        with open(p, "a") as f: f.write("more")
        same(rel, "append")
    else:
        os.setxattr(p, "user.k", b"v%d" % i)
        got = os.getxattr(os.path.join(mnt, rel), "user.k")
        if got != b"v%d" % i:
            sys.exit("%s: setxattr not seen: %r" % (rel, got))
# One race per captured file: a file's answers, once dropped, are asked of
# the source from then on, so each file is changed once.  The first half
# with nothing else going on; the second while another process keeps the
# report queue busy, so reports wait (answers must not).
for i in range(1, 501):
    change(i)
flood = subprocess.Popen([sys.executable, "-c", """
import os, sys
d = sys.argv[1]
names = [os.path.join(d, "x%d" % k) for k in range(64)]
for n in names: open(n, "w").close()
while True:
    for n in names: os.utime(n)
""", os.path.join(src, "flood")])
try:
    for i in range(501, 1001):
        change(i)
finally:
    flood.kill()
same("many", "a directory's attributes")
os.setxattr(os.path.join(src, "etc/conf"), "user.origin", b"changed")
if os.getxattr(os.path.join(mnt, "etc/conf"), "user.origin") != b"changed":
    sys.exit("xattr change not seen")
os.rename(os.path.join(src, "usr/link"), os.path.join(src, "usr/link.old"))
os.symlink("elsewhere", os.path.join(src, "usr/link"))
same("usr", "a directory with a new entry")    # not opened yet: from the answers
if os.readlink(os.path.join(mnt, "usr/link")) != "elsewhere":
    sys.exit("a replaced symlink is stale")
open(os.path.join(src, "usr/absent"), "w").close()
if not os.path.exists(os.path.join(mnt, "usr/absent")):
    sys.exit("a file created in the source is still absent through the mount")
os.rename(os.path.join(src, "usr/bin"), os.path.join(src, "usr/sbin"))
if os.path.exists(os.path.join(mnt, "usr/bin/prog")) or not os.path.exists(os.path.join(mnt, "usr/sbin/prog")):
    sys.exit("a renamed directory is stale")
os.mkdir(os.path.join(src, "usr/bin"))     # same name, nothing in it
if os.path.exists(os.path.join(mnt, "usr/bin/prog")):
    sys.exit("a file of a renamed directory is found in the new one of the same name")
if sorted(os.listdir(os.path.join(mnt, "usr"))) != sorted(os.listdir(os.path.join(src, "usr"))):
    sys.exit("a listing is stale")
os.link(os.path.join(src, "etc/conf"), os.path.join(src, "etc/conf2"))
same("etc", "a directory with a new link in it")
same("etc/conf", "new link")
with open(os.path.join(src, "usr/b"), "a") as f: f.write("through the other link")
same("usr/a", "written through another link")
print("every change was seen at once")
PY
rm -r "$SRC/flood"
same_tree "$SRC" "$MNT"
sleep 1.2
echo "dropped answers: $(metric ns_dropped "$TMP/m.prom")"

note "D: changes through the mount"
mkdir "$MNT/etc/new"
mv "$MNT/etc/conf" "$MNT/etc/conf.moved"
chmod 0711 "$MNT/many"
setfattr -n user.origin -v mount "$MNT/etc/conf.moved"
same_tree "$SRC" "$MNT"

note "E: lost reports drop every answer"
yolofs_stop
old_q=$(cat /proc/sys/fs/inotify/max_queued_events)
echo 16 >/proc/sys/fs/inotify/max_queued_events   # taken at inotify_init
yolofs_start "$SRC" "$MNT" -o "images=$TMP/ns.yolo,metrics=$TMP/m.prom,metrics_interval=1,timeout=0,allow_other"
echo "$old_q" >/proc/sys/fs/inotify/max_queued_events
wait_until "the answers are learned again" "[ \$(grep -c 'namespace paths answered from memory' '$TMP/yolofs.log') -ge 3 ]"
/usr/bin/python3 - "$SRC/many" "$TMP/yolofs.log" <<'PY' || fail "no lost reports, in 20 bursts"
import os, sys, time
d, log = sys.argv[1:3]
names = sorted(os.listdir(d))
for burst in range(20):
    for n in names:
        os.utime(os.path.join(d, n))
    time.sleep(0.3)
    if "inotify reports were lost" in open(log).read():
        sys.exit(0)
sys.exit(1)
PY
same_tree "$SRC" "$MNT"
yolofs_stop

note "G: a write through a shared mapping of a source file, made outside the mount"
# inotify reports no such write; the writer's open is reported, and from
# then on the file's attributes come from the file itself.
head -c 1048576 /dev/urandom >"$SRC/mapped"
"$YOLO_CAPTURE" -q -o "$TMP/mapped.yolo" "$SRC" -- cat "$SRC/mapped" 2>/dev/null >/dev/null || fail "capture"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/mapped.yolo,timeout=0"
wait_until "the answers are learned" "grep -q 'mapped.yolo: [0-9]* of [0-9]* namespace paths' '$TMP/yolofs.log'"
/usr/bin/python3 - "$SRC/mapped" "$MNT/mapped" <<'PY' || fail "stale bytes after a write through a mapping"
import mmap, os, sys, time
src, mnt = sys.argv[1:3]
fd = os.open(src, os.O_RDWR)
m = mmap.mmap(fd, 1048576)
time.sleep(0.05)                     # the page was clean: the write faults and moves mtime
m[0:7] = b"changed"
m.flush()                           # msync: as a writer that is careful
mfd = os.open(mnt, os.O_RDONLY)     # (no isatty ioctl, unlike open())
got = os.read(mfd, 7)               # the writer still has it open and mapped
os.close(mfd)
m.close()
os.close(fd)
sys.exit(0 if got == b"changed" else "read %r through the mount" % got)
PY
yolofs_stop

note "H: -o no_namespace: no inotify instance held, nothing answered from memory, the same tree"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/ns.yolo,metrics=$TMP/m3.prom,metrics_interval=1,timeout=0,allow_other,no_namespace"
wait_until "the image is loaded" "grep -q 'no namespace answers from memory (no_namespace)' '$TMP/yolofs.log'"
! ls -l "/proc/${PIDS[-1]}/fd" | grep -q 'anon_inode:inotify' || fail "no_namespace: yolofs holds an inotify instance"
same_tree "$SRC" "$MNT"
echo changed >"$SRC/etc/conf"                    # a change on the source, seen through the mount
[ "$(cat "$MNT/etc/conf")" = changed ] || fail "no_namespace: a change on the source is not seen"
sleep 1.2
[ "$(metric ns_answered "$TMP/m3.prom")" = 0 ] || fail "no_namespace: answered from memory"
yolofs_stop

note "F: a source that cannot report changes is not answered from memory"
FSRC=$TMP/fusesrc
mkdir -p "$FSRC"
yolofs_start "$SRC" "$FSRC"                       # a FUSE file system as the source
cp "$TMP/ns.yolo" "$TMP/ns2.yolo"
yolofs_start "$FSRC" "$MNT" -o "images=$TMP/ns2.yolo,metrics=$TMP/m2.prom,metrics_interval=1,timeout=0,allow_other"
wait_until "learning ends" "grep -q 'ns2.yolo: 0 of [0-9]* namespace paths' '$TMP/yolofs.log'"
grep -q 'which may change without inotify reports' "$TMP/yolofs.log" || fail "not said why nothing is answered"
same_tree "$SRC" "$MNT"
sleep 1.2
[ "$(metric ns_answered "$TMP/m2.prom")" = 0 ] || fail "a FUSE source was answered from memory"
echo "PASS"
