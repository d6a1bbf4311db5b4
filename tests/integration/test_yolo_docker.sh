#!/bin/bash
# test_yolo_docker.sh - scripts/yolo-docker on a real dockerd (overlay2).
#
# Builds a two-layer image (an imported busybox rootfs, then a committed
# container that replaces one file, deletes one and adds one), captures a
# container start with `yolo-docker capture` (one boot image per layer),
# adds a second start with --merge, mounts yolofs over both layers' diff/
# with `yolo-docker mount` and checks: a new `docker run` prints what it
# printed without yolofs and both layers' images are used; mounting twice mounts nothing more; a container started
# before the mount and one started while mounted both keep working through
# `yolo-docker umount`, and the daemon serving the second exits when it
# stops; a failed mount leaves nothing; yolofs options reach the daemons;
# `umount` clears a mount whose daemon was SIGKILLed, and `umount --all
# --force` stops a daemon still in use; afterwards docker runs and inspects
# the image.  Zero-touch (learn_lib.sh): `yolo-docker mount --learn` on an
# empty directory, a first `docker run` learnt by yolofs (one image per
# layer), a second one served from them (data and namespace questions, at
# most 1% of its bytes from the layers).  Then `docker rmi` of the image
# with yolofs mounted (--images and --learn) leaves no layer directory, no
# mount and no daemon, and the next command deletes the layers' learnt
# images.
source "$(dirname "$0")/../mount/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
source "$(dirname "$0")/learn_lib.sh"

[ -n "${YOLO_CAPTURE:-}" ] && [ -n "${YOLO_IMAGE:-}" ] || fail "YOLO_CAPTURE/YOLO_IMAGE not set (run through meson test)"
YD=${YOLO_SOURCE_ROOT:?}/scripts/yolo-docker
[ -x "$YD" ] || fail "$YD is missing"
command -v flock >/dev/null && command -v setsid >/dev/null || skip "flock/setsid missing (util-linux)"
export DOCKER DOCKER_HOST=unix://$SOCK YOLOFS YOLO_CAPTURE YOLO_IMAGE
export YOLO_DOCKER_STATE=$TMP/state
IMG=yolo-test:2

# Stop whatever yolo-docker left running (by the pids in its state), then
# dockerd; on failure show the daemons' logs.
yd_cleanup() {
	local rc=$? f
	if [ -d "$TMP/state" ]; then
		[ "$rc" = 0 ] || for f in "$TMP"/state/*/log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 5 "$f" >&2; }; done
		for f in "$TMP"/state/*/pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
		sleep 0.5
	fi
	dockerd_stop
	cleanup
}
trap yd_cleanup EXIT

# running PID: the process exists and is not a zombie (yolofs daemons are
# reparented when yolo-docker exits, and reaped whenever init gets to it).
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st%% *}" != Z ]; }
# layer_mounts: the fuse.yolofs mounts on the image's layers, one per line.
layer_mounts() { findmnt -rn -t fuse.yolofs -o TARGET | grep -c "^$TMP/docker/" || true; }
# status_field ID KEY: a key=value field of the layer's line in the last
# `yolo-docker status` output (saved in $TMP/status).
status() { "$YD" status "$IMG" >"$TMP/status" || fail "yolo-docker status"; }
status_field() { awk -v id="$1" -v k="$2=" '$1 == id && $2 == "mounted" {
	for (i = 3; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$TMP/status"; }

note "bad usage exits 2"
for args in "" "bogus" "mount $IMG" "mount $IMG --learn $TMP/l -o learn_by=file" "capture $IMG" "status" "umount --what $IMG"; do
	rc=0; "$YD" $args >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "yolo-docker $args: exit $rc, expected 2"
done

dockerd_start
rc=0; "$YD" status nosuch:1 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <"$TMP/err")" = 1 ] || fail "status of a missing image: exit $rc, $(cat "$TMP/err")"

note "building a two-layer image"
R=$TMP/rootfs
busybox_rootfs "$R"
echo v1 >"$R/etc/version"
head -c 3000000 /dev/urandom >"$R/data/big.bin"          # read partly
head -c 200000 /dev/urandom >"$R/data/gone.bin"          # deleted by the top layer
head -c 1000000 /dev/urandom >"$R/data/unread.bin"       # never read
tar -C "$R" -cf "$TMP/rootfs.tar" .
dk import "$TMP/rootfs.tar" yolo-base:1 >/dev/null || fail "docker import"
head -c 400000 /dev/urandom >"$TMP/top.bin"
dk run --name mk --network none yolo-base:1 /bin/sh -c 'rm /data/gone.bin; echo v2 >/etc/version' || fail "docker run (layer 2)"
dk cp "$TMP/top.bin" mk:/data/top.bin || fail "docker cp"
dk commit mk "$IMG" >/dev/null || fail "docker commit"
dk rm mk >/dev/null
[ "$(dk image inspect -f '{{len .RootFS.Layers}}' "$IMG")" = 2 ] || fail "$IMG does not have two layers"
TOP=$(dk image inspect -f '{{.GraphDriver.Data.UpperDir}}' "$IMG")
BASE=$(dk image inspect -f '{{.GraphDriver.Data.LowerDir}}' "$IMG")
[ -d "$TOP" ] && [ -d "$BASE" ] || fail "no overlay2 layer directories for $IMG"
TOP_ID=$(basename "$(dirname "$TOP")") BASE_ID=$(basename "$(dirname "$BASE")")
echo "top layer $TOP_ID, base layer $BASE_ID"

# Reads from both layers: busybox and big.bin (base), top.bin and the
# replaced version file (top), and a listing that must hide gone.bin.
RUN=(--rm --network none "$IMG" /bin/sh -c
     'cat /etc/version; head -c 65536 /data/big.bin | md5sum; md5sum /data/top.bin; ls /data')
dk run "${RUN[@]}" >"$TMP/expected" || fail "docker run on the plain layers"
grep -q '^v2$' "$TMP/expected" && ! grep -q gone.bin "$TMP/expected" || fail "image layers not as built: $(cat "$TMP/expected")"

note "yolo-docker capture"
"$YD" capture "$IMG" -o "$TMP/images" -- "${RUN[@]}" >"$TMP/captured" 2>"$TMP/capture.err" ||
	{ cat "$TMP/capture.err"; fail "yolo-docker capture"; }
cat "$TMP/capture.err"
diff -u "$TMP/expected" "$TMP/captured" || fail "container output differs while capturing"
! findmnt -rn -t fuse.yolo-capture -o TARGET | grep -q "^$TMP/" || fail "capture left a recording mount"
[ "$(dk ps -aq | wc -l)" = 0 ] || fail "capture left a container"
ls -A "$TMP/images"
[ "$(ls -A "$TMP/images" | wc -l)" = 2 ] || fail "expected exactly two boot images"
for id in "$TOP_ID" "$BASE_ID"; do
	[ -f "$TMP/images/$id.yolo" ] || fail "no boot image for layer $id"
	"$YOLO_IMAGE" inspect "$TMP/images/$id.yolo" >"$TMP/inspect.$id" || fail "inspect $id"
	! grep -q unread.bin "$TMP/inspect.$id" || fail "a file nobody read is in layer $id's image"
done
"$YOLO_IMAGE" verify --source "$TOP" "$TMP/images/$TOP_ID.yolo" >/dev/null || fail "top image does not verify"
"$YOLO_IMAGE" verify --source "$BASE" "$TMP/images/$BASE_ID.yolo" >/dev/null || fail "base image does not verify"
grep -q " data/top.bin$" "$TMP/inspect.$TOP_ID" || fail "top.bin not in the top layer's image"
grep -q " etc/version$" "$TMP/inspect.$TOP_ID" || fail "etc/version not in the top layer's image"
grep -q " bin/busybox$" "$TMP/inspect.$BASE_ID" || fail "busybox not in the base layer's image"
grep -q " data/big.bin$" "$TMP/inspect.$BASE_ID" || fail "big.bin not in the base layer's image"
! grep -q " etc/version$" "$TMP/inspect.$BASE_ID" || fail "the shadowed etc/version was read from the base layer"

note "capture --merge: a second start adds its blocks, an unread layer keeps its image"
cp "$TMP/images/$TOP_ID.yolo" "$TMP/top.before"
"$YD" capture "$IMG" -o "$TMP/images" --merge -- --rm --network none "$IMG" md5sum /data/unread.bin \
	>/dev/null 2>"$TMP/merge.err" || { cat "$TMP/merge.err"; fail "yolo-docker capture --merge"; }
cat "$TMP/merge.err"
grep -q "layer $TOP_ID: not read; its older image is kept" "$TMP/merge.err" || fail "top layer not reported as unread"
cmp -s "$TMP/top.before" "$TMP/images/$TOP_ID.yolo" || fail "--merge changed the image of a layer it did not read"
"$YOLO_IMAGE" inspect "$TMP/images/$BASE_ID.yolo" >"$TMP/inspect.merged" || fail "inspect merged"
grep -q " data/unread.bin$" "$TMP/inspect.merged" && grep -q " data/big.bin$" "$TMP/inspect.merged" ||
	fail "the merged base image lacks one of the two starts' files"
[ "$(ls -A "$TMP/images" | wc -l)" = 2 ] || fail "--merge left extra files: $(ls -A "$TMP/images")"

note "a container started before the mount"
dk run -d --name before --network none "$IMG" /bin/sh -c 'while true; do sleep 1; done' >/dev/null ||
	fail "docker run -d (before)"

note "yolo-docker mount (twice)"
drop_caches
t0=$(date +%s%N)
"$YD" mount "$IMG" --images "$TMP/images" || fail "yolo-docker mount"
echo "mounted in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$(layer_mounts)" = 2 ] || fail "expected 2 yolofs mounts, found $(layer_mounts)"
"$YD" mount "$IMG" --images "$TMP/images" 2>"$TMP/again" || fail "a second mount failed"
grep -q "already mounted" "$TMP/again" || fail "the second mount did not say so: $(cat "$TMP/again")"
[ "$(layer_mounts)" = 2 ] || fail "the second mount changed the mounts: $(layer_mounts)"

note "docker run on yolofs"
t0=$(date +%s%N)
dk run "${RUN[@]}" >"$TMP/served" || fail "docker run on yolofs"
echo "docker run on yolofs: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
diff -u "$TMP/expected" "$TMP/served" || fail "container output differs on yolofs"
dk run --rm --network none --user 1000 "$IMG" md5sum /data/top.bin >"$TMP/user" || fail "docker run --user 1000 on yolofs"
grep -q "$(md5sum <"$TMP/top.bin" | cut -d' ' -f1)" "$TMP/user" || fail "--user 1000 read wrong data"
sleep 1.5                        # metrics are rewritten every second
status
cat "$TMP/status"
for id in "$TOP_ID" "$BASE_ID"; do
	pid=$(status_field "$id" pid)
	[ -n "$pid" ] && running "$pid" || fail "status gives no running yolofs for layer $id"
	n=$(( $(status_field "$id" hits) + $(status_field "$id" prefilled_bytes) ))
	echo "layer $id: hits $(status_field "$id" hits), bytes prefilled $(status_field "$id" prefilled_bytes)"
	[ "$n" -gt 0 ] || fail "layer $id's image was not used"
	[ "$(status_field "$id" files_stale)" = 0 ] || fail "layer $id: files reported stale"
done

note "yolo-docker umount with a container started while mounted"
dk run -d --name during --network none "$IMG" /bin/sh -c 'while true; do sleep 1; done' >/dev/null ||
	fail "docker run -d (during)"
status
during_pid=$(status_field "$TOP_ID" pid)
"$YD" umount "$IMG" 2>"$TMP/umount.err" || { cat "$TMP/umount.err"; fail "yolo-docker umount"; }
cat "$TMP/umount.err"
[ "$(layer_mounts)" = 0 ] || fail "layers still mounted after umount"
grep -q "keeps serving" "$TMP/umount.err" || fail "umount did not report the daemon serving 'during'"
"$YD" status "$IMG" | grep -q "^$TOP_ID detached pid=$during_pid" || fail "status does not show the detached daemon"
want=$(md5sum <"$TMP/top.bin" | cut -d' ' -f1)
for c in before during; do
	dk exec "$c" md5sum /data/top.bin | grep -q "$want" || fail "container '$c' cannot read after umount"
	dk exec "$c" cat /etc/version | grep -q '^v2$' || fail "container '$c' cannot read /etc/version after umount"
done
dk rm -f during >/dev/null
for i in $(seq 100); do running "$during_pid" || break; sleep 0.1; done
! running "$during_pid" || fail "yolofs $during_pid still runs after its last container stopped"
! "$YD" status "$IMG" | grep -q detached || fail "status still shows a detached daemon"
dk run "${RUN[@]}" >"$TMP/after" || fail "docker run after umount"
diff -u "$TMP/expected" "$TMP/after" || fail "container output differs after umount"

note "a truncated image is refused alone: its layer is served from the source"
mkdir "$TMP/bad"
cp "$TMP/images/$TOP_ID.yolo" "$TMP/bad/"
head -c 1000 "$TMP/images/$BASE_ID.yolo" >"$TMP/bad/$BASE_ID.yolo"
"$YD" mount "$IMG" --images "$TMP/bad" 2>"$TMP/bad.err" || { cat "$TMP/bad.err"; fail "mount with a truncated image"; }
cat "$TMP/bad.err"
[ "$(layer_mounts)" = 2 ] || fail "$(layer_mounts) layers mounted with one bad image, expected 2"
grep -rq "refused" "$TMP"/state/"$BASE_ID".*/log || fail "the truncated image of $BASE_ID was not refused in its daemon's log"
dk run "${RUN[@]}" >"$TMP/served" || fail "docker run with a refused image"
diff -u "$TMP/expected" "$TMP/served" || fail "container output differs with a refused image"
"$YD" umount "$IMG" 2>/dev/null || fail "yolo-docker umount (refused image)"
[ "$(layer_mounts)" = 0 ] || fail "layers still mounted after umount (refused image)"

note "a failed mount leaves nothing mounted"
rc=0; "$YD" mount "$IMG" --images "$TMP/images" -o no_such_option 2>"$TMP/fail.err" || rc=$?
cat "$TMP/fail.err"
[ "$rc" = 1 ] || fail "mount with an unknown yolofs option: exit $rc"
[ "$(layer_mounts)" = 0 ] || fail "a failed mount left $(layer_mounts) mounts"

note "yolofs options pass through: the read path alone (no_prefill) hits"
"$YD" mount "$IMG" --images "$TMP/images" -o no_prefill || fail "yolo-docker mount -o no_prefill"
dk run "${RUN[@]}" >"$TMP/served" || fail "docker run on yolofs (no_prefill)"
diff -u "$TMP/expected" "$TMP/served" || fail "container output differs on yolofs (no_prefill)"
sleep 1.5
status
for id in "$TOP_ID" "$BASE_ID"; do
	echo "layer $id: hits $(status_field "$id" hits), bytes prefilled $(status_field "$id" prefilled_bytes)"
	[ "$(status_field "$id" hits)" -gt 0 ] || fail "layer $id: no hits through the read path"
	[ "$(status_field "$id" prefilled_bytes)" = 0 ] || fail "layer $id: prefilled despite no_prefill"
done

note "umount after the daemon was killed"
pid=$(status_field "$TOP_ID" pid)
kill -KILL "$pid"
for i in $(seq 50); do running "$pid" || break; sleep 0.1; done
"$YD" status "$IMG" | grep -q "^$TOP_ID dead" || fail "status does not report the dead mount"
"$YD" umount "$IMG" || fail "yolo-docker umount of a dead mount"
[ "$(layer_mounts)" = 0 ] || fail "layers still mounted after umount of a dead mount"
[ "$(ls -A "$TMP/state" | grep -vc '^lock$')" = 0 ] || fail "state left behind: $(ls "$TMP/state")"

note "umount --all --force stops a daemon that serves a running container"
"$YD" mount "$IMG" --images "$TMP/images" || fail "yolo-docker mount (for --force)"
status
pid=$(status_field "$BASE_ID" pid)
dk run -d --name during2 --network none "$IMG" /bin/sh -c 'while true; do sleep 1; done' >/dev/null ||
	fail "docker run -d (during2)"
"$YD" status --all | grep -c " mounted pid=" | grep -qx 2 || fail "status --all does not list the two mounts"
"$YD" umount --all --force || fail "yolo-docker umount --all --force"
[ "$(layer_mounts)" = 0 ] || fail "layers still mounted after umount --force"
! running "$pid" || fail "yolofs $pid still runs after umount --force"
dk rm -f during2 >/dev/null || fail "docker rm -f of a container whose yolofs was stopped"
[ "$(ls -A "$TMP/state" | grep -vc '^lock$')" = 0 ] || fail "state left behind: $(ls "$TMP/state")"

note "docker intact"
dk run "${RUN[@]}" >"$TMP/after" || fail "docker run after the last umount"
diff -u "$TMP/expected" "$TMP/after" || fail "container output differs after the last umount"
dk exec before md5sum /data/top.bin | grep -q "$want" || fail "container 'before' broken"
dk rm -f before >/dev/null
dk image inspect "$IMG" >/dev/null || fail "docker image inspect"

LT=$YD LT_STATE=$TMP/state LEARN_LAYERS="$TOP_ID=$TOP $BASE_ID=$BASE"
run_start() { dk run "${RUN[@]}" >"$1"; }
learn_zero_touch "$TMP/learn"

note "mount --images and --learn serves both"
"$YD" mount "$IMG" --images "$TMP/images" --learn "$TMP/learn" || fail "yolo-docker mount --images --learn"
drop_caches
dk run "${RUN[@]}" >"$TMP/served" || fail "docker run on yolofs (--images --learn)"
diff -u "$TMP/expected" "$TMP/served" || fail "container output differs on yolofs (--images --learn)"
sleep 1.5
status
cat "$TMP/status"
for id in "$TOP_ID" "$BASE_ID"; do
	[ $(( $(status_field "$id" hits) + $(status_field "$id" prefilled_bytes) )) -gt 0 ] ||
		fail "layer $id: no image used with --images and --learn"
	tr '\0' ' ' <"/proc/$(status_field "$id" pid)/cmdline" | grep -q "images=$TMP/images/$id.yolo,learn=$TMP/learn,learn_by=mount," ||
		fail "layer $id: yolofs not given both the captured image and learn="
	grep -q "^$id learnt image=$TMP/learn/" "$TMP/status" || fail "layer $id: its learnt image is not served"
done

note "docker rmi with yolofs mounted: nothing is left"
pids="$(status_field "$TOP_ID" pid) $(status_field "$BASE_ID" pid)"
dk rmi "$IMG" yolo-base:1 >/dev/null || fail "docker rmi"
[ ! -e "$TOP" ] && [ ! -e "$BASE" ] || fail "docker rmi left the layer directories"
[ "$(layer_mounts)" = 0 ] || fail "docker rmi left $(layer_mounts) yolofs mounts"
for pid in $pids; do
	for i in $(seq 50); do running "$pid" || break; sleep 0.1; done
	! running "$pid" || fail "yolofs $pid still runs after docker rmi removed its layer"
done
# Which of the two let the removal through: yolofs detaching itself when
# dockerd removed the layer's last entry, or dockerd's unmount on EBUSY.
grep -h "source is being removed" "$TMP"/state/*/log || echo "(no yolofs detached itself)"
"$YD" status --all | grep -qx "all layers with yolo-docker state: 0" || fail "state left after docker rmi"
left=$(findmnt -rn -t fuse.yolofs,fuse.yolo-capture,overlay -o TARGET,FSTYPE | grep "^$TMP" || true)
[ -z "$left" ] || fail "mounts left: $left"
learn_removed "$TMP/learn" 2
echo PASS
