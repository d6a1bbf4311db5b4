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

# page_reporting_pause / page_reporting_resume: free page reporting off
# for a figure whose runs compare reads after drop_caches (steady), then
# back as it was.  A pass of it in the middle of a run made that run
# 1.5-2x slower on any path, and in a fixed order it kept landing on the
# same path (docs/design.md, issue 24).  Off is an order above the
# largest free block the kernel keeps (MAX_PAGE_ORDER is 10), so no block
# qualifies.  Does nothing where the guest has no page reporting.
PAGE_REPORTING_PARAM=/sys/module/page_reporting/parameters/page_reporting_order
PAGE_REPORTING_ORDER=""
page_reporting_pause() {
	[[ -w $PAGE_REPORTING_PARAM ]] || return 0
	PAGE_REPORTING_ORDER=$(cat "$PAGE_REPORTING_PARAM")
	echo 11 2>/dev/null >"$PAGE_REPORTING_PARAM" || PAGE_REPORTING_ORDER=""
}
page_reporting_resume() {
	[[ -n $PAGE_REPORTING_ORDER ]] || return 0
	echo "$PAGE_REPORTING_ORDER" >"$PAGE_REPORTING_PARAM"
	PAGE_REPORTING_ORDER=""
}
