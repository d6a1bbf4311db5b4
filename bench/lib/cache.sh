# shellcheck shell=bash
# cache.sh - sourced by bench/bench: the page cache's state.  drop_caches
# (echo 3: pages, dentries and inodes) is bench/slowdisk.sh's; this file
# adds echo 1 and counts the drops others make: this machine is shared.

# pages_drop: `echo 1 > drop_caches`: the page cache dropped, dentries and
# inodes kept (what memory pressure does on a busy node).
pages_drop() {
	sync
	echo 1 >/proc/sys/vm/drop_caches
}

# Times anyone (this machine is shared) has dropped the page cache: a run
# during which this changes did not run under the conditions it claims.
cache_drops() { awk '$1 == "drop_pagecache" { print $2 }' /proc/vmstat; }

# foreign_drops SINCE: " cache_drops=K" when others dropped the page cache
# K times since cache_drops said SINCE, else nothing.
foreign_drops() {
	local k=$(($(cache_drops) - $1))
	((k == 0)) || echo " cache_drops=$k"
}

# page_reported_kib: KiB of free memory the guest kernel has handed back to
# the host so far (virtio-balloon free page reporting), or nothing.  On
# this VM a page handed back costs a host fault at its next use, so a run
# whose allocations meet such pages is slower on any file system
# (docs/design.md, issue 24): rows record the MiB reported during them.
page_reported_kib() { cat /sys/module/page_reporting/parameters/reported_kib 2>/dev/null || true; }
