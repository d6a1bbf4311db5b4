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
