#!/bin/bash
# test_host.sh - yolofs --host: one process serving many mounts (host.h).
#   - three layers with the same paths, each attached in place and
#     learning: each mount serves its own layer's bytes, never another's;
#     once learnt, their namespace questions are answered from memory;
#   - a hard link between two layers changed underneath both mounts (the
#     source, through a private bind mount): both see it at once;
#   - 150 more sessions (more than fs.inotify.max_user_instances' default
#     128): all mounted, the process holds ONE inotify instance;
#   - the metrics file: every series labelled with its mount, each name
#     with one HELP and TYPE, no series twice;
#   - requests refused alone (a host option, a missing source, a source
#     attached twice) while every other session serves;
#   - `yolofs --upgrade` of one mountpoint hands every session to a new
#     process while a reader reads on, with no error;
#   - detach, and detach_when_emptied, end a session (reaped, its control
#     socket name gone); SIGTERM unmounts the rest and exits 0.
source "$(dirname "$0")/lib.sh"

SOCK=$TMP/host.sock
LAYERS=$TMP/layers
UNDER=$TMP/under
M=$TMP/host.prom
ctl() { "$YOLOFS" --hostctl --socket "$SOCK" "$@"; }
host_pid() { pgrep -f "^$YOLOFS --host --socket $SOCK" | head -n 1; }
sessions() { ctl list | grep -c "	serving	"; }
# metric_of NAME MOUNT: a counter of one mount in the host's metrics file.
metric_of() {
	awk -v k="yolofs_$1_total{mount=\"$2\"}" '$1 == k { v = $2 } END { print v + 0 }' "$M"
}

# The host is not one of lib.sh's daemons (an upgrade replaces it): stopped
# here, its mounts cleared, before lib.sh's cleanup.
host_cleanup() {
	local p
	p=$(host_pid)
	[ -n "$p" ] && kill -TERM "$p" 2>/dev/null
	for i in $(seq 50); do [ -n "$(host_pid)" ] || break; sleep 0.1; done
	findmnt -rn -t fuse.yolofs -o TARGET | grep "^$LAYERS/" | while read -r m; do umount -l "$m"; done
	cleanup
}
trap host_cleanup EXIT

mkdir -p "$LAYERS" "$UNDER" "$TMP/learn"
for n in 1 2 3; do
	mkdir -p "$LAYERS/L$n/etc" "$LAYERS/L$n/bin"
	echo "layer $n" >"$LAYERS/L$n/etc/name"
	head -c 300000 /dev/zero | tr '\0' 'x' >"$LAYERS/L$n/bin/tool"   # the same bytes in all
done
echo shared >"$LAYERS/L1/etc/shared"
chmod 644 "$LAYERS/L1/etc/shared"
ln "$LAYERS/L1/etc/shared" "$LAYERS/L2/etc/shared"
# The sources as they are under the mounts: a private bind mount made
# before any, which the mounts do not reach.
mount --bind "$LAYERS" "$UNDER" && mount --make-private "$UNDER" || fail "bind mount of the layers"
LATE_MNTS+=("$UNDER")

note "start the host, attach three layers"
# Without meson's MALLOC_PERTURB_ (which fills, so makes resident, every
# buffer malloc gives: 1 MiB a FUSE worker), as a node runs it.
env -u MALLOC_PERTURB_ "$YOLOFS" --host --socket "$SOCK" -o "metrics=$M,metrics_interval=1" 2>>"$TMP/yolofs.log" &
wait_until "the host listens" '[ -S "$SOCK" ]'
OPTS="learn=$TMP/learn,learn_by=mount,learn_window=1,learn_idle=1"
for n in 1 2 3; do
	out=$(ctl attach "test:L$n" "$LAYERS/L$n" "$OPTS") || fail "attach L$n: $out"
	is_mounted "$LAYERS/L$n" || fail "L$n is not mounted after '$out'"
done
[ "$(sessions)" = 3 ] || fail "list: $(ctl list)"

note "each mount serves its own layer"
for round in 1 2; do
	for n in 1 2 3; do
		[ "$(cat "$LAYERS/L$n/etc/name")" = "layer $n" ] || fail "L$n/etc/name: $(cat "$LAYERS/L$n/etc/name")"
		cmp -s "$LAYERS/L$n/bin/tool" "$UNDER/L$n/bin/tool" || fail "L$n/bin/tool differs"
		ls -l "$LAYERS/L$n/etc" >/dev/null
	done
	[ "$round" = 2 ] && break
	for n in 1 2 3; do
		wait_until "L$n learnt" '[ "$(metric_of learned_images test:L$n)" -ge 1 ]'
	done
	drop_caches
done
for n in 1 2 3; do
	wait_until "L$n answers from memory" '[ "$(metric_of ns_answered test:L$n)" -gt 0 ]'
done
echo "3 layers, same paths, each served its own bytes; learnt and answered from memory"

note "a hard link between two layers, changed underneath both"
stat -c %a "$LAYERS/L1/etc/shared" "$LAYERS/L2/etc/shared" >/dev/null
chmod 600 "$UNDER/L1/etc/shared"
for n in 1 2; do
	[ "$(stat -c %a "$LAYERS/L$n/etc/shared")" = 600 ] || fail "L$n/etc/shared: mode $(stat -c %a "$LAYERS/L$n/etc/shared") after a chmod underneath"
done
echo changed >"$UNDER/L2/etc/shared"
for n in 1 2; do
	[ "$(cat "$LAYERS/L$n/etc/shared")" = changed ] || fail "L$n/etc/shared: stale bytes after a write underneath"
done
echo "a chmod and a write through one layer's source seen at once through both mounts"

note "150 more sessions: one inotify instance"
for n in $(seq 4 153); do
	mkdir -p "$LAYERS/L$n"
	echo "layer $n" >"$LAYERS/L$n/f"
	out=$(ctl attach "test:L$n" "$LAYERS/L$n" "$OPTS") || fail "attach L$n: $out"
done
[ "$(sessions)" = 153 ] || fail "list shows $(sessions) serving sessions, not 153"
for n in $(seq 4 153); do
	[ "$(cat "$LAYERS/L$n/f")" = "layer $n" ] || fail "L$n/f through the mount"
done
P=$(host_pid)
inotify=$(find "/proc/$P/fd" -lname 'anon_inode:inotify' | wc -l)
fds=$(ls "/proc/$P/fd" | wc -l)
threads=$(ls "/proc/$P/task" | wc -l)
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$P/status")
[ "$inotify" = 1 ] || fail "the host holds $inotify inotify instances for 153 sessions"
echo "153 sessions in one process: 1 inotify instance, $fds descriptors, $threads threads, $rss KiB RSS"

note "the metrics file"
sleep 1.2
awk '/^# HELP/ { h[$3]++ } /^# TYPE/ { t[$3]++ } !/^#/ && NF { s[$1]++; if ($1 !~ /mount="/) bad = bad " " $1 }
	END { for (k in h) if (h[k] > 1) dup = dup " HELP:" k; for (k in t) if (t[k] > 1) dup = dup " TYPE:" k
	      for (k in s) if (s[k] > 1) dup = dup " " k; if (bad || dup) { print "unlabelled:" bad " twice:" dup; exit 1 } }' "$M" ||
	fail "metrics file: $(awk '/^# HELP/ { h[$3]++ } END { print NR }' "$M") lines"
grep -q '^yolofs_reads_passthrough_total{mount="test:L153"}' "$M" || fail "no series for test:L153"
grep -q '^yolofs_memory_resident_bytes{mount="host"}' "$M" || fail "no memory series for the host"
echo "$(grep -vc '^#' "$M") series, each with a mount label, none twice"

note "requests refused alone"
ctl attach test:bad "$LAYERS/L1" "" >/dev/null && fail "a source attached twice"
ctl attach test:bad "$TMP/missing" "" >/dev/null && fail "a missing source attached"
out=$(ctl attach test:bad "$TMP/learn" "metrics=$TMP/x.prom") && fail "a host option taken by a mount"
echo "$out" | grep -q "host's options" || fail "refusal of a host option: $out"
ctl frobnicate >/dev/null && fail "an unknown request answered ok"
[ "$(sessions)" = 153 ] || fail "a refused request changed the sessions"
[ "$(cat "$LAYERS/L2/etc/name")" = "layer 2" ] || fail "L2 after the refusals"
echo "a source attached twice, a missing source, a host option, an unknown request: refused"

note "upgrade every session at once under a reader"
P1=$(host_pid)
(
	end=$((SECONDS + 4))
	while [ $SECONDS -lt $end ]; do
		for n in 1 2 3; do
			[ "$(cat "$LAYERS/L$n/etc/name")" = "layer $n" ] || { echo "L$n read wrong" >"$TMP/reader.err"; exit 1; }
		done
	done
) &
READER=$!
sleep 0.5
out=$("$YOLOFS" --upgrade "$LAYERS/L2") || fail "upgrade: $out"
echo "$out"
wait $READER || fail "the reader failed during the upgrade: $(cat "$TMP/reader.err" 2>/dev/null)"
P2=$(host_pid)
[ -n "$P2" ] && [ "$P2" != "$P1" ] || fail "upgrade: host pid $P1 -> $P2"
wait "$P1" || fail "upgrade: the old host $P1 exited with status $?"
[ "$(sessions)" = 153 ] || fail "upgrade: $(sessions) sessions serve"
[ "$(cat "$LAYERS/L153/f")" = "layer 153" ] || fail "upgrade: L153"
echo "pid $P1 -> $P2: 153 sessions serve, the reader saw no error"

note "detach, detach_when_emptied"
dev=$(findmnt -no MAJ:MIN -M "$LAYERS/L3" | tr -d ' ')
ctl detach "$LAYERS/L3" >/dev/null || fail "detach L3"
wait_until "L3 unmounted and reaped" '! is_mounted "$LAYERS/L3" && [ "$(sessions)" = 152 ]'
[ -e "/run/yolofs/$dev.sock" ] && fail "detach: the control socket name of L3 ($dev) is left"
[ "$(cat "$LAYERS/L3/etc/name")" = "layer 3" ] || fail "L3's directory after detach"
mkdir "$LAYERS/E"
echo x >"$LAYERS/E/only"
ctl attach test:E "$LAYERS/E" detach_when_emptied >/dev/null || fail "attach E"
rm "$LAYERS/E/only"
rmdir "$LAYERS/E" || fail "rmdir of an emptied source under detach_when_emptied"
wait_until "E reaped" '[ "$(sessions)" = 152 ]'
echo "detached L3 and an emptied E: unmounted, reaped"

note "SIGTERM"
P=$(host_pid)
kill -TERM "$P"
for i in $(seq 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
kill -0 "$P" 2>/dev/null && fail "the host did not exit after SIGTERM"
left=$(findmnt -rn -t fuse.yolofs -o TARGET | grep -c "^$LAYERS/") || true
[ "$left" = 0 ] || fail "$left mounts left after SIGTERM"
[ "$(grep -vc '^yolofs host sessions ' "$SOCK.sessions")" = 0 ] || fail "the session list is not empty after SIGTERM"
grep -q "stopping: unmounting 152 sessions" "$TMP/yolofs.log" || fail "no stop line in the log"
echo "SIGTERM: every session unmounted"
echo PASS
