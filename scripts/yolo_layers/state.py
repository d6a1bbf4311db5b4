"""state.py - the state directory of yolo-layers (/run/yolo-docker,
/run/yolo-containerd): the lock every changing command holds, and one
directory per yolofs this tool started, STATE/<layer-id>.<time>/, holding

    pid           the daemon's pid
    log           its output
    metrics.prom  its counters (-o metrics=, rewritten every second)
    source        the layer directory it is mounted on
    image         the boot image it serves (empty line if none)
    learn         DIR/<key> it learns into (only with mount --learn)
    detached      present once unmounted while still serving containers

A daemon that has exited and left no dead mount behind is forgotten by
the next command that takes the lock (e.g. after the engine removed a
mounted layer: dockerd unmounted it, or yolofs detached itself when
containerd emptied it, and the daemon exited)."""
import fcntl
import glob
import os
import time

from .common import Fatal, prog
from .engines import Layer
from .host import alive, cmdline, read_value, rm_rf, top_mount

LOCK_WAIT = 60                           # seconds


class Daemon:
    """One yolofs started by this tool, known by its state directory."""

    def __init__(self, path):
        self.path = path

    @property
    def layer_id(self):
        return os.path.basename(self.path).rpartition(".")[0]

    def value(self, name):
        return read_value(os.path.join(self.path, name))

    @property
    def source(self):
        return self.value("source")

    @property
    def image(self):
        return self.value("image")

    @property
    def learn(self):
        """DIR/<key> the daemon learns into, or ""."""
        return self.value("learn")

    @property
    def learn_parent(self):
        """The learn directory of the daemon (its DIR, not DIR/<key>), or ""."""
        return os.path.dirname(self.learn) if self.learn else ""

    @property
    def detached(self):
        return os.path.exists(os.path.join(self.path, "detached"))

    def mark_detached(self):
        open(os.path.join(self.path, "detached"), "a").close()

    def process_alive(self):
        return alive(self.value("pid"))

    def running_pid(self):
        """The daemon's pid if it still runs; the pid is checked against its
        command line, so a reused pid is never taken for it."""
        pid = self.value("pid")
        if alive(pid) and self.source in cmdline(pid):
            return int(pid)
        return None

    def stale(self):
        """The daemon is gone and left no mount."""
        return self.running_pid() is None and top_mount(self.source) != "fuse.yolofs"

    def describe(self):
        """What the daemon does, for messages."""
        if self.image and self.learn:
            return f"serving {self.image}, learning into {self.learn}"
        if self.learn:
            return f"learning into {self.learn}"
        return f"serving {self.image}"

    def remove(self):
        rm_rf(self.path)


class State:
    def __init__(self, root):
        self.root = root
        self.learn_dirs_file = os.path.join(root, "learn-dirs")
        self._lock = None

    def daemons(self, layer_id=None):
        """The state directories of a layer's daemons (of every layer's
        without LAYER_ID), oldest first."""
        pattern = glob.escape(layer_id) + ".*" if layer_id else "*.*"
        found = [Daemon(p.rstrip("/")) for p in sorted(glob.glob(os.path.join(glob.escape(self.root), pattern) + "/"))]
        return [d for d in found
                if os.path.isfile(os.path.join(d.path, "pid")) and (layer_id is None or d.layer_id == layer_id)]

    def current_daemon(self, layer_id):
        """The layer's attached, running daemon (the newest), or None."""
        current = None
        for d in self.daemons(layer_id):
            if not d.detached and d.running_pid() is not None:
                current = d
        return current

    def new_daemon(self, layer_id):
        path = os.path.join(self.root, f"{layer_id}.{time.time_ns()}")
        os.makedirs(path, exist_ok=True)
        return Daemon(path)

    def lock(self):
        """Take the state's lock, held until the program exits (its
        descriptor is close-on-exec: no daemon started keeps it), then
        forget the daemons that are gone."""
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError:
            raise Fatal(f"cannot create state directory {self.root}") from None
        path = os.path.join(self.root, "lock")
        try:
            self._lock = open(path, "w")
        except OSError as e:
            raise Fatal(f"cannot open {path}: {e.strerror}") from None
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Fatal(f"another {prog()} is running (lock {path})") from None
                time.sleep(0.1)
        for d in self.daemons():
            if d.stale():
                d.remove()

    def unlock(self):
        """Release the lock (watch takes it per pulled image)."""
        if self._lock:
            self._lock.close()
            self._lock = None

    def all_layers(self):
        """Every layer this tool has state for (mounted, detached or dead),
        whatever image it belongs to; not what lock() would forget (status
        does not take the lock)."""
        layers, seen = [], set()
        for d in self.daemons():
            if d.stale() or d.layer_id in seen:
                continue
            seen.add(d.layer_id)
            layers.append(Layer(d.layer_id, d.source))
        return layers
