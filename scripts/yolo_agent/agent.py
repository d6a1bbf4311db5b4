"""agent.py - the loop: a round over every engine present, then the node's
metrics, then a wait for an event or the interval.

Per engine, a round takes the engine's state lock (yolo_layers.state: the
daemons that are gone are forgotten, the learnt images of removed layers
deleted), asks the engine what it holds, and carries out plan.plan():
mounts (fetching first where nothing was learnt or fetched yet), dead
mounts cleared and mounted again, and mounts let go.  One layer failing to
mount is a line and a counter; the round goes on."""
import os
import signal
import socket
import threading

from yolo_layers.common import Fatal
from yolo_layers.engines import Layer
from yolo_layers.host import find_bin, mount_is_dead, read_value, top_mount, write_value
from yolo_layers.learnt import Learnt
from yolo_layers.mount import YOLOFS_TYPE, start_yolofs, unmount_layer
from yolo_layers.state import State
from yolo_share.install import sweep_temporary

from . import fetch as fetching
from .containerd import ContainerdImages
from .docker import DockerFiles, EngineDown, start_events
from .node_metrics import NodeMetrics
from .nova import NovaBase
from .plan import plan, refs_to_fetch
from .upgrade import move, outdated

COUNTERS = ("mounted", "mount_failed", "released", "remounted", "fetched", "fetch_refused", "fetch_failed",
            "upgraded", "upgrade_failed")


class EngineMounts:
    """One engine's layers under yolofs: SOURCE answers wanted()."""

    def __init__(self, name, source, cfg, state_root, say):
        self.name, self.source, self.cfg, self.say = name, source, cfg, say
        self.state = State(os.path.join(state_root, name))
        self.learnt = Learnt(self.state, name, cfg.learn)
        self.wanted = {}
        self.up = False
        self.down_said = ""
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.skipped = set()              # layer ids with another mount on them, said once
        self.let_go = set()               # layer ids already asked to unmount

    def image_dir(self, layer_id):
        path = fetching.layer_image_dir(self.cfg.images, self.name, layer_id)
        return path if os.path.isdir(path) else ""

    def round(self, yolofs):
        self.state.lock()
        try:
            self.learnt.sweep_removed()
            try:
                wanted, subjects = self.source.wanted()
            except EngineDown as e:
                if str(e) != self.down_said:
                    self.say(f"{self.name}: {e}; its mounts are left as they are")
                    self.down_said = str(e)
                self.up = False
                return
            if self.down_said or not self.up:
                self.say(f"{self.name}: {len(wanted)} committed layers")
            self.up, self.down_said, self.wanted = True, "", wanted
            running, dead = {}, set()
            for d in self.state.daemons():
                if d.detached:
                    continue
                if d.running_pid() is not None:
                    running[d.layer_id] = d.source
                elif top_mount(d.source) == YOLOFS_TYPE and mount_is_dead(d.source):
                    running[d.layer_id] = d.source
                    dead.add(d.layer_id)
            p = plan(wanted, running, dead)
            if self.cfg.fetch and p.mount:
                self._fetch(wanted, subjects, p.mount)
            for i in p.remount:
                unmount_layer(wanted[i].layer, force=False)
                self.counts["remounted"] += 1
                self.say(f"{self.name} layer {i}: its yolofs had died; mounting it again")
            for i in p.mount + p.remount:
                self._mount(yolofs, wanted[i])
            for i in p.release:
                self._release(i, running[i])
        finally:
            self.state.unlock()

    def upgrade(self, yolofs):
        """Move every daemon running an older yolofs to YOLOFS (upgrade.py)."""
        self.state.lock()
        try:
            for d in self.state.daemons():
                pid = d.running_pid()
                if pid is None or not outdated(pid, yolofs):
                    continue
                successor, line = move(yolofs, d.source)
                if successor:
                    write_value(os.path.join(d.path, "pid"), successor)
                    self.counts["upgraded"] += 1
                else:
                    self.counts["upgrade_failed"] += 1
                self.say(f"{self.name} layer {d.layer_id}: upgrade of yolofs (pid {pid}): {line}")
        finally:
            self.state.unlock()

    def _fetch(self, wanted, subjects, ids):
        todo = refs_to_fetch(wanted, ids, lambda i: bool(self.image_dir(i)) or bool(
            self.learnt.learnt_from(wanted[i].layer.dir)))
        for ref, layers in todo.items():
            installed, refused, failed = fetching.fetch(self.cfg, self.name, ref, subjects.get(ref),
                                                        layers, self.say)
            self.counts["fetched"] += installed
            self.counts["fetch_refused"] += refused
            self.counts["fetch_failed"] += failed

    def _mount(self, yolofs, w):
        top = top_mount(w.layer.dir)
        if top:
            if w.layer.id not in self.skipped:
                self.say(f"{self.name} layer {w.layer.id}: {w.layer.dir} has a {top} mount on it; left alone")
                self.skipped.add(w.layer.id)
            return
        if not os.path.isdir(w.layer.dir):
            return                        # removed since the engine answered
        daemon = start_yolofs(self.state, self.learnt, yolofs, w.layer, self.image_dir(w.layer.id),
                              self.cfg.learn, self.cfg.yolofs_options)
        if daemon:
            self.let_go.discard(w.layer.id)
            self.counts["mounted"] += 1
            self.say(f"{self.name} layer {w.layer.id} ({', '.join(w.refs) or w.key}): mounted, "
                     f"{daemon.describe()}")
        else:
            self.counts["mount_failed"] += 1

    def _release(self, layer_id, layer_dir):
        if layer_id in self.let_go:
            return                        # busy the first time: the engine removes it soon
        self.let_go.add(layer_id)
        taken, left = unmount_layer(Layer(layer_id, layer_dir), force=False)
        if taken:
            self.counts["released"] += 1
        daemon = self.state.current_daemon(layer_id)
        if daemon and not left:
            daemon.mark_detached()        # serves the containers it has until they stop

    def metrics(self, node):
        node.add("yolo_agent_engine_up", [("engine", self.name)], int(self.up))
        node.add("yolo_agent_layers", [("engine", self.name), ("state", "wanted")], len(self.wanted))
        mounted = 0
        for d in self.state.daemons():
            if d.detached or d.running_pid() is None:
                continue
            mounted += 1
            w = self.wanted.get(d.layer_id)
            key = w.key[len("layer:"):] if w else ""
            mount = f"{self.name}:{key or d.layer_id}"
            for ref in (w.refs if w else ()):
                node.add("yolo_agent_layer_image", [("mount", mount), ("image", ref)], 1)
            images = os.path.join(self.cfg.images, "")
            node.add_yolofs(read_value(os.path.join(d.path, "metrics.prom")),
                            [("mount", mount), ("engine", self.name), ("layer", key)],
                            lambda path: "fetched" if path.startswith(images) else "learnt")
        node.add("yolo_agent_layers", [("engine", self.name), ("state", "mounted")], mounted)
        for what, n in self.counts.items():
            node.add("yolo_agent_events_total", [("engine", self.name), ("event", what)], n)


def describe_metrics(node):
    node.describe("yolo_agent_engine_up", "gauge", "1 if the engine answered the agent's last round.")
    node.describe("yolo_agent_layers", "gauge", "Committed layers the engine holds (wanted) and the agent serves (mounted).")
    node.describe("yolo_agent_layer_image", "gauge", "An image reference holding the mount's layer.")
    node.describe("yolo_agent_events_total", "counter", "What the agent did, by engine and event.")


def sd_notify(text):
    """Tell systemd (Type=notify) TEXT, when started by it."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(text.encode(), path)
    except OSError:
        pass


class Agent:
    def __init__(self, cfg, state_root, say):
        self.cfg, self.state_root, self.say = cfg, state_root, say
        self.wake, self.stop = threading.Event(), threading.Event()
        self.engines = {}
        self.nova = None
        self.nova_metrics = None
        self.events = None

    def _discover(self):
        """Start following the engines that are present now (or configured
        yes); an engine installed later is taken at the next round."""
        c = self.cfg
        if "docker" not in self.engines and c.docker.enabled != "no":
            files = DockerFiles(c.docker.root)
            if files.present() or c.docker.enabled == "yes":
                self.engines["docker"] = EngineMounts("docker", files, c, self.state_root, self.say)
                self.events = start_events(c.docker.socket, self.wake, self.say, self.stop)
        if "containerd" not in self.engines and c.containerd.enabled != "no":
            if os.path.exists(c.containerd.address) or c.containerd.enabled == "yes":
                self.engines["containerd"] = EngineMounts(
                    "containerd", ContainerdImages(c.containerd.address, c.containerd.namespaces, self.say),
                    c, self.state_root, self.say)
        if self.nova is None and c.nova.enabled != "no":
            nova = NovaBase(c.nova.config, c, self.state_root, self.say)
            if nova.present() or c.nova.enabled == "yes":
                self.nova = nova

    def round(self, yolofs):
        self._discover()
        for name, engine in self.engines.items():
            try:
                engine.round(yolofs)
            except Fatal as e:                # e.g. the state's lock held by an operator's command
                self.say(f"{name}: {e}; next round")
            except Exception as e:            # a bug must not stop the other engines
                self.say(f"{name}: unexpected {type(e).__name__}: {e}; next round")
        if self.nova:
            try:
                self.nova_metrics = self.nova.round()
            except OSError as e:
                self.say(f"nova: {e}")
        self._write_metrics()

    def _write_metrics(self):
        if not self.cfg.metrics:
            return
        node = NodeMetrics()
        describe_metrics(node)
        for engine in self.engines.values():
            engine.metrics(node)
        if self.nova_metrics:
            base = os.path.basename(self.nova.path)
            node.add_yolofs(read_value(self.nova_metrics), [("mount", f"nova:{base}"), ("engine", "nova"),
                                                            ("base", base)],
                            lambda path: os.path.basename(path).partition(".")[0])
        try:
            node.write(self.cfg.metrics)
        except OSError as e:
            self.say(f"metrics {self.cfg.metrics}: {e.strerror or e}")

    def run(self, once=False):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: (self.stop.set(), self.wake.set()))
        old = os.umask(0o022)
        try:
            for d in (self.cfg.learn, self.cfg.images, self.state_root):
                os.makedirs(d, exist_ok=True)
        finally:
            os.umask(old)
        for name in ("docker", "containerd"):
            if os.path.isdir(os.path.join(self.cfg.images, name)):
                for layer_dir in os.listdir(os.path.join(self.cfg.images, name)):
                    sweep_temporary(os.path.join(self.cfg.images, name, layer_dir))
        yolofs = find_bin("YOLOFS", "yolofs", "yolofs/yolofs")
        self.round(yolofs)
        # After a package upgrade (which restarted the agent), the daemons
        # still run the old binary: each is moved to the new one.
        for name, engine in self.engines.items():
            try:
                engine.upgrade(yolofs)
            except Fatal as e:
                self.say(f"{name}: upgrade: {e}")
        if self.nova:
            self.nova.upgrade(yolofs)
        sd_notify("READY=1\nSTATUS=" + self.status_line())
        while not once and not self.stop.is_set():
            self.wake.wait(self.cfg.interval)
            self.wake.clear()
            if self.stop.is_set():
                break
            self.round(yolofs)
            sd_notify("STATUS=" + self.status_line())
        if self.nova:
            self.nova.stop()
        self.say("stopping; the mounts stay (their yolofs serve on)")
        return 0

    def status_line(self):
        parts = []
        for name, e in self.engines.items():
            mounted = sum(1 for d in e.state.daemons() if not d.detached and d.running_pid() is not None)
            parts.append(f"{name} {mounted}/{len(e.wanted)} layers" + ("" if e.up else " (down)"))
        if self.nova and self.nova.path:
            parts.append(f"nova {self.nova.path}")
        return ", ".join(parts) or "no engine found"
