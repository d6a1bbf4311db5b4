#!/bin/bash
# Pages dropped, inode kept (memory pressure, `echo 1 > drop_caches`; the
# case of every overlayfs lower file, whose inode overlayfs holds): the next
# open of a file served from a boot image finds its captured blocks in the
# page cache again, so reading them (sequentially, with the kernel's
# readahead on; and through mmap) reads nothing from the source.
. "$(dirname "$0")/lib.sh"
SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"
head -c 33554432 /dev/urandom >"$SRC/f"
# Captured: the first 4 MiB, and every 3rd block after it.
"$MKIMAGE" "$TMP/f.yolo" "$SRC" f:0:4194304 f:every:3 || fail "mkimage"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/f.yolo,metrics=$TMP/m.prom,metrics_interval=1"
/usr/bin/python3 - "$MNT/f" "$TMP/m.prom" <<'PY' || fail "reads after dropping pages went to the source"
import mmap, os, sys, time
path, prom = sys.argv[1:3]
def metric(name):
    total = 0
    for line in open(prom):
        if line.startswith("yolofs_%s_total{" % name):
            total += int(line.split()[-1])
    return total
def read_captured():
    fd = os.open(path, os.O_RDONLY)
    for b in range(1024):                      # sequential: readahead is on
        os.pread(fd, 4096, b * 4096)
    m = mmap.mmap(fd, 4194304, prot=mmap.PROT_READ)
    for b in range(0, 1024, 7):                # page faults, with read-around
        m[b * 4096]
    m.close()
    os.close(fd)
pin = os.open(path, os.O_PATH)                 # keeps the inode, as overlayfs does
for round in (1, 2, 3):
    read_captured()
    time.sleep(1.3)
    src, pre = metric("bytes_source"), metric("bytes_prefilled")
    print("round %d: %d bytes from the source, %d pushed into the page cache" % (round, src, pre))
    if src:
        sys.exit(1)
    os.system("sync; echo 1 > /proc/sys/vm/drop_caches")
PY
yolofs_stop
echo PASS
