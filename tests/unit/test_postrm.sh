#!/bin/bash
# test_postrm.sh - debian/yolo.postrm on a scratch root (DPKG_ROOT): a purge
# removes the instance settings yolo-agent wrote, the links enabling
# yolofs@ instances, the learnt and fetched images and the node's metrics
# file at their default places; it leaves an operator's own settings, other
# units' links, an operator's own yolofs@ unit and everything else.  A
# removal (and an upgrade's calls) touch nothing.
set -u
POSTRM=${YOLO_SOURCE_ROOT:?run through meson test}/debian/yolo.postrm
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
fails=0
check() { if eval "$2"; then :; else echo "FAIL: $1" >&2; fails=$((fails + 1)); fi; }

make_root() {
	rm -rf "${R:?}"/*
	mkdir -p "$R/etc/yolo" "$R/etc/systemd/system/multi-user.target.wants" \
		"$R/etc/systemd/system/nova-compute.service.requires" \
		"$R/var/lib/yolo/learn/nova/x" "$R/var/lib/yolo/images/docker/l1" \
		"$R/var/lib/prometheus/node-exporter"
	printf '# Written by yolo-agent for nova'"'"'s _base; edit freely, the agent never rewrites it.\nYOLOFS_OPTIONS=learn=/var/lib/yolo/learn/nova\n' \
		>"$R/etc/yolo/var-lib-nova-instances-_base.conf"
	printf 'YOLOFS_OPTIONS=images=/srv/images\n' >"$R/etc/yolo/srv-base.conf"   # the operator's
	echo data >"$R/var/lib/yolo/learn/nova/x/a.yolo"
	echo data >"$R/var/lib/yolo/images/docker/l1/b.yolo"
	echo 'yolofs_hits_total 1' >"$R/var/lib/prometheus/node-exporter/yolo.prom"
	echo 'node 1' >"$R/var/lib/prometheus/node-exporter/other.prom"
	ln -s /lib/systemd/system/yolofs@.service \
		"$R/etc/systemd/system/multi-user.target.wants/yolofs@var-lib-nova-instances-_base.service"
	ln -s /usr/lib/systemd/system/yolofs@.service \
		"$R/etc/systemd/system/nova-compute.service.requires/yolofs@srv-base.service"
	ln -s /etc/systemd/system/yolofs@.service \
		"$R/etc/systemd/system/multi-user.target.wants/yolofs@mine.service"      # the operator's unit
	ln -s /lib/systemd/system/containerd.service \
		"$R/etc/systemd/system/multi-user.target.wants/containerd.service"
}
listing() { (cd "$R" && find . | sort); }

for action in remove upgrade failed-upgrade abort-install; do
	make_root
	before=$(listing)
	DPKG_ROOT=$R sh "$POSTRM" "$action" 2.0 || { echo "FAIL: postrm $action exited $?" >&2; fails=$((fails + 1)); }
	check "postrm $action changed the tree" '[ "$(listing)" = "$before" ]'
done

make_root
DPKG_ROOT=$R sh "$POSTRM" purge || { echo "FAIL: postrm purge exited $?" >&2; fails=$((fails + 1)); }
check "the agent's instance settings stay" '[ ! -e "$R/etc/yolo/var-lib-nova-instances-_base.conf" ]'
check "the operator's instance settings went" '[ -f "$R/etc/yolo/srv-base.conf" ]'
check "a link enabling a yolofs@ instance stays" \
	'[ ! -L "$R/etc/systemd/system/multi-user.target.wants/yolofs@var-lib-nova-instances-_base.service" ]'
check "a .requires link to a yolofs@ instance stays" \
	'[ ! -L "$R/etc/systemd/system/nova-compute.service.requires/yolofs@srv-base.service" ]'
check "the link to the operator's own yolofs@ unit went" \
	'[ -L "$R/etc/systemd/system/multi-user.target.wants/yolofs@mine.service" ]'
check "another unit's link went" '[ -L "$R/etc/systemd/system/multi-user.target.wants/containerd.service" ]'
check "/var/lib/yolo stays" '[ ! -e "$R/var/lib/yolo" ]'
check "the node's yolo metrics stay" '[ ! -e "$R/var/lib/prometheus/node-exporter/yolo.prom" ]'
check "another metrics file went" '[ -f "$R/var/lib/prometheus/node-exporter/other.prom" ]'
check "/etc/yolo went with the operator's file in it" '[ -d "$R/etc/yolo" ]'

# Nothing of YOLO's left: /etc/yolo goes too; a second purge is harmless.
make_root
rm "$R/etc/yolo/srv-base.conf"
DPKG_ROOT=$R sh "$POSTRM" purge || { echo "FAIL: postrm purge exited $?" >&2; fails=$((fails + 1)); }
check "an emptied /etc/yolo stays" '[ ! -e "$R/etc/yolo" ]'
DPKG_ROOT=$R sh "$POSTRM" purge || { echo "FAIL: a second purge exited $?" >&2; fails=$((fails + 1)); }

((fails == 0)) || exit 1
echo PASS
