#!/usr/bin/env python3
"""blockmap.py - where the slow disk's reads come from (bench/bench --containers).

    blockmap.py map MOUNTPOINT DEVICE DATA_ROOT LAYER_DIRS_FILE OUT
    blockmap.py classify MAP TRACE

`map` records which file-system blocks of the ext4 on DEVICE (mounted at
MOUNTPOINT) belong to what, as OUT (TSV: first block, end block, category):
  layer_data    regular files under an image layer's diff/ directory (the
                directories listed in LAYER_DIRS_FILE, one per line)
  layer_dir     directories (and their blocks) under such a diff/
  docker        every other file or directory under DATA_ROOT: dockerd's and
                containerd's own state (image and layer databases, container
                configs, the overlay2 link directory, ...)
  inode_table   ext4 inode tables (from dumpe2fs)
  fs_meta       superblocks, group descriptors, bitmaps, the journal
Extents come from FIEMAP, so the walk opens every file and directory: run it
before the measurements (it reads the device).  Blocks not in the map at all
(files created later, such as containers' own layers, or free space) are
"unmapped" when classified.

`classify` reads a tracefs text dump of block:block_rq_issue events for
DEVICE and prints, for the read requests, "tr_CATEGORY=COUNT" for every
category (a request is counted where its first block is) and
"tr_reads=TOTAL tr_read_bytes=BYTES".  A request is one read the disk did:
what the blkio throttle and /proc/diskstats count, after merging.
Python 3 standard library only.
"""
import bisect
import fcntl
import os
import re
import stat
import struct
import subprocess
import sys

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DATA_INLINE = 0x200
HDR = struct.Struct('=QQIIII')               # struct fiemap (32 bytes)
EXT = struct.Struct('=QQQQQIIII')            # struct fiemap_extent (56 bytes)
NEXT = 256
CATEGORIES = ['layer_data', 'layer_dir', 'docker', 'inode_table', 'fs_meta', 'unmapped']


def die(msg):
    print(f'blockmap: {msg}', file=sys.stderr)
    sys.exit(1)


def fiemap(fd):
    """(physical byte offset, length) of every extent of the open file."""
    out = []
    start = 0
    while True:
        buf = bytearray(HDR.size + EXT.size * NEXT)
        HDR.pack_into(buf, 0, start, 0xFFFFFFFFFFFFFFFF - start, 0, 0, NEXT, 0)
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
        n = HDR.unpack_from(buf, 0)[3]
        if n == 0:
            return out
        last = False
        for i in range(n):
            logical, physical, length, _, _, flags, _, _, _ = EXT.unpack_from(buf, HDR.size + i * EXT.size)
            if not flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DATA_INLINE):
                out.append((physical, length))
            start = logical + length
            last = last or bool(flags & FIEMAP_EXTENT_LAST)
        if last or n < NEXT:
            return out


def fs_metadata(device):
    """[(first block, end block, category)] of ext4's own structures, and the block size."""
    out = subprocess.run(['dumpe2fs', device], capture_output=True, text=True, check=True).stdout
    bs = int(re.search(r'^Block size:\s+(\d+)', out, re.M).group(1))
    spans = []

    def add(a, b, cat):
        spans.append((int(a), int(b) + 1 if b is not None else int(a) + 1, cat))
    for m in re.finditer(r'Inode table at (\d+)-(\d+)', out):
        add(m.group(1), m.group(2), 'inode_table')
    for m in re.finditer(r'(?:Block|Inode) bitmap at (\d+)', out):
        add(m.group(1), None, 'fs_meta')
    for m in re.finditer(r'superblock at (\d+), Group descriptors at (\d+)-(\d+)', out):
        add(m.group(1), None, 'fs_meta')
        add(m.group(2), m.group(3), 'fs_meta')
    for m in re.finditer(r'Reserved GDT blocks at (\d+)-(\d+)', out):
        add(m.group(1), m.group(2), 'fs_meta')
    # The journal (inode 8): its extents as debugfs lists them.
    j = subprocess.run(['debugfs', '-R', 'stat <8>', device], capture_output=True, text=True).stdout
    for m in re.finditer(r'\(\d+(?:-\d+)?\):(\d+)(?:-(\d+))?', j):
        add(m.group(1), m.group(2) or m.group(1), 'fs_meta')
    return spans, bs


def cmd_map(mnt, device, data_root, layers_file, out_path):
    spans, bs = fs_metadata(device)
    with open(layers_file, encoding='utf-8') as f:
        layers = [os.path.realpath(line.strip()) for line in f if line.strip()]
    data_root = os.path.realpath(data_root)
    mnt = os.path.realpath(mnt)
    dev = os.stat(mnt).st_dev
    nfiles = 0
    for top, dirs, files in os.walk(mnt):
        # Stay on this file system (container overlays, yolofs mounts).
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == dev]
        layer = next((ld for ld in layers if top == ld or top.startswith(ld + os.sep)), None)
        under_root = top == data_root or top.startswith(data_root + os.sep)
        for name, isdir in [(None, True)] + [(n, False) for n in files]:
            path = top if name is None else os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) or st.st_dev != dev:
                continue
            if layer:
                cat = 'layer_dir' if isdir else 'layer_data'
            elif under_root:
                cat = 'docker'
            else:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                for phys, length in fiemap(fd):
                    spans.append((phys // bs, (phys + length + bs - 1) // bs, cat))
            except OSError:
                pass
            finally:
                os.close(fd)
            nfiles += 1
    spans.sort()
    tmp = out_path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(f'# block_size={bs} files={nfiles}\n')
        for a, b, cat in spans:
            f.write(f'{a}\t{b}\t{cat}\n')
    os.replace(tmp, out_path)
    print(f'blockmap: {out_path}: {len(spans)} extents of {nfiles} files and directories, '
          f'block size {bs}', file=sys.stderr)


# "... 7,1 RM 4096 () 123456 + 8 none,0,0 [comm]" (block_rq_issue)
TRACE_RE = re.compile(r'block_rq_issue: \d+,\d+ (\S+) (\d+) \(.*?\) (\d+) \+ (\d+)')


def cmd_classify(map_path, trace_path):
    starts, ends, cats = [], [], []
    bs = None
    with open(map_path, encoding='utf-8') as f:
        for line in f:
            if line.startswith('#'):
                m = re.search(r'block_size=(\d+)', line)
                bs = int(m.group(1)) if m else None
                continue
            a, b, cat = line.rstrip('\n').split('\t')
            starts.append(int(a))
            ends.append(int(b))
            cats.append(cat)
    if not bs:
        die(f'{map_path}: no block size')
    counts = {c: 0 for c in CATEGORIES}
    nbytes = 0
    with open(trace_path, encoding='utf-8', errors='replace') as f:
        for line in f:
            m = TRACE_RE.search(line)
            if not m or 'R' not in m.group(1):
                continue
            block = int(m.group(3)) * 512 // bs
            nbytes += int(m.group(4)) * 512
            i = bisect.bisect_right(starts, block) - 1      # spans do not overlap
            counts[cats[i] if i >= 0 and block < ends[i] else 'unmapped'] += 1
    total = sum(counts.values())
    print(' '.join([f'tr_reads={total}', f'tr_read_bytes={nbytes}'] +
                   [f'tr_{c}={counts[c]}' for c in CATEGORIES]))


def main():
    a = sys.argv[1:]
    if len(a) == 6 and a[0] == 'map':
        cmd_map(*a[1:])
    elif len(a) == 3 and a[0] == 'classify':
        cmd_classify(*a[1:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
