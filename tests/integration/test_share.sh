#!/bin/bash
# test_share.sh - a container image's boot images travel between two nodes
# through a real registry (issue 20), for Docker and for containerd.
#
# One machine, two "nodes" per engine: two dockerds (two containerds) with
# their own data roots (their layer directories have other names, their
# files other inode numbers and times), and Debian's docker-registry on
# 127.0.0.1.  A two-layer image (busybox and 8 MiB of data, then a layer
# that adds and replaces files) is pushed there; node A pulls it, learns its
# first start (mount --learn) and publishes (an OCI artifact referring to
# the image's manifest; distribution 2.8 has no referrers API, so the
# referrers tag schema).  Node B pulls the image, fetches, mounts and starts
# it once, after dropping the caches: that first start must be served from
# the fetched images (no read of a file no image holds, at most 2 % of the
# bytes from the layers, namespace questions answered from memory) and
# print what node A printed.
#
# Then, with Docker, what must be refused: an artifact published later with
# one block of one file changed (its checksum recomputed: only the
# comparison with the layer tells) is refused for that layer and node A's
# older good image installed instead; published alone (a shared directory),
# that layer gets none, the other layer's image is installed, and the start
# still works (that layer from the source); a blob whose bytes no longer
# match its digest is refused (the older one installed); with the registry
# stopped fetch fails at once, saying why, and the start works.  A shared
# directory as the store: publish on node B (its fetched and learnt images
# merged), fetch from it.  Node C runs yolo-docker watch: `docker pull`
# alone gets the image fetched and mounted, and the first start is served.
# containerd's node B runs yolo-containerd watch the same way.  Last, a
# registry that asks for Basic credentials: refused without, served with
# an auth file; and one over HTTPS: refused while its certificate is not
# trusted, served once it is (SSL_CERT_FILE).
source "$(dirname "$0")/../mount/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
source "$(dirname "$0")/containerd_lib.sh"
source "$(dirname "$0")/registry_lib.sh"

[ -n "${YOLO_IMAGE:-}" ] || fail "YOLO_IMAGE not set (run through meson test)"
YD=${YOLO_SOURCE_ROOT:?}/scripts/yolo-docker
YC=${YOLO_SOURCE_ROOT:?}/scripts/yolo-containerd
export DOCKER CTR YOLOFS YOLO_IMAGE
W=$TMP/work
mkdir -p -m 0755 "$W"

WATCHER=
share_cleanup() {
	local rc=$? f n
	[ -z "$WATCHER" ] || kill "$WATCHER" 2>/dev/null
	for n in a b c ca cb; do
		[ -d "$TMP/$n/state" ] || continue
		[ "$rc" = 0 ] || for f in "$TMP/$n"/state/*/log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 5 "$f" >&2; }; done
		for f in "$TMP/$n"/state/*/pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
	done
	sleep 0.5
	for n in a b c; do docker_node "$TMP/$n"; dockerd_stop; done
	for n in ca cb; do containerd_node "$TMP/$n"; containerd_stop; done
	registry_stop
	cleanup
}
trap share_cleanup EXIT

# node N: dk, dockerd_* and yolo-docker's state are node N's from now on.
node() { docker_node "$TMP/$1"; STATE=$TMP/$1/state; export YOLO_DOCKER_STATE=$STATE; }
# ctr_node N: the same for ct, containerd_* and yolo-containerd.
ctr_node() {
	containerd_node "$TMP/$1"
	STATE=$TMP/$1/state
	export YOLO_CONTAINERD_STATE=$STATE CONTAINERD_ADDRESS=$CT_SOCK CONTAINERD_NAMESPACE=$CT_NS
}
# sd ID: state directory of the running daemon of layer ID.
sd() { local d; for d in "$STATE/$1".*/; do [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null && echo "${d%/}"; done | tail -n 1; }
lm() { metric "$2" "$(sd "$1")/metrics.prom"; }

# served_start WHAT OUT ID...: with the layers ID... mounted with fetched
# images, drop the caches, run `start` (the engine's) into OUT, which must
# equal $W/expected, and check it was served from those images.
served_start() {
	local what=$1 out=$2 id t0 t1 s p a u pf bm src=0 pass=0 served=0 ans=0 unk=0
	local -A c0
	shift 2
	for id in "$@"; do
		wait_until "$what: layer $id's namespace answers read" \
			'grep -q "namespace paths answered from memory" "$(sd "$id")/log"'
	done
	sleep 1.5                        # metrics are rewritten every second
	for id in "$@"; do
		c0[$id]="$(lm "$id" bytes_source) $(lm "$id" reads_passthrough) $(lm "$id" ns_answered) $(lm "$id" ns_unknown) $(lm "$id" bytes_prefilled) $(lm "$id" bytes_memory)"
	done
	drop_caches
	t0=$(date +%s%N)
	start >"$out" || fail "$what: first start"
	t1=$(( ($(date +%s%N) - t0) / 1000000 ))
	diff -u "$W/expected" "$out" || fail "$what: the first start printed something else"
	sleep 1.5
	for id in "$@"; do
		read -r s p a u pf bm <<<"${c0[$id]}"
		s=$(( $(lm "$id" bytes_source) - s )) p=$(( $(lm "$id" reads_passthrough) - p ))
		a=$(( $(lm "$id" ns_answered) - a )) u=$(( $(lm "$id" ns_unknown) - u ))
		pf=$(( $(lm "$id" bytes_prefilled) - pf )) bm=$(( $(lm "$id" bytes_memory) - bm ))
		echo "$what layer $id: $((pf + bm)) bytes served from the fetched image, $s bytes of files from the layer," \
		     "$p reads of files no image holds; namespace questions: $a from memory, $u asked of the layer"
		[ $((pf + bm)) -gt 0 ] || fail "$what: layer $id: the fetched image served nothing"
		[ "$a" -gt 0 ] || fail "$what: layer $id: no namespace question answered from memory"
		src=$((src + s)) pass=$((pass + p)) served=$((served + pf + bm)) ans=$((ans + a)) unk=$((unk + u))
	done
	echo "$what's first start: ${t1} ms; $served bytes served from fetched images, $src bytes from the layers," \
	     "$pass reads of files no image holds; $ans namespace questions answered from memory, $unk asked of the layers"
	[ "$pass" = 0 ] || fail "$what's first start read $pass times from files no fetched image holds"
	[ $((src * 100)) -le $(( (served + src) * 2 )) ] || fail "$what's first start read $src bytes from the layers: over 2 %"
}
# layer_ids: the overlay2 ids of the image's layers on this node, top first.
layer_ids() { dk image inspect "$IMG" --format '{{.GraphDriver.Data.UpperDir}}:{{.GraphDriver.Data.LowerDir}}' |
	tr ':' '\n' | sed -n 's|.*/overlay2/\([^/]*\)/diff$|\1|p'; }

# installed_match DIR: node B's layers each have an image in DIR that
# matches the layer, and nothing temporary is left there.
installed_match() {
	local id
	for id in "${B_IDS[@]}"; do
		"$YOLO_IMAGE" verify --source "$TMP/b/docker/overlay2/$id/diff" "$1/$id.yolo" >/dev/null ||
			fail "layer $id: what was installed in $1 does not match the layer"
	done
	[ -z "$(find "$1" -name '*.tmp')" ] || fail "temporary files left in $1"
}

registry_start
IMG=$REG/yolo/share:1

note "the image: pushed to the registry at $REG"
node a
dockerd_start
busybox_rootfs "$W/rootfs"
head -c 8M /dev/urandom >"$W/rootfs/data/big"
tar -C "$W/rootfs" -c . | dk import - "$REG/yolo/share:base" >/dev/null || fail "docker import"
dk run --name mk "$REG/yolo/share:base" sh -c 'head -c 3000000 /data/big >/data/top; echo top >/etc/motd' ||
	fail "docker run (commit)"
dk commit --change 'CMD ["sh", "-c", "md5sum /data/big /data/top /etc/motd /bin/busybox"]' mk "$IMG" >/dev/null ||
	fail "docker commit"
dk rm mk >/dev/null
dk push "$IMG" >/dev/null || fail "docker push $IMG"
dk rmi "$IMG" "$REG/yolo/share:base" >/dev/null

note "node A: pull, learn the first start, publish"
dk pull -q "$IMG" >/dev/null || fail "node A: docker pull"
mapfile -t A_IDS < <(layer_ids)
[ "${#A_IDS[@]}" = 2 ] || fail "node A: expected 2 layers, got ${A_IDS[*]}"
"$YD" mount "$IMG" --learn "$W/learnA" -o learn_idle=2 || fail "node A: yolo-docker mount --learn"
drop_caches
start() { dk run --rm "$IMG"; }
start >"$W/expected" || fail "node A: docker run"
cat "$W/expected"
for id in "${A_IDS[@]}"; do
	wait_until "node A: layer $id learnt" '[ "$(lm "$id" learned_images)" -ge 1 ]'
done
"$YD" publish "$IMG" 2>"$W/publish.err" || { cat "$W/publish.err"; fail "node A: yolo-docker publish"; }
cat "$W/publish.err"
grep -q "published 2 layer image(s) of $IMG to $REG/yolo/share (artifact sha256:" "$W/publish.err" ||
	fail "node A: publish did not say it published both layers"
digest=$(dk image inspect "$IMG" --format '{{index .RepoDigests 0}}')
digest=${digest#*@}
# distribution 2.8: no referrers API, so the index is tagged sha256-<hex>.
reg_get "/v2/yolo/share/manifests/sha256-${digest#sha256:}" application/vnd.oci.image.index.v1+json >"$W/referrers" ||
	fail "no referrers index for $digest in the registry"
grep -q '"artifactType":"application/vnd.yolo.boot-images.v1"' "$W/referrers" || fail "the referrers index lists no boot images"
"$YD" umount --all --force >/dev/null 2>&1
dockerd_stop

note "node B: pull, fetch, first start served from the fetched images"
node b
dockerd_start
dk pull -q "$IMG" >/dev/null || fail "node B: docker pull"
mapfile -t B_IDS < <(layer_ids)
[ "${#B_IDS[@]}" = 2 ] && [ "${B_IDS[0]}" != "${A_IDS[0]}" ] && [ "${B_IDS[1]}" != "${A_IDS[1]}" ] ||
	fail "node B: its layer ids (${B_IDS[*]}) should differ from node A's"
"$YD" fetch "$IMG" --images "$W/fetchedB" 2>"$W/fetch.err" || { cat "$W/fetch.err"; fail "node B: yolo-docker fetch"; }
cat "$W/fetch.err"
installed_match "$W/fetchedB"
"$YD" mount "$IMG" --images "$W/fetchedB" --learn "$W/learnB" -o learn_idle=2 || fail "node B: yolo-docker mount"
start() { dk run --rm "$IMG"; }
served_start "node B" "$W/b1" "${B_IDS[@]}"

note "an artifact with one block changed is refused; the older good one is installed instead"
base=${B_IDS[1]} top=${B_IDS[0]}
mkdir -p -m 0755 "$W/tamper"
cp "$W/fetchedB/$base.yolo" "$W/tamper/"
"$HELPERS/craftimage" "$W/tamper/$base.yolo" data/big 5 flip || fail "craftimage flip"
"$YOLO_IMAGE" verify "$W/tamper/$base.yolo" >/dev/null || fail "the forged image should be consistent with itself"
cp "$W/fetchedB/$top.yolo" "$W/tamper/"
YOLO_DOCKER_STATE=$TMP/publisher "$YD" publish "$IMG" --images "$W/tamper" 2>&1 || fail "publishing the forged image"
"$YD" fetch "$IMG" --images "$W/fetchedB2" 2>"$W/fetch2.err" || { cat "$W/fetch2.err"; fail "fetch with an older good image"; }
cat "$W/fetch2.err"
grep -q "layer $base: layer:sha256:.* refused: data/big: source bytes differ" "$W/fetch2.err" ||
	fail "the refusal does not name the changed file"
installed_match "$W/fetchedB2"

note "a forged image with no good one behind it: that layer alone gets none, the start still works"
mkdir -p -m 0755 "$W/store-forged"
YOLO_DOCKER_STATE=$TMP/publisher "$YD" publish "$IMG" --to "$W/store-forged" --images "$W/tamper" 2>&1 ||
	fail "publishing the forged image to a directory"
! "$YD" fetch "$IMG" --from "$W/store-forged" --images "$W/fetchedB2f" 2>"$W/fetch2f.err" ||
	fail "fetch of a forged image succeeded"
cat "$W/fetch2f.err"
grep -q "layer $base: no fetched image installed (data/big: source bytes differ" "$W/fetch2f.err" ||
	fail "the refusal does not name the changed file"
[ ! -e "$W/fetchedB2f/$base.yolo" ] || fail "the forged image was installed"
[ -f "$W/fetchedB2f/$top.yolo" ] || fail "the other layer's image was not installed"
"$YD" umount --all >/dev/null 2>&1 || fail "node B: umount"
"$YD" mount "$IMG" --images "$W/fetchedB2f" >/dev/null 2>&1 || fail "node B: mount with one layer's image"
drop_caches
dk run --rm "$IMG" >"$W/b2" || fail "node B: docker run with the forged image refused"
diff -u "$W/expected" "$W/b2" || fail "node B: the start printed something else"

note "a blob that does not match its digest is refused; the older good one is installed instead"
newest=$(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["manifests"]
print(max(d, key=lambda m: m["annotations"]["org.opencontainers.image.created"])["digest"])' \
	<(reg_get "/v2/yolo/share/manifests/sha256-${digest#sha256:}" application/vnd.oci.image.index.v1+json))
blob=$(reg_get "/v2/yolo/share/manifests/$newest" application/vnd.oci.image.manifest.v1+json |
	/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
printf 'X' | dd of="$(reg_blob "$blob")" bs=1 seek=4096 conv=notrunc 2>/dev/null || fail "cannot change the blob"
"$YD" fetch "$IMG" --images "$W/fetchedB3" 2>"$W/fetch3.err" || { cat "$W/fetch3.err"; fail "fetch with an older good blob"; }
cat "$W/fetch3.err"
grep -q "download refused: .*blob $blob: got .* bytes with digest .*; refused" "$W/fetch3.err" ||
	fail "the refusal does not say the digest differs"
installed_match "$W/fetchedB3"

note "the registry stopped: fetch fails at once, saying why; the start works"
registry_stop
t0=$(date +%s%N)
! "$YD" fetch "$IMG" --images "$W/fetchedB4" 2>"$W/fetch4.err" || fail "fetch without a registry succeeded"
echo "fetch without the registry: $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(cat "$W/fetch4.err")"
grep -q "Connection refused" "$W/fetch4.err" || fail "fetch did not say the registry is unreachable"
drop_caches
dk run --rm "$IMG" >"$W/b3" || fail "node B: docker run with the registry stopped"
diff -u "$W/expected" "$W/b3" || fail "node B: the start printed something else"

note "a shared directory as the store"
mkdir -p -m 0755 "$W/store"
"$YD" publish "$IMG" --to "$W/store" --images "$W/fetchedB" 2>&1 || fail "publish --to a directory"
"$YD" fetch "$IMG" --from "$W/store" --images "$W/fetchedB5" 2>&1 || fail "fetch --from a directory"
for id in "${B_IDS[@]}"; do [ -f "$W/fetchedB5/$id.yolo" ] || fail "layer $id: nothing fetched from the directory"; done
"$YD" umount --all --force >/dev/null 2>&1
dockerd_stop
registry_start

note "node C: yolo-docker watch; a pull is fetched and mounted with no command, the first start served"
node c
dockerd_start
"$YD" watch --images "$W/fetchedC" --learn "$W/learnC" --metrics "$W/watchC.prom" 2>"$W/watchC.log" &
WATCHER=$!
wait_until "the watcher follows dockerd's events" 'grep -q "watching docker for pulls" "$W/watchC.log"'
dk pull -q "$IMG" >/dev/null || fail "node C: docker pull"
mapfile -t C_IDS < <(layer_ids)
for id in "${C_IDS[@]}"; do
	wait_until "node C: layer $id mounted by the watcher" '[ -n "$(sd "$id")" ]'
done
wait_until "node C: the watcher counted the mount" \
	'grep -q "yolo_layers_watch_total{engine=\"docker\",result=\"mounted\"} 1" "$W/watchC.prom"'
cat "$W/watchC.log"
grep -q 'yolo_layers_watch_total{engine="docker",result="fetched"} 1' "$W/watchC.prom" ||
	fail "node C: the watcher's metrics: $(cat "$W/watchC.prom")"
served_start "node C" "$W/c1" "${C_IDS[@]}"
kill "$WATCHER"
wait "$WATCHER" 2>/dev/null
WATCHER=
"$YD" umount --all --force >/dev/null 2>&1
dockerd_stop

note "containerd, node A: the image pushed, pulled, its first start learnt, published"
CIMG=$REG/yolo/ctr:1
ctr_node ca
containerd_start
mkdir -p "$W/top/data" "$W/top/etc"
head -c 3000000 "$W/rootfs/data/big" >"$W/top/data/top"
echo top >"$W/top/etc/motd"
tar -C "$W/rootfs" -cf "$W/base.tar" . && tar -C "$W/top" -cf "$W/top.tar" . || fail "layer tars"
oci_archive "$W/ctr.tar" "$CIMG" "$W/base.tar" "$W/top.tar"
ct images import "$W/ctr.tar" >/dev/null || fail "ctr images import"
ct images push --plain-http "$CIMG" >/dev/null || fail "ctr images push"
ct images rm --sync "$CIMG" >/dev/null || fail "ctr images rm"
ct images pull --plain-http "$CIMG" >/dev/null || fail "node A: ctr images pull"
start() { ct run --rm "${CT_RUN[@]}" "$CIMG" "c$RANDOM" md5sum /data/big /data/top /etc/motd /bin/busybox; }
"$YC" mount "$CIMG" --learn "$W/clearnA" -o learn_idle=2 || fail "containerd node A: mount --learn"
mapfile -t CA_IDS < <(ls "$CT_SNAPSHOTS")
drop_caches
start >"$W/expected" || fail "containerd node A: ctr run"
cat "$W/expected"
for id in "${CA_IDS[@]}"; do
	wait_until "containerd node A: snapshot $id learnt" '[ "$(lm "$id" learned_images)" -ge 1 ]'
done
"$YC" publish "$CIMG" 2>&1 || fail "containerd node A: publish"
"$YC" umount --all --force >/dev/null 2>&1
containerd_stop

note "containerd, node B: yolo-containerd watch; the pull is fetched and mounted, the first start served"
ctr_node cb
containerd_start
"$YC" watch --images "$W/cfetchedB" --learn "$W/clearnB" --interval 0.5 --metrics "$W/watchCB.prom" \
	2>"$W/watchCB.log" &
WATCHER=$!
wait_until "the watcher lists containerd's images" 'grep -q "watching containerd for pulls" "$W/watchCB.log"'
ct images pull --plain-http "$CIMG" >/dev/null || fail "containerd node B: ctr images pull"
mapfile -t CB_IDS < <(ls "$CT_SNAPSHOTS")
[ "${#CB_IDS[@]}" = 2 ] || fail "containerd node B: expected 2 snapshots, got ${CB_IDS[*]}"
for id in "${CB_IDS[@]}"; do
	wait_until "containerd node B: snapshot $id mounted by the watcher" '[ -n "$(sd "$id")" ]'
	[ -f "$W/cfetchedB/$id.yolo" ] || fail "containerd node B: snapshot $id: no fetched image"
done
cat "$W/watchCB.log"
served_start "containerd node B" "$W/cb1" "${CB_IDS[@]}"
kill "$WATCHER"
wait "$WATCHER" 2>/dev/null
WATCHER=

note "a registry that asks for credentials (Basic, htpasswd): refused without them, served with them"
SHARE=$YOLO_SOURCE_ROOT/scripts/yolo-share
/usr/bin/python3 -W ignore -c 'import crypt; print("alice:" + crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
	>"$W/htpasswd" || fail "cannot make an htpasswd file"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REG" "$(printf alice:s3cret | base64)" >"$W/auth.json"
registry_stop
registry_start "$W/htpasswd"
mkdir -p "$W/base_a" "$W/base_b"
head -c 4M /dev/urandom >"$W/base_a/0123abcd"
cp "$W/base_a/0123abcd" "$W/base_b/"
"$MKIMAGE" "$W/base.yolo" "$W/base_a" 0123abcd:every:3 >/dev/null || fail "mkimage"
! "$SHARE" publish --to "$REG/yolo/base" --image "$W/base.yolo" "$W/base_a" 0123abcd 2>"$W/noauth.err" ||
	fail "publish without credentials succeeded"
cat "$W/noauth.err"
grep -q "HTTP 401.*no credentials for $REG" "$W/noauth.err" || fail "the refusal does not say credentials are missing"
"$SHARE" publish --auth-file "$W/auth.json" --to "$REG/yolo/base" --image "$W/base.yolo" "$W/base_a" 0123abcd ||
	fail "publish with credentials"
"$SHARE" fetch --auth-file "$W/auth.json" --from "$REG/yolo/base" --images "$W/images_b" "$W/base_b" 0123abcd ||
	fail "fetch with credentials"
"$YOLO_IMAGE" verify --source "$W/base_b" "$W/images_b/0123abcd.yolo" >/dev/null || fail "the fetched base image does not verify"

note "a registry over HTTPS: its certificate checked (refused unless trusted, then served)"
command -v openssl >/dev/null || skip "openssl missing (apt-get install openssl)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/tls.key" -out "$W/tls.crt" -days 2 -subj "/CN=yolo-test" \
	-addext "subjectAltName=IP:127.0.0.1" 2>/dev/null || fail "openssl could not make a certificate"
registry_stop
REG_TLS_CERT=$W/tls.crt REG_TLS_KEY=$W/tls.key
registry_start
! "$SHARE" fetch --from "$REG/yolo/base" --images "$W/images_tls" "$W/base_b" 0123abcd 2>"$W/untrusted.err" ||
	fail "fetch from a registry whose certificate nobody trusts succeeded"
cat "$W/untrusted.err"
grep -q "CERTIFICATE_VERIFY_FAILED" "$W/untrusted.err" || fail "the refusal does not say the certificate is not trusted"
SSL_CERT_FILE=$W/tls.crt "$SHARE" publish --to "$REG/yolo/base" --image "$W/base.yolo" "$W/base_a" 0123abcd ||
	fail "publish over HTTPS"
SSL_CERT_FILE=$W/tls.crt "$SHARE" fetch --from "$REG/yolo/base" --images "$W/images_tls" "$W/base_b" 0123abcd ||
	fail "fetch over HTTPS"
"$YOLO_IMAGE" verify --source "$W/base_b" "$W/images_tls/0123abcd.yolo" >/dev/null || fail "the image fetched over HTTPS does not verify"
echo "PASS"
