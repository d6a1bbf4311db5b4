# docker_lib.sh - a private dockerd for the integration tests (sourced after
# ../mount/lib.sh, whose skip/fail/TMP it uses).
#
# Debian's dockerd with its own data root, exec root and socket under $TMP,
# no networking (no bridge, no iptables), storage driver overlay2; `dk` is the
# docker client pointed at it.  Skips the test when dockerd, the client or a
# static busybox is missing, or when dockerd does not start here.

DOCKERD=$(command -v dockerd) || skip "dockerd missing (apt-get install docker.io)"
DOCKER=/usr/bin/docker; [ -x $DOCKER ] || DOCKER=$(command -v docker) || skip "docker client missing"
BUSYBOX=$(command -v busybox) || skip "busybox missing (apt-get install busybox-static)"
ldd "$BUSYBOX" 2>&1 | grep -q "not a dynamic" || skip "busybox is not static (apt-get install busybox-static)"

SOCK=$TMP/docker.sock
dk() { "$DOCKER" -H "unix://$SOCK" "$@"; }

dockerd_start() {
	local i
	note "starting dockerd"
	"$DOCKERD" --data-root "$TMP/docker" --exec-root "$TMP/exec" -H "unix://$SOCK" \
		--pidfile "$TMP/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
		--storage-driver=overlay2 >"$TMP/dockerd.log" 2>&1 &
	for i in $(seq 150); do dk info >/dev/null 2>&1 && break; sleep 0.2; done
	dk info >/dev/null 2>&1 || { tail "$TMP/dockerd.log"; skip "dockerd did not start here"; }
}

dockerd_stop() {
	local i pid
	pid=$(cat "$TMP/dockerd.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	# Anything dockerd left mounted under its data root goes before rm -rf.
	findmnt -rn -o TARGET | grep "^$TMP/docker" | sort -r | xargs -r -n1 umount -l
	rm -f "$TMP/dockerd.pid"
}

# busybox_rootfs DIR: a minimal root file system (static busybox, a few
# applet links, /etc/passwd, empty mountpoints) for `docker import`.
busybox_rootfs() {
	local r=$1 c
	mkdir -p "$r/bin" "$r/etc" "$r/data" "$r/tmp" "$r/proc" "$r/sys" "$r/dev"
	cp "$BUSYBOX" "$r/bin/busybox"
	for c in sh cat ls md5sum head rm sleep; do ln -s busybox "$r/bin/$c"; done
	echo "root:x:0:0:root:/:/bin/sh" >"$r/etc/passwd"
}
