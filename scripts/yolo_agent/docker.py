"""docker.py - Docker's committed layers, read from its own files under the
data root, so the agent mounts them before dockerd is even up (a reboot:
containers with a restart policy start with dockerd):

    image/overlay2/layerdb/sha256/<chain id>/cache-id   the layer's overlay2
                                                        directory: overlay2/<id>/diff
    image/overlay2/repositories.json                    references -> image ids
    image/overlay2/imagedb/content/sha256/<image id>    image configs (diff ids)

dockerd writes each of them whole and renames it into place, so a file is
either absent or complete.  Container layers (layerdb/mounts/, overlay2's
<id>-init) are not committed layers and are never listed.  The Engine API
(GET /events over dockerd's socket) only starts a round early when an image
is pulled, loaded, tagged or removed.

The data root is the configured one, else dockerd's own setting
(/etc/docker/daemon.json "data-root"), else /var/lib/docker.  The event
stream is followed only while dockerd runs (its pid file names a live
process): connecting to a socket-activated docker.socket would start a
dockerd the operator stopped.

With Docker 29's containerd image store there is no overlay2 layer store:
its images are containerd's (namespace "moby") and containerd.py serves
them."""
import json
import os
import re
import threading

from yolo_layers.engines import Layer, chain_ids
from yolo_layers.host import read_value
from yolo_layers.watch import open_docker_events

from .plan import Answer, EngineDown, Wanted

HEX64 = re.compile(r"[0-9a-f]{64}")
CACHE_ID = re.compile(r"[0-9a-f]{64}|[0-9a-z]{25,64}")


DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_ROOT = "/var/lib/docker"


def data_root(configured, daemon_json=DAEMON_JSON):
    """Docker's data root: CONFIGURED, else daemon.json's "data-root", else
    the default."""
    if configured:
        return configured
    try:
        with open(daemon_json, encoding="utf-8") as f:
            root = json.load(f).get("data-root")
        if isinstance(root, str) and root.startswith("/"):
            return root
    except (OSError, ValueError, AttributeError):
        pass
    return DEFAULT_ROOT


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise EngineDown(f"{path}: {getattr(e, 'strerror', None) or e}") from None


class DockerFiles:
    def __init__(self, root):
        self.root = root
        self.store = os.path.join(root, "image", "overlay2")
        self.layerdb = os.path.join(self.store, "layerdb", "sha256")
        self.configs = {}                 # image id -> [chain id], configs never change
        self.cache_ids = {}               # chain id -> its overlay2 directory, never changes

    def present(self):
        return os.path.isdir(self.layerdb)

    def answer(self):
        """Every committed layer, and the registry subject of each tag
        pulled from a registry."""
        layers = self._layers()
        holders, subjects = self._references()
        return Answer({layer.id: Wanted(layer, "layer:" + chain, tuple(sorted(holders.get(chain, ()))), "")
                       for chain, layer in layers.items()}, subjects, True)

    def _layers(self):
        """{chain id: Layer} of every committed layer."""
        try:
            names = os.listdir(self.layerdb)
        except OSError as e:
            raise EngineDown(f"{self.layerdb}: {e.strerror}") from None
        found = {}
        for name in names:
            if not HEX64.fullmatch(name):
                continue                  # tmp/ and partial entries
            cache_id = self.cache_ids.get(name) or read_value(os.path.join(self.layerdb, name, "cache-id"))
            if CACHE_ID.fullmatch(cache_id):
                self.cache_ids[name] = cache_id
                found["sha256:" + name] = Layer(cache_id, os.path.join(self.root, "overlay2", cache_id, "diff"))
        self.cache_ids = {n: c for n, c in self.cache_ids.items() if "sha256:" + n in found}
        return found

    def _chains(self, image_id):
        if image_id not in self.configs:
            config = _load_json(os.path.join(self.store, "imagedb", "content", "sha256", image_id))
            diff_ids = ((config or {}).get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
            if not (isinstance(diff_ids, list) and diff_ids and all(isinstance(d, str) for d in diff_ids)):
                return []
            self.configs[image_id] = chain_ids(diff_ids)
        return self.configs[image_id]

    def _references(self):
        """{chain id: {reference}}: the tags (name:tag) holding each layer,
        and {reference: (repository, manifest digest)} for those pulled from
        a registry (the subject their boot images refer to)."""
        repos = _load_json(os.path.join(self.store, "repositories.json"))
        table = repos.get("Repositories") if isinstance(repos, dict) else None
        holders, subjects, images = {}, {}, set()
        for repo, refs in (table or {}).items():
            if not isinstance(refs, dict):
                continue
            digests = {image: ref.partition("@")[2] for ref, image in refs.items()
                       if isinstance(ref, str) and "@" in ref and isinstance(image, str)}
            for ref, image in refs.items():
                if not (isinstance(ref, str) and isinstance(image, str) and "@" not in ref
                        and image.startswith("sha256:") and HEX64.fullmatch(image[7:])):
                    continue
                images.add(image[7:])
                for chain in self._chains(image[7:]):
                    holders.setdefault(chain, set()).add(ref)
                if image in digests:
                    subjects[ref] = (repo, digests[image])
        self.configs = {i: c for i, c in self.configs.items() if i in images}
        return holders, subjects


def dockerd_runs(pidfile):
    """PIDFILE names a live process (dockerd writes it at start, removes it
    at a clean stop)."""
    pid = read_value(pidfile)
    return pid.isdigit() and os.path.exists(f"/proc/{pid}")


def docker_events(socket_path, pidfile, wake, say, stop):
    """Set WAKE at each image event from dockerd's event stream; while
    dockerd is down, look every 2 s for it to be back (waking a round each
    time it comes back).  Runs until STOP is set (a daemon thread)."""
    down_said = ""
    while not stop.is_set():
        why = ""
        if not dockerd_runs(pidfile):
            why = f"dockerd is not running (no live process in {pidfile})"
        else:
            resp = None
            try:
                resp = open_docker_events(socket_path, {"type": ["image"]})
                if down_said:
                    say("dockerd's event stream is back")
                    down_said = ""
                wake.set()                # whatever happened while away
                for line in resp:
                    if line.strip():
                        wake.set()
                why = "dockerd closed its event stream"
            except OSError as e:
                why = f"dockerd's event stream: {e}"
            finally:
                if resp:
                    resp.close()
        if why and why != down_said:
            say(f"{why}; its layers are read from its files every round")
            down_said = why
        stop.wait(2)


def start_events(socket_path, pidfile, wake, say, stop):
    t = threading.Thread(target=docker_events, args=(socket_path, pidfile, wake, say, stop),
                         name="docker-events", daemon=True)
    t.start()
    return t
