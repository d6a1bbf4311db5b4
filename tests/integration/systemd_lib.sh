# systemd_lib.sh - yolofs@.service under a real systemd, for the
# integration tests (sourced after ../mount/lib.sh).  systemd runs as PID 1
# of its own PID, mount, cgroup, UTS and IPC namespaces (the host's init
# need not be systemd) and sees only the test's units (SYSTEMD_UNIT_PATH:
# the built yolofs@.service, a drop-in that logs to $TMP/unit.log, and
# empty stand-ins for the targets the unit's default dependencies name), a
# private /run, its own cgroup2 subtree, and overlays on /etc (for
# /etc/yolo/INSTANCE.conf) and on the directory of the unit's ExecStart
# binary (holding the built yolofs), so nothing on the host changes.
#
#   sd_prepare BASE OPTIONS   the unit for mount path BASE with
#                             YOLOFS_OPTIONS=OPTIONS; sets INST, UNIT, U
#                             (the unit directory: add drop-ins to
#                             $U/yolofs@.service.d before sd_start)
#   sd_start                  start systemd; sets SDPID
#   sd_engines_in_namespace   dockerd_start / containerd_start start their
#                             engine in those namespaces
#   sc ARGS / inns CMD / prop NAME      systemctl / a command / a unit
#                             property, in the namespaces
#   wait_active WHAT [OLDPID] the unit active (main PID other than OLDPID)
#   mounts / live             yolofs mounts at BASE / one, answering

SYSTEMD=/lib/systemd/systemd
[ -x $SYSTEMD ] || skip "$SYSTEMD missing (apt-get install systemd)"
for c in unshare nsenter systemd-escape setpriv; do command -v $c >/dev/null || skip "$c missing"; done
[ -n "${YOLOFS_UNIT:-}" ] && [ -f "$YOLOFS_UNIT" ] || fail "YOLOFS_UNIT is not set (run through meson test)"

# A cgroup2 hierarchy to give systemd a subtree of (hybrid or unified host).
CGROOT=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
	[ "$(stat -fc %T $d 2>/dev/null)" = cgroup2fs ] && { CGROOT=$d; break; }
done
[ -n "$CGROOT" ] || skip "no cgroup2 hierarchy mounted"
CG=$CGROOT$(sed -n 's/^0:://p' /proc/self/cgroup)/yolo-systemd-test.$$
CG=${CG//\/\//\/}
mkdir "$CG" || skip "cannot create cgroup $CG"

SDPID= UNSHARE_PID=
sd_teardown() {
	if [ -n "$UNSHARE_PID" ]; then
		# SIGKILL to a PID namespace's init ends every process in it;
		# the namespace's mounts (FUSE ones included) go with it.
		[ -n "$SDPID" ] && kill -KILL "$SDPID" 2>/dev/null
		kill -KILL "$UNSHARE_PID" 2>/dev/null
		wait "$UNSHARE_PID" 2>/dev/null
	fi
	local i
	for i in $(seq 50); do
		find "$CG" -depth -type d -exec rmdir {} + 2>/dev/null
		[ -d "$CG" ] || break
		sleep 0.1
	done
}
trap 'sd_teardown; cleanup' EXIT

# The unit's ExecStart binary; its directory gets the built yolofs.
EXEC=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$YOLOFS_UNIT")
BINDIR=$(dirname "$EXEC")
[ -d "$BINDIR" ] || skip "the unit runs $EXEC but $BINDIR does not exist here"

sd_prepare() {
	local base=$1 options=$2 t
	INST=$(systemd-escape --path "$base")
	UNIT="yolofs@$INST.service"
	SD_BASE=$base
	U=$TMP/units
	mkdir -p "$U/yolofs@.service.d" "$TMP/nogen" "$TMP/etc.up/yolo" "$TMP/etc.work" \
		"$TMP/bin.up" "$TMP/bin.work"
	cp "$YOLOFS_UNIT" "$U/yolofs@.service"
	for t in yolo-test sysinit basic local-fs shutdown multi-user; do
		printf '[Unit]\nDescription=test stand-in for %s.target\nDefaultDependencies=no\n' $t >"$U/$t.target"
	done
	# No journald here: the unit's output goes to a file.
	printf '[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n' \
		"$TMP/unit.log" "$TMP/unit.log" >"$U/yolofs@.service.d/40-log.conf"
	# Named as the unit's comment says: EnvironmentFile= is a glob, and
	# $TMP's '-' is \x2d in the instance name.
	printf 'YOLOFS_OPTIONS=%s\n' "$options" >"$TMP/etc.up/yolo/${INST//\\/}.conf"
	ln -s "$(realpath "$YOLOFS")" "$TMP/bin.up/yolofs"
}

sd_start() {
	local i
	cat >"$TMP/init.sh" <<EOF
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t overlay overlay -o lowerdir=/etc,upperdir=$TMP/etc.up,workdir=$TMP/etc.work /etc
mount -t overlay overlay -o lowerdir=$BINDIR,upperdir=$TMP/bin.up,workdir=$TMP/bin.work $BINDIR
export container=yolo-test SYSTEMD_UNIT_PATH=$U
export SYSTEMD_GENERATOR_PATH=$TMP/nogen SYSTEMD_ENVIRONMENT_GENERATOR_PATH=$TMP/nogen
exec $SYSTEMD --system --unit=yolo-test.target --show-status=no
EOF
	note "starting systemd in its own namespaces"
	( echo "$BASHPID" >"$CG/cgroup.procs" &&
	  exec unshare --pid --fork --mount --propagation private --uts --ipc --cgroup --mount-proc \
		/bin/sh "$TMP/init.sh" ) >"$TMP/systemd.log" 2>&1 &
	UNSHARE_PID=$!
	for i in $(seq 100); do
		[ -z "$SDPID" ] && SDPID=$(pgrep -P "$UNSHARE_PID")
		[ -n "$SDPID" ] && [ "$(cat "/proc/$SDPID/comm" 2>/dev/null)" = systemd ] &&
			sc show -p Version --value >/dev/null 2>&1 && break
		kill -0 "$UNSHARE_PID" 2>/dev/null || { cat "$TMP/systemd.log"; skip "systemd did not start in a namespace here"; }
		sleep 0.1
	done
	sc show -p Version --value >/dev/null 2>&1 || { cat "$TMP/systemd.log"; skip "systemd did not answer"; }
	echo "systemd $(sc show -p Version --value) running as PID 1 of a new PID namespace (host PID $SDPID)"
}

# sd_engines_in_namespace: from now on dockerd_start and containerd_start
# (docker_lib.sh, containerd_lib.sh) start their engine in systemd's
# namespaces, where the mounts its units make are the engine's to see.
# runc under containerd needs cgroup controllers, which systemd's unified
# hierarchy here lacks (the host's are cgroup v1): containerd gets a mount
# namespace of its own in which the host's v1 hierarchies show again, a
# slave of systemd's, so the mounts made there later still reach it.
sd_engines_in_namespace() {
	inns mount --make-rshared /
	DK_LAUNCH=(nsenter -t "$SDPID" -m -p --)
	CT_LAUNCH=(nsenter -t "$SDPID" -m -p -- unshare -m --propagation slave
		/bin/sh -c 'umount /sys/fs/cgroup && exec "$0" "$@"')
}

sc() { nsenter -t "$SDPID" -m -p -- systemctl "$@"; }
inns() { nsenter -t "$SDPID" -m -p -- "$@"; }
prop() { sc show -p "$1" --value "$UNIT"; }
mounts() { inns findmnt -rn -t fuse.yolofs -M "$SD_BASE" | wc -l; }
live() { [ "$(mounts)" = 1 ] && inns stat -f "$SD_BASE" >/dev/null 2>&1; }

# wait_active WHAT [OLDPID]: the unit becomes active (with a main PID other
# than OLDPID) within 30 s.
wait_active() {
	local what=$1 old=${2:-0} i
	for i in $(seq 300); do
		[ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != 0 ] &&
			[ "$(prop MainPID)" != "$old" ] && return 0
		[ "$(prop ActiveState)" = failed ] && break
		sleep 0.1
	done
	sc status --no-pager "$UNIT" >&2; cat "$TMP/unit.log" >&2
	fail "$what: $UNIT is $(prop ActiveState)/$(prop SubState), not active"
}
