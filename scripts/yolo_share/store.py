"""store.py - where boot images travel between nodes, by content key: an
OCI registry or a plain shared directory.

A content key names what an image is of in the same way on every node
(keys.py): a container layer by its chain id, a VM base file by its name
and size.  Both stores hand out a fetched image only as a file whose
sha256 is the digest the store recorded for it; the caller still compares
it with the node's own source before serving (fetch.py).

Registry: the images of a container image's layers are one artifact (an
OCI 1.1 image manifest of artifactType ARTIFACT_TYPE: an empty config and
one blob per layer, annotated with its key) whose subject is the container
image's manifest, in the same repository; found again through the
referrers API, or the referrers tag schema on registries without it (the
artifact is then added to the index tagged sha256-<hex>).  A VM base
file's image is such an artifact without subject, tagged with its key in
a repository of the operator's choice.  Several artifacts may refer to one
image (every node that learnt more published): the newest holding a key
wins.

Directory: DIR/blobs/sha256/<hex> holds the images, DIR/keys/<key> a
descriptor of the newest one (written atomically); any node may write."""
import collections
import datetime
import hashlib
import json
import os
import re
import stat
import tempfile

from .registry import (EMPTY_JSON, EMPTY_TYPE, MANIFEST, BadContent, NotFound, Registry, RegistryError,
                       canonical, check_digest, digest_of)

ARTIFACT_TYPE = "application/vnd.yolo.boot-images.v1"
IMAGE_TYPE = "application/vnd.yolo.boot-image.v1"
KEY_ANNOTATION = "io.yolo.key"
CREATED = "org.opencontainers.image.created"
MAX_IMAGE = 16 << 30                     # no boot image is larger
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
MAX_REFERRERS = 32                       # artifacts read per image, the newest


class Candidate(collections.namedtuple("Candidate", "digest size where")):
    """One published image of a key: its blob's digest and size, and where
    it was found (for messages).  digest None: the entry could not be read
    (where says why)."""


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def artifact_manifest(images, subject=None, created=None):
    """The manifest of an artifact holding IMAGES ([(key, digest, size)])."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": digest_of(EMPTY_JSON), "size": len(EMPTY_JSON)},
        "layers": [{"mediaType": IMAGE_TYPE, "digest": d, "size": n, "annotations": {KEY_ANNOTATION: k}}
                   for k, d, n in images],
        "annotations": {CREATED: created or now_rfc3339()},
    }
    if subject:
        doc["subject"] = subject
    return canonical(doc)


def artifact_images(manifest_bytes):
    """{key: (digest, size)} of an artifact manifest's boot images; its
    malformed entries are skipped, a document that is no artifact of ours
    yields {}."""
    try:
        doc = json.loads(manifest_bytes)
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("artifactType") != ARTIFACT_TYPE:
        return {}
    found = {}
    for layer in doc.get("layers") if isinstance(doc.get("layers"), list) else []:
        if not isinstance(layer, dict) or layer.get("mediaType") != IMAGE_TYPE:
            continue
        key = (layer.get("annotations") or {}).get(KEY_ANNOTATION) if isinstance(
            layer.get("annotations"), dict) else None
        digest, size = layer.get("digest"), layer.get("size")
        if (isinstance(key, str) and isinstance(digest, str) and DIGEST_RE.fullmatch(digest)
                and isinstance(size, int) and 0 <= size <= MAX_IMAGE):
            found.setdefault(key, (digest, size))
    return found


def newest_first(descriptors):
    """Referrer descriptors, the most recently created first (their
    `created` annotation; RFC 3339 in UTC sorts as text)."""
    def created(d):
        ann = d.get("annotations")
        value = ann.get(CREATED) if isinstance(ann, dict) else None
        return value if isinstance(value, str) else ""
    return sorted(descriptors, key=created, reverse=True)


class RegistryStore:
    """Artifacts in REPO of a registry."""

    def __init__(self, registry: Registry, repo):
        self.registry, self.repo = registry, repo

    def where(self):
        return f"{self.registry.host}/{self.repo}"

    def _push(self, images, subject, ref=None):
        pushed = []
        for key, path in images:
            digest, size = self.registry.push_blob(self.repo, path=path)
            pushed.append((key, digest, size))
        self.registry.push_blob(self.repo, data=EMPTY_JSON)
        body = artifact_manifest(pushed, subject)
        digest, indexed = self.registry.put_manifest(self.repo, ref or digest_of(body), MANIFEST, body)
        if subject and indexed != subject["digest"]:
            self.registry.add_referrer(self.repo, subject["digest"], {
                "mediaType": MANIFEST, "digest": digest, "size": len(body),
                "artifactType": ARTIFACT_TYPE, "annotations": json.loads(body)["annotations"]})
        return digest

    def publish_for(self, subject_digest, images, origin=None):
        """Publish IMAGES ([(key, path)]) as an artifact referring to the
        manifest SUBJECT_DIGEST; the artifact's digest.  The subject's
        descriptor comes from this repository, or, when it does not hold
        the image, from ORIGIN (registry, repository) that does (OCI 1.1:
        a registry accepts a subject it does not hold)."""
        try:
            subject = self.registry.manifest_descriptor(self.repo, check_digest(subject_digest))
        except NotFound:
            if not origin:
                raise
            subject = Registry(origin[0], self.registry.auth_file).manifest_descriptor(origin[1], subject_digest)
        return self._push(images, subject)

    def candidates(self, keys, subject_digest=None):
        """{key: [Candidate]} of KEYS, newest first: the boot images of the
        artifacts referring to SUBJECT_DIGEST (a container image's), or, with
        no subject, the one tagged with each key (a base file's).  An
        artifact that cannot be read is skipped, said in its place."""
        found = {key: [] for key in keys}
        if subject_digest:
            refs = [r["digest"] for r in newest_first(
                self.registry.referrers(self.repo, subject_digest, ARTIFACT_TYPE))][:MAX_REFERRERS]
        else:
            refs = [key_tag(key) for key in keys]
        for ref in refs:
            try:
                _, body = self.registry.get_manifest(self.repo, ref)
            except NotFound:
                continue
            except BadContent as e:               # this artifact alone is bad
                for key in found:
                    found[key].append(Candidate(None, 0, f"{self.where()}@{ref}: {e}"))
                continue
            for key, (digest, size) in artifact_images(body).items():
                if key in found:
                    found[key].append(Candidate(digest, size, f"{self.where()}@{ref}"))
        return found

    def download(self, cand, dest_dir):
        """CAND's image as a verified file in DEST_DIR (RegistryError if not)."""
        return self.registry.fetch_blob(self.repo, cand.digest, cand.size, dest_dir, MAX_IMAGE)

    def publish_key(self, key, path):
        """Publish one image under its key's tag (a VM base file's)."""
        return self._push([(key, path)], None, ref=key_tag(key))


class DirStore:
    """A shared directory: blobs by digest, a descriptor per key."""

    def __init__(self, path):
        self.path = path

    def where(self):
        return self.path

    def _blob(self, digest):
        return os.path.join(self.path, "blobs", "sha256", check_digest(digest)[len("sha256:"):])

    def _key_file(self, key):
        return os.path.join(self.path, "keys", key_tag(key))

    def publish_key(self, key, path):
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        os.makedirs(os.path.dirname(self._key_file(key)), exist_ok=True)
        # Copied while hashed (an image may be GiBs), then named by its digest.
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.join(self.path, "blobs", "sha256"))
        h, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            digest = "sha256:" + h.hexdigest()
            os.replace(tmp, self._blob(digest))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _write_atomic(self._key_file(key), canonical(
            {"key": key, "digest": digest, "size": size, CREATED: now_rfc3339()}))
        return digest

    def publish_for(self, subject_digest, images, origin=None):
        """Layers are keyed by content alone here: the subject is not needed."""
        return [self.publish_key(key, path) for key, path in images]

    def candidates(self, keys, subject_digest=None):
        """{key: [Candidate]}: the descriptor of each key's newest image
        (a descriptor that cannot be read is a candidate that fails)."""
        found = {}
        for key in keys:
            path = self._key_file(key)
            try:
                with _open_regular(path) as f:
                    doc = json.loads(f.read(65536))
            except FileNotFoundError:
                found[key] = []
                continue
            except (OSError, ValueError) as e:
                found[key] = [Candidate(None, 0, f"{path}: {e}")]
                continue
            if not isinstance(doc, dict):
                found[key] = [Candidate(None, 0, f"{path}: not a descriptor of {key}")]
                continue
            digest, size = doc.get("digest"), doc.get("size")
            if (doc.get("key") != key or not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest)
                    or not isinstance(size, int) or not 0 <= size <= MAX_IMAGE):
                found[key] = [Candidate(None, 0, f"{path}: not a descriptor of {key}")]
                continue
            found[key] = [Candidate(digest, size, path)]
        return found

    def download(self, cand, dest_dir):
        return _copy_verified(self._blob(cand.digest), cand.digest, cand.size, dest_dir)


def key_tag(key):
    """A key as a tag and a file name: ':' -> '-' (keys are made of
    [A-Za-z0-9_.:-], keys.py)."""
    tag = key.replace(":", "-")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        raise RegistryError(f"not a content key: {key[:80]!r}")
    return tag


class NotRegular(OSError):
    """A store's path that is not a regular file."""


def _open_regular(path):
    """PATH opened for reading if it is a regular file: a FIFO or a device
    put in a shared directory must not block or feed the reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegular("not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _copy_verified(src, digest, size, dest_dir):
    """Copy blob SRC into a new file in DEST_DIR, hashing it; refused (and
    removed) unless it is SIZE bytes of digest DIGEST."""
    fd, path = tempfile.mkstemp(prefix=".fetch-", suffix=".tmp", dir=dest_dir)
    h, got = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, _open_regular(src) as f:
            while chunk := f.read(1 << 20):
                got += len(chunk)
                if got > size:
                    break
                h.update(chunk)
                out.write(chunk)
        if got != size or "sha256:" + h.hexdigest() != digest:
            raise BadContent(f"{src}: does not match its digest {digest}; refused")
    except OSError as e:
        os.unlink(path)
        bad = BadContent if isinstance(e, (FileNotFoundError, NotRegular)) else RegistryError
        raise bad(f"{src}: {e.strerror or e}") from None
    except BaseException:
        os.unlink(path)
        raise
    return path
