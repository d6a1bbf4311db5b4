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

DK_DIR=$TMP                      # the dockerd's data root, exec root and socket are under it
SOCK=$DK_DIR/docker.sock
dk() { "$DOCKER" -H "unix://$SOCK" "$@"; }
# docker_node DIR: from now on dk, dockerd_start and dockerd_stop are about
# a dockerd of its own under DIR (another "node" on this machine).
docker_node() { DK_DIR=$1 SOCK=$1/docker.sock; mkdir -p "$1"; export DOCKER_HOST=unix://$SOCK; }
# DK_LAUNCH: the command prefix dockerd_start runs dockerd under (empty: a
# child of this shell; sd_engines_in_namespace sets one).
DK_LAUNCH=()

dockerd_start() {
	local i
	note "starting dockerd"
	"${DK_LAUNCH[@]}" "$DOCKERD" --data-root "$DK_DIR/docker" --exec-root "$DK_DIR/exec" -H "unix://$SOCK" \
		--pidfile "$DK_DIR/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
		--storage-driver=overlay2 >>"$DK_DIR/dockerd.log" 2>&1 &
	for i in $(seq 150); do dk info >/dev/null 2>&1 && break; sleep 0.2; done
	dk info >/dev/null 2>&1 || { tail "$DK_DIR/dockerd.log"; skip "dockerd did not start here"; }
}

dockerd_stop() {
	local i pid
	pid=$(cat "$DK_DIR/dockerd.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	# Anything dockerd left mounted under its data root goes before rm -rf.
	findmnt -rn -o TARGET | grep "^$DK_DIR/docker" | sort -r | xargs -r -n1 umount -l
	rm -f "$DK_DIR/dockerd.pid"
}
