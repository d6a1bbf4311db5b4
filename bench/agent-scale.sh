#!/bin/bash
# agent-scale.sh - the installed node agent (yolo-agent.service) with many
# committed container layers (issue 21: "500 layers under the agent with
# default sysctls and limits: all mounted, memory and descriptors
# reported").
#
#   bench/agent-scale.sh [--layers N] [--per-image P] [--timeout S] [--out FILE]
#
# N committed layers (default 500) in containerd's overlayfs snapshotter:
# one base layer holding a static busybox, shared by every image, and N-1
# layers of one small distinct file each, stacked P-1 to an image (P layers
# per image, default 100), imported with `ctr images import` (which
# unpacks).  The files the yolo package installed run as they would on a
# node: systemd as PID 1 of namespaces of its own with the installed
# yolo-agent.service and yolofs-host.service (the node's one yolofs, which
# serves every layer; their limits: LimitNOFILE, LimitMEMLOCK, ...) and a
# containerd in them (tests/integration's systemd_lib.sh and the agent
# test's cgroup arrangement), then `systemctl enable --now yolo-agent`.
# No sysctl and no limit is changed; their values are printed.  The agent's
# configuration names the benchmark's containerd and namespace and turns
# off what does not apply (Docker, nova, fetching: nothing is published
# for layers made here).
#
# Measured once every layer is mounted: the time to get there (the first
# round: READY=1 after it), the yolofs mounts against N, memory (the
# agent's RSS; the yolofs processes' RSS and PSS; MemAvailable before and
# after), descriptors, inotify instances against
# fs.inotify.max_user_instances (a per-user limit: every root process of
# the machine shares it) and the lines that said there was none, threads,
# CPU while idle, one container started through the mounts, then the
# pause of an upgrade of the host in place (every layer handed over at
# once) and the host killed (SIGKILL): the time until systemd's restart
# has taken every layer over.
# Ends with one table; stdout is also written to FILE (default
# bench-results/supplementary/<UTC time>-agent-scale.txt).  Needs root,
# the yolo package installed, systemd, containerd, runc and a static
# busybox.  Everything it makes is under one directory of
# $YOLO_TEST_ROOT (default /var/lib/yolo-tests), removed at the end.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAYERS=500 PER_IMAGE=100 TIMEOUT=1800
OUT=$HERE/../bench-results/supplementary/$(date -u +%Y%m%dT%H%M%SZ)-agent-scale.txt
while (($#)); do
	case $1 in
	--layers) LAYERS=${2:?--layers needs a number}; shift 2 ;;
	--per-image) PER_IMAGE=${2:?--per-image needs a number}; shift 2 ;;
	--timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
	--out) OUT=${2:?--out needs a file}; shift 2 ;;
	-h | --help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "agent-scale: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ $LAYERS =~ ^[0-9]+$ && $LAYERS -ge 2 ]] || { echo "agent-scale: --layers: give 2 or more" >&2; exit 2; }
[[ $PER_IMAGE =~ ^[0-9]+$ && $PER_IMAGE -ge 2 ]] || { echo "agent-scale: --per-image: give 2 or more" >&2; exit 2; }
exec > >(tee "$OUT")

# What the integration libraries expect of their test (../mount/lib.sh).
skip() { echo "agent-scale: cannot run here: $*" >&2; exit 1; }
fail() { echo "agent-scale: FAILED: $*" >&2; exit 1; }
note() { echo "--- $(date -u +%H:%M:%S) $*"; }
[ "$(id -u)" = 0 ] || skip "needs root"
for d in /lib/systemd/system /usr/lib/systemd/system; do
	[ -f "$d/yolo-agent.service" ] && AGENT_UNIT=$d/yolo-agent.service
	[ -f "$d/yolofs@.service" ] && YOLOFS_UNIT=$d/yolofs@.service
	[ -f "$d/yolofs-host.service" ] && HOST_UNIT=$d/yolofs-host.service
done
[ -n "${AGENT_UNIT:-}" ] && [ -n "${YOLOFS_UNIT:-}" ] && [ -n "${HOST_UNIT:-}" ] && [ -x /usr/bin/yolofs ] ||
	skip "the yolo package is not installed (scripts/build-deb.sh, then dpkg -i)"
export YOLOFS_UNIT
TEST_ROOT=${YOLO_TEST_ROOT:-/var/lib/yolo-tests}
mkdir -p -m 0755 "$TEST_ROOT" || fail "cannot create $TEST_ROOT"
TMP=$(mktemp -d "$TEST_ROOT/agent-scale.XXXXXX")
cleanup() { rm -rf "$TMP"; }
source "$HERE/../tests/integration/systemd_lib.sh"
source "$HERE/../tests/integration/containerd_lib.sh"
trap 'sd_teardown; cleanup' EXIT
trap 'exit 1' INT TERM HUP
CT_NS=agent-scale
containerd_node "$TMP/ct"
T0=$(date +%s)
# since T: seconds since date +%s.%N printed T, to a tenth.
since() { printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"; }

sysctl_of() { cat "/proc/sys/${1//.//}" 2>/dev/null || echo "-"; }
note "$(uname -sr), $(nproc) cores, $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)," \
	"yolo $(dpkg-query -W -f '${Version}' yolo 2>/dev/null || echo '?'), $("$CONTAINERD" --version | awk '{ print $1, $3 }')," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sysctls (unchanged):"
for s in fs.inotify.max_user_instances fs.inotify.max_user_watches fs.inotify.max_queued_events \
	user.max_inotify_instances fs.file-max fs.nr_open fs.mount-max kernel.pid_max kernel.threads-max \
	vm.max_map_count; do
	printf '  %-32s %s\n' "$s" "$(sysctl_of "$s")"
done

# Without CAP_SYS_RESOURCE (a sandbox) systemd cannot raise a unit's hard
# limits: it keeps the closest it may, the hard limits it was given.
caps=$(awk '/^CapEff/ { print $2 }' /proc/self/status)
(((16#$caps >> 24) & 1)) || echo "no CAP_SYS_RESOURCE here: a unit's limits stop at this shell's hard limits" \
	"(nofile $(ulimit -Hn), memlock $(ulimit -Hl) KiB)"
ctl=$(cat "$CG/cgroup.controllers" 2>/dev/null)
echo "cgroup2 controllers for systemd's subtree: ${ctl:-none}$([[ " $ctl " == *" pids "* ]] ||
	echo " (no pids: the unit's TasksMax is not enforced)")"

# inotify_of PID: its inotify instances (descriptors on anon_inode:inotify).
inotify_of() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -lname 'anon_inode:inotify' 2>/dev/null | wc -l
}
# Root's inotify instances on the whole machine: the per-user limit counts
# them all (other services' and other users of this machine's as well).
root_inotify() {
	local p n=0
	for p in /proc/[0-9]*; do
		[ "$(stat -c %u "$p" 2>/dev/null)" = 0 ] && n=$((n + $(inotify_of "${p#/proc/}")))
	done
	echo $n
}

# ---------------------------------------------------------------- systemd
U=$TMP/units
mkdir -p "$U/yolo-agent.service.d" "$U/yolofs-host.service.d" "$TMP/nogen" "$TMP/etc.up/yolo" "$TMP/etc.work" \
	"$TMP/bin.up" "$TMP/bin.work" "$TMP/textfile"
cp "$AGENT_UNIT" "$YOLOFS_UNIT" "$HOST_UNIT" "$U/"
for t in yolo-test sysinit basic local-fs shutdown multi-user network network-online; do
	printf '[Unit]\nDescription=stand-in for %s.target\nDefaultDependencies=no\n' $t >"$U/$t.target"
done
LOG=$TMP/yolo-agent.log HOST_LOG=$TMP/yolofs-host.log
printf '[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n' "$LOG" "$LOG" \
	>"$U/yolo-agent.service.d/40-log.conf"
printf '[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n' "$HOST_LOG" "$HOST_LOG" \
	>"$U/yolofs-host.service.d/40-log.conf"
PROM=$TMP/textfile/yolo.prom
cat >"$TMP/etc.up/yolo/agent.conf" <<CONF
[agent]
learn = $TMP/learn
images = $TMP/images
metrics = $PROM
fetch = no
[docker]
enabled = no
[containerd]
address = $CT_SOCK
namespaces = $CT_NS
[nova]
enabled = no
CONF
sd_start

# containerd in systemd's namespaces, as the agent test runs it.
sd_engines_in_namespace
containerd_start

# ---------------------------------------------------------------- layers
IMAGES=$(((LAYERS - 2) / (PER_IMAGE - 1) + 1))
note "$LAYERS layers: one busybox base and $((LAYERS - 1)) of one file each, $IMAGES images of up to $PER_IMAGE layers"
busybox_rootfs "$TMP/base"
tar -C "$TMP/base" -cf "$TMP/base.tar" .
mkdir -p "$TMP/layers"
for ((i = 1; i < LAYERS; i++)); do
	mkdir -p "$TMP/l/data"
	printf 'layer %d of %d\n' "$i" "$LAYERS" >"$TMP/l/data/f$i"
	tar -C "$TMP/l" -cf "$TMP/layers/$i.tar" ./data
	rm -rf "$TMP/l"
done
t=$(date +%s.%N)
for ((k = 0; k < IMAGES; k++)); do
	tars=("$TMP/base.tar")
	for ((i = k * (PER_IMAGE - 1) + 1; i <= (k + 1) * (PER_IMAGE - 1) && i < LAYERS; i++)); do
		tars+=("$TMP/layers/$i.tar")
	done
	oci_archive "$TMP/img.tar" "scale.local/layers/img$k:1" "${tars[@]}"
	ct images import "$TMP/img.tar" >/dev/null || fail "ctr images import of image $k"
	rm -f "$TMP/img.tar"
done
rm -rf "$TMP/layers"
IMPORT_S=$(since "$t")
COMMITTED=$(ct snapshots --snapshotter overlayfs ls | awk 'NR > 1 && $NF == "Committed"' | wc -l)
echo "imported and unpacked in $IMPORT_S s: $(ct images ls -q | wc -l) images, $COMMITTED committed overlayfs snapshots"
[ "$COMMITTED" = "$LAYERS" ] || fail "containerd holds $COMMITTED committed snapshots, not $LAYERS"

# ---------------------------------------------------------------- the agent
# series NAME LABEL-REGEX: the sum of NAME's series in the metrics file whose labels match.
series() {
	awk -v n="$1" -v re="$2" 'index($0, n "{") == 1 && $0 ~ re { s += $NF } END { print s + 0 }' "$PROM" 2>/dev/null
}
mem_available() { awk '/^MemAvailable/ { print $2 }' /proc/meminfo; }
INOTIFY_ROOT_BEFORE=$(root_inotify)
MEMAVAIL_BEFORE=$(mem_available)
echo "before the agent: MemAvailable $((MEMAVAIL_BEFORE / 1024)) MiB; root's inotify instances on the machine: $INOTIFY_ROOT_BEFORE"

note "systemctl enable --now yolo-agent (returns after the first round: READY=1)"
UNIT=yolo-agent.service
t=$(date +%s.%N)
sc enable --now "$UNIT" >/dev/null 2>&1 || echo "systemctl enable --now: failed ($(prop ActiveState)/$(prop Result))"
ENABLE_S=$(since "$t")
started=$(prop ExecMainStartTimestampMonotonic) ready=$(prop ActiveEnterTimestampMonotonic)
FIRST_ROUND_S=-
((ready > started)) && FIRST_ROUND_S=$(printf '%.1f' "$(echo "($ready - $started) / 1000000" | bc -l)")
echo "systemctl returned after $ENABLE_S s; start to READY=1: $FIRST_ROUND_S s; $(prop StatusText)"
ALL_S=-
for ((i = 0; i < TIMEOUT; i++)); do
	if [ "$(series yolo_agent_layers 'state="mounted"')" = "$LAYERS" ]; then
		ALL_S=$(since "$t")
		break
	fi
	[ "$(prop ActiveState)" = failed ] && break
	sleep 1
done
echo "metrics: $(series yolo_agent_layers 'state="mounted"') of $(series yolo_agent_layers 'state="wanted"') layers mounted" \
	"after $ALL_S s; mount_failed $(series yolo_agent_events_total 'event="mount_failed"')"
sleep 5                                    # the host's metrics, learning set up

# ---------------------------------------------------------------- measures
SDNS=$(readlink "/proc/$SDPID/ns/pid")
AGENT_PID="" CONTAINERD_PID="" YOLOFS_PIDS=()
for p in /proc/[0-9]*; do
	[ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$SDNS" ] || continue
	case $(cat "$p/comm" 2>/dev/null) in
	yolofs) YOLOFS_PIDS+=("${p#/proc/}") ;;
	yolo-agent) AGENT_PID=${p#/proc/} ;;
	containerd) CONTAINERD_PID=${p#/proc/} ;;
	esac
done
MOUNTS=$(inns findmnt -rn -t fuse.yolofs | wc -l)
CT_MOUNTS=$(nsenter -t "$CONTAINERD_PID" -m -p -- findmnt -rn -t fuse.yolofs | wc -l)
# Sums over the yolofs processes (the host): RSS and PSS (KiB), descriptors, threads, inotify.
rss=0 pss=0 fds=0 fdmax=0 threads=0 ino=0 noino=0
for p in "${YOLOFS_PIDS[@]}"; do
	rss=$((rss + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")))
	pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")))
	n=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 | wc -l)
	fds=$((fds + n))
	((n > fdmax)) && fdmax=$n
	threads=$((threads + $(awk '/^Threads/ { print $2 }' "/proc/$p/status")))
	n=$(inotify_of "$p")
	ino=$((ino + n))
	((n == 0)) && noino=$((noino + 1))
done
NY=${#YOLOFS_PIDS[@]}
AGENT_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$AGENT_PID/status" 2>/dev/null || echo 0)
AGENT_FDS=$(find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
MEMAVAIL_AFTER=$(mem_available)
WARNED=$(grep -c "no namespace answers from memory" "$HOST_LOG")
echo "the host's log, lines but the per-session ones (count, line):"
sed -e "s#$CT_DIR/root/io.containerd.snapshotter.v1.overlayfs/snapshots/[0-9]*/fs#SNAPSHOT#g" \
	-e 's#sha256:[0-9a-f]*#CHAIN#g' -e 's#session [0-9]*#session N#' "$HOST_LOG" |
	sort | uniq -c | sort -rn | head -n 8
echo "the agent's log: $(wc -l <"$LOG") lines; lines other than 'mounted':"
grep -v ": mounted, " "$LOG" | head -n 10
# limit_of PID NAME: "soft/hard" of one line of /proc/PID/limits.
limit_of() { awk -v n="$2" 'index($0, n) == 1 { $0 = substr($0, length(n) + 1); print $1 "/" $2 }' "/proc/$1/limits" 2>/dev/null; }
AGENT_LIMITS="nofile $(limit_of "$AGENT_PID" "Max open files") memlock $(limit_of "$AGENT_PID" "Max locked memory")"
YOLOFS_LIMITS="nofile $(limit_of "${YOLOFS_PIDS[0]:-self}" "Max open files") memlock $(limit_of "${YOLOFS_PIDS[0]:-self}" "Max locked memory")"

HZ=$(getconf CLK_TCK)
# CPU while nothing happens: the agent's rounds (every interval) and the
# host's metrics file (every 15 s), over 20 s.
cpu_ticks() {
	local p s=0
	for p in "$@"; do s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
	echo $s
}
a0=$(cpu_ticks "$AGENT_PID") y0=$(cpu_ticks "${YOLOFS_PIDS[@]}")
sleep 20
a1=$(cpu_ticks "$AGENT_PID") y1=$(cpu_ticks "${YOLOFS_PIDS[@]}")
AGENT_CPU=$(echo "scale = 1; 100 * ($a1 - $a0) / $HZ / 20" | bc)
YOLOFS_CPU=$(echo "scale = 1; 100 * ($y1 - $y0) / $HZ / 20" | bc)

# ---------------------------------------------------------------- one container
note "a container of img0 ($((PER_IMAGE < LAYERS ? PER_IMAGE : LAYERS)) layers) through the agent's mounts"
# What reached the daemons: reads, and namespace questions (lookups, getattrs, ...).
served() {
	echo "$(series yolofs_reads_passthrough_total .) $(($(series yolofs_ns_unknown_total .) + $(series yolofs_ns_answered_total .)))"
}
read -r reads0 ns0 < <(served)
t=$(date +%s.%N)
if timeout 120 "$CTR" -a "$CT_SOCK" -n "$CT_NS" run --rm "${CT_RUN[@]}" scale.local/layers/img0:1 scale-run \
	/bin/sh -c 'ls /data | wc -l; cat /data/f1' >"$TMP/run.out" 2>&1; then
	CONTAINER="started in $(since "$t") s: $(head -n1 "$TMP/run.out") files in /data"
	sleep 31                               # the host's metrics, then the agent's (15 s each by default)
	read -r reads1 ns1 < <(served)
	CONTAINER+=", yolofs served $((reads1 - reads0)) reads, $((ns1 - ns0)) namespace questions"
else
	CONTAINER="FAILED: $(tail -n1 "$TMP/run.out")"
fi
echo "container: $CONTAINER"

# ---------------------------------------------------------------- upgrade, crash
note "an upgrade of the host in place: every layer handed over at once"
HP=$(sc show -p MainPID --value yolofs-host.service)
one=$(inns findmnt -rn -t fuse.yolofs -o TARGET | head -n 1)
UPGRADE=$(inns /usr/bin/yolofs --upgrade "$one" 2>&1 | tail -n 1)
echo "$UPGRADE"
UPGRADE_MS=$(echo "$UPGRADE" | sed -n 's/.*paused \([0-9.]*\) ms.*/\1/p')
note "the host killed (SIGKILL): systemd restarts it, it takes every layer over"
HP=$(sc show -p MainPID --value yolofs-host.service)
t=$(date +%s.%N)
inns kill -KILL "$HP"
CRASH_S=-
for ((i = 0; i < 600; i++)); do
	np=$(sc show -p MainPID --value yolofs-host.service)
	if [ "$np" != 0 ] && [ "$np" != "$HP" ] && [ "$(sc show -p ActiveState --value yolofs-host.service)" = active ]; then
		CRASH_S=$(since "$t")
		break
	fi
	sleep 0.1
done
TOOK=$(grep -o "took [0-9]* sessions over after a restart.*" "$HOST_LOG" | tail -n 1)
echo "restarted and serving after $CRASH_S s: $TOOK; $(inns findmnt -rn -t fuse.yolofs | wc -l) mounts"

# ---------------------------------------------------------------- table
kib() { printf '%.1f' "$(echo "$1 / 1024" | bc -l)"; }
note "results"
printf '%-52s %s\n' \
	"layers (committed overlayfs snapshots)" "$LAYERS in $IMAGES images" \
	"the unit's limits" "LimitNOFILE=$(prop LimitNOFILE) LimitMEMLOCK=$(prop LimitMEMLOCK) TasksMax=$(prop TasksMax)" \
	"limits in effect (soft/hard), agent" "$AGENT_LIMITS" \
	"limits in effect (soft/hard), a yolofs" "$YOLOFS_LIMITS" \
	"import and unpack (ctr images import)" "$IMPORT_S s" \
	"systemctl enable --now returned" "$ENABLE_S s" \
	"first round (agent start to READY=1)" "$FIRST_ROUND_S s" \
	"metrics: all layers mounted after" "$ALL_S s" \
	"layers mounted (metrics) / wanted" "$(series yolo_agent_layers 'state="mounted"') / $(series yolo_agent_layers 'state="wanted"')" \
	"fuse.yolofs mounts: systemd's namespace / containerd's" "$MOUNTS / $CT_MOUNTS" \
	"yolofs processes" "$NY" \
	"agent RSS" "$(kib "$AGENT_RSS") MiB" \
	"yolofs RSS, all / per layer" "$(kib "$rss") MiB / $((rss / LAYERS)) KiB" \
	"yolofs PSS, all / per layer" "$(kib "$pss") MiB / $((pss / LAYERS)) KiB" \
	"MemAvailable before - after" "$(kib $((MEMAVAIL_BEFORE - MEMAVAIL_AFTER))) MiB (shared machine: noisy)" \
	"yolofs descriptors, all / per layer" "$fds / $(echo "scale = 1; $fds / $LAYERS" | bc)" \
	"agent descriptors" "$AGENT_FDS" \
	"yolofs threads, all" "$threads" \
	"inotify instances held by yolofs" "$ino (max_user_instances $(sysctl_of fs.inotify.max_user_instances); root held $INOTIFY_ROOT_BEFORE before)" \
	"yolofs without inotify / lines saying so" "$noino / $WARNED" \
	"CPU idle, agent / yolofs (% of one core)" "$AGENT_CPU / $YOLOFS_CPU" \
	"container start (img0)" "$CONTAINER" \
	"upgrade in place: one pause for all layers" "${UPGRADE_MS:-FAILED} ms" \
	"SIGKILL: restarted, every layer taken over after" "$CRASH_S s ($TOOK)" \
	"script run time" "$(($(date +%s) - T0)) s"
