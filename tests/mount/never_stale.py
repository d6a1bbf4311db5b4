#!/usr/bin/python3
# never_stale.py - the cases of test_never_stale.sh: the same operations
# are made on an ext4 source directly, and what a root process sees on the
# source (the reference) is compared with what it sees through the yolofs
# mount.  Every difference is printed on stderr (one line each) and the
# case exits 1; details that show the case tested something (lazy opens,
# inode-number reuse, disconnected dentries) are printed on stdout.
#
#   never_stale.py setup SRC MODE...      files of every case, one tree per mode
#   never_stale.py capture SRC MODE...    the reads the boot image records
#   never_stale.py case N SRC MNT MODE PID LOG
#
# MODE is t0 (yolofs timeout=0) or def (default options: the kernel keeps
# attributes and entries 1 s, so every check waits 1.25 s first).  Each
# case works in SRC/cN.MODE only.
import ctypes
import errno
import os
import shutil
import re
import signal
import stat
import struct
import subprocess
import sys
import time

KiB, MiB = 1024, 1024 * 1024
O_PATH = 0o10000000
T_FIXED = 981173106 * 10**9 + 123456789          # touch -d 2001-02-03 04:05:06.123456789
CAP_BLOB = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # VFS_CAP_REVISION_2, effective, cap_net_bind_service

errors = []
MODE = "t0"


def err(msg):
    errors.append(msg)
    print("  DIFF: " + msg, file=sys.stderr, flush=True)


def info(msg):
    print("  " + msg, flush=True)


def settle():
    """Wait past the kernel's attribute and entry timeouts (default options)."""
    if MODE == "def":
        time.sleep(1.25)


def drop(n=3):
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("%d\n" % n)


def put(path, data, mtime_ns=None, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def pattern(seed, size):
    """Bytes that differ from every other seed's at every 4 KiB block."""
    out = bytearray()
    blk = 0
    while len(out) < size:
        out += (b"%08d:%08d|" % (seed, blk)) * 228 + b"#" * 4
        blk += 1
    return bytes(out[:size])


def res(fn):
    """Result of a call, or its errno name: errors compare like values."""
    try:
        return fn()
    except OSError as e:
        return "errno " + errno.errorcode.get(e.errno, str(e.errno))


ST_FIELDS = ("st_mode", "st_nlink", "st_size", "st_mtime_ns", "st_ctime_ns", "st_uid", "st_gid", "st_ino")


def st_tuple(st, fields=ST_FIELDS):
    if isinstance(st, str):
        return st
    return tuple(getattr(st, f) for f in fields)


def st_diff(a, b, fields=ST_FIELDS):
    """The fields that differ, 'name source!=mount' each."""
    if isinstance(a, str) or isinstance(b, str):
        return "source %s, mount %s" % (st_tuple(a, fields), st_tuple(b, fields))
    out = []
    for f in fields:
        va, vb = getattr(a, f), getattr(b, f)
        if va != vb:
            if f == "st_mode":
                va, vb = oct(va), oct(vb)
            out.append("%s %s!=%s" % (f[3:], va, vb))
    return ", ".join(out)


def read_all(path):
    def rd():
        with open(path, "rb") as f:
            return f.read()
    return res(rd)


def xattrs(path):
    def get():
        return {n: os.getxattr(path, n, follow_symlinks=False)
                for n in sorted(os.listxattr(path, follow_symlinks=False))}
    return res(get)


def show(v):
    if isinstance(v, bytes):
        return "%d bytes %r..." % (len(v), v[:24])
    return repr(v)


# Order of a check: stat, named xattrs, bytes (through the mount first),
# then the whole xattr list.  A question the answers do not hold (a
# listxattr, a read the image does not cover) may open the file on the
# source; the open, reported by inotify to its directory, drops its
# answers, so a check that did so first would test nothing after it.  So
# would the reference's own open of the source file.
XNAMES = ("user.k", "security.capability", "system.posix_acl_access")


def same_meta(src, mnt, rel, what, fields=ST_FIELDS, xattr=True):
    """lstat and the named xattrs of REL on the source and through the mount."""
    s, m = os.path.join(src, rel), os.path.join(mnt, rel)
    a, b = res(lambda: os.lstat(s)), res(lambda: os.lstat(m))
    d = st_diff(a, b, fields)
    if d:
        err("%s: %s: stat: %s" % (what, rel, d))
    if xattr and not isinstance(a, str):
        for n in XNAMES:
            xa = res(lambda: os.getxattr(s, n, follow_symlinks=False))
            xb = res(lambda: os.getxattr(m, n, follow_symlinks=False))
            if xa != xb:
                err("%s: %s: getxattr %s: source %r, mount %r" % (what, rel, n, xa, xb))
    return a


def same_xattrs(src, mnt, rel, what):
    xb = xattrs(os.path.join(mnt, rel))
    xa = xattrs(os.path.join(src, rel))
    if xa != xb:
        err("%s: %s: xattrs: source %r, mount %r" % (what, rel, xa, xb))


def same_bytes(src, mnt, rel, what):
    db = read_all(os.path.join(mnt, rel))
    da = read_all(os.path.join(src, rel))
    if da != db:
        err("%s: %s: bytes: source %s, mount %s" % (what, rel, show(da), show(db)))


def same_path(src, mnt, rel, what, fields=ST_FIELDS):
    """lstat, named xattrs, bytes, all xattrs of REL."""
    a = same_meta(src, mnt, rel, what, fields)
    if not isinstance(a, str) and stat.S_ISREG(a.st_mode):
        same_bytes(src, mnt, rel, what)
    if not isinstance(a, str):
        same_xattrs(src, mnt, rel, what)


def same_dir(src, mnt, rel, what):
    """A directory: its own attributes, its listing, each entry's, then bytes."""
    same_meta(src, mnt, rel, what, xattr=False)
    la = res(lambda: sorted(os.listdir(os.path.join(src, rel))))
    lb = res(lambda: sorted(os.listdir(os.path.join(mnt, rel))))
    if la != lb:
        err("%s: %s: listing: source %r, mount %r" % (what, rel, la, lb))
    if isinstance(la, list):
        sts = {n: same_meta(src, mnt, os.path.join(rel, n), what) for n in la}
        for n in la:
            if not isinstance(sts[n], str) and stat.S_ISREG(sts[n].st_mode):
                same_bytes(src, mnt, os.path.join(rel, n), what)
        for n in la:
            same_xattrs(src, mnt, os.path.join(rel, n), what)


def check_twice(what, fn):
    """A check after the kernel's timeouts, and again after echo 3."""
    settle()
    fn(what)
    drop(3)
    fn(what + " + drop_caches")


def daemon_fds(pid, path):
    """The daemon's descriptors of PATH: [(fd, is O_PATH, target)]."""
    out = []
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
            if t != path and t != path + " (deleted)":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = int(re.search(r"flags:\s*([0-7]+)", f.read()).group(1), 8)
        except (OSError, AttributeError):
            continue
        out.append((int(fd), bool(flags & O_PATH), t))
    return out


def check_lazy(pid, path, what):
    """The open through the mount did not open PATH on the source."""
    fds = daemon_fds(pid, path)
    opened = [f for f in fds if not f[1]]
    info("%s: lazy open: %s (daemon descriptors of the file: %s)"
         % (what, "no" if opened else "yes", [(f[0], "O_PATH" if f[1] else "open") for f in fds] or "none"))
    if opened:
        # Not a difference, but the case would not test a lazy descriptor.
        err("%s: the open through the mount was not lazy (the daemon opened %s): "
            "the case would test nothing lazy" % (what, path))
        return False
    return True


def fd_view(fd, ranges, seeks):
    """What a descriptor shows: fstat, lseeks, preads (values or errnos)."""
    v = {"fstat": res(lambda: st_tuple(os.fstat(fd), ("st_mode", "st_nlink", "st_size", "st_mtime_ns",
                                                           "st_ctime_ns", "st_uid", "st_gid", "st_ino")))}
    for off, wh in seeks:
        name = {os.SEEK_END: "SEEK_END", os.SEEK_DATA: "SEEK_DATA", os.SEEK_HOLE: "SEEK_HOLE"}[wh]
        v["lseek(%d, %s)" % (off, name)] = res(lambda: os.lseek(fd, off, wh))
    for off, ln in ranges:
        v["pread(off %d, len %d)" % (off, ln)] = res(lambda: os.pread(fd, ln, off))
    return v


def same_fd_xattrs(fs, fm, what):
    """fgetxattr and flistxattr of two descriptors of one file: the answers
    about the name now (another file) must not be given for the old one."""
    for q, f in (("fgetxattr user.k", lambda fd: os.getxattr(fd, "user.k")),
                 ("flistxattr", lambda fd: sorted(os.listxattr(fd)))):
        a, b = res(lambda: f(fs)), res(lambda: f(fm))
        if a != b:
            err("%s: %s: source fd %r, mount fd %r" % (what, q, a, b))


def same_fd(fs, fm, ranges, seeks, what, skip=()):
    a, b = fd_view(fs, ranges, seeks), fd_view(fm, ranges, seeks)
    for k in a:
        if k in skip:
            continue
        if a[k] != b[k]:
            err("%s: %s: source fd %s, mount fd %s" % (what, k, show(a[k]), show(b[k])))
    return a, b


# ---- setup and capture ----

def setup(src, modes):
    for m in modes:
        b = lambda *p: os.path.join(src, *p)
        # 1: a 64 KiB file with one link; another directory for the new link
        os.makedirs(b("c1." + m, "d")); os.makedirs(b("c1." + m, "other"))
        for i, n in enumerate(C1_FILES):
            put(b("c1." + m, "d", n), pattern(100 + i, 64 * KiB))
        # 2: 1 MiB, captured: its first 64 KiB; r/f: the reference, same bytes and mtime
        for d in ("d", "r", "fill"):
            os.makedirs(b("c2." + m, d))
        for d in ("d", "r"):
            put(b("c2." + m, d, "f"), pattern(2, MiB), mtime_ns=T_FIXED)
        # 3: 64 KiB, changed through open_by_handle_at
        os.makedirs(b("c3." + m, "d"))
        for i, n in enumerate(C3_FILES):
            put(b("c3." + m, "d", n), pattern(300 + i, 64 * KiB))
        # 4a: tmpfs over d; 4b: a file bound over d/f; 4c: alt bound over d before load
        os.makedirs(b("c4a." + m, "d"))
        put(b("c4a." + m, "d", "a"), b"a\n"); put(b("c4a." + m, "d", "b"), b"bb\n")
        os.makedirs(b("c4b." + m, "d"))
        put(b("c4b." + m, "d", "f"), pattern(41, 64 * KiB))
        put(b("c4b." + m, "other"), pattern(42, 5000), mode=0o600)
        os.makedirs(b("c4c." + m, "d")); os.makedirs(b("c4c." + m, "alt"))
        put(b("c4c." + m, "d", "p"), b"under the bind mount\n")
        put(b("c4c." + m, "d", "q"), pattern(43, 8 * KiB))
        put(b("c4c." + m, "alt", "r"), b"bound at load\n", mode=0o640)
        put(b("c4c." + m, "alt", "s"), pattern(44, 12 * KiB))
        # 5: replaced, then SIGHUP
        os.makedirs(b("c5." + m, "d"))
        put(b("c5." + m, "d", "f"), pattern(5, 256 * KiB))
        # 6: a: renamed over, b: unlinked; 1 MiB with a hole at [256 KiB, 512 KiB)
        for c in ("c6a.", "c6b."):
            os.makedirs(b(c + m, "d"))
            data = pattern(6, MiB)
            with open(b(c + m, "d", "f"), "wb") as f:
                f.write(data[:256 * KiB])
                f.seek(512 * KiB)
                f.write(data[512 * KiB:])


def capture(src, modes):
    """Run inside yolo-capture: what a boot asked (ls -l, cat, head)."""
    cmds = []
    for m in modes:
        c = lambda p: "'%s/%s'" % (src, p % m)
        cmds += ["ls -l %s" % c("c1.%s/d"), "cat %s/*" % c("c1.%s/d"),
                 "ls -l %s" % c("c2.%s/d"), "head -c 65536 %s" % c("c2.%s/d/f"),
                 "ls -l %s" % c("c3.%s/d"), "cat %s/*" % c("c3.%s/d"),
                 "ls -l %s" % c("c4a.%s/d"), "cat %s/*" % c("c4a.%s/d"),
                 "ls -l %s" % c("c4b.%s/d"), "cat %s" % c("c4b.%s/d/f"),
                 "ls -l %s" % c("c4c.%s/d"), "cat %s/*" % c("c4c.%s/d"),
                 "ls -l %s" % c("c5.%s/d"), "head -c 65536 %s" % c("c5.%s/d/f"),
                 # its xattrs asked for: answers a reload learns about the new file
                 "/usr/bin/python3 -c 'import os, sys\nos.listxattr(sys.argv[1])\n"
                 "try: os.getxattr(sys.argv[1], \"user.k\")\nexcept OSError: pass' %s"
                 % c("c5.%s/d/f"),
                 "ls -l %s %s" % (c("c6a.%s/d"), c("c6b.%s/d")),
                 "head -c 65536 %s" % c("c6a.%s/d/f"), "head -c 65536 %s" % c("c6b.%s/d/f")]
    subprocess.run(["sh", "-ec", "\n".join(c + " >/dev/null" for c in cmds)], check=True)


# ---- the cases ----

C1_FILES = ("ln", "main", "cat", "chown", "touch", "xattr", "cap")


def case1(src, mnt, pid, log):
    """A hard link made after load; a change through the new name, seen
    through the old one.  One file per change: a check may drop answers."""
    b = "c1." + MODE
    changes = {
        "ln": [],
        "main": [("chmod 600", lambda p: os.chmod(p, 0o600)),
                 ("echo short >", lambda p: put(p, b"short\n", mode=0o600))],
        "cat": [("chmod 600", lambda p: os.chmod(p, 0o600)),      # checked bytes first
                ("echo short >", lambda p: put(p, b"short\n", mode=0o600))],
        "chown": [("chown 1234:5678", lambda p: os.chown(p, 1234, 5678))],
        "touch": [("touch -d 2001-02-03", lambda p: os.utime(p, ns=(T_FIXED, T_FIXED)))],
        "xattr": [("setfattr -n user.k", lambda p: os.setxattr(p, "user.k", b"through the new name"))],
        "cap": [("setxattr security.capability", lambda p: os.setxattr(p, "security.capability", CAP_BLOB))],
    }
    for n in C1_FILES:
        f, fl = "%s/d/%s" % (b, n), "%s/other/%s" % (b, n)
        os.link(os.path.join(src, f), os.path.join(src, fl))
        what = "ln d/%s other/%s" % (n, n)
        for name, fn in changes[n]:
            fn(os.path.join(src, fl))
            what += "; %s other/%s" % (name, n)

        def check(w):
            if n == "cat":
                same_bytes(src, mnt, f, w + " (cat first)")
            same_path(src, mnt, f, w)
            same_path(src, mnt, fl, w)
        check_twice(what, check)


class Handle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]


libc = ctypes.CDLL(None, use_errno=True)


def name_to_handle(path):
    h = Handle()
    h.handle_bytes = 128
    mnt_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, path.encode(), ctypes.byref(h), ctypes.byref(mnt_id), 0) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return h


def open_by_handle(mount_fd, h, flags):
    fd = libc.open_by_handle_at(mount_fd, ctypes.byref(h), flags)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def case2(src, mnt, pid, log):
    """Inode-number reuse under a lazy descriptor."""
    b = os.path.join(src, "c2." + MODE)
    df, rf = os.path.join(b, "d/f"), os.path.join(b, "r/f")
    old = pattern(2, MiB)
    new = pattern(22, MiB)
    st_old = os.stat(df)
    fm = os.open(os.path.join(mnt, "c2." + MODE, "d/f"), os.O_RDONLY)
    fs = os.open(rf, os.O_RDONLY)             # the reference: the same operations on r/f
    check_lazy(pid, df, "d/f")
    a, c = os.pread(fs, 4096, 0), os.pread(fm, 4096, 0)   # a captured block: stays lazy
    if a != c:
        err("before the replacement: first block: source %s, mount %s" % (show(a), show(c)))
    held = daemon_fds(pid, df)
    os.unlink(df)
    os.unlink(rf)
    reused, tries = False, 0
    for tries in range(1, 201):             # empty candidates fill the holes first
        os.close(os.open(df + ".new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        if os.stat(df + ".new").st_ino == st_old.st_ino:
            reused = True
            break
        os.rename(df + ".new", os.path.join(b, "fill", "f%d" % tries))
    put(df + ".new", new, mtime_ns=T_FIXED)
    put(rf + ".new", new, mtime_ns=T_FIXED)
    os.rename(df + ".new", df)
    os.rename(rf + ".new", rf)
    if reused:
        info("inode number %d reused by the new d/f (try %d)" % (st_old.st_ino, tries))
    elif held:
        info("inode number %d not reused in %d tries: the daemon holds the old file (%s)"
             % (st_old.st_ino, tries, held))
    else:
        err("inode number %d not reused in %d tries, and the daemon holds no descriptor "
            "of the old file: the case tests nothing" % (st_old.st_ino, tries))
    ranges = [(0, 4096), (0, 64 * KiB), (60 * KiB, 8 * KiB), (64 * KiB, 4096), (300 * KiB, 64 * KiB),
              (MiB - 4096, 4096), (0, MiB)]
    fields = ("st_mode", "st_nlink", "st_size", "st_mtime_ns")

    def check(what):
        sa, sm = res(lambda: os.fstat(fs)), res(lambda: os.fstat(fm))
        d = st_diff(sa, sm, fields)
        if d:
            err("%s: fstat of the old file: %s" % (what, d))
        if not isinstance(sm, str) and sm.st_nlink != 0:
            err("%s: fstat through the mount: nlink %d, expected 0 (the file is unlinked)" % (what, sm.st_nlink))
        for off, ln in ranges:
            ra, rm = res(lambda: os.pread(fs, ln, off)), res(lambda: os.pread(fm, ln, off))
            kind = ("captured" if off + ln <= 64 * KiB else "uncaptured" if off >= 64 * KiB
                    else "partly captured")
            if ra != old[off:off + ln]:
                err("%s: the reference fd does not read the old bytes (test broken)" % what)
            if rm != ra:
                err("%s: pread(off %d, len %d) (%s): source fd %s, mount fd %s%s"
                    % (what, off, ln, kind, show(ra), show(rm),
                       " (the NEW file's bytes)" if rm == new[off:off + ln] else ""))
        same_path(src, mnt, "c2.%s/d/f" % MODE, what + ": the name d/f (the new file)")

    check_twice("after unlink + new file at d/f", check)
    os.close(fm)
    os.close(fs)


C3_FILES = ("chmod", "chown", "write")


def case3(src, mnt, pid, log):
    """Changes through open_by_handle_at (disconnected dentries), one file each."""
    mount_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    ops = {
        "chmod": (os.O_RDONLY, "fchmod 600", lambda fd: os.fchmod(fd, 0o600)),
        "chown": (os.O_RDONLY, "fchown 2345:6789", lambda fd: os.fchown(fd, 2345, 6789)),
        "write": (os.O_RDWR, "pwrite + ftruncate", lambda fd: (os.pwrite(fd, b"written through a handle", 100),
                                                               os.ftruncate(fd, 50000))),
    }
    for n in C3_FILES:
        rel = "c3.%s/d/%s" % (MODE, n)
        path = os.path.join(src, rel)
        flags, name, fn = ops[n]
        h = name_to_handle(path)
        for attempt in range(5):
            drop(2)
            fd = open_by_handle(mount_fd, h, flags)
            where = os.readlink("/proc/self/fd/%d" % fd)
            if where != path:
                break
            os.close(fd)
        held = daemon_fds(pid, path)
        info("d/%s: open_by_handle_at gives %r (%s); daemon descriptors of the file: %s"
             % (n, where, "disconnected" if where != path else "connected", held or "none"))
        if where == path and not held:
            err("d/%s: its dentry stays connected after echo 2 (5 tries): the case tests nothing" % n)
        fn(fd)
        os.close(fd)
        check_twice("%s d/%s through open_by_handle_at" % (name, n), lambda w: same_path(src, mnt, rel, w))
    os.close(mount_fd)


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True)


def umount(path, pid, what):
    """umount PATH; if it is busy, say which descriptors of the daemon
    are on it (on ext4 alone nothing holds it) and detach it lazily."""
    r = subprocess.run(["umount", path], capture_output=True, text=True)
    if r.returncode != 0:
        held = daemon_fds(pid, path)
        err("%s: umount %s failed (%s); daemon descriptors of it: %s; detached with umount -l"
            % (what, os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.dirname(path)))),
               r.stderr.strip().split(": ")[-1], held or "none"))
        subprocess.run(["umount", "-l", path], check=True)


def case4(src, mnt, pid, log):
    """Mounts and umounts over parts of the source, after load (nothing is
    looked at through the mount before: a check may drop answers)."""
    # a: tmpfs over a recorded directory
    d = "c4a.%s/d" % MODE
    pd = os.path.join(src, d)
    check = lambda what: same_dir(src, mnt, d, what)
    mount("-t", "tmpfs", "-o", "mode=0751,size=1M", "tmpfs", pd)
    try:
        put(os.path.join(pd, "x"), b"on the tmpfs\n")
        put(os.path.join(pd, "a"), b"a file named as one below\n", mode=0o600)
        check_twice("a: tmpfs mounted over d", check)
    finally:
        umount(pd, pid, "a")
    check_twice("a: tmpfs unmounted", check)
    # b: a bind mount of another file over a recorded file
    f = "c4b.%s/d/f" % MODE
    pf = os.path.join(src, f)
    check = lambda what: (same_path(src, mnt, f, what), same_dir(src, mnt, "c4b.%s/d" % MODE, what))
    mount("--bind", os.path.join(src, "c4b." + MODE, "other"), pf)
    try:
        check_twice("b: other bound over d/f", check)
    finally:
        umount(pf, pid, "b")
    check_twice("b: bind unmounted", check)
    # c: a bind mount present at load, removed after load
    d = "c4c.%s/d" % MODE
    umount(os.path.join(src, d), pid, "c")
    check_twice("c: the bind present at load unmounted", lambda what: same_dir(src, mnt, d, what))


def reloads(log):
    with open(log) as f:
        return f.read().count("reload: ")


def learnings(log):
    """Images whose answers were learnt (once per load)."""
    with open(log) as f:
        return f.read().count("namespace paths answered from memory")


def case5(src, mnt, pid, log):
    """fstat of an old lazy descriptor after a SIGHUP reload."""
    rel = "c5.%s/d/f" % MODE
    ps = os.path.join(src, rel)
    fm = os.open(os.path.join(mnt, rel), os.O_RDONLY)
    fs = os.open(ps, os.O_RDONLY)
    check_lazy(pid, ps, "d/f")
    put(ps + ".new", pattern(55, 100 * KiB), mode=0o600)
    os.setxattr(ps + ".new", "user.k", b"the new file's")
    os.rename(ps + ".new", ps)
    # The image replaced by a copy: the reload loads it again and learns
    # the answers about d/f anew, now the new file's.
    img = os.path.join(os.path.dirname(log), "ns.yolo")
    shutil.copy2(img, img + ".tmp")
    os.rename(img + ".tmp", img)
    n, learnt = reloads(log), learnings(log)
    os.kill(pid, signal.SIGHUP)
    for _ in range(150):
        if reloads(log) > n and learnings(log) > learnt:
            break
        time.sleep(0.1)
    else:
        err("no reload line and no new answers in the log 15 s after SIGHUP")
    ranges = [(0, 4096), (64 * KiB, 4096), (0, 256 * KiB)]

    def check(what):
        same_fd(fs, fm, ranges, [], what)
        same_fd_xattrs(fs, fm, what)
        same_path(src, mnt, rel, what + ": the name d/f (the new file)")

    check_twice("after rename-over + SIGHUP", check)
    os.close(fm)
    os.close(fs)


def case6(src, mnt, pid, log):
    """A lazy descriptor whose name was renamed over (a) or unlinked (b)."""
    ranges = [(0, 4096), (0, 64 * KiB), (64 * KiB, 4096), (200 * KiB, 100 * KiB),
              (300 * KiB, 4096), (600 * KiB, 64 * KiB), (MiB - 4096, 8192), (0, MiB)]
    seeks = [(0, os.SEEK_END), (0, os.SEEK_DATA), (300 * KiB, os.SEEK_DATA), (600 * KiB, os.SEEK_DATA),
             (0, os.SEEK_HOLE), (MiB + 10, os.SEEK_DATA)]
    for sub, how in (("a", "renamed over"), ("b", "unlinked")):
        rel = "c6%s.%s/d/f" % (sub, MODE)
        ps = os.path.join(src, rel)
        fm = os.open(os.path.join(mnt, rel), os.O_RDONLY)
        fs = os.open(ps, os.O_RDONLY)
        check_lazy(pid, ps, "%s: d/f" % sub)
        if sub == "a":
            put(ps + ".new", pattern(66, 300 * KiB), mode=0o600)
            os.rename(ps + ".new", ps)
        else:
            os.unlink(ps)
        def check(what):
            same_fd(fs, fm, ranges, seeks, what)
            same_fd_xattrs(fs, fm, what)
        check_twice("%s: d/f %s" % (sub, how), check)
        os.close(fm)
        os.close(fs)


def main():
    global MODE
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(sys.argv[2], sys.argv[3:])
        return 0
    if cmd == "capture":
        capture(sys.argv[2], sys.argv[3:])
        return 0
    if cmd == "case":
        n, src, mnt, MODE, pid, log = sys.argv[2:8]
        globals()["case" + n](src, mnt, int(pid), log)
        if errors:
            print("%d differences" % len(errors), file=sys.stderr)
            return 1
        info("no difference")
        return 0
    print("usage: see the header", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
