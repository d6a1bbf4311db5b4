#!/bin/bash
# test_capture.sh - yolo-capture on real mounts: what it records and when it
# stops.  Reads made before the capture (already in the page cache) are
# still seen; blocks come out in first-access order; each stop condition
# (command exit, --until-file, --timeout, SIGINT) ends the run cleanly with
# nothing left mounted; a capture killed with SIGKILL leaves a partial trace
# that `build` refuses; `build` from a complete trace gives the same image.
source "$(dirname "$0")/lib.sh"
[ -x "${YOLO_CAPTURE:-}" ] || fail "YOLO_CAPTURE is not set (run through meson test)"

SRC=$TMP/src
mkdir -p "$SRC/dir"
head -c 1000000 /dev/urandom >"$SRC/dir/disk.img"
head -c 50000 /dev/urandom >"$SRC/small"
head -c 300000 /dev/urandom >"$SRC/untouched"
cat "$SRC/dir/disk.img" "$SRC/small" >/dev/null      # warm the page cache first

note "command exit"
"$YOLO_CAPTURE" -o "$TMP/a.yolo" -t "$TMP/a.trace" "$SRC" -- sh -c "
	dd if='$SRC/dir/disk.img' bs=4096 skip=200 count=3 status=none >/dev/null
	cat '$SRC/small' >/dev/null
	dd if='$SRC/dir/disk.img' bs=4096 skip=5 count=1 status=none >/dev/null
	dd if='$SRC/dir/disk.img' bs=4096 skip=200 count=1 status=none >/dev/null" \
	>"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err"; fail "capture failed"; }
cat "$TMP/out"
! findmnt -n -M "$SRC" >/dev/null || fail "capture left a mount on $SRC"
grep -q "stopped: command exited" "$TMP/err" || fail "no stop reason on stderr"
"$YOLO_IMAGE" inspect --blocks "$TMP/a.yolo" >"$TMP/inspect" || fail "inspect"
# First-access order: disk 200-202, small 0-12 (50000 bytes: last block 848), disk 5.
awk '$1 ~ /^[0-9]+$/ && NF == 6 { print $2, $6 }' "$TMP/inspect" >"$TMP/order"
{ for b in 200 201 202; do echo "$b dir/disk.img"; done
  for b in $(seq 0 12); do echo "$b small"; done
  echo "5 dir/disk.img"; } >"$TMP/want"
diff -u "$TMP/want" "$TMP/order" || fail "blocks not recorded in first-access order"
grep -q " 848 *raw *small$" "$TMP/inspect" || fail "short last block of small not 848 bytes"
! grep -q untouched "$TMP/inspect" || fail "an unread file is in the image"
"$YOLO_IMAGE" verify --source "$SRC" "$TMP/a.yolo" >/dev/null || fail "image does not verify"

note "build from the saved trace"
"$YOLO_CAPTURE" build --trace "$TMP/a.trace" -o "$TMP/b.yolo" "$SRC" >/dev/null || fail "build"
"$YOLO_IMAGE" inspect --blocks "$TMP/b.yolo" | awk '$1 ~ /^[0-9]+$/ && NF == 6 { print $2, $6 }' |
	diff -q - "$TMP/order" >/dev/null || fail "image built from the trace differs"

note "--until-file"
start=$(date +%s)
"$YOLO_CAPTURE" -q -o "$TMP/u.yolo" --until-file "$TMP/done" "$SRC" -- \
	sh -c "cat '$SRC/small' >/dev/null; touch '$TMP/done'; sleep 60" 2>"$TMP/err" || { cat "$TMP/err"; fail "until-file capture"; }
[ $(($(date +%s) - start)) -lt 30 ] || fail "--until-file did not stop the capture"
[ -f "$TMP/u.yolo" ] || fail "no image after --until-file"
! findmnt -n -M "$SRC" >/dev/null || fail "mount left after --until-file"

note "--timeout"
start=$(date +%s)
"$YOLO_CAPTURE" -o "$TMP/t.yolo" --timeout 2 "$SRC" -- \
	sh -c "cat '$SRC/small' >/dev/null; sleep 60" 2>"$TMP/err" || { cat "$TMP/err"; fail "timeout capture"; }
[ $(($(date +%s) - start)) -lt 30 ] || fail "--timeout did not stop the capture"
grep -q "stopped: timeout" "$TMP/err" || fail "timeout not reported"

note "SIGINT"
mkdir -p "$TMP/mnt"
"$YOLO_CAPTURE" -o "$TMP/i.yolo" --mountpoint "$TMP/mnt" "$SRC" -- \
	sh -c "cat '$TMP/mnt/small' >/dev/null; sleep 60" 2>"$TMP/err" & pid=$!
for i in $(seq 100); do grep -q "recording" "$TMP/err" 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -INT $pid
rc=0; wait $pid || rc=$?
[ $rc = 0 ] || { cat "$TMP/err"; fail "capture exited $rc after SIGINT"; }
grep -q "stopped: interrupted" "$TMP/err" || fail "SIGINT not reported"
"$YOLO_IMAGE" inspect "$TMP/i.yolo" | grep -q " small$" || fail "reads before SIGINT not in the image"
! findmnt -n -M "$TMP/mnt" >/dev/null || fail "mount left after SIGINT"

note "killed capture: partial trace refused"
"$YOLO_CAPTURE" -o "$TMP/k.yolo" -t "$TMP/k.trace" --mountpoint "$TMP/mnt" "$SRC" -- \
	sh -c "cat '$TMP/mnt/small' '$TMP/mnt/dir/disk.img' >/dev/null; exec sleep 607" 2>/dev/null & pid=$!
for i in $(seq 100); do [ -s "$TMP/k.trace" ] && break; sleep 0.1; done
sleep 1
kill -KILL $pid; wait $pid 2>/dev/null
pkill -x -f "sleep 607" || true   # the killed capture's command outlives it
umount -l "$TMP/mnt" 2>/dev/null || true
[ ! -e "$TMP/k.yolo" ] || fail "a killed capture wrote an image"
rc=0; "$YOLO_CAPTURE" build --trace "$TMP/k.trace" -o "$TMP/k.yolo" "$SRC" 2>"$TMP/err" || rc=$?
[ $rc != 0 ] || fail "build accepted a partial trace"
grep -q "partial trace" "$TMP/err" || { cat "$TMP/err"; fail "partial trace not named"; }

note "bad usage"
rc=0; "$YOLO_CAPTURE" -o "$TMP/x.yolo" "$TMP/nonexistent" -- true 2>"$TMP/err" || rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] || { cat "$TMP/err"; fail "missing SOURCE: want one line, exit 2"; }
rc=0; "$YOLO_CAPTURE" "$SRC" -- true 2>"$TMP/err" || rc=$?
[ $rc = 2 ] || fail "missing -o accepted"
echo PASS
