#!/bin/bash
# test_yolo_containerd.sh - scripts/yolo-containerd on a real containerd
# (overlayfs snapshotter), and image removal with yolofs mounted.
#
# Imports a two-layer OCI image (a busybox rootfs, then a layer that
# replaces one file, deletes one with a whiteout and adds one), captures a
# `ctr run` with `yolo-containerd capture` (one boot image per snapshot
# directory) and a `ctr run -d` with --merge --timeout, mounts yolofs over both snapshots/N/fs with `yolo-containerd
# mount` and checks that a new `ctr run` prints what it printed without
# yolofs and takes its reads from both boot images (metrics); `umount` with a
# container started while mounted leaves it a detached daemon that exits
# when the container stops; with -o no_prefill the reads hit the images
# through the read path.  Zero-touch (learn_lib.sh): `yolo-containerd mount
# --learn` on an empty directory, a first `ctr run` learnt by yolofs (one
# image per snapshot), a second one served from them (data and namespace
# questions, at most 1% of its bytes from the layers).  Then removal, with
# yolofs mounted: `ctr images rm` (containerd's garbage collector removes
# the snapshots at once; mounted with --images and --learn) must leave no
# mount, no snapshot directory, no daemon and no "failed to remove
# directory" in containerd's log, and the next command deletes the learnt
# images; and again with --sync while a container of the image still runs
# (the snapshots stay until the container is deleted, then go the same way).
source "$(dirname "$0")/../mount/lib.sh"
source "$(dirname "$0")/containerd_lib.sh"
source "$(dirname "$0")/learn_lib.sh"

[ -n "${YOLO_CAPTURE:-}" ] && [ -n "${YOLO_IMAGE:-}" ] || skip "YOLO_CAPTURE/YOLO_IMAGE not set (run through meson test)"
YC=${YOLO_SOURCE_ROOT:?}/scripts/yolo-containerd
[ -x "$YC" ] || fail "$YC is missing"
command -v flock >/dev/null && command -v setsid >/dev/null || skip "flock/setsid missing (util-linux)"
export CTR YOLOFS YOLO_CAPTURE YOLO_IMAGE
export CONTAINERD_ADDRESS=$CT_SOCK CONTAINERD_NAMESPACE=$CT_NS
export YOLO_CONTAINERD_STATE=$TMP/state
IMG=docker.io/library/yolo-test:2

# Stop whatever yolo-containerd left running (by the pids in its state),
# then containerd; on failure show the daemons' logs.
yc_cleanup() {
	local rc=$? f
	if [ -d "$TMP/state" ]; then
		[ "$rc" = 0 ] || for f in "$TMP"/state/*/log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 5 "$f" >&2; }; done
		for f in "$TMP"/state/*/pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
		sleep 0.5
	fi
	[ "$rc" = 0 ] || grep -E "level=(warning|error)" "$CT_DIR/containerd.log" 2>/dev/null | tail -n 5 >&2
	containerd_stop
	cleanup
}
trap yc_cleanup EXIT

# running PID: the process exists and is not a zombie.
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st%% *}" != Z ]; }
# layer_mounts: how many fuse.yolofs mounts there are under containerd's root.
layer_mounts() { findmnt -rn -t fuse.yolofs -o TARGET | grep -c "^$CT_DIR/" || true; }
# snapshot_dirs: the snapshot directories, by number.
snapshot_dirs() { ls "$CT_SNAPSHOTS" | sort -n | tr '\n' ' '; }
status() { "$YC" status "$IMG" >"$TMP/status" || fail "yolo-containerd status"; }
# status_field ID KEY: a key=value field of the layer's line in $TMP/status.
status_field() { awk -v id="$1" -v k="$2=" '$1 == id && $2 == "mounted" {
	for (i = 3; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$TMP/status"; }
# failed_removals: containerd's "failed to remove directory" warnings so far.
failed_removals() { grep -c "failed to remove directory" "$CT_DIR/containerd.log" || true; }

# import: import the image; set BASE and TOP to its two snapshot numbers
# (the only snapshots, bottom one created first).
import() {
	ct images import "$TMP/image.tar" >/dev/null || fail "ctr images import"
	set -- $(snapshot_dirs)
	[ $# = 2 ] || fail "expected two snapshot directories after import, found: $*"
	BASE=$1 TOP=$2
	echo "snapshots: top $TOP, base $BASE"
}

# capture: boot images for the current snapshots, from a `ctr run`.
capture() {
	"$YC" capture "$IMG" -o "$TMP/images" -- --rm "${CT_RUN[@]}" "$IMG" cap "${CMD[@]}" \
		</dev/null >"$TMP/captured" 2>"$TMP/capture.err" || { cat "$TMP/capture.err"; fail "yolo-containerd capture"; }
	cat "$TMP/capture.err"
	diff -u "$TMP/expected" "$TMP/captured" || fail "container output differs while capturing"
}

# mount_layers [OPTIONS]: yolo-containerd mount; set DAEMONS to the two
# yolofs pids.
mount_layers() {
	"$YC" mount "$IMG" --images "$TMP/images" "$@" || fail "yolo-containerd mount"
	[ "$(layer_mounts)" = 2 ] || fail "expected 2 yolofs mounts, found $(layer_mounts)"
	status
	DAEMONS="$(status_field "$TOP" pid) $(status_field "$BASE" pid)"
	for pid in $DAEMONS; do running "$pid" || fail "no running yolofs in status: $(cat "$TMP/status")"; done
}

# removed: after the image went (at T0, date +%s%N), wait for containerd's
# garbage collection; then nothing may be left: no yolofs mount, no snapshot
# directory, no daemon, no failed removal in containerd's log, no state.
removed() {
	local pid end=$((SECONDS + 30))
	while [ -n "$(snapshot_dirs)" ] || [ "$(layer_mounts)" != 0 ]; do
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.05
	done
	echo "$(( ($(date +%s%N) - T0) / 1000000 )) ms later: snapshots '$(snapshot_dirs)', yolofs mounts $(layer_mounts)"
	[ "$(failed_removals)" = "$FAILED0" ] ||
		fail "containerd failed to remove: $(grep "failed to remove directory" "$CT_DIR/containerd.log" | tail -n 2)"
	[ -z "$(snapshot_dirs)" ] || fail "snapshot directories left behind: $(snapshot_dirs)"
	[ "$(layer_mounts)" = 0 ] || fail "yolofs mounts left behind: $(layer_mounts)"
	for pid in $DAEMONS; do
		while running "$pid" && [ "$SECONDS" -lt "$end" ]; do sleep 0.05; done
		! running "$pid" || fail "yolofs $pid still runs after its layer was removed"
	done
	echo "$(( ($(date +%s%N) - T0) / 1000000 )) ms later: the daemons have exited"
	"$YC" status --all >"$TMP/all" || fail "status --all"
	# (Learnt images of the removed layers are listed until deleted: learn_removed.)
	[ "$(grep -v " removed (by containerd) learnt=" "$TMP/all")" = "all layers with yolo-containerd state: 0" ] ||
		fail "state left: $(cat "$TMP/all")"
}

note "bad usage exits 2"
for args in "" "bogus" "mount $IMG" "mount $IMG --learn $TMP/l -o learn_by=file" "capture $IMG" "status" "umount --what $IMG" "-H x status --all"; do
	rc=0; "$YC" $args >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "yolo-containerd $args: exit $rc, expected 2"
done

containerd_start
rc=0; "$YC" status docker.io/library/nosuch:1 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <"$TMP/err")" = 1 ] || fail "status of a missing image: exit $rc, $(cat "$TMP/err")"
FAILED0=$(failed_removals)

note "building a two-layer OCI image"
R=$TMP/rootfs
busybox_rootfs "$R"
echo v1 >"$R/etc/version"
head -c 3000000 /dev/urandom >"$R/data/big.bin"          # read partly
head -c 200000 /dev/urandom >"$R/data/gone.bin"          # deleted by the top layer
head -c 1000000 /dev/urandom >"$R/data/unread.bin"       # never read
tar -C "$R" -cf "$TMP/base.tar" .
T=$TMP/toplayer
mkdir -p "$T/etc" "$T/data"
echo v2 >"$T/etc/version"
head -c 400000 /dev/urandom >"$T/data/top.bin"
: >"$T/data/.wh.gone.bin"                                 # whiteout: gone.bin is deleted
tar -C "$T" -cf "$TMP/top.tar" .
oci_archive "$TMP/image.tar" "$IMG" "$TMP/base.tar" "$TMP/top.tar"
import

# Reads from both layers: busybox and big.bin (base), top.bin and the
# replaced version file (top), and a listing that must hide gone.bin.
CMD=(/bin/sh -c 'cat /etc/version; head -c 65536 /data/big.bin | md5sum; md5sum /data/top.bin; ls /data')
ct run --rm "${CT_RUN[@]}" "$IMG" plain "${CMD[@]}" </dev/null >"$TMP/expected" || fail "ctr run on the plain layers"
grep -q '^v2$' "$TMP/expected" && ! grep -q gone.bin "$TMP/expected" || fail "image layers not as built: $(cat "$TMP/expected")"

note "yolo-containerd capture"
capture
! findmnt -rn -t fuse.yolo-capture -o TARGET | grep -q "^$TMP/" || fail "capture left a recording mount"
[ -z "$(ct containers ls -q)" ] || fail "capture left a container: $(ct containers ls -q)"
ls -A "$TMP/images"
[ "$(ls -A "$TMP/images" | wc -l)" = 2 ] || fail "expected exactly two boot images"
for id in "$TOP" "$BASE"; do
	[ -f "$TMP/images/$id.yolo" ] || fail "no boot image for snapshot $id"
	"$YOLO_IMAGE" inspect "$TMP/images/$id.yolo" >"$TMP/inspect.$id" || fail "inspect $id"
	"$YOLO_IMAGE" verify --source "$CT_SNAPSHOTS/$id/fs" "$TMP/images/$id.yolo" >/dev/null ||
		fail "the image of snapshot $id does not verify against it"
	! grep -q unread.bin "$TMP/inspect.$id" || fail "a file nobody read is in snapshot $id's image"
done
grep -q " data/top.bin$" "$TMP/inspect.$TOP" || fail "top.bin not in the top layer's image"
grep -q " etc/version$" "$TMP/inspect.$TOP" || fail "etc/version not in the top layer's image"
grep -q " bin/busybox$" "$TMP/inspect.$BASE" || fail "busybox not in the base layer's image"
grep -q " data/big.bin$" "$TMP/inspect.$BASE" || fail "big.bin not in the base layer's image"
! grep -q " etc/version$" "$TMP/inspect.$BASE" || fail "the shadowed etc/version was read from the base layer"

note "capture --merge --timeout of a detached container (ctr run -d): stopped, removed, merged"
cp "$TMP/images/$TOP.yolo" "$TMP/top.before"
"$YC" capture "$IMG" -o "$TMP/images" --merge --timeout 3 -- -d "${CT_RUN[@]}" "$IMG" svc \
	/bin/sh -c 'md5sum /data/unread.bin; sleep 100' </dev/null >/dev/null 2>"$TMP/merge.err" ||
	{ cat "$TMP/merge.err"; fail "yolo-containerd capture --merge --timeout"; }
cat "$TMP/merge.err"
grep -q "stopped by --timeout" "$TMP/merge.err" || fail "the capture did not end by its timeout"
[ -z "$(ct containers ls -q)" ] || fail "capture --timeout left a container: $(ct containers ls -q)"
grep -q "layer $TOP: not read; its older image is kept" "$TMP/merge.err" || fail "top layer not reported as unread"
cmp -s "$TMP/top.before" "$TMP/images/$TOP.yolo" || fail "--merge changed the image of a layer it did not read"
"$YOLO_IMAGE" inspect "$TMP/images/$BASE.yolo" >"$TMP/inspect.merged" || fail "inspect merged"
grep -q " data/unread.bin$" "$TMP/inspect.merged" && grep -q " data/big.bin$" "$TMP/inspect.merged" ||
	fail "the merged base image lacks one of the two starts' files"

note "yolo-containerd mount (twice); ctr run served by yolofs"
mount_layers
"$YC" mount "$IMG" --images "$TMP/images" 2>"$TMP/again" || fail "a second mount failed"
grep -q "already mounted" "$TMP/again" || fail "the second mount did not say so: $(cat "$TMP/again")"
[ "$(layer_mounts)" = 2 ] || fail "the second mount changed the mounts: $(layer_mounts)"
drop_caches
t0=$(date +%s%N)
ct run --rm "${CT_RUN[@]}" "$IMG" served "${CMD[@]}" </dev/null >"$TMP/served" || fail "ctr run on yolofs"
echo "ctr run on yolofs: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
diff -u "$TMP/expected" "$TMP/served" || fail "container output differs on yolofs"
sleep 1.5                        # metrics are rewritten every second
status
cat "$TMP/status"
for id in "$TOP" "$BASE"; do
	n=$(( $(status_field "$id" hits) + $(status_field "$id" prefilled_bytes) ))
	[ "$n" -gt 0 ] || fail "snapshot $id's boot image was not used"
	[ "$(status_field "$id" files_stale)" = 0 ] || fail "snapshot $id: files reported stale"
done

note "umount with a container started while mounted"
ct run -d "${CT_RUN[@]}" "$IMG" during /bin/sh -c 'while true; do sleep 1; done' </dev/null >/dev/null ||
	fail "ctr run -d (during)"
during_pid=$(status_field "$TOP" pid)
"$YC" umount "$IMG" 2>"$TMP/umount.err" || { cat "$TMP/umount.err"; fail "yolo-containerd umount"; }
cat "$TMP/umount.err"
[ "$(layer_mounts)" = 0 ] || fail "layers still mounted after umount"
"$YC" status "$IMG" | grep -q "^$TOP detached pid=$during_pid" || fail "status does not show the detached daemon"
want=$(md5sum <"$TMP/toplayer/data/top.bin" | cut -d' ' -f1)
ct tasks exec --exec-id check during md5sum /data/top.bin </dev/null | grep -q "$want" ||
	fail "the container cannot read after umount"
ct tasks rm -f during >/dev/null && ct containers rm during || fail "removing container 'during'"
end=$((SECONDS + 30))
while running "$during_pid" && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
! running "$during_pid" || fail "yolofs $during_pid still runs after its last container stopped"

LT=$YC LT_STATE=$TMP/state LEARN_LAYERS="$TOP=$CT_SNAPSHOTS/$TOP/fs $BASE=$CT_SNAPSHOTS/$BASE/fs"
run_start() { ct run --rm "${CT_RUN[@]}" "$IMG" learn "${CMD[@]}" </dev/null >"$1"; }
learn_zero_touch "$TMP/learn"

note "ctr images rm with yolofs mounted (--images and --learn), no container: nothing is left"
mount_layers --learn "$TMP/learn"
for id in "$TOP" "$BASE"; do
	grep -q "^$id learnt image=$TMP/learn/" "$TMP/status" || fail "snapshot $id: its learnt image is not served"
done
T0=$(date +%s%N)
ct images rm "$IMG" >/dev/null || fail "ctr images rm"
echo "ctr images rm returned after $(( ($(date +%s%N) - T0) / 1000000 )) ms"
removed
learn_removed "$TMP/learn" 2

note "ctr images rm --sync with yolofs mounted while a container of the image runs"
import
capture
mount_layers -o no_prefill       # the container's reads must hit the images through the read path
ct run -d "${CT_RUN[@]}" "$IMG" running /bin/sh -c 'md5sum /data/top.bin; while true; do sleep 1; done' \
	</dev/null >/dev/null || fail "ctr run -d (running)"
sleep 1.5
status
cat "$TMP/status"
for id in "$TOP" "$BASE"; do
	[ "$(status_field "$id" hits)" -gt 0 ] || fail "snapshot $id: no hits through the read path"
	[ "$(status_field "$id" prefilled_bytes)" = 0 ] || fail "snapshot $id: prefilled despite no_prefill"
done
T0=$(date +%s%N)
ct images rm --sync "$IMG" >/dev/null || fail "ctr images rm --sync"
echo "ctr images rm --sync returned after $(( ($(date +%s%N) - T0) / 1000000 )) ms"
[ -z "$(ct images ls -q)" ] || fail "the image is still listed"
# The container keeps its snapshots (and so the mounts) until it is deleted.
[ -d "$CT_SNAPSHOTS/$BASE/fs" ] && [ -d "$CT_SNAPSHOTS/$TOP/fs" ] ||
	fail "the running container's layers went: $(snapshot_dirs)"
[ "$(layer_mounts)" = 2 ] || fail "the mounts went while the container runs: $(layer_mounts)"
ct tasks exec --exec-id check running md5sum /data/top.bin </dev/null | grep -q "$want" ||
	fail "the container cannot read after its image was removed"
T0=$(date +%s%N)
ct tasks rm -f running >/dev/null && ct containers rm running || fail "removing container 'running'"
echo "the container was removed after $(( ($(date +%s%N) - T0) / 1000000 )) ms"
removed

note "containerd intact"
import
ct run --rm "${CT_RUN[@]}" "$IMG" after "${CMD[@]}" </dev/null >"$TMP/after" || fail "ctr run after the removals"
diff -u "$TMP/expected" "$TMP/after" || fail "container output differs after the removals"
ct images rm --sync "$IMG" >/dev/null || fail "ctr images rm (plain)"
[ -z "$(snapshot_dirs)" ] || fail "plain removal left: $(snapshot_dirs)"
left=$(findmnt -rn -t fuse.yolofs,fuse.yolo-capture,overlay -o TARGET,FSTYPE | grep "^$TMP" || true)
[ -z "$left" ] || fail "mounts left: $left"
echo PASS
