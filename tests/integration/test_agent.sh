#!/bin/bash
# test_agent.sh - the node agent as a new operator gets it (issue 21): the
# files the yolo package installed (not the build tree), under a real
# systemd, with no command but `systemctl enable --now yolo-agent`.
#
# systemd runs as PID 1 of its own namespaces (systemd_lib.sh) with the
# installed yolo-agent.service, yolofs-host.service (the node's one
# yolofs, which serves every layer) and yolofs@.service, and an
# /etc/yolo/agent.conf naming the test's engines.  A dockerd and a
# containerd of the test's own run in those namespaces (the mounts the
# agent makes are theirs to see); Debian's docker-registry on 127.0.0.1
# holds three one-layer images (busybox and 2 MiB of data of their own).
# Both engines pull the three; the agent mounts every layer with no
# command; each container is started twice: the first start is learnt,
# the second (caches dropped) is served from the learnt images, and prints
# what the first printed.  An image removed leaves no mount, no session and
# no learnt image.  The agent restarted changes nothing; a package upgrade
# moves the host (every layer at once) and _base's yolofs to the new
# binary under a reading container; the host killed (SIGKILL) under a
# reading container is restarted and takes every layer over; the engines
# restarted and every mount gone (as after a reboot), the agent puts
# everything back and the next start is served again.  nova.conf
# names a _base directory: the agent serves it through yolofs@.  Last,
# Debian's prometheus-node-exporter scrapes the agent's one metrics file:
# parsed, no error, no duplicate series, a mount label on every series.
source "$(dirname "$0")/../mount/lib.sh"

AGENT=/usr/bin/yolo-agent
AGENT_UNIT= YOLOFS_UNIT= HOST_UNIT=
for d in /lib/systemd/system /usr/lib/systemd/system; do
	[ -f "$d/yolo-agent.service" ] && AGENT_UNIT=$d/yolo-agent.service
	[ -f "$d/yolofs@.service" ] && YOLOFS_UNIT=$d/yolofs@.service
	[ -f "$d/yolofs-host.service" ] && HOST_UNIT=$d/yolofs-host.service
done
[ -x "$AGENT" ] && [ -n "$AGENT_UNIT" ] && [ -n "$YOLOFS_UNIT" ] && [ -n "$HOST_UNIT" ] && [ -x /usr/bin/yolofs ] ||
	skip "the yolo package is not installed (scripts/build-deb.sh, then dpkg -i): this test runs the installed files"
# The installed package must be this tree's (setup.sh installs HEAD's).
head=$(git -C "${YOLO_SOURCE_ROOT:?}" rev-parse HEAD 2>/dev/null || echo "no commit")
[ "$(cat /usr/share/doc/yolo/git-commit 2>/dev/null)" = "$head" ] ||
	skip "the installed yolo package is not this tree's HEAD ($head): run scripts/setup.sh"
# The package's maintainer scripts: a running agent is restarted after an
# upgrade (the restarted agent moves its daemons to the new yolofs), not
# stopped and left so.
grep -q "deb-systemd-invoke \$_dh_action 'yolo-agent.service'" /var/lib/dpkg/info/yolo.postinst ||
	fail "the package does not restart a running agent after an upgrade"
! grep -qs "stop 'yolo-agent.service'" /var/lib/dpkg/info/yolo.preinst || fail "an upgrade stops the agent"
# The host is never stopped or restarted by an upgrade (the agent moves it).
! grep -qs "yolofs-host.service" /var/lib/dpkg/info/yolo.preinst || fail "an upgrade stops the host"
! grep -q "deb-systemd-invoke \$_dh_action 'yolofs-host.service'" /var/lib/dpkg/info/yolo.postinst ||
	fail "an upgrade restarts the host"
# A purge takes away what the agent wrote (tests/unit/test_postrm.sh runs it).
grep -q "^# yolo.postrm" /var/lib/dpkg/info/yolo.postrm && grep -q "deb-systemd-helper purge" /var/lib/dpkg/info/yolo.postrm ||
	fail "the installed postrm is not debian/yolo.postrm with debhelper's additions"
NODE_EXPORTER=$(command -v prometheus-node-exporter) ||
	skip "prometheus-node-exporter missing (apt-get install prometheus-node-exporter)"
export YOLOFS_UNIT
source "$(dirname "$0")/systemd_lib.sh"
source "$(dirname "$0")/docker_lib.sh"
source "$(dirname "$0")/containerd_lib.sh"
source "$(dirname "$0")/registry_lib.sh"

NE_PID=
agent_cleanup() {
	[ -z "$NE_PID" ] || kill "$NE_PID" 2>/dev/null
	registry_stop
	# Killing the namespace's init ends dockerd, containerd, the agent and
	# every yolofs in it; their mounts go with the mount namespace.
	sd_teardown
	cleanup
}
trap agent_cleanup EXIT

docker_node "$TMP/dk"
containerd_node "$TMP/ct"
CT_NS=default
PROM=$TMP/textfile/yolo.prom
mkdir -p "$TMP/textfile" "$TMP/nova/instances/_base"

# ---------------------------------------------------------------- systemd
U=$TMP/units
mkdir -p "$U/yolo-agent.service.d" "$U/yolofs@.service.d" "$U/yolofs-host.service.d" "$TMP/nogen" \
	"$TMP/etc.up/yolo" "$TMP/etc.work" "$TMP/bin.up" "$TMP/bin.work"
cp "$AGENT_UNIT" "$YOLOFS_UNIT" "$HOST_UNIT" "$U/"
for t in yolo-test sysinit basic local-fs shutdown multi-user network network-online; do
	printf '[Unit]\nDescription=test stand-in for %s.target\nDefaultDependencies=no\n' $t >"$U/$t.target"
done
for u in yolo-agent yolofs@ yolofs-host; do
	printf '[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n' \
		"$TMP/$u.log" "$TMP/$u.log" >"$U/$u.service.d/40-log.conf"
done
cat >"$TMP/etc.up/yolo/agent.conf" <<CONF
[agent]
learn = $TMP/learn
images = $TMP/images
metrics = $PROM
metrics_interval = 1
interval = 1
yolofs_options = learn_idle=6
[docker]
root = $DK_DIR/docker
socket = $SOCK
pidfile = $DK_DIR/dockerd.pid
[containerd]
address = $CT_SOCK
[nova]
enabled = yes
config = $TMP/nova.conf
CONF
echo "YOLOFS_HOST_OPTIONS=metrics=/run/yolofs/host.prom,metrics_interval=1" >"$TMP/etc.up/yolo/host.conf"
printf '[DEFAULT]\ninstances_path = %s\n' "$TMP/nova/instances" >"$TMP/nova.conf"
sd_start

# The engines run in systemd's namespaces (not as its units: no journal here).
sd_engines_in_namespace
# ns_stop NAME PATTERN: stop the namespace's process whose command line matches.
ns_stop() {
	local i
	inns pkill -TERM -f "$2" || true
	for i in $(seq 100); do inns pgrep -f "$2" >/dev/null || return 0; sleep 0.1; done
	fail "$1 did not stop"
}

# ---------------------------------------------------------------- images
registry_start
note "three images in the registry (busybox and 2 MiB of data of their own each)"
dockerd_start
containerd_start
IMAGES="a b c"
for i in $IMAGES; do
	busybox_rootfs "$TMP/rootfs-$i"
	head -c 2M /dev/urandom >"$TMP/rootfs-$i/data/$i"
	tar -C "$TMP/rootfs-$i" -c . | dk import - "$REG/yolo/$i:1" >/dev/null || fail "docker import $i"
	dk push "$REG/yolo/$i:1" >/dev/null || fail "docker push $i"
	dk rmi "$REG/yolo/$i:1" >/dev/null || fail "docker rmi $i"
done
[ -z "$(dk images -q)" ] || fail "dockerd still has images"

note "systemctl enable --now yolo-agent (the one command)"
sc enable --now yolo-agent.service || { cat "$TMP/yolo-agent.log"; fail "systemctl enable --now yolo-agent"; }
UNIT=yolo-agent.service
wait_active "the agent"
cat "$TMP/yolo-agent.log"

# series NAME LABEL-REGEX: the sum of NAME's series in the node's metrics
# file whose labels match.
series() {
	awk -v n="$1" -v re="$2" 'index($0, n "{") == 1 && $0 ~ re { s += $NF } END { print s + 0 }' "$PROM"
}
# wait_layers ENGINE N: the agent serves N layers of ENGINE (and wants no more).
wait_layers() {
	local i
	for i in $(seq 300); do
		[ -f "$PROM" ] && [ "$(series yolo_agent_layers "engine=\"$1\",state=\"mounted\"")" = "$2" ] &&
			[ "$(series yolo_agent_layers "engine=\"$1\",state=\"wanted\"")" = "$2" ] && return 0
		sleep 0.1
	done
	tail -n 20 "$TMP/yolo-agent.log"
	fail "$1: the agent serves $(series yolo_agent_layers "engine=\"$1\",state=\"mounted\"") layers, not $2"
}
# served_bytes MOUNT: bytes the mount served from its learnt images (read
# through it, or pushed into the page cache at open).
served_bytes() {
	echo $(($(series yolofs_bytes_memory_total "mount=\"$1\".*boot_image=\"learnt\"") +
		$(series yolofs_bytes_prefilled_total "mount=\"$1\".*boot_image=\"learnt\"")))
}
# settled MOUNT: served_bytes once the metrics file (rewritten every round)
# shows the same twice in a row.
settled() {
	local a b i
	b=$(served_bytes "$1")
	for i in $(seq 20); do
		sleep 1.1
		a=$b b=$(served_bytes "$1")
		[ "$a" = "$b" ] && break
	done
	echo "$b"
}
# mounts_of ENGINE REF: the mount labels of REF's layers.
mounts_of() {
	grep "^yolo_agent_layer_image{mount=\"$1:" "$PROM" | grep "image=\"$2\"" | sed 's/.*mount="\([^"]*\)".*/\1/'
}
# start ENGINE NAME OUT: a container of image NAME, its output in OUT.
start() {
	if [ "$1" = docker ]; then
		dk run --rm "$REG/yolo/$2:1" /bin/md5sum "/data/$2" /bin/busybox >"$3" 2>&1
	else
		ct run --rm "${CT_RUN[@]}" "$REG/yolo/$2:1" "agent-$2-$RANDOM" /bin/md5sum "/data/$2" /bin/busybox >"$3" 2>&1
	fi
}
# second_start ENGINE NAME TAG MOUNT: caches dropped, a start of NAME must
# print what the first printed and be served from MOUNT's learnt image:
# its 2 MiB data file and busybox, at most 2 % from the layer.
second_start() {
	local e=$1 n=$2 m=$4 i mem0 src0 mem1 src1
	mem0=$(settled "$m")
	src0=$(series yolofs_bytes_source_total "mount=\"$m\"")
	drop_caches
	start "$e" "$n" "$TMP/$e-$n.$3" || { cat "$TMP/$e-$n.$3"; fail "$e $n: start ($3)"; }
	diff -u "$TMP/$e-$n.1" "$TMP/$e-$n.$3" || fail "$e $n: the start ($3) printed something else"
	for i in $(seq 100); do
		[ $(($(served_bytes "$m") - mem0)) -ge 2097152 ] && break
		sleep 0.1
	done
	mem1=$(settled "$m")
	src1=$(series yolofs_bytes_source_total "mount=\"$m\"")
	echo "$e $n ($3): $((mem1 - mem0)) bytes from the learnt image, $((src1 - src0)) from the layer"
	[ $((mem1 - mem0)) -ge 2097152 ] || fail "$e $n ($3): not served from the learnt image"
	[ $(((src1 - src0) * 50)) -le $((mem1 - mem0)) ] || fail "$e $n ($3): more than 2 % from the layer"
}
# served ENGINE NAME: the first start learnt, the second (caches dropped) served.
served() {
	local e=$1 n=$2 m i
	local ms=$(mounts_of "$e" "$REG/yolo/$n:1")
	[ -n "$ms" ] && [ "$(echo "$ms" | wc -l)" = 1 ] || fail "$e $n: the metrics name no single mount of its layer: $ms"
	[ "$(series yolofs_learned_images_total "mount=\"$ms\"")" = 0 ] || fail "$e $n: learnt before its first start"
	start "$e" "$n" "$TMP/$e-$n.1" || { cat "$TMP/$e-$n.1"; fail "$e $n: first start"; }
	for i in $(seq 300); do
		[ "$(series yolofs_learned_images_total "mount=\"$ms\"")" -ge 1 ] && break
		sleep 0.1
	done
	[ "$(series yolofs_learned_images_total "mount=\"$ms\"")" -ge 1 ] || fail "$e $n: $ms learnt nothing"
	second_start "$e" "$n" 2 "$ms"
}

note "both engines pull the three images; the agent mounts them with no command"
for i in $IMAGES; do
	dk pull -q "$REG/yolo/$i:1" >/dev/null || fail "docker pull $i"
	ct images pull --plain-http "$REG/yolo/$i:1" >/dev/null || fail "ctr pull $i"    # and unpacks
done
wait_layers docker 3
wait_layers containerd 3
sc status --no-pager yolo-agent.service | grep -i "status:" || true

note "each container started twice: learnt, then served"
for e in docker containerd; do for i in $IMAGES; do served $e $i; done; done

note "an image removed leaves no mount, session or learnt image"
# hosted ENGINE: the sources of the host's serving sessions of ENGINE.
hosted() {
	inns /usr/bin/yolofs --hostctl list | awk -F'\t' -v e="$1:" 'index($2, e) == 1 && $4 == "serving" { print $3 }' | sort
}
# gone_clean DIR: nothing of the agent's is left of layer directory DIR.
gone_clean() {
	local i
	for i in $(seq 100); do                # the round after the removal sweeps the learnt image
		[ -z "$(grep -rlsF -- "$1" "$TMP/learn")" ] && break
		sleep 0.1
	done
	[ ! -e "$1" ] || fail "$1 is still there"
	[ -z "$(inns findmnt -rn -t fuse.yolofs -o TARGET | grep -F "$1")" ] || fail "a mount is left on $1"
	! inns pgrep -f -- "$1" >/dev/null || fail "a yolofs of $1 still runs"
	! inns /usr/bin/yolofs --hostctl list | grep -qF -- "$1" || fail "the host keeps a session of $1"
	[ -z "$(grep -rlsF -- "$1" "$TMP/learn")" ] || fail "a learnt image of $1 is left"
}
ct_sources() { hosted containerd; }
c_dir=$(dk image inspect -f '{{.GraphDriver.Data.UpperDir}}' "$REG/yolo/c:1")
ct_before=$(ct_sources)
dk rmi "$REG/yolo/c:1" >/dev/null || fail "docker rmi c"
ct images rm "$REG/yolo/c:1" >/dev/null || fail "ctr images rm c"
wait_layers docker 2
wait_layers containerd 2
gone_clean "$c_dir"
ct_c=$(comm -23 <(echo "$ct_before") <(ct_sources))
[ "$(echo "$ct_c" | wc -w)" = 1 ] || fail "containerd: not one layer gone: $ct_c"
gone_clean "$ct_c"
[ "$(inns findmnt -rn -t fuse.yolofs | wc -l)" = 5 ] || fail "not 5 yolofs mounts left"
echo "c removed from both: its layers' mounts, sessions and learnt images are gone"

note "c pulled again by containerd (the same digest, a new snapshot): mounted, then removed again"
ct images pull --plain-http "$REG/yolo/c:1" >/dev/null || fail "ctr pull c again"
wait_layers containerd 3
ct_again=$(comm -13 <(echo "$ct_before") <(ct_sources))
[ -n "$ct_again" ] && [ "$ct_again" != "$ct_c" ] || fail "containerd: c's new snapshot is not mounted ($ct_again)"
ct images rm "$REG/yolo/c:1" >/dev/null || fail "ctr images rm c again"
wait_layers containerd 2
gone_clean "$ct_again"

note "the agent restarted: nothing changes"
pids=$(inns pgrep -x yolofs | sort | tr '\n' ' ')
sc restart yolo-agent.service
wait_active "the restarted agent"          # READY=1: after its first round
[ "$(inns pgrep -x yolofs | sort | tr '\n' ' ')" = "$pids" ] || fail "the yolofs daemons changed with the agent"
start docker a "$TMP/after-restart" && diff -q "$TMP/docker-a.1" "$TMP/after-restart" >/dev/null ||
	fail "a start after the agent's restart"

note "a package upgrade: a new yolofs binary, the agent restarted; the host and _base's yolofs move to it under a running container"
dk run -d --name reader "$REG/yolo/a:1" /bin/sh -c 'while md5sum /data/a >/dev/null; do :; done; echo READ-FAILED' >/dev/null ||
	fail "a reading container"
# The package replaces the file (dpkg renames the new one into place).
inns /bin/sh -c 'cp -p /usr/bin/yolofs /usr/bin/yolofs.new && mv /usr/bin/yolofs.new /usr/bin/yolofs'
sc restart yolo-agent.service
wait_active "the agent after the upgrade"
for i in $(seq 300); do
	[ "$(series yolo_agent_events_total 'engine="host",event="upgraded"')" -ge 1 ] && break
	sleep 0.1
done
grep "upgrade of" "$TMP/yolo-agent.log" | tail -n 5
[ "$(series yolo_agent_events_total 'engine="host",event="upgraded"')" = 1 ] ||
	fail "the host was not upgraded (once)"
grep -q "yolofs (pid [0-9]*) serves, paused" "$TMP/yolo-agent.log" || fail "the upgrade's pause is not logged"
[ "$(series yolo_agent_events_total 'event="upgrade_failed"')" = 0 ] || fail "an upgrade failed"
for pid in $pids; do
	for i in $(seq 50); do inns kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! inns kill -0 "$pid" 2>/dev/null || fail "yolofs $pid (the old binary) still runs"
done
[ "$(inns findmnt -rn -t fuse.yolofs | wc -l)" = 5 ] || fail "not 5 yolofs mounts after the upgrade"
[ "$(dk inspect -f '{{.State.Running}}' reader)" = true ] || { dk logs reader; fail "the reading container stopped"; }
! dk logs reader 2>&1 | grep -q READ-FAILED || fail "a read failed during the upgrade"
dk rm -f reader >/dev/null
start docker a "$TMP/after-upgrade" && diff -q "$TMP/docker-a.1" "$TMP/after-upgrade" >/dev/null ||
	fail "a start after the upgrade"
[ "$(sc show -p MainPID --value yolofs-host.service)" = "$(inns pgrep -f '^/usr/bin/yolofs --host')" ] ||
	fail "systemd does not know the upgraded host as the unit's main process"

note "the host killed (SIGKILL) under a reading container: restarted, it takes every layer over"
dk run -d --name reader "$REG/yolo/a:1" /bin/sh -c 'while md5sum /data/a >/dev/null; do :; done; echo READ-FAILED' >/dev/null ||
	fail "a reading container"
# Its task stops at the first failed read.
ct run -d "${CT_RUN[@]}" "$REG/yolo/b:1" reader-b /bin/sh -c 'while md5sum /data/b >/dev/null; do :; done' ||
	fail "a reading containerd container"
sleep 1
HP=$(sc show -p MainPID --value yolofs-host.service)
inns kill -KILL "$HP"
for i in $(seq 100); do
	np=$(sc show -p MainPID --value yolofs-host.service)
	[ "$np" != 0 ] && [ "$np" != "$HP" ] && [ "$(sc show -p ActiveState --value yolofs-host.service)" = active ] && break
	sleep 0.1
done
[ "$np" != "$HP" ] && [ "$np" != 0 ] || fail "the host was not restarted"
grep "took [0-9]* sessions over after a restart" "$TMP/yolofs-host.log" | tail -n 1
grep -q "took 4 sessions over after a restart" "$TMP/yolofs-host.log" || fail "the restarted host did not take the 4 layers over"
[ "$(inns findmnt -rn -t fuse.yolofs | wc -l)" = 5 ] || fail "not 5 yolofs mounts after the host's restart"
sleep 1
[ "$(dk inspect -f '{{.State.Running}}' reader)" = true ] || { dk logs reader; fail "the reading container stopped"; }
! dk logs reader 2>&1 | grep -q READ-FAILED || fail "a read failed across the host's crash"
ct tasks ls | grep -q "reader-b.*RUNNING" || fail "the reading containerd container stopped"
dk rm -f reader >/dev/null
ct tasks rm -f reader-b >/dev/null 2>&1
ct containers rm reader-b >/dev/null 2>&1 || fail "removing the reading containerd container"
start docker a "$TMP/after-crash" && diff -q "$TMP/docker-a.1" "$TMP/after-crash" >/dev/null ||
	fail "a start after the host's crash"
echo "host pid $HP killed; pid $np took the 4 layers over; both readers read on"

note "engines stopped, every mount and daemon gone (a reboot); in boot order: containerd, the agent, dockerd"
sc stop yolo-agent.service
sc stop yolofs-host.service
ns_stop dockerd "dockerd --data-root $DK_DIR/docker"
ns_stop containerd "containerd --config $CT_DIR/config.toml"
inns pkill -KILL -x yolofs || true
for i in $(seq 50); do inns pgrep -x yolofs >/dev/null || break; sleep 0.1; done
inns findmnt -rn -t fuse.yolofs -o TARGET | sort -r | while read -r m; do inns umount -l "$m"; done
[ "$(inns findmnt -rn -t fuse.yolofs | wc -l)" = 0 ] || fail "mounts left after the 'reboot'"
# The unit's order: After=containerd, Before=docker: Docker's layers are
# read from its files and mounted before dockerd starts the containers
# that have a restart policy.
containerd_start
sc start yolo-agent.service
wait_active "the agent after the 'reboot'"
wait_layers docker 2
[ "$(inns findmnt -rn -t fuse.yolofs -o TARGET | grep -c "^$DK_DIR/docker/overlay2/")" = 2 ] ||
	fail "Docker's layers are not mounted before dockerd starts"
echo "before dockerd: Docker's 2 layers mounted from its files"
wait_layers containerd 2
dockerd_start
for e in docker containerd; do second_start $e b 3 "$(mounts_of $e "$REG/yolo/b:1")"; done

note "nova's _base (from nova.conf) is served through yolofs@"
inns findmnt -rn -t fuse.yolofs -M "$TMP/nova/instances/_base" >/dev/null ||
	{ cat "$TMP/yolofs@.log" 2>/dev/null; fail "_base is not under yolofs"; }
base_unit="yolofs@$(systemd-escape --path "$TMP/nova/instances/_base").service"
# Enabled: started at every boot before nova-compute.  (systemctl is-enabled
# misreads an instance of a template outside /etc and /lib: the link itself.)
inns test -L "/etc/systemd/system/multi-user.target.wants/$base_unit" ||
	fail "the agent did not enable $base_unit"
sc is-active --quiet "$base_unit" || fail "$base_unit is not active"

note "prometheus-node-exporter scrapes the node's metrics file"
NE_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" --collector.disable-defaults --collector.textfile \
	--collector.textfile.directory="$TMP/textfile" >"$TMP/node-exporter.log" 2>&1 &
NE_PID=$!
/usr/bin/python3 - "$NE_PORT" <<'PY' || { cat "$TMP/node-exporter.log"; fail "the scrape"; }
import sys, time, urllib.request
for _ in range(100):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("node_exporter did not answer")
lines = [l for l in text.splitlines() if l and not l.startswith("#")]
errors = [l for l in lines if l.startswith("node_textfile_scrape_error")]
ours = [l for l in lines if l.startswith(("yolofs_", "yolo_agent_"))]
series = [l.rpartition(" ")[0] for l in ours]
print(f"scraped: {len(ours)} yolo series, {len(set(series))} distinct; {errors}")
assert errors == ["node_textfile_scrape_error 0"], errors
assert ours and len(series) == len(set(series)), "duplicate series"
nomount = [l for l in ours if l.startswith("yolofs_") and 'mount="' not in l]
assert not nomount, nomount[:3]
assert any('mount="docker:sha256:' in l for l in ours) and any('mount="containerd:default:sha256:' in l for l in ours)
assert not any("/var/lib/yolo-tests" in l for l in ours), "a local path in a label"
PY
echo "PASS"
