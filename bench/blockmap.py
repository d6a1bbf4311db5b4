#!/usr/bin/env python3
"""blockmap.py - where the slow disk's reads come from (bench/bench --containers).

    blockmap.py map MOUNTPOINT DEVICE DATA_ROOT LAYER_DIRS_FILE OUT
    blockmap.py classify MAP TRACE
    blockmap.py explain MAP TRACE [--requests]

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
"unmapped" when classified.  A fourth column names what a span is: the
path (relative to MOUNTPOINT) of a file or directory, "first_ino=N" for an
inode table; OUT.inodes lists the inode number, category and path of every
file and directory walked, and OUT's header the inode size.

`explain` says exactly what each read request of a trace read: the path
of the file or directory whose block it is, or for an inode table the
inode numbers the request covers and the paths (from OUT.inodes) of those
in use at set-up, and the process that issued it (its comm).  It prints a
summary by process and category, the inode tables' requests by what the
inodes they cover are, and with --requests every request.

`classify` reads a tracefs text dump of block:block_rq_issue events for
DEVICE and prints, for the read requests, "tr_CATEGORY=COUNT" for every
category (a request is counted where its first block is),
"tr_reads=TOTAL tr_read_bytes=BYTES" and "tr_issued_by_yolofs=COUNT" (requests
issued by a yolofs process: its own reads of the source).  A request is one read the disk did:
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
    isz = int(re.search(r'^Inode size:\s+(\d+)', out, re.M).group(1))
    ipg = int(re.search(r'^Inodes per group:\s+(\d+)', out, re.M).group(1))
    spans = []

    def add(a, b, cat, what='-'):
        spans.append((int(a), int(b) + 1 if b is not None else int(a) + 1, cat, what))
    for m in re.finditer(r'^Group (\d+):.*?Inode table at (\d+)-(\d+)', out, re.M | re.S):
        add(m.group(2), m.group(3), 'inode_table', f'first_ino={int(m.group(1)) * ipg + 1}')
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
    return spans, bs, isz


def cmd_map(mnt, device, data_root, layers_file, out_path):
    spans, bs, isz = fs_metadata(device)
    inodes = []
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
            rel = os.path.relpath(path, mnt)
            inodes.append((st.st_ino, cat, rel))
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                for phys, length in fiemap(fd):
                    spans.append((phys // bs, (phys + length + bs - 1) // bs, cat, rel))
            except OSError:
                pass
            finally:
                os.close(fd)
            nfiles += 1
    spans.sort()
    tmp = out_path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(f'# block_size={bs} files={nfiles} inode_size={isz}\n')
        for a, b, cat, what in spans:
            f.write(f'{a}\t{b}\t{cat}\t{clean(what)}\n')
    os.replace(tmp, out_path)
    with open(tmp, 'w', encoding='utf-8') as f:
        for ino, cat, rel in sorted(inodes):
            f.write(f'{ino}\t{cat}\t{clean(rel)}\n')
    os.replace(tmp, out_path + '.inodes')
    print(f'blockmap: {out_path}: {len(spans)} extents of {nfiles} files and directories, '
          f'block size {bs}', file=sys.stderr)


def clean(s):
    return s.replace('\t', ' ').replace('\n', ' ')


# "  python3-123 [001] ..... 12.345678: block_rq_issue: 7,1 RM 4096 () 123456 + 8 none,0,0 [comm]"
TRACE_RE = re.compile(r'^\s*(.*?)-\d+\s+\[\d+\].*?([\d.]+): block_rq_issue: \d+,\d+ (\S+) (\d+) '
                      r'\(.*?\) (\d+) \+ (\d+)(?: \S+)? \[(.*)\]')


class Map:
    """The spans of a map file (non-overlapping, sorted), and its header."""

    def __init__(self, path):
        self.starts, self.ends, self.cats, self.whats = [], [], [], []
        self.bs = self.isz = None
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.startswith('#'):
                    m = re.search(r'block_size=(\d+)', line)
                    self.bs = int(m.group(1)) if m else None
                    m = re.search(r'inode_size=(\d+)', line)
                    self.isz = int(m.group(1)) if m else None
                    continue
                f4 = line.rstrip('\n').split('\t')
                self.starts.append(int(f4[0]))
                self.ends.append(int(f4[1]))
                self.cats.append(f4[2])
                self.whats.append(f4[3] if len(f4) > 3 else '-')
        if not self.bs:
            die(f'{path}: no block size')

    def find(self, block):
        """Index of the span holding block, or None."""
        i = bisect.bisect_right(self.starts, block) - 1      # spans do not overlap
        return i if i >= 0 and block < self.ends[i] else None


def requests(trace_path, bs):
    """(time, task comm, first block, bytes, comm field) of every read request."""
    with open(trace_path, encoding='utf-8', errors='replace') as f:
        for line in f:
            m = TRACE_RE.search(line)
            if not m or 'R' not in m.group(3):
                continue
            yield float(m.group(2)), m.group(1).strip(), int(m.group(5)) * 512 // bs, \
                int(m.group(6)) * 512, m.group(7)


def cmd_classify(map_path, trace_path):
    mp = Map(map_path)
    counts = {c: 0 for c in CATEGORIES}
    nbytes = by_yolofs = 0
    for _, task, block, size, comm in requests(trace_path, mp.bs):
        nbytes += size
        by_yolofs += (comm or task) == 'yolofs'
        i = mp.find(block)
        counts[mp.cats[i] if i is not None else 'unmapped'] += 1
    total = sum(counts.values())
    print(' '.join([f'tr_reads={total}', f'tr_read_bytes={nbytes}'] +
                   [f'tr_{c}={counts[c]}' for c in CATEGORIES] + [f'tr_issued_by_yolofs={by_yolofs}']))


def top_dirs(paths, depth):
    """'a/b/c' -> 'a/b' (depth 2), counted."""
    out = {}
    for p in paths:
        k = '/'.join(p.split('/')[:depth])
        out[k] = out.get(k, 0) + 1
    return out


def short(rel):
    """A path under the data root without the long layer ids: overlay2/<id>/diff/usr/lib -> L:usr/lib."""
    m = re.match(r'(?:.*?/)?overlay2/([0-9a-f]{64}(?:-init)?)(/diff)?(/.*)?$', rel)
    if m:
        return f'L{m.group(1)[:6]}{":" if m.group(2) else "/"}{(m.group(3) or "/")}'
    return rel


def cmd_explain(map_path, trace_path, every=False):
    mp = Map(map_path)
    ino_cat, ino_path = {}, {}
    try:
        with open(map_path + '.inodes', encoding='utf-8') as f:
            for line in f:
                ino, cat, rel = line.rstrip('\n').split('\t', 2)
                ino_cat[int(ino)] = cat
                ino_path[int(ino)] = rel
    except FileNotFoundError:
        pass
    per = mp.bs // mp.isz if mp.isz else None
    by_comm, by_what, itab, lines = {}, {}, {}, []
    for t, task, block, size, comm in requests(trace_path, mp.bs):
        i = mp.find(block)
        cat = mp.cats[i] if i is not None else 'unmapped'
        what = ''
        if cat == 'inode_table' and per and mp.whats[i].startswith('first_ino='):
            first = int(mp.whats[i][len('first_ino='):]) + (block - mp.starts[i]) * per
            nblk = max(1, size // mp.bs)
            last = first + nblk * per - 1
            used = [n for n in range(first, last + 1) if n in ino_cat]
            kinds = {}
            for n in used:
                kinds[ino_cat[n]] = kinds.get(ino_cat[n], 0) + 1
            key = ','.join(f'{k}' for k in sorted(kinds)) or 'no inode in use at set-up'
            itab[key] = itab.get(key, 0) + 1
            what = (f'inodes {first}-{last} ({nblk} blocks): ' +
                    (', '.join(f'{v} {k}' for k, v in sorted(kinds.items())) or 'none in use at set-up') +
                    ('; e.g. ' + ', '.join(short(ino_path[n]) for n in used[:3]) if used else ''))
        elif i is not None:
            what = short(mp.whats[i])
            by_what[(cat, what)] = by_what.get((cat, what), 0) + 1
        k = (comm or task, cat)
        by_comm[k] = by_comm.get(k, 0) + 1
        lines.append(f'{t:.6f}\t{comm or task}\t{cat}\t{block}+{size // mp.bs}\t{what}')
    total = sum(by_comm.values())
    print(f'# {total} read requests')
    print('# by issuing process and category:')
    for (comm, cat), v in sorted(by_comm.items(), key=lambda kv: -kv[1]):
        print(f'{v}\t{comm}\t{cat}')
    print('# inode-table requests by what the inodes they cover were at set-up:')
    for k, v in sorted(itab.items(), key=lambda kv: -kv[1]):
        print(f'{v}\t{k}')
    print('# file and directory blocks read, most first:')
    for (cat, what), v in sorted(by_what.items(), key=lambda kv: -kv[1])[:40]:
        print(f'{v}\t{cat}\t{what}')
    if every:
        print('# every request: time, process, category, block+blocks, what')
        for line in lines:
            print(line)


def main():
    a = sys.argv[1:]
    if len(a) == 6 and a[0] == 'map':
        cmd_map(*a[1:])
    elif len(a) == 3 and a[0] == 'classify':
        cmd_classify(*a[1:])
    elif len(a) in (3, 4) and a[0] == 'explain' and (len(a) == 3 or a[3] == '--requests'):
        cmd_explain(a[1], a[2], len(a) == 4)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
