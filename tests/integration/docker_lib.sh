# docker_lib.sh - a private dockerd for the integration tests (sourced after
# ../mount/lib.sh, whose skip/fail/TMP it uses).
#
# Debian's dockerd with its own data root, exec root and socket under $TMP,
# no networking (no bridge, no iptables), storage driver overlay2; `dk` is the
# docker client pointed at it.  Skips the test when dockerd, the client or a
# static busybox is missing, or when dockerd does not start here.
# busybox_rootfs (the image's contents) is in busybox_lib.sh.

DOCKERD=$(command -v dockerd) || skip "dockerd missing (apt-get install docker.io)"
DOCKER=/usr/bin/docker; [ -x $DOCKER ] || DOCKER=$(command -v docker) || skip "docker client missing"
source "$(dirname "${BASH_SOURCE[0]}")/busybox_lib.sh"

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
