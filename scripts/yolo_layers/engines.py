"""engines.py - the two questions whose answers differ between Docker and
containerd: which directories are an image's layers, and how the capture
container is run, found and removed.  Everything else in yolo-layers knows
a layer only as a Layer (id, directory).

Docker: `docker image inspect` (JSON) names the overlay2 directories.
containerd: the image's manifest and config (`ctr content get`, JSON) give
its layers' diff ids, whose chain id names the top snapshot exactly as
containerd's unpacker names it; a read-only view of that snapshot (`ctr
snapshots view --mounts`, JSON) lists every layer's snapshots/N/fs.

The parsing is in plain functions (docker_layers, image_target,
top_snapshots, chain_id, view_layer_dirs) that take the engine's answers
and return layers or raise Fatal, so that they are tested without an
engine (tests/unit/test_yolo_layers.py)."""
import collections
import hashlib
import json
import os
import random
import re
import shutil

from yolo_share.registry import RegistryError, split_reference

from .common import Fatal, prog, say
from .host import failure_line, read_value, run

Layer = collections.namedtuple("Layer", "id dir")

LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
DIGEST = re.compile(r"[a-z0-9]+:[0-9a-f]+")
SNAPSHOT_DIR = re.compile(r"/.+/snapshots/([0-9]+)/fs")


def check_layers(image, layers):
    """LAYERS, once each looks like a layer directory of this host (the
    ids name boot images and state directories)."""
    for layer in layers:
        if not LAYER_ID.fullmatch(layer.id):
            raise Fatal(f"{image}: unexpected layer id '{layer.id}'")
        # The parent, not the directory itself: a dead FUSE mount there fails stat.
        parent = os.path.dirname(layer.dir)
        if not os.path.isdir(parent):
            raise Fatal(f"{image}: layer directory {parent} is not on this host "
                        "(daemon elsewhere or in another mount namespace?)")
    if not layers:
        raise Fatal(f"{image}: the engine lists no layers")
    return layers


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


class Engine:
    """An engine's client and answers.  Subclasses set name, run_name (for
    messages), state_var and state_default (the state directory)."""
    name = run_name = state_var = state_default = ""

    def state_dir(self):
        return os.path.realpath(os.environ.get(self.state_var) or self.state_default)

    def image_layers(self, image):
        """IMAGE's layers, top first."""
        return check_layers(image, self.layers(image))

    def layers(self, image):
        raise NotImplementedError

    def image_layer_keys(self, image):
        """[(Layer, content key)] of IMAGE's layers, top first: the key
        names the layer's content on every node ("layer:" + chain id)."""
        check_layers(image, self.layers(image))
        return self.layer_keys(image)

    def layer_keys(self, image):
        raise NotImplementedError

    def subject(self, image):
        """(registry host, repository, manifest digest) of IMAGE as it was
        pulled from (or pushed to) a registry."""
        raise NotImplementedError

    def default_run(self, image):
        """The capture's run arguments when none follow --."""
        raise NotImplementedError

    def capture_argv(self, run_args, work, token):
        """The command that runs the capture container in the foreground
        with the user's run arguments, marked so that capture_running and
        remove_capture find it (WORK: the capture's work directory, TOKEN:
        unique per capture)."""
        raise NotImplementedError

    def capture_running(self):
        raise NotImplementedError

    def remove_capture(self):
        """Remove the capture container (and its task) if it still exists."""
        raise NotImplementedError


def client(var, default, what):
    path = os.environ.get(var) or default
    if not shutil.which(path):
        raise Fatal(f"{what} client '{path}' not found (set {var})")
    return path


# ---------------------------------------------------------------- docker

def docker_layers(inspect, image):
    """The layers in `docker image inspect` output (a JSON list of one
    image): GraphDriver.Data.UpperDir is the top layer's diff/, LowerDir the
    others', top first, separated by colons; a layer's id is its overlay2
    directory's name."""
    info = inspect[0] if isinstance(inspect, list) and inspect and isinstance(inspect[0], dict) else {}
    graph = info.get("GraphDriver") or {}
    driver = graph.get("Name") or ""
    data = graph.get("Data") or {}
    if driver != "overlay2":
        raise Fatal(f"{image}: storage driver is '{driver or 'none'}'; {prog()} needs overlay2")
    upper = data.get("UpperDir") or ""
    if not upper:
        raise Fatal(f"{image}: docker image inspect gives no UpperDir")
    dirs = [d for d in (upper + ":" + (data.get("LowerDir") or "")).split(":") if d]
    return layers_of(dirs, image, lambda d: os.path.basename(d[:-len("/diff")]) if (
        d.startswith("/") and d.endswith("/diff") and len(d) >= len("//diff")) else None)


def docker_layer_keys(inspect, image):
    """[(Layer, key)] from `docker image inspect` output: its directories
    (docker_layers) with the chain ids of RootFS.Layers (its diff ids)."""
    info = inspect[0] if isinstance(inspect, list) and inspect and isinstance(inspect[0], dict) else {}
    rootfs = info.get("RootFS") if isinstance(info.get("RootFS"), dict) else {}
    return layer_keys(docker_layers(inspect, image), rootfs.get("Layers"), image)


def docker_subject(inspect, image):
    """(host, repository, manifest digest) of IMAGE from its RepoDigests:
    the one of IMAGE's own repository (an image pulled under several names
    has several)."""
    host, repo, _, _ = split_reference(image)
    info = inspect[0] if isinstance(inspect, list) and inspect and isinstance(inspect[0], dict) else {}
    for entry in info.get("RepoDigests") or []:
        if isinstance(entry, str) and "@" in entry:
            try:
                h, r, _, digest = split_reference(entry)
            except RegistryError:
                continue
            if (h, r) == (host, repo):
                return host, repo, digest
    raise Fatal(f"{image}: Docker knows no registry digest of it (pull it from, or push it to, "
                "its registry first)")


def layers_of(dirs, image, layer_id):
    """A Layer per directory, named by layer_id(d); a directory it cannot
    name (None) is not a layer of the engine's and stops the command."""
    layers = []
    for d in dirs:
        lid = layer_id(d)
        if not lid:
            raise Fatal(f"{image}: unexpected layer directory '{d}'")
        layers.append(Layer(lid, d))
    return layers


class Docker(Engine):
    name, run_name = "docker", "docker run"
    state_var, state_default = "YOLO_DOCKER_STATE", "/run/yolo-docker"

    def __init__(self, client_opts):
        self.client_opts = client_opts
        self.cmd = [client("DOCKER", "docker", "docker")] + client_opts
        self.cidfile = ""

    def _inspect(self, image):
        p = run(self.cmd + ["image", "inspect", image])
        if p.returncode != 0:
            raise Fatal(f"docker image inspect {image}: {failure_line(p)}")
        return parse_json(p.stdout)

    def layers(self, image):
        return docker_layers(self._inspect(image), image)

    def layer_keys(self, image):
        inspect = self._inspect(image)
        keys = docker_layer_keys(inspect, image)
        # Docker's layer store says which overlay2 directory holds each
        # chain id: check the pairing against it where it can be read.
        p = run(self.cmd + ["info", "--format", "{{json .DockerRootDir}}"])
        root = parse_json(p.stdout) if p.returncode == 0 else None
        layerdb = os.path.join(root, "image", "overlay2", "layerdb", "sha256") if isinstance(root, str) else ""
        for layer, key in keys:
            cache_id = read_value(os.path.join(layerdb, key.split(":")[-1], "cache-id")) if layerdb else ""
            if cache_id and cache_id != layer.id:
                raise Fatal(f"{image}: layer {key} is in {cache_id}, not {layer.id}")
        return keys

    def subject(self, image):
        return docker_subject(self._inspect(image), image)

    def default_run(self, image):
        return ["--rm", image]

    def capture_argv(self, run_args, work, token):
        self.cidfile = os.path.join(work, "cid")
        return self.cmd + ["run", "--cidfile", self.cidfile] + run_args

    def _cid(self):
        return read_value(self.cidfile) if self.cidfile else ""

    def capture_running(self):
        cid = self._cid()
        if not cid:
            return False
        p = run(self.cmd + ["container", "inspect", cid])
        info = parse_json(p.stdout) if p.returncode == 0 else None
        return bool(info) and isinstance(info[0], dict) and (info[0].get("State") or {}).get("Running") is True

    def remove_capture(self):
        cid = self._cid()
        if cid:
            run(self.cmd + ["rm", "-f", cid])


# ---------------------------------------------------------------- containerd

def image_target(images_table):
    """The target digest (an index or a manifest) in `ctr images ls` output
    for one image.  ctr 1.6 prints images only as a table (REF TYPE DIGEST
    ...; no JSON), so this is the one engine answer read as text."""
    rows = images_table.splitlines()
    fields = rows[1].split() if len(rows) > 1 else []
    return fields[2] if len(fields) > 2 else ""


def chain_ids(diff_ids):
    """The chain id of each stack of layers, bottom first (OCI image spec):
    the first diff id, then sha256 of "<chain id below> <diff id>" for each
    layer above.  containerd names an unpacked layer's snapshot by it,
    Docker its layer in the layer store; it names a layer's content the
    same way on every node, so it keys the layer's boot image between
    nodes."""
    chains = [diff_ids[0]]
    for diff_id in diff_ids[1:]:
        chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def chain_id(diff_ids):
    """The chain id of the whole stack DIFF_IDS."""
    return chain_ids(diff_ids)[-1]


def layer_keys(layers, diff_ids, image):
    """[(Layer, content key)] for LAYERS (top first) of an image whose
    config lists DIFF_IDS (bottom first)."""
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and DIGEST.fullmatch(d) for d in diff_ids):
        raise Fatal(f"{image}: the engine gives no diff ids for its layers")
    if len(diff_ids) != len(layers):
        raise Fatal(f"{image}: {len(layers)} layer directories but {len(diff_ids)} diff ids")
    return [(layer, "layer:" + chain) for layer, chain in zip(layers, reversed(chain_ids(diff_ids)))]


def _digests(descriptors):
    return [d["digest"] for d in descriptors
            if isinstance(d, dict) and isinstance(d.get("digest"), str) and DIGEST.fullmatch(d["digest"])]


def top_snapshots(target, content, is_snapshot):
    """The chain ids of the unpacked platforms of the image whose target is
    TARGET (unpacked_diff_ids)."""
    return [chain_id(d) for d in unpacked_diff_ids(target, content, is_snapshot)]


def unpacked_diff_ids(target, content, is_snapshot):
    """The diff ids of the unpacked platforms of the image whose target is
    TARGET: from the target (an index, or a manifest) through the indexes'
    manifests and the manifests' configs present in the content store
    (CONTENT(digest): the parsed blob, or None when absent) to each config's
    rootfs.diff_ids, kept when IS_SNAPSHOT(chain id): unpacked for the
    overlayfs snapshotter."""
    tops, found, seen, queue = [], [], set(), [target]
    while queue:
        digest = queue.pop(0)
        if digest in seen:
            continue
        seen.add(digest)
        doc = content(digest)
        if not isinstance(doc, dict):
            continue
        rootfs = doc.get("rootfs")
        if isinstance(rootfs, dict):                           # an image config
            diff_ids = rootfs.get("diff_ids")
            if isinstance(diff_ids, list) and diff_ids and all(isinstance(d, str) for d in diff_ids):
                top = chain_id(diff_ids)
                if top not in tops and is_snapshot(top):
                    tops.append(top)
                    found.append(diff_ids)
        elif isinstance(doc.get("manifests"), list):           # an index
            queue.extend(_digests(doc["manifests"]))
        elif isinstance(doc.get("config"), dict):              # a manifest
            queue.extend(_digests([doc["config"]]))
    return found


def view_layer_dirs(mounts):
    """The layer directories in the mounts of a snapshot view (`ctr
    snapshots view --mounts`, JSON): an overlay whose lowerdir lists every
    layer, top first, or for a one-layer image a bind mount of it."""
    dirs = []
    for m in mounts if isinstance(mounts, list) else []:
        if not isinstance(m, dict):
            continue
        lower = [o for o in m.get("Options") or [] if isinstance(o, str) and o.startswith("lowerdir=")]
        if lower:
            dirs += [d for d in lower[-1][len("lowerdir="):].split(":") if d]
        elif m.get("Type") == "bind" and str(m.get("Source", "")).startswith("/"):
            dirs.append(m["Source"])
    return dirs


def snapshot_layers(dirs, image):
    """Layers from snapshot directories .../snapshots/N/fs; N is the id."""
    return layers_of(dirs, image, lambda d: (m := SNAPSHOT_DIR.fullmatch(d)) and m.group(1))


class Containerd(Engine):
    name, run_name = "containerd", "ctr run"
    state_var, state_default = "YOLO_CONTAINERD_STATE", "/run/yolo-containerd"

    def __init__(self, client_opts):
        self.client_opts = client_opts
        self.cmd = [client("CTR", "ctr", "ctr")] + client_opts
        self.snapshots = self.cmd + ["snapshots", "--snapshotter", "overlayfs"]
        self.token = ""

    def _content(self, digest):
        p = run(self.cmd + ["content", "get", digest])
        return parse_json(p.stdout) if p.returncode == 0 else None

    def _is_snapshot(self, key):
        p = run(self.snapshots + ["info", key])
        info = parse_json(p.stdout) if p.returncode == 0 else None
        return isinstance(info, dict) and info.get("Name") == key

    def _target(self, image):
        p = run(self.cmd + ["images", "ls", f'name=="{image}"'])
        if p.returncode != 0:
            raise Fatal(f"ctr images ls: {failure_line(p)}")
        target = image_target(p.stdout)
        if not DIGEST.fullmatch(target):
            raise Fatal(f"{image}: no such image in this containerd namespace "
                        "(give the full reference, as ctr images ls shows it)")
        return target

    def _diff_ids(self, image):
        found = unpacked_diff_ids(self._target(image), self._content, self._is_snapshot)
        if not found:
            raise Fatal(f"{image} is not unpacked for the overlayfs snapshotter (ctr run it once)")
        if len(found) > 1:
            raise Fatal(f"{image} is unpacked for several platforms; {prog()} handles one")
        return found[0]

    def layer_keys(self, image):
        return layer_keys(self.layers(image), self._diff_ids(image), image)

    def subject(self, image):
        host, repo, _, _ = split_reference(image)
        return host, repo, self._target(image)

    def layers(self, image):
        """The directories containerd itself would mount for IMAGE."""
        top = chain_id(self._diff_ids(image))
        # A read-only view of the top snapshot, removed at once, returns its mounts.
        key = f"yolo-layers-view.{os.getpid()}.{random.randrange(32768)}"
        p = run(self.snapshots + ["view", "--mounts", key, top])
        if p.returncode != 0:
            raise Fatal(f"{image}: ctr snapshots view of {top}: {failure_line(p)}")
        if run(self.snapshots + ["rm", key]).returncode != 0:
            say(f"could not remove the temporary snapshot view {key}")
        dirs = view_layer_dirs(parse_json(p.stdout))
        if not dirs:
            raise Fatal(f"{image}: no layer directories in the mounts of {top}: {p.stdout.strip()}")
        return snapshot_layers(dirs, image)

    def default_run(self, image):
        return ["--rm", image, f"yolo-capture-{os.getpid()}"]

    def capture_argv(self, run_args, work, token):
        self.token = token
        return self.cmd + ["run", "--label", f"yolo.capture={token}"] + run_args

    def _capture_ids(self):
        """The capture container: the one with our label (ctr run has no cidfile)."""
        if not self.token:
            return []
        p = run(self.cmd + ["containers", "ls", "-q", f'labels."yolo.capture"=="{self.token}"'])
        return p.stdout.split() if p.returncode == 0 else []

    def capture_running(self):
        ids = self._capture_ids()
        if len(ids) != 1:
            return False
        # ctr 1.6 lists tasks only as a table (TASK PID STATUS; no JSON).
        p = run(self.cmd + ["tasks", "ls"])
        return any(f[:1] == ids and f[2:3] == ["RUNNING"] for f in map(str.split, p.stdout.splitlines()))

    def remove_capture(self):
        for cid in self._capture_ids():
            run(self.cmd + ["tasks", "rm", "-f", cid])
            run(self.cmd + ["containers", "rm", cid])


ENGINES = {"docker": Docker, "containerd": Containerd}
