# registry_lib.sh - a real OCI registry on 127.0.0.1 for the tests (sourced
# after ../mount/lib.sh): Debian's docker-registry (distribution 2.8, which
# has no referrers API: artifacts are found through the referrers tag
# schema), its storage under $TMP, on a free port; plain HTTP, as Docker
# and containerd use a loopback registry, or HTTPS (REG_TLS_CERT/KEY).
REGISTRY_BIN=$(command -v docker-registry) || skip "docker-registry missing (apt-get install docker-registry)"
REG_DIR=$TMP/registry
REG_PID=
REG_TLS_CERT= REG_TLS_KEY=       # set both to serve HTTPS with that certificate

# registry_start [HTPASSWD]: start it (with Basic authentication when an
# htpasswd file is given); sets REG (host:port).  Again after
# registry_stop: the same port and storage.
registry_start() {
	local i
	mkdir -p "$REG_DIR"
	[ -n "${REG:-}" ] || REG=127.0.0.1:$(/usr/bin/python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
	{
		printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$REG_DIR/data"
		printf 'http:\n  addr: %s\n' "$REG"
		[ -z "$REG_TLS_CERT" ] || printf '  tls:\n    certificate: %s\n    key: %s\n' "$REG_TLS_CERT" "$REG_TLS_KEY"
		[ -z "${1:-}" ] || printf 'auth:\n  htpasswd:\n    realm: yolo-test\n    path: %s\n' "$1"
	} >"$REG_DIR/config.yml"
	"$REGISTRY_BIN" serve "$REG_DIR/config.yml" >>"$REG_DIR/log" 2>&1 &
	REG_PID=$!
	for i in $(seq 100); do
		reg_get /v2/ >/dev/null 2>&1 && return 0
		[ -n "${1:-}" ] && reg_get /v2/ 2>&1 | grep -q "HTTP Error 401" && return 0
		sleep 0.1
	done
	tail "$REG_DIR/log"
	fail "docker-registry did not start"
}

registry_stop() {
	[ -n "$REG_PID" ] || return 0
	kill "$REG_PID" 2>/dev/null
	wait "$REG_PID" 2>/dev/null
	REG_PID=
}

# reg_get PATH [ACCEPT]: the body of GET PATH of the registry (no auth;
# over HTTPS trusting REG_TLS_CERT when it is set).
reg_get() {
	/usr/bin/python3 - "$REG$1" "${2:-*/*}" "$REG_TLS_CERT" <<'PY'
import ssl, sys, urllib.request
url, accept, cert = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=cert) if cert else None
req = urllib.request.Request(("https://" if cert else "http://") + url, headers={"Accept": accept})
sys.stdout.write(urllib.request.urlopen(req, timeout=10, context=ctx).read().decode())
PY
}

# reg_blob DIGEST: the file the registry keeps blob DIGEST in.
reg_blob() { local h=${1#sha256:}; echo "$REG_DIR/data/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"; }
