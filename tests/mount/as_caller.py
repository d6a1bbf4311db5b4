#!/usr/bin/python3
# as_caller.py - what an unprivileged user may do in a directory, for
# test_as_caller.sh: the same commands run against plain ext4 and against a
# yolofs mount of an identical ext4, and their outputs must be equal.
#
#   as_caller.py setup DIR          (root) build the tree the cases use
#   as_caller.py cases DIR          (the unprivileged user) one line per case
#   as_caller.py open DIR NAME      (the user) read NAME: its text or errno
#   as_caller.py race-victim DIR N KIND   (root)  see race() below
#   as_caller.py race-attacker DIR N KIND (the user)
#   as_caller.py race-check DIR N KIND    (root) count what the user gained
#
# The user is uid 65534 (nobody) with supplementary group GROUP (4242) and
# no other groups; setup makes GROUP's files with numeric ids only, so
# nothing in /etc/passwd or /etc/group needs to change.
import array
import errno
import fcntl
import os
import random
import stat
import sys
import time

USER, GROUP = 65534, 4242
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_APPEND_FL, FS_IMMUTABLE_FL = 0x20, 0x10


def put(path, text, mode, uid=0, gid=0):
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def mkdir(path, mode, uid=0, gid=0):
    os.mkdir(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)                  # not reduced by root's umask


def acl(path, spec, default=False):
    # setfacl is the plain way to write an ACL; it is not what is tested.
    args = ["setfacl"] + (["-d"] if default else []) + ["-m", spec, path]
    if os.spawnvp(os.P_WAIT, "setfacl", args) != 0:
        sys.exit("setfacl %s %s failed" % (spec, path))


def chattr(path, flag):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    buf = array.array("i", [0])
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
    buf[0] |= flag
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, buf, True)
    os.close(fd)


def setup(d):
    os.chmod(d, 0o1777)
    put(f"{d}/deny644", "deny\n", 0o644)
    acl(f"{d}/deny644", f"u:{USER}:---")
    put(f"{d}/grant600", "grant\n", 0o600)
    acl(f"{d}/grant600", f"u:{USER}:r--")
    put(f"{d}/group600", "group\n", 0o600)
    acl(f"{d}/group600", f"g:{GROUP}:r--")
    mkdir(f"{d}/denydir", 0o755)
    put(f"{d}/denydir/inner", "inner\n", 0o644)
    acl(f"{d}/denydir", f"u:{USER}:---")
    mkdir(f"{d}/defacl", 0o777)
    acl(f"{d}/defacl", "u::rwx,g::r-x,o::---", default=True)
    acl(f"{d}/defacl", f"u:{USER}:rw-", default=True)
    put(f"{d}/xattrs", "x\n", 0o644)
    os.setxattr(f"{d}/xattrs", "user.visible", b"1")
    os.setxattr(f"{d}/xattrs", "trusted.hidden", b"2")
    put(f"{d}/append", "first\n", 0o644, USER, USER)
    chattr(f"{d}/append", FS_APPEND_FL)
    put(f"{d}/immutable", "frozen\n", 0o666, USER, USER)
    chattr(f"{d}/immutable", FS_IMMUTABLE_FL)
    put(f"{d}/rootfile", "root\n", 0o644)
    mkdir(f"{d}/sticky", 0o1777)
    put(f"{d}/sticky/rootowned", "r\n", 0o666)
    mkdir(f"{d}/mine", 0o755, USER, USER)
    mkdir(f"{d}/mine/rootdir", 0o755)
    mkdir(f"{d}/mine/other", 0o755, USER, USER)
    mkdir(f"{d}/sgid", 0o2775, 0, GROUP)
    put(f"{d}/owned", "o\n", 0o644, USER, USER)
    put(f"{d}/secret600", "secret\n", 0o600)
    put(f"{d}/suid", "s\n", 0o4777)
    put(f"{d}/changing", "visible\n", 0o644)
    mkdir(f"{d}/race", 0o1777)


def err(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def attempt(fn):
    try:
        r = fn()
        return "ok" if r is None else str(r)
    except OSError as e:
        return err(e)


def read(path):
    with open(path) as f:
        return f.read().strip()


def write(path, text, flags):
    fd = os.open(path, flags)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def mode_of(path):
    st = os.lstat(path)
    return "%o %d:%d" % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def getflags(path):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
    finally:
        os.close(fd)
    return "%#x" % (buf[0] & (FS_APPEND_FL | FS_IMMUTABLE_FL))


def fill(path):
    """Write until the file system refuses; say whether the user stayed out
    of root's reserved blocks (bytes written <= what statvfs offered)."""
    sv = os.statvfs(os.path.dirname(path))
    avail = sv.f_bavail * sv.f_frsize
    free = sv.f_bfree * sv.f_frsize
    written = 0
    chunk = b"\0" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        while True:
            written += os.write(fd, chunk)
            if written > free + (8 << 20):
                break
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
    finally:
        os.close(fd)
        os.unlink(path)
    reserve = free - avail
    used_reserve = written > avail + reserve // 2
    return "stopped at ENOSPC, reserve %s" % ("USED" if used_reserve else "kept")


def cases(d):
    out = []

    def case(name, fn):
        out.append("%s: %s" % (name, attempt(fn)))

    for mask in (0o000, 0o022, 0o077):
        os.umask(mask)
        tag = "%03o" % mask
        case(f"umask {tag} file", lambda: (os.close(os.open(f"{d}/f{tag}", os.O_CREAT | os.O_WRONLY, 0o666)), mode_of(f"{d}/f{tag}"))[1])
        case(f"umask {tag} dir", lambda: (os.mkdir(f"{d}/d{tag}", 0o777), mode_of(f"{d}/d{tag}"))[1])
        case(f"umask {tag} fifo", lambda: (os.mkfifo(f"{d}/p{tag}", 0o666), mode_of(f"{d}/p{tag}"))[1])
        case(f"umask {tag} in default-ACL dir", lambda: (os.close(os.open(f"{d}/defacl/f{tag}", os.O_CREAT | os.O_WRONLY, 0o666)), mode_of(f"{d}/defacl/f{tag}"))[1])
    os.umask(0o022)
    case("ACL deny: read 0644 file", lambda: read(f"{d}/deny644"))
    case("ACL deny: list directory", lambda: sorted(os.listdir(f"{d}/denydir")))
    case("ACL deny: path through directory", lambda: read(f"{d}/denydir/inner"))
    case("ACL grant: read 0600 file", lambda: read(f"{d}/grant600"))
    case("ACL grant to a supplementary group", lambda: read(f"{d}/group600"))
    case("default ACL inherited", lambda: os.getxattr(f"{d}/defacl/f022", "system.posix_acl_access").hex())
    case("listxattr", lambda: sorted(os.listxattr(f"{d}/xattrs")))
    case("getxattr trusted.*", lambda: os.getxattr(f"{d}/xattrs", "trusted.hidden"))
    case("getxattr user.*", lambda: os.getxattr(f"{d}/xattrs", "user.visible"))
    case("setxattr user.* on root's file", lambda: os.setxattr(f"{d}/rootfile", "user.x", b"1"))
    case("append-only: O_APPEND write", lambda: write(f"{d}/append", "more\n", os.O_WRONLY | os.O_APPEND))
    case("append-only: plain write", lambda: write(f"{d}/append", "over\n", os.O_WRONLY))
    case("append-only: truncate", lambda: os.truncate(f"{d}/append", 0))
    case("append-only: content", lambda: read(f"{d}/append").replace("\n", "|"))
    case("append-only: lsattr", lambda: getflags(f"{d}/append"))
    case("immutable: write", lambda: write(f"{d}/immutable", "x", os.O_WRONLY))
    case("immutable: unlink", lambda: os.unlink(f"{d}/immutable"))
    case("immutable: chmod", lambda: os.chmod(f"{d}/immutable", 0o600))
    case("immutable: lsattr", lambda: getflags(f"{d}/immutable"))
    case("chattr +a on own file", lambda: chattr(f"{d}/owned", FS_APPEND_FL))
    case("chattr on root's file", lambda: chattr(f"{d}/rootfile", FS_APPEND_FL))
    case("sticky: unlink root's file", lambda: os.unlink(f"{d}/sticky/rootowned"))
    case("rename unwritable dir to another parent", lambda: os.rename(f"{d}/mine/rootdir", f"{d}/mine/other/rootdir"))
    case("setgid dir: new file", lambda: (os.close(os.open(f"{d}/sgid/f", os.O_CREAT | os.O_WRONLY, 0o664)), mode_of(f"{d}/sgid/f"))[1])
    case("setgid dir: new dir", lambda: (os.mkdir(f"{d}/sgid/d", 0o775), mode_of(f"{d}/sgid/d"))[1])
    case("chown own file to a foreign group", lambda: os.chown(f"{d}/owned", -1, 0))
    case("chown own file to own group", lambda: (os.chown(f"{d}/owned", -1, GROUP), mode_of(f"{d}/owned"))[1])
    case("hard link to root's 0600 file", lambda: os.link(f"{d}/secret600", f"{d}/stolen"))
    case("open root's 0600 file", lambda: read(f"{d}/secret600"))
    case("write to setuid file clears it", lambda: (write(f"{d}/suid", "w", os.O_WRONLY), mode_of(f"{d}/suid"))[1])
    case("utime now on root's file", lambda: os.utime(f"{d}/rootfile"))
    case("reserved blocks", lambda: fill(f"{d}/mine/fill"))
    print("\n".join(out))


# Races: the user makes name i of KIND in the sticky directory race/ while
# root replaces (or creates) the same name with its own 0600 object holding
# "secret".  Whatever the interleaving, the user must never end up owning
# or reading root's object.  Root announces each name (".goI") just before
# it acts, so the user's attempts land in the same microseconds.
def race_victim(d, n, kind):
    for i in range(n):
        p = f"{d}/race/{kind}{i}"
        t = f"{d}/race/.tmp{kind}{i}"
        try:
            if kind == "mkdir":
                mkdir(t, 0o700)
                put(f"{t}/secret", "secret", 0o600)
            elif kind != "create":
                put(t, "secret", 0o600)
            os.close(os.open(f"{d}/race/.go{i}", os.O_CREAT | os.O_WRONLY, 0o644))
            if kind == "create":
                # Land somewhere in the user's lookup-then-create.
                until = time.perf_counter() + random.uniform(0, 150e-6)
                while time.perf_counter() < until:
                    pass
                fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                os.write(fd, b"secret")
                os.close(fd)
                continue
            # Replace the user's object as soon as it appears.
            for _ in range(20000):
                if os.path.lexists(p):
                    break
            os.rename(t, p)
        except OSError:
            pass


def race_attacker(d, n, kind):
    leaks = 0
    target = f"{d}/race/mine"
    if kind == "link" and not os.path.exists(target):
        with open(target, "w") as f:
            f.write("mine")
    for i in range(n):
        p = f"{d}/race/{kind}{i}"
        deadline = time.monotonic() + 2
        while not os.path.exists(f"{d}/race/.go{i}") and time.monotonic() < deadline:
            pass
        for _ in range(200 if kind == "create" else 1):
            try:
                if kind == "create":
                    fd = os.open(p, os.O_CREAT | os.O_RDONLY, 0o644)
                    if os.read(fd, 16) == b"secret":
                        leaks += 1
                    os.close(fd)
                elif kind == "mkdir":
                    os.mkdir(p, 0o755)
                elif kind == "mknod":
                    os.mknod(p, 0o644 | stat.S_IFIFO)
                elif kind == "symlink":
                    os.symlink("mine", p)
                elif kind == "link":
                    os.link(target, p)
                break
            except OSError as e:
                if e.errno != errno.ENOENT:
                    break
    print("read root's secret: %d" % leaks)


def race_check(d, n, kind):
    gained = 0
    for i in range(n):
        p = f"{d}/race/{kind}{i}"
        try:
            st = os.lstat(p)
        except OSError:
            continue
        secret = f"{p}/secret" if stat.S_ISDIR(st.st_mode) else p
        try:
            is_root_object = stat.S_ISLNK(os.lstat(secret).st_mode) is False and read(secret) == "secret"
        except OSError:
            is_root_object = False
        if is_root_object and st.st_uid == USER:
            gained += 1
    print("root's objects now owned by the user: %d" % gained)


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "setup":
        setup(d)
    elif cmd == "cases":
        cases(d)
    elif cmd == "open":
        print("%s: %s" % (sys.argv[3], attempt(lambda: read(f"{d}/{sys.argv[3]}"))))
    elif cmd.startswith("race-"):
        n, kind = int(sys.argv[3]), sys.argv[4]
        {"race-victim": race_victim, "race-attacker": race_attacker,
         "race-check": race_check}[cmd](d, n, kind)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
