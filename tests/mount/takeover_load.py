#!/usr/bin/python3
"""takeover_load.py - I/O that must not notice yolofs being replaced under it.

    takeover_load.py MODE MOUNTED_FILE SOURCE_FILE STOPFILE

Runs until STOPFILE exists, then prints one line "MODE ops=N errors=E" and
exits 1 if any operation failed or returned bytes that differ from the
source file (read directly, beside the mount).  Modes:
  read    one descriptor held open: random 64 KiB preads, plus a new open
          every 50 reads
  direct  the same with O_DIRECT (qemu cache=none)
  mmap    a shared mapping held: random pages touched, dropped
          (MADV_DONTNEED) so that they fault in again
  write   one descriptor held open for writing: random 4 KiB blocks written
          with a sequence number and fsync'd; each acknowledged block is
          read back through the mount and from the source
  meta    in the directory MOUNTED_FILE: files created, written, stat'd,
          listed, renamed and removed (SOURCE_FILE: the same directory on
          the source)
Every error is printed with its errno name; the first 5 mismatches too.
"""
import errno
import mmap
import os
import random
import sys
import time

BLOCK = 65536


def main():
    mode, mounted, source, stopfile = sys.argv[1:5]
    rnd = random.Random(os.getpid())
    ops = errors = 0

    def stopped():
        return os.path.exists(stopfile)

    def report(what):
        nonlocal errors
        errors += 1
        if errors <= 5:
            print(f"{mode}: {what}", file=sys.stderr, flush=True)

    def compare(got, off, length, src_fd):
        want = os.pread(src_fd, length, off)
        if got != want:
            report(f"bytes differ at offset {off} ({len(got)} vs {len(want)} bytes)")

    if mode in ("read", "direct"):
        src = os.open(source, os.O_RDONLY)
        size = os.fstat(src).st_size
        flags = os.O_RDONLY | (os.O_DIRECT if mode == "direct" else 0)
        buf = mmap.mmap(-1, BLOCK)  # page-aligned, for O_DIRECT
        fd = os.open(mounted, flags)
        while not stopped():
            off = rnd.randrange(0, max(1, size // BLOCK)) * BLOCK
            try:
                if ops % 50 == 49:
                    os.close(fd)
                    fd = os.open(mounted, flags)
                n = os.preadv(fd, [buf], off)
                compare(bytes(buf[:n]), off, n, src)
            except OSError as e:
                report(f"{errno.errorcode.get(e.errno, e.errno)} at offset {off}")
                time.sleep(0.01)
            ops += 1
    elif mode == "mmap":
        src = os.open(source, os.O_RDONLY)
        size = os.fstat(src).st_size
        fd = os.open(mounted, os.O_RDONLY)
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        page = mmap.PAGESIZE
        while not stopped():
            off = rnd.randrange(0, size // page) * page
            try:
                got = m[off:off + page]
                compare(got, off, page, src)
                m.madvise(mmap.MADV_DONTNEED, off, page)
            except (OSError, ValueError) as e:
                report(f"{e} at offset {off}")
            ops += 1
    elif mode == "write":
        src = os.open(source, os.O_RDONLY)
        size = os.fstat(src).st_size
        fd = os.open(mounted, os.O_RDWR)
        seq = 0
        while not stopped():
            off = rnd.randrange(0, size // 4096) * 4096
            seq += 1
            data = (f"{os.getpid()}:{seq}:{off}:".encode() * 512)[:4096]
            try:
                if os.pwrite(fd, data, off) != len(data):
                    report(f"short write at {off}")
                os.fsync(fd)
                if os.pread(fd, 4096, off) != data:
                    report(f"read back through the mount differs at {off}")
                if os.pread(src, 4096, off) != data:
                    report(f"fsync'd block not on the source at {off}")
            except OSError as e:
                report(f"{errno.errorcode.get(e.errno, e.errno)} at offset {off}")
                time.sleep(0.01)
            ops += 1
    elif mode == "meta":
        n = 0
        while not stopped():
            n += 1
            name = f"f{os.getpid()}.{n}"
            path = os.path.join(mounted, name)
            try:
                with open(path, "wb") as f:
                    f.write(name.encode())
                if os.stat(path).st_size != len(name):
                    report(f"stat of {name}: wrong size")
                if name not in os.listdir(mounted):
                    report(f"{name} missing from the listing")
                os.rename(path, path + ".r")
                with open(path + ".r", "rb") as f:
                    if f.read() != name.encode():
                        report(f"{name}.r: wrong contents")
                if not os.path.exists(os.path.join(source, name + ".r")):
                    report(f"{name}.r not on the source")
                os.unlink(path + ".r")
            except OSError as e:
                report(f"{errno.errorcode.get(e.errno, e.errno)} on {name}")
                time.sleep(0.01)
            ops += 1
    else:
        sys.exit(f"unknown mode {mode}")
    print(f"{mode} ops={ops} errors={errors}", flush=True)
    sys.exit(1 if errors or ops == 0 else 0)


main()
