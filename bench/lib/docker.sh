# shellcheck shell=bash
# docker.sh - sourced by bench/bench: the ctr figure's own containerd and
# dockerd (own data root on the slow disk, exec root, socket, pid file; no
# networking), inside the throttled group, and their stopping.
#
# Budget "shared" (--ctr-budget, the default): dockerd, containerd, yolofs
# and every container read through the one throttled blkio group, as
# everyone shares a real disk.  cgroup-v1 throttling is not hierarchical (a
# child group is not held to its parent's limit), and runc gives each
# container groups of its own, so containerd and dockerd run in a mount
# namespace of their own (bench/ctr-ns.sh) where the blkio hierarchy is not
# mounted: runc then leaves a container in the blkio group it was started
# from, the throttled one.

CTR_RUN="" CTR_SOCK="" CTR_LOGS=""
CTR_DOCKERD_PID="" CTR_CONTAINERD_PID="" CTR_NS_PID=""

# dk ARGS: the docker client on our dockerd.
dk() { "$CTR_DOCKER" -H "unix://$CTR_SOCK" "$@"; }

ctr_daemons_start() {
	local t ns=()
	CTR_RUN=$WORK/ctr-run
	CTR_SOCK=$CTR_RUN/docker.sock
	mkdir -p "$CTR_RUN/containerd"
	if [[ $CTR_BUDGET == shared ]]; then
		# Mounts made on the slow disk from here on (yolofs, yolo-capture)
		# must reach the daemons' namespace.
		mount --make-shared "$MNT"
		"$ROOT/bench/ctr-ns.sh" "$MNT" "$CTR_RUN/ns.ready" >"$CTR_LOGS/ctr-ns.log" 2>&1 &
		CTR_NS_PID=$!
		for ((t = 0; t < 100; t++)); do
			[[ -e $CTR_RUN/ns.ready ]] && break
			kill -0 "$CTR_NS_PID" 2>/dev/null || die "bench/ctr-ns.sh failed: $(tail -1 "$CTR_LOGS/ctr-ns.log")"
			sleep 0.1
		done
		[[ -e $CTR_RUN/ns.ready ]] || die "bench/ctr-ns.sh did not get ready"
		ns=(nsenter "--mount=/proc/$CTR_NS_PID/ns/mnt" --)
	fi
	cat >"$CTR_RUN/containerd.toml" <<EOT
version = 2
root = "$MNT/docker/containerd/daemon"
state = "$CTR_RUN/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTR_RUN/containerd.sock"
EOT
	slowdisk_spawn "${ns[@]}" "$(command -v containerd)" --config "$CTR_RUN/containerd.toml" \
		>"$CTR_LOGS/containerd.log" 2>&1
	CTR_CONTAINERD_PID=$!
	for ((t = 0; t < 300; t++)); do
		[[ -S $CTR_RUN/containerd.sock ]] && break
		kill -0 "$CTR_CONTAINERD_PID" 2>/dev/null || die "containerd exited: $(tail -1 "$CTR_LOGS/containerd.log")"
		sleep 0.1
	done
	slowdisk_spawn "${ns[@]}" "$(command -v dockerd)" --data-root "$MNT/docker" --exec-root "$CTR_RUN/docker" \
		-H "unix://$CTR_SOCK" --pidfile "$CTR_RUN/dockerd.pid" --containerd "$CTR_RUN/containerd.sock" \
		--bridge=none --iptables=false --ip6tables=false --storage-driver=overlay2 \
		>"$CTR_LOGS/dockerd.log" 2>&1
	CTR_DOCKERD_PID=$!
	for ((t = 0; t < 300; t++)); do
		dk info >/dev/null 2>&1 && return 0
		kill -0 "$CTR_DOCKERD_PID" 2>/dev/null || break
		sleep 0.1
	done
	die "dockerd did not start: $(tail -1 "$CTR_LOGS/dockerd.log")"
}

# ctr_containers_remove: every container of our dockerd, if it runs.
ctr_containers_remove() {
	if [[ -n $CTR_DOCKERD_PID ]] && kill -0 "$CTR_DOCKERD_PID" 2>/dev/null; then
		dk ps -aq 2>/dev/null | xargs -r "$CTR_DOCKER" -H "unix://$CTR_SOCK" rm -f >/dev/null 2>&1 || true
	fi
}

# ctr_daemons_stop: dockerd, containerd, the namespace and our containerd's
# shims stopped, and what they left mounted unmounted.
ctr_daemons_stop() {
	local p t
	for p in "$CTR_DOCKERD_PID" "$CTR_CONTAINERD_PID" "$CTR_NS_PID"; do
		[[ -n $p ]] || continue
		kill "$p" 2>/dev/null || continue
		for ((t = 0; t < 300; t++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		wait "$p" 2>/dev/null || true
	done
	# Shims of our containerd (its socket path is in their command line).
	for p in $(pgrep -f "containerd-shim.*$CTR_RUN/containerd.sock" || true); do
		grep -qF "$CTR_RUN/containerd.sock" "/proc/$p/cmdline" 2>/dev/null && kill "$p" 2>/dev/null
	done
	{ grep -o " $MNT/docker/[^ ]*\| $CTR_RUN/[^ ]*" /proc/mounts || true; } | sort -r |
		while read -r p; do umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true; done
}
