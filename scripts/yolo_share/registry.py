"""registry.py - a client of the OCI distribution API (v1.1), just what
boot images need: blobs up and down, manifests, and the referrers of a
manifest (the API, or the tag-schema index for registries without it).

Python's standard library (urllib, json, hashlib, ssl) does the HTTP, TLS
and JSON, so nothing is added to the node (design notes, "Boot images
between nodes").  Everything a registry sends is untrusted: a blob or a
manifest fetched by digest is hashed while it is read and refused unless
its sha256 and size are the ones asked for; JSON documents are bounded in
size and checked field by field by the caller.

Authentication, as registries ask for it (a 401 with WWW-Authenticate):
Basic with the node's credentials, or Bearer with a token fetched from the
realm the registry names (anonymously, or with the credentials).  The
credentials are read from a Docker-style auth file (`docker login`,
`skopeo login --authfile`), never from the command line.  Authorization is
never sent along a redirect (a blob GET is often redirected to storage)."""
import base64
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_LIST)
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_DOCUMENT = 4 << 20                   # a manifest, an index, a token answer
TIMEOUT_S = 30                           # each socket operation
DOCUMENT_DEADLINE_S = 60                 # a whole document (manifest, index, token)
MIN_RATE = 256 << 10                     # bytes/s a blob download may not fall below (on average)


class RegistryError(Exception):
    """A registry could not be reached or refused, or sent what it must not
    (a wrong digest, a malformed document); the message says which."""


class NotFound(RegistryError):
    """The registry has no such manifest, blob or API (HTTP 404)."""


class BadContent(RegistryError):
    """What the registry sent is not what was asked for: a wrong digest or
    size, a document that is not JSON or too large.  The registry answers;
    this one thing it holds is bad."""


def read_bounded(resp, limit, deadline, what):
    """At most LIMIT + 1 bytes of RESP, read in chunks, before DEADLINE
    (time.monotonic()): a registry that trickles bytes cannot hold a
    watcher forever (the socket timeout bounds each read, not the whole)."""
    parts, got = [], 0
    while got <= limit:
        if time.monotonic() > deadline:
            raise RegistryError(f"{what}: too slow (deadline passed)")
        chunk = resp.read(min(65536, limit + 1 - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest):
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise RegistryError(f"not a sha256 digest: {str(digest)[:80]!r}")
    return digest


# ---------------------------------------------------------------- references

def split_reference(ref):
    """(host, repository, tag or None, digest or None) of an image
    reference as Docker and containerd write them; docker.io's short forms
    (busybox, user/app) are expanded as Docker does."""
    name, digest = (ref.split("@", 1) + [None])[:2]
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:
        host, repo = "docker.io", name
    if host in ("docker.io", "index.docker.io") and "/" not in repo:
        repo = "library/" + repo
    if not REPO.fullmatch(repo) or (tag is not None and not TAG.fullmatch(tag)):
        raise RegistryError(f"not an image reference: {ref!r}")
    if digest is not None:
        check_digest(digest)
    return host, repo, tag, digest


def api_host(host):
    """Where a registry host's API is: docker.io's is elsewhere."""
    return "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host


def is_loopback(host):
    """HOST (with or without a port) names this machine: Docker and
    containerd talk plain HTTP to such a registry without being told."""
    if host.startswith("["):
        name = host[1:host.find("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def referrers_tag(digest):
    """The tag of the referrers index for registries without the API
    (OCI distribution 1.1, "referrers tag schema")."""
    return check_digest(digest).replace(":", "-")[:128]


# ---------------------------------------------------------------- authentication

def load_auths(path):
    """{host: (user, password)} from a Docker-style auth file
    ({"auths": {host: {"auth": base64("user:password")}}}); {} when there is
    none.  A file that exists but cannot be parsed is an error: silently
    pulling anonymously would hide it."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise RegistryError(f"auth file {path}: {e}") from None
    auths = {}
    for host, entry in ((doc.get("auths") or {}) if isinstance(doc, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                raise RegistryError(f"auth file {path}: bad auth for {host}") from None
        elif isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            user, password = entry["username"], entry["password"]
        else:
            continue
        host = re.sub(r"^https?://", "", host).split("/", 1)[0]
        auths[host] = (user, password)
    return auths


def default_auth_file():
    """Where `docker login` keeps credentials for this user."""
    conf = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(conf, "config.json")


def parse_challenge(header):
    """(scheme, {param: value}) of a WWW-Authenticate header, e.g.
    Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = dict(re.findall(r'([A-Za-z]+)="([^"]*)"', rest))
    return scheme.lower(), params


# ---------------------------------------------------------------- client

class Registry:
    """One registry host, as one client: its scheme, credentials and tokens."""

    def __init__(self, host, auth_file=None, plain_http=None):
        self.host = host
        self.api = api_host(host)
        self.auth_file = auth_file or default_auth_file()
        creds = load_auths(self.auth_file)
        self.creds = creds.get(host) or creds.get(self.api) or (
            creds.get("https://index.docker.io/v1/") if host == "docker.io" else None)
        # None: HTTPS, and for a loopback registry plain HTTP if it does
        # not speak TLS (as Docker and containerd do; decided at the first
        # request).
        self.plain_http = False if plain_http is None and not is_loopback(self.api) else plain_http
        self.tokens = {}                 # scope -> bearer token
        self.basic = False               # the registry asked for Basic
        # Redirects (to blob storage) are followed; Authorization is added
        # with add_unredirected_header, so it goes to the registry only.
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ssl.create_default_context()))

    def url(self, path):
        if self.plain_http is None:
            self.plain_http = not self._speaks_tls()
        return f"{'http' if self.plain_http else 'https'}://{self.api}{path}"

    def _speaks_tls(self):
        """Does the (loopback) registry answer a TLS handshake?  Its
        certificate is checked later, by the requests themselves."""
        host, _, port = self.api.rpartition(":") if not self.api.endswith("]") else (self.api, "", "")
        if not port.isdigit():
            host, port = self.api, "443"
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as raw:
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                with ctx.wrap_socket(raw, server_hostname=host.strip("[]")):
                    return True
        except (ssl.SSLError, OSError):
            return False

    def _auth_header(self, scope):
        if scope in self.tokens:
            return "Bearer " + self.tokens[scope]
        if self.basic and self.creds:
            return "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        return None

    def _token(self, params, scope):
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"{self.host}: token realm {realm!r} is not an HTTP URL")
        if realm.startswith("http://") and not self.plain_http:
            raise RegistryError(f"{self.host}: token realm {realm} is plain HTTP for a registry on HTTPS; "
                                "credentials are not sent there")
        query = {"service": params.get("service", "")} if params.get("service") else {}
        query["scope"] = scope
        req = urllib.request.Request(realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query))
        if self.creds:
            req.add_unredirected_header("Authorization",
                                        "Basic " + base64.b64encode(":".join(self.creds).encode()).decode())
        try:
            with self.opener.open(req, timeout=TIMEOUT_S) as r:
                doc = json.loads(read_bounded(r, MAX_DOCUMENT, time.monotonic() + DOCUMENT_DEADLINE_S,
                                              f"{self.host}: token"))
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise RegistryError(f"{self.host}: token from {realm}: {e}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.host}: token server {realm} gave no token")
        self.tokens[scope] = token

    def request(self, method, path, scope, headers=None, body=None, ok=(200,)):
        """Send one request (answering an authentication challenge once);
        the open response for a status in OK.  404 raises NotFound."""
        for attempt in range(2):
            if hasattr(body, "seek"):
                body.seek(0)                      # a file sent again after a challenge
            req = urllib.request.Request(self.url(path) if path.startswith("/") else path,
                                         data=body, method=method, headers=headers or {})
            auth = self._auth_header(scope)
            if auth:
                req.add_unredirected_header("Authorization", auth)
            try:
                resp = self.opener.open(req, timeout=TIMEOUT_S)
            except urllib.error.HTTPError as e:
                resp = e
            except (urllib.error.URLError, OSError) as e:
                raise RegistryError(f"{self.host}: {method} {path.split('?')[0]}: "
                                    f"{getattr(e, 'reason', e)}") from None
            if resp.status in ok:
                return resp
            detail = _error_detail(resp)
            resp.close()
            if resp.status == 401 and attempt == 0:
                scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate"))
                if scheme == "bearer":
                    self._token(params, scope)
                    continue
                if scheme == "basic" and self.creds and not self.basic:
                    self.basic = True
                    continue
            if resp.status == 401 and not self.creds:
                detail += f" (no credentials for {self.host} in {self.auth_file})"
            if resp.status == 404:
                raise NotFound(f"{self.host}: {method} {path.split('?')[0]}: not found{detail}")
            raise RegistryError(f"{self.host}: {method} {path.split('?')[0]}: HTTP {resp.status}{detail}")
        raise RegistryError(f"{self.host}: {method} {path}: still unauthorized")

    # ------------------------------------------------------------ blobs

    def has_blob(self, repo, digest):
        try:
            self.request("HEAD", f"/v2/{repo}/blobs/{check_digest(digest)}", _pull(repo)).close()
            return True
        except NotFound:
            return False

    def push_blob(self, repo, path=None, data=None):
        """Upload a file's (or DATA's) bytes unless the registry has them;
        their digest and size.  A file is hashed, then streamed: a VM's
        boot image is hundreds of MiB, never held in memory."""
        if data is None:
            h, size = hashlib.sha256(), 0
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    size += len(chunk)
            digest = "sha256:" + h.hexdigest()
        else:
            digest, size = digest_of(data), len(data)
        if self.has_blob(repo, digest):
            return digest, size
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", _push(repo), ok=(202,),
                         headers={"Content-Length": "0"}, body=b"")
        location = r.headers.get("Location") or ""
        r.close()
        if not location:
            raise RegistryError(f"{self.host}: blob upload gave no Location")
        location = urllib.parse.urljoin(self.url(f"/v2/{repo}/blobs/uploads/"), location)
        where = urllib.parse.urlsplit(location)
        if where.netloc != self.api or where.scheme != ("http" if self.plain_http else "https"):
            raise RegistryError(f"{self.host}: blob upload sent elsewhere ({location[:120]})")
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        url = location + sep + urllib.parse.urlencode({"digest": digest})
        if data is not None:
            self.request("PUT", url, _push(repo), headers=headers, body=data, ok=(201,)).close()
        else:
            with open(path, "rb") as f:
                self.request("PUT", url, _push(repo), headers=headers, body=f, ok=(201,)).close()
        return digest, size

    def fetch_blob(self, repo, digest, size, dest_dir, max_size):
        """Download blob DIGEST into a new file in DEST_DIR, hashing it as
        it comes; its path.  Refused (the file removed) unless it holds
        exactly SIZE bytes (at most MAX_SIZE) whose sha256 is DIGEST."""
        check_digest(digest)
        if not isinstance(size, int) or size < 0 or size > max_size:
            raise BadContent(f"{self.host}: blob {digest} of {size} bytes refused (limit {max_size})")
        fs = os.statvfs(dest_dir)
        if size > fs.f_bavail * fs.f_frsize * 0.9:
            raise RegistryError(f"{self.host}: blob {digest} of {size} bytes does not fit in {dest_dir}")
        deadline = time.monotonic() + DOCUMENT_DEADLINE_S + size / MIN_RATE
        r = self.request("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo))
        fd, path = tempfile.mkstemp(prefix=".fetch-", suffix=".tmp", dir=dest_dir)
        h, got = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, r:
                while True:
                    if time.monotonic() > deadline:
                        raise RegistryError(f"{self.host}: blob {digest}: slower than {MIN_RATE >> 10} KiB/s; "
                                            "given up")
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                    if got > size:
                        raise BadContent(f"{self.host}: blob {digest} is longer than its {size} bytes")
                    h.update(chunk)
                    out.write(chunk)
            if got != size or "sha256:" + h.hexdigest() != digest:
                raise BadContent(f"{self.host}: blob {digest}: got {got} bytes with digest "
                                    f"sha256:{h.hexdigest()[:16]}...; refused")
        except BaseException:
            os.unlink(path)
            raise
        return path

    # ------------------------------------------------------------ manifests

    def manifest_descriptor(self, repo, ref):
        """{mediaType, digest, size} of manifest REF (a tag or a digest) as
        the registry holds it."""
        r = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", _pull(repo),
                         headers={"Accept": ", ".join(MANIFEST_TYPES)})
        media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        digest = r.headers.get("Docker-Content-Digest") or ""
        size = r.headers.get("Content-Length") or ""
        r.close()
        if not DIGEST.fullmatch(digest) or not size.isdigit() or media not in MANIFEST_TYPES:
            # Not every registry answers HEAD fully: read the manifest.
            media, body = self.get_manifest(repo, ref)
            digest, size = digest_of(body), len(body)
            if DIGEST.fullmatch(ref) and digest != ref:
                raise BadContent(f"{self.host}: manifest {ref} has digest {digest}")
        return {"mediaType": media, "digest": digest, "size": int(size)}

    def get_manifest(self, repo, ref):
        """(media type, bytes) of manifest REF; by digest, checked."""
        r = self.request("GET", f"/v2/{repo}/manifests/{ref}", _pull(repo),
                         headers={"Accept": ", ".join(MANIFEST_TYPES)})
        with r:
            body = read_bounded(r, MAX_DOCUMENT, time.monotonic() + DOCUMENT_DEADLINE_S,
                                f"{self.host}: manifest {ref}")
            media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        if len(body) > MAX_DOCUMENT:
            raise BadContent(f"{self.host}: manifest {ref} is larger than {MAX_DOCUMENT} bytes")
        if DIGEST.fullmatch(ref) and digest_of(body) != ref:
            raise BadContent(f"{self.host}: manifest {ref} does not match its digest; refused")
        return media, body

    def put_manifest(self, repo, ref, media, body):
        """Store manifest BODY under REF; (its digest, the registry's
        OCI-Subject header: the registry indexed its subject)."""
        r = self.request("PUT", f"/v2/{repo}/manifests/{ref}", _push(repo), ok=(201,),
                         headers={"Content-Type": media, "Content-Length": str(len(body))}, body=body)
        subject = r.headers.get("OCI-Subject")
        r.close()
        return digest_of(body), subject

    # ------------------------------------------------------------ referrers

    def referrers(self, repo, digest, artifact_type):
        """Descriptors of the manifests whose subject is DIGEST and whose
        artifactType is ARTIFACT_TYPE: from the referrers API, or from the
        tag-schema index where the registry has no such API."""
        try:
            r = self.request("GET", f"/v2/{repo}/referrers/{check_digest(digest)}?"
                             + urllib.parse.urlencode({"artifactType": artifact_type}), _pull(repo))
            with r:
                media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
                body = read_bounded(r, MAX_DOCUMENT, time.monotonic() + DOCUMENT_DEADLINE_S,
                                    f"{self.host}: referrers of {digest}")
            index = _parse_json(body, f"{self.host}: referrers of {digest}")
            if media != INDEX and not _is_index(index):
                raise NotFound("no referrers API")
        except NotFound:
            try:
                _, body = self.get_manifest(repo, referrers_tag(digest))
            except NotFound:
                return []
            index = _parse_json(body, f"{self.host}: referrers index {referrers_tag(digest)}")
        return [d for d in _descriptors(index) if d.get("artifactType") == artifact_type]

    def add_referrer(self, repo, subject_digest, descriptor):
        """Add DESCRIPTOR to the tag-schema referrers index of
        SUBJECT_DIGEST (for a registry that did not index the subject)."""
        tag = referrers_tag(subject_digest)
        try:
            _, body = self.get_manifest(repo, tag)
            index = _parse_json(body, f"{self.host}: referrers index {tag}")
            manifests = [d for d in _descriptors(index) if d.get("digest") != descriptor["digest"]]
        except NotFound:
            manifests = []
        doc = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests + [descriptor]}
        self.put_manifest(repo, tag, INDEX, canonical(doc))


def canonical(doc):
    """The bytes a document is stored and hashed as."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _pull(repo):
    return f"repository:{repo}:pull"


def _push(repo):
    return f"repository:{repo}:pull,push"


def _error_detail(resp):
    """The first error message of a registry's error body, if any."""
    try:
        doc = json.loads(read_bounded(resp, 65536, time.monotonic() + 10, "error body") or b"{}")
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f" ({errors[0].get('code', '')}: {str(errors[0].get('message', ''))[:200]})"
    except (ValueError, OSError):
        pass
    return ""


def _parse_json(body, what):
    if len(body) > MAX_DOCUMENT:
        raise BadContent(f"{what}: larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise BadContent(f"{what}: not JSON") from None


def _is_index(doc):
    return isinstance(doc, dict) and isinstance(doc.get("manifests"), list)


def _descriptors(index):
    """The well-formed descriptors of an index."""
    if not _is_index(index):
        return []
    return [d for d in index["manifests"] if isinstance(d, dict) and isinstance(d.get("digest"), str)
            and DIGEST.fullmatch(d["digest"]) and isinstance(d.get("size"), int)]
