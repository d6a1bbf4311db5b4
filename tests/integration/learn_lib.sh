# learn_lib.sh - zero-touch checks shared by test_yolo_docker.sh and
# test_yolo_containerd.sh (sourced after ../mount/lib.sh): `TOOL mount IMAGE
# --learn DIR` on an empty DIR, a first container start that yolofs learns
# by itself (one image per layer, with the namespace questions), and a
# second start, after dropping the caches, served from those images.
#
# The test sets LT (yolo-docker or yolo-containerd), LT_STATE (its state
# directory), IMG, LEARN_LAYERS ("ID=DIR ...", every layer of IMG, which the
# start must all read), $TMP/expected (the start's output without yolofs),
# and defines run_start OUT (one container start, its output to OUT).

# learn_sd ID: state directory of the layer's attached, running daemon.
learn_sd() {
	local d
	for d in "$LT_STATE/$1".*/; do
		[ -f "$d/pid" ] && [ ! -e "$d/detached" ] && running "$(cat "$d/pid")" && echo "${d%/}"
	done | tail -n 1
}
# lm ID NAME: a counter of the layer's daemon (summed over its images).
lm() { metric "$2" "$(learn_sd "$1")/metrics.prom"; }
# disk_read ID: bytes the layer's daemon has had read from a block device
# (/proc/PID/io read_bytes: file data and file-system metadata alike).
disk_read() { awk '$1 == "read_bytes:" { print $2 }' "/proc/$(cat "$(learn_sd "$1")/pid")/io"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# learnt_field ID KEY: a field of the layer's "learnt" line in $TMP/lstatus.
learnt_field() { awk -v id="$1" -v k="$2=" '$1 == id && $2 == "learnt" {
	for (i = 3; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$TMP/lstatus"; }
lstatus() { "$LT" status "$IMG" >"$TMP/lstatus" || fail "$LT status"; }

# learn_zero_touch DIR: the whole check, learning into DIR (must not exist
# or be empty).  Leaves the layers unmounted, their learnt images in DIR.
learn_zero_touch() {
	LEARN=$1
	local l id dir t0 t_first t_learnt t_second n img i
	local -A d0 d1 d2 learnt_bytes c0
	mkdir -p "$LEARN"
	[ -z "$(ls -A "$LEARN")" ] || fail "$LEARN is not empty"

	note "zero-touch: --learn into a directory others may write to is refused"
	mkdir -p "$TMP/open"
	chmod 1777 "$TMP/open"
	! "$LT" mount "$IMG" --learn "$TMP/open/learn" 2>"$TMP/learn.err" || fail "$LT mount --learn in a 1777 directory"
	cat "$TMP/learn.err"
	grep -q "writable by others" "$TMP/learn.err" || fail "no reason given"
	[ -z "$(findmnt -rn -t fuse.yolofs -o TARGET | grep "^$TMP/")" ] || fail "a refused mount left a yolofs mount"

	note "zero-touch: $LT mount --learn on an empty directory"
	"$LT" mount "$IMG" --learn "$LEARN" 2>"$TMP/learn.err" || { cat "$TMP/learn.err"; fail "$LT mount --learn"; }
	cat "$TMP/learn.err"
	lstatus
	cat "$TMP/lstatus"
	for l in $LEARN_LAYERS; do
		id=${l%%=*}
		[ -n "$(learn_sd "$id")" ] || fail "layer $id: no running yolofs after mount --learn"
		grep -q "^$id learning dir=$LEARN/.* nothing learnt yet" "$TMP/lstatus" ||
			fail "layer $id: status does not say it is learning"
		tr '\0' ' ' <"/proc/$(cat "$(learn_sd "$id")/pid")/cmdline" | grep -q "learn=$LEARN,learn_by=mount" ||
			fail "layer $id: yolofs was not given learn=$LEARN,learn_by=mount"
	done

	note "first start: read from the layers and learnt"
	for l in $LEARN_LAYERS; do d0[${l%%=*}]=$(disk_read "${l%%=*}"); done
	drop_caches
	t0=$(date +%s%N)
	run_start "$TMP/learn1" || fail "first container start while learning"
	t_first=$(ms_since "$t0")
	diff -u "$TMP/expected" "$TMP/learn1" || fail "container output differs while learning"
	for l in $LEARN_LAYERS; do d1[${l%%=*}]=$(disk_read "${l%%=*}"); done
	# Learnt once each layer has had no read for learn_idle (15 s) seconds.
	for i in $(seq 600); do
		n=0
		for l in $LEARN_LAYERS; do [ "$(lm "${l%%=*}" learned_images)" -ge 1 ] && n=$((n + 1)); done
		[ "$n" = "$(echo $LEARN_LAYERS | wc -w)" ] && break
		sleep 0.1
	done
	t_learnt=$(ms_since "$t0")
	for l in $LEARN_LAYERS; do
		id=${l%%=*}
		[ "$(lm "$id" learned_images)" -ge 1 ] || fail "layer $id: nothing learnt $t_learnt ms after the start"
	done
	# Served once loaded and the namespace answers read (in the background).
	for l in $LEARN_LAYERS; do
		id=${l%%=*}
		for i in $(seq 300); do
			grep -q "mount.yolo: [0-9]* of [0-9]* namespace paths answered from memory" "$(learn_sd "$id")/log" && break
			sleep 0.1
		done
		grep -q "mount.yolo: [0-9]* of [0-9]* namespace paths answered from memory" "$(learn_sd "$id")/log" ||
			fail "layer $id: the learnt namespace questions were not answered: $(tail -n 3 "$(learn_sd "$id")/log")"
	done
	lstatus
	cat "$TMP/lstatus"
	for l in $LEARN_LAYERS; do
		id=${l%%=*} dir=${l#*=}
		img=$(learnt_field "$id" image)
		[ -f "$img" ] && [ "${img#"$LEARN"/}" != "$img" ] || fail "layer $id: status shows no learnt image in $LEARN"
		[ "$(learnt_field "$id" ns_paths)" -gt 0 ] || fail "layer $id: no namespace questions learnt"
		learnt_bytes[$id]=$(( $(learnt_field "$id" blocks) * 4096 ))
		[ "${learnt_bytes[$id]}" -gt 0 ] || fail "layer $id: no blocks learnt"
	done

	note "second start: served from the learnt images"
	sleep 1.5                        # the counters as they are now (metrics_interval=1)
	for l in $LEARN_LAYERS; do
		id=${l%%=*}
		c0[$id]="$(lm "$id" bytes_source) $(lm "$id" reads_passthrough) $(lm "$id" ns_answered) $(lm "$id" ns_unknown) $(lm "$id" bytes_prefilled) $(lm "$id" bytes_memory) $(lm "$id" hits)"
	done
	drop_caches
	for l in $LEARN_LAYERS; do d2[${l%%=*}]=$(disk_read "${l%%=*}"); done
	t0=$(date +%s%N)
	run_start "$TMP/learn2" || fail "second container start"
	t_second=$(ms_since "$t0")
	diff -u "$TMP/expected" "$TMP/learn2" || fail "container output differs when served from learnt images"
	sleep 1.5                        # metrics are rewritten every second
	local src=0 pass=0 read=0 served=0 ans=0 unk=0 disk1=0 disk2=0 v s p a u pf bm h dk
	for l in $LEARN_LAYERS; do
		id=${l%%=*}
		dk=$(( $(disk_read "$id") - d2[$id] ))
		read -r s p a u pf bm h <<<"${c0[$id]}"
		v="$(( $(lm "$id" bytes_source) - s )) $(( $(lm "$id" reads_passthrough) - p )) $(( $(lm "$id" ns_answered) - a ))"
		v="$v $(( $(lm "$id" ns_unknown) - u )) $(( $(lm "$id" bytes_prefilled) - pf )) $(( $(lm "$id" bytes_memory) - bm )) $(( $(lm "$id" hits) - h ))"
		read -r s p a u pf bm h <<<"$v"
		printf 'layer %s: first start %d bytes read from disk, %d learnt (4 KiB blocks); second start: %d bytes served (%d prefilled, %d from memory, %d hits), %d bytes of files read from the source, %d reads of files no image holds, %d bytes read from disk; namespace questions %d answered from memory, %d asked of the source\n' \
			"$id" $(( d1[$id] - d0[$id] )) "${learnt_bytes[$id]}" $((pf + bm)) "$pf" "$bm" "$h" "$s" "$p" \
			"$dk" "$a" "$u"
		[ $((pf + h)) -gt 0 ] || fail "layer $id: the learnt image was not used by the second start"
		[ "$a" -gt 0 ] || fail "layer $id: no namespace question of the second start was answered from memory"
		src=$((src + s)) pass=$((pass + p)) read=$((read + learnt_bytes[$id])) served=$((served + pf + bm))
		ans=$((ans + a)) unk=$((unk + u))
		disk1=$((disk1 + d1[$id] - d0[$id])) disk2=$((disk2 + dk))
	done
	echo "first start ${t_first} ms (learning), learnt ${t_learnt} ms after it began; second start ${t_second} ms"
	echo "all layers: the first start read $read bytes (4 KiB blocks learnt), $disk1 bytes from disk;" \
	     "the second: $served bytes served, $src bytes of files and $pass reads from the source," \
	     "$disk2 bytes from disk; $ans namespace questions answered from memory, $unk asked of the source"
	# Every byte of file data the second start read from the source is
	# counted in bytes_source, except reads of files no image holds (only
	# counted as reads): there must be none to know the bytes.
	[ "$pass" = 0 ] || fail "the second start read $pass times from files no learnt image holds"
	[ $((src * 100)) -le "$read" ] || fail "the second start read $src bytes from the source, over 1% of $read"

	# Compared with the layers themselves, not through the mounts (that
	# would compare the images with what they serve themselves).
	note "umount keeps the learnt images, and they hold what the layers hold"
	"$LT" umount "$IMG" || fail "$LT umount (learning)"
	lstatus
	cat "$TMP/lstatus"
	for l in $LEARN_LAYERS; do
		id=${l%%=*} dir=${l#*=}
		grep -q "^$id unmounted$" "$TMP/lstatus" || fail "layer $id: still mounted after umount"
		img=$(learnt_field "$id" image)
		[ -f "$img" ] || fail "layer $id: status shows no learnt image once unmounted"
		"$YOLO_IMAGE" verify --source "$dir" "$img" || fail "layer $id: the learnt image does not verify"
	done
}

# learn_removed DIR N: after the engine removed the image's N layers,
# status --all lists their learnt images in DIR as removed, and the next
# command that takes the lock (umount --all) deletes them, saying so.
learn_removed() {
	local dir=$1 n=$2
	"$LT" status --all >"$TMP/all.learn" || fail "$LT status --all"
	cat "$TMP/all.learn"
	[ "$(grep -c " removed (by .*) learnt=$dir/" "$TMP/all.learn")" = "$n" ] ||
		fail "status --all does not list the $n learnt images of removed layers"
	"$LT" umount --all 2>"$TMP/sweep.err" || { cat "$TMP/sweep.err"; fail "$LT umount --all"; }
	cat "$TMP/sweep.err"
	[ "$(grep -c "was removed; deleted its learnt images $dir/" "$TMP/sweep.err")" = "$n" ] ||
		fail "the learnt images of the removed layers were not deleted (or not reported)"
	[ -z "$(ls "$dir")" ] && [ -z "$(ls "$dir/.yolo-layers" 2>/dev/null)" ] ||
		fail "left in $dir: $(ls -A "$dir" "$dir/.yolo-layers")"
	! "$LT" status --all | grep -q " removed " || fail "status --all still lists removed layers"
}
