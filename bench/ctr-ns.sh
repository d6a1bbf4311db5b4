#!/bin/bash
# ctr-ns.sh - the mount namespace of the container-start benchmark's
# containerd and dockerd (bench/bench --containers, budget "shared").
#
#   bench/ctr-ns.sh KEEP READY     (then: nsenter --mount=/proc/PID/ns/mnt -- CMD)
#
# Why: the slow disk is a cgroup-v1 blkio throttle on one group, v1
# throttling is not hierarchical, and runc puts every container into groups
# of its own, which would give each container a budget of its own.  In this
# namespace the blkio hierarchy is not mounted, so runc leaves it alone and
# a container stays in the blkio group its runc was started from: the
# throttled group containerd runs in.  Everyone then reads through one
# budget, as from one disk.
#
# What: a new mount namespace whose mounts are slaves of this one's (mounts
# made later under KEEP, which the caller makes shared, appear in it; nothing
# goes back).  In it, the blkio hierarchy is unmounted, and so is every mount
# the daemons do not need (anything but /, /proc, /sys, /dev and KEEP with
# what is below it): other users' mounts of this shared machine, which this
# namespace would otherwise keep alive after they unmount them.  Then READY
# is created and the process sleeps (same pid throughout) until killed; the
# namespace goes when it and the daemons that joined it have exited.
set -euo pipefail
(($# == 2)) || { echo "usage: $0 KEEP READY" >&2; exit 2; }
exec unshare --mount --propagation slave bash -c '
	set -euo pipefail
	keep=$1 ready=$2
	findmnt -rn -o TARGET | sort -r | while read -r m; do
		case $m in
		/sys/fs/cgroup/blkio) ;;
		/ | /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;;
		"$keep" | "$keep"/*) continue ;;
		esac
		umount -l "$m" 2>/dev/null || echo "ctr-ns: could not unmount $m here" >&2
	done
	! findmnt -rn -M /sys/fs/cgroup/blkio >/dev/null || { echo "ctr-ns: blkio is still mounted" >&2; exit 1; }
	touch "$ready"
	exec sleep infinity
' ctr-ns "$1" "$2"
