"""agent.py - the loop: a round over every engine present, then the node's
metrics, then a wait for an event or the interval.

Layers are served by the node's one yolofs (`yolofs --host`, its own
systemd unit; host_client.py): a round asks it once which sessions it
serves.  Per engine, a round takes the engine's state lock (yolo_layers.
state: the learnt-image notes, and the per-layer daemons an earlier
version started, which serve on until their layer goes), asks the engine
what it holds, deletes the learnt images of the layers it removed, and
carries out plan.plan(): attaches (fetching first where nothing was learnt
or fetched yet, within FETCH_BUDGET_S a round) and detaches.  Nothing is
attached while the host does not answer.  One layer failing is a line and
a counter; the round goes on.  What would be said again every round (an
engine down, a layer that keeps failing) is said once, and again only
when it changes."""
import os
import signal
import socket
import threading
import time

from yolo_layers.common import Fatal
from yolo_layers.engines import Layer
from yolo_layers.host import find_bin, make_dirs, mount_is_dead, read_value, rm_rf, top_mount, write_value
from yolo_layers.learnt import Learnt
from yolo_layers.mount import YOLOFS_TYPE, unmount_layer
from yolo_layers.state import State
from yolo_share.install import sweep_temporary

from . import fetch as fetching
from .containerd import ContainerdImages
from .docker import DockerFiles, data_root, start_events
from .host_client import Host, HostDown
from .node_metrics import NodeMetrics
from .nova import NovaBase
from .plan import EngineDown, mount_label, plan, refs_to_fetch
from .upgrade import move, outdated

COUNTERS = ("mounted", "mount_failed", "released", "remounted", "fetched", "fetch_refused", "fetch_failed",
            "upgraded", "upgrade_failed")
# A round fetches for at most this long (a registry that does not answer
# must not hold the layers' mounts, nor the agent's start, for long); the
# layers left are mounted learning.
FETCH_BUDGET_S = 30
MAX_RETRY_S = 300                        # a layer that failed to mount is tried again at least this often
GONE = "gone:"                           # a session whose layer the engine no longer holds: GONE + its source


class Notes:
    """Messages said once per key, and again only when they change."""

    def __init__(self, say):
        self.say, self.last = say, {}

    def once(self, key, msg):
        if self.last.get(key) != msg:
            self.last[key] = msg
            self.say(msg)

    def clear(self, key):
        self.last.pop(key, None)


def boot_image(cfg, path):
    """A layer's boot image PATH, as the boot_image label says it."""
    return "fetched" if path.startswith(os.path.join(cfg.images, "")) else "learnt"


def legacy_daemons(state):
    """The per-layer daemons of STATE (an earlier version's) that are
    attached and running."""
    return [d for d in state.daemons() if not d.detached and d.running_pid() is not None]


class EngineMounts:
    """One engine's layers under yolofs: SOURCE answers answer(), HOST
    serves them."""

    def __init__(self, name, source, cfg, state_root, notes, host):
        self.name, self.source, self.cfg, self.notes, self.host = name, source, cfg, notes, host
        self.say = notes.say
        self.state = State(os.path.join(state_root, name))
        # Each engine learns into a directory of its own: its removed
        # layers' sweep and its sessions' learn_max see only its images.
        self.learn = os.path.join(cfg.learn, name)
        self.learnt = Learnt(self.state, name, self.learn)
        self.wanted = {}
        self.up = False
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.let_go = set()               # layer ids already asked to unmount
        self.retry = {}                   # layer id -> (failures, monotonic time of the next try)
        self.hosted = {}                  # layer id -> the host's Session, serving at the end of the last round
        self.legacy = []                  # the per-layer daemons serving at the end of the last round
        self.swept = False                # learnt images of removed layers looked for once
        self.removing = set()             # directories of layers let go, until they are gone

    def image_dir(self, layer_id):
        path = fetching.layer_image_dir(self.cfg.images, self.name, layer_id)
        return path if os.path.isdir(path) else ""

    def round(self, sessions):
        """SESSIONS: the host's {source: Session} now, or None (it does not
        answer: nothing is attached or detached)."""
        make_dirs(self.learn)
        self.state.lock()
        try:
            try:
                answer = self.source.answer()
            except EngineDown as e:
                self.notes.once(self.name, f"{self.name}: {e}; its mounts are left as they are")
                self.up = False
                return
            self.notes.once(self.name, f"{self.name}: {len(answer.wanted)} committed layers"
                            + ("" if answer.complete else " (some images not read yet)"))
            # Learnt images of removed layers (one note file a layer is
            # read): looked for at the first round, then only while a layer
            # the engine let go still has its directory (the engine deletes
            # it after, sometimes rounds after).
            self.removing |= {w.layer.dir for i, w in self.wanted.items() if i not in answer.wanted}
            if not self.swept or self.removing:
                self.learnt.sweep_removed()
                self.swept = True
                self.removing = {d for d in self.removing if os.path.lexists(os.path.dirname(d))}
            self.up, self.wanted = True, answer.wanted
            if sessions is None:
                return
            by_dir = {w.layer.dir: i for i, w in answer.wanted.items()}
            running, dead, self.hosted = {}, set(), {}
            for source, s in sessions.items():
                if s.state == "serving" and s.label.startswith(self.name + ":"):
                    i = by_dir.get(source, GONE + source)
                    running[i] = source
                    self.hosted[i] = s
            for d in self.state.daemons():
                if d.detached:
                    continue
                if d.running_pid() is not None:
                    running[d.layer_id] = d.source
                elif top_mount(d.source) == YOLOFS_TYPE and mount_is_dead(d.source):
                    running[d.layer_id] = d.source
                    dead.add(d.layer_id)
            p = plan(answer, running, dead)
            # A layer with a mount of someone else's on it is left alone.
            now = time.monotonic()
            to_mount = [i for i in p.mount if self._free(answer.wanted[i]) and self.retry.get(i, (0, 0))[1] <= now]
            if self.cfg.fetch and to_mount:
                self._fetch(answer, to_mount)
            for i in p.remount:
                taken, left = unmount_layer(answer.wanted[i].layer, force=False)
                if left:
                    self.notes.once(("layer", i), f"{self.name} layer {i}: its yolofs died and its "
                                    "mount cannot be cleared; left as it is")
                    continue
                self.counts["remounted"] += 1
                self.say(f"{self.name} layer {i}: its yolofs had died; mounting it again")
                to_mount.append(i)
            for i in to_mount:
                self._mount(answer.wanted[i])
            for i in p.release:
                self._release(i, running[i])
            self.let_go &= set(running)
            self.retry = {i: r for i, r in self.retry.items() if i in answer.wanted}
            if answer.complete:
                self._sweep_fetched(answer.wanted)
        finally:
            # Read once a round: the metrics and the status line use it.
            self.legacy = legacy_daemons(self.state)
            self.state.unlock()

    def _free(self, w):
        """Nothing but a dead yolofs (its session lost: the host clears it
        at the attach) is mounted on W's directory."""
        top = top_mount(w.layer.dir)
        if top and not (top == YOLOFS_TYPE and mount_is_dead(w.layer.dir)):
            self.notes.once(("layer", w.layer.id), f"{self.name} layer {w.layer.id}: {w.layer.dir} "
                            f"has a {top} mount on it; left alone")
            return False
        return os.path.isdir(w.layer.dir)

    def _fetch(self, answer, ids):
        todo = refs_to_fetch(answer.wanted, ids, lambda i: bool(self.image_dir(i)) or bool(
            self.learnt.learnt_from(answer.wanted[i].layer.dir)))
        deadline = time.monotonic() + FETCH_BUDGET_S
        for n, (ref, layers) in enumerate(todo.items()):
            if time.monotonic() > deadline:
                self.say(f"{self.name}: fetching took {FETCH_BUDGET_S} s this round; the layers of "
                         f"{len(todo) - n} more image(s) are mounted learning")
                break
            installed, refused, failed = fetching.fetch(self.cfg, self.name, ref, answer.subjects.get(ref),
                                                        layers, self.say)
            self.counts["fetched"] += installed
            self.counts["fetch_refused"] += refused
            self.counts["fetch_failed"] += failed

    def _mount(self, w):
        image = self.image_dir(w.layer.id)
        opts = ",".join(o for o in (f"images={image}" if image else "", f"learn={self.learn}", "learn_by=mount",
                                    "detach_when_emptied", self.cfg.yolofs_options) if o)
        try:
            session, line = self.host.attach(mount_label(self.name, w), w.layer.dir, opts)
        except HostDown as e:
            session, line = None, str(e)
        if session:
            self.hosted[w.layer.id] = session
            learning = session.learn
            if learning:
                self.learnt.note(self.learn, os.path.basename(learning), w.layer)
            self.notes.clear(("layer", w.layer.id))
            self.retry.pop(w.layer.id, None)
            self.counts["mounted"] += 1
            self.say(f"{self.name} layer {w.layer.id} ({', '.join(w.refs) or w.key}): mounted"
                     + (f", serving {image}" if image else "") + (f", learning into {learning}" if learning else ""))
        else:
            # Tried again after 2, 4, 8 ... rounds, at most every MAX_RETRY_S.
            failures = self.retry.get(w.layer.id, (0, 0))[0] + 1
            self.retry[w.layer.id] = (failures, time.monotonic()
                                      + min(MAX_RETRY_S, 2 ** failures * self.cfg.interval))
            self.counts["mount_failed"] += 1
            self.notes.once(("layer", w.layer.id), f"{self.name} layer {w.layer.id}: not mounted: {line}")

    def _release(self, layer_id, layer_dir):
        if layer_id in self.let_go:
            return                        # busy the first time: the engine removes it soon
        self.let_go.add(layer_id)
        if layer_id in self.hosted:
            # Detached lazily: the containers it has are served until they stop.
            try:
                ok, line = self.host.detach(layer_dir)
            except HostDown as e:
                ok, line = False, str(e)
            if ok:
                self.counts["released"] += 1
                del self.hosted[layer_id]
            else:
                self.say(f"{self.name} layer {layer_id}: detach: {line}")
            return
        taken, left = unmount_layer(Layer(layer_id, layer_dir), force=False)
        if taken:
            self.counts["released"] += 1
        daemon = self.state.current_daemon(layer_id)
        if daemon and not left:
            daemon.mark_detached()        # serves the containers it has until they stop

    def _sweep_fetched(self, wanted):
        """Delete the fetched images of layers the engine no longer holds
        (nothing serves them: their sessions are gone with the layer)."""
        root = os.path.join(self.cfg.images, self.name)
        try:
            ids = os.listdir(root)
        except OSError:
            return
        known = {d.layer_id for d in self.state.daemons()} | set(self.hosted)
        for layer_id in ids:
            if layer_id not in wanted and layer_id not in known and rm_rf(os.path.join(root, layer_id)):
                self.say(f"{self.name} layer {layer_id} is gone; deleted its fetched images")

    def upgrade(self, yolofs):
        """Move every per-layer daemon running an older yolofs to YOLOFS
        (upgrade.py)."""
        self.state.lock()
        try:
            for d in legacy_daemons(self.state):
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

    def mount_labels(self):
        """{mount label: [(label, value)]} of the layers the host serves
        for this engine: the labels its series get after mount=."""
        found = {}
        for i, s in self.hosted.items():
            w = self.wanted.get(i)
            found[s.label] = [("engine", self.name), ("layer", w.key[len("layer:"):] if w else "")]
        return found

    def metrics(self, node):
        node.add("yolo_agent_engine_up", [("engine", self.name)], int(self.up))
        node.add("yolo_agent_layers", [("engine", self.name), ("state", "wanted")], len(self.wanted))
        for i, s in self.hosted.items():
            for ref in (self.wanted[i].refs if i in self.wanted else ()):
                node.add("yolo_agent_layer_image", [("mount", s.label), ("image", ref)], 1)
        for d in self.legacy:
            w = self.wanted.get(d.layer_id)
            mount = mount_label(self.name, w) if w else f"{self.name}:{d.layer_id}"
            for ref in (w.refs if w else ()):
                node.add("yolo_agent_layer_image", [("mount", mount), ("image", ref)], 1)
            node.add_yolofs(read_value(os.path.join(d.path, "metrics.prom")),
                            [("mount", mount), ("engine", self.name),
                             ("layer", w.key[len("layer:"):] if w else "")],
                            lambda path: boot_image(self.cfg, path))
        node.add("yolo_agent_layers", [("engine", self.name), ("state", "mounted")],
                 len(self.hosted) + len(self.legacy))
        for what, n in self.counts.items():
            node.add("yolo_agent_events_total", [("engine", self.name), ("event", what)], n)


def describe_metrics(node):
    node.describe("yolo_agent_engine_up", "gauge", "1 if the engine answered the agent's last round.")
    node.describe("yolo_agent_layers", "gauge", "Committed layers the engine holds (wanted) and the agent "
                  "serves (mounted).")
    node.describe("yolo_agent_layer_image", "gauge", "An image reference holding the mount's layer.")
    node.describe("yolo_agent_events_total", "counter", "What the agent did, by engine and event.")


class Agent:
    def __init__(self, cfg, state_root, say):
        self.cfg, self.state_root = cfg, state_root
        self.notes = Notes(say)
        self.say = say
        self.wake, self.stop = threading.Event(), threading.Event()
        self.engines = {}
        self.host = Host(cfg.host)
        self.host_pid = None              # the host's, as its last answer said
        self.host_counts = {"upgraded": 0, "upgrade_failed": 0}
        self.nova = None
        self.nova_metrics = None
        self.metrics_written = None       # monotonic time of the last rewrite
        # systemd's notification socket is the agent's alone: the yolofs
        # it starts must not report to (or store descriptors in) its unit.
        self.notify_socket = os.environ.pop("NOTIFY_SOCKET", "")

    def sd_notify(self, text):
        """Tell systemd (Type=notify) TEXT, when started by it."""
        path = self.notify_socket
        if not path:
            return
        if path.startswith("@"):
            path = "\0" + path[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(text.encode(), path)
        except OSError:
            pass

    def _discover(self):
        """Start following the engines that are present now (or configured
        yes); an engine installed later is taken at the next round."""
        c = self.cfg
        if "docker" not in self.engines and c.docker.enabled != "no":
            files = DockerFiles(data_root(c.docker.root))
            if files.present() or c.docker.enabled == "yes":
                self.engines["docker"] = EngineMounts("docker", files, c, self.state_root, self.notes, self.host)
                start_events(c.docker.socket, c.docker.pidfile, self.wake, self.say, self.stop)
        if "containerd" not in self.engines and c.containerd.enabled != "no":
            if os.path.exists(c.containerd.address) or c.containerd.enabled == "yes":
                self.engines["containerd"] = EngineMounts(
                    "containerd", ContainerdImages(c.containerd.address, c.containerd.namespaces, self.notes.once),
                    c, self.state_root, self.notes, self.host)
        if self.nova is None and c.nova.enabled != "no":
            nova = NovaBase(c.nova.config, c, self.state_root, self.say, self.notes.once)
            if nova.present() or c.nova.enabled == "yes":
                self.nova = nova

    def round(self):
        self._discover()
        sessions = None
        if self.engines:
            try:
                sessions, self.host_pid = self.host.sessions()
                self.notes.clear("host")
            except HostDown as e:
                self.notes.once("host", f"{e}; layers are attached once it answers")
        for name, engine in self.engines.items():
            try:
                engine.round(sessions)
            except Fatal as e:                # e.g. its state's lock held for a minute (yolo-docker with YOLO_DOCKER_STATE)
                self.notes.once(name, f"{name}: {e}; next round")
            except Exception as e:            # a bug must not stop the other engines
                self.notes.once(name, f"{name}: unexpected {type(e).__name__}: {e}; next round")
        if self.nova:
            try:
                self.nova_metrics = self.nova.round()
            except Exception as e:            # a bad nova.conf must not stop the engines
                self.notes.once("nova", f"nova: {type(e).__name__}: {e}; next round")
        self._write_metrics()

    def _write_metrics(self):
        now = time.monotonic()
        if not self.cfg.metrics or (self.metrics_written is not None
                                    and now - self.metrics_written < self.cfg.metrics_interval):
            return
        self.metrics_written = now
        node = NodeMetrics()
        describe_metrics(node)
        labels = {}
        for engine in self.engines.values():
            engine.metrics(node)
            labels.update(engine.mount_labels())
        if self.engines:
            node.add_host(read_value(self.cfg.host_metrics), lambda mount: labels.get(mount, []),
                          lambda path: boot_image(self.cfg, path))
        for what, n in self.host_counts.items():
            node.add("yolo_agent_events_total", [("engine", "host"), ("event", what)], n)
        if self.nova_metrics:
            base = os.path.basename(self.nova.path)
            node.add_yolofs(read_value(self.nova_metrics), [("mount", f"nova:{base}"), ("engine", "nova"),
                                                            ("base", base)],
                            lambda path: os.path.basename(path).partition(".")[0])
        try:
            node.write(self.cfg.metrics)
            self.notes.clear("metrics")
        except OSError as e:              # e.g. no node_exporter here: its directory is absent
            self.notes.once("metrics", f"metrics {self.cfg.metrics}: {e.strerror or e}")

    def run(self, once=False):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: (self.stop.set(), self.wake.set()))
        for d in (self.cfg.learn, self.cfg.images, self.state_root):
            make_dirs(d)
        for name in ("docker", "containerd"):
            if os.path.isdir(os.path.join(self.cfg.images, name)):
                for layer_dir in os.listdir(os.path.join(self.cfg.images, name)):
                    sweep_temporary(os.path.join(self.cfg.images, name, layer_dir))
        yolofs = find_bin("YOLOFS", "yolofs", "yolofs/yolofs")
        self.round()
        # After a package upgrade (which restarted the agent), the host and
        # the daemons still run the old binary: each is moved to the new one.
        self.upgrade_host(yolofs)
        for name, engine in self.engines.items():
            try:
                engine.upgrade(yolofs)
            except Fatal as e:
                self.say(f"{name}: upgrade: {e}")
        if self.nova:
            self.nova.upgrade(yolofs)
        self.sd_notify("READY=1\nSTATUS=" + self.status_line())
        while not once and not self.stop.is_set():
            self.wake.wait(self.cfg.interval)
            self.wake.clear()
            if self.stop.is_set():
                break
            self.round()
            self.sd_notify("STATUS=" + self.status_line())
        if self.nova:
            self.nova.stop()
        self.say("stopping; the mounts stay (their yolofs serve on)")
        return 0

    def upgrade_host(self, yolofs):
        """Hand every session of a host running an older yolofs to YOLOFS
        (the host execs the binary at its own path: the installed one)."""
        if self.host_pid is None or not outdated(self.host_pid, yolofs):
            return
        try:
            ok, line = self.host.upgrade()
        except HostDown as e:
            ok, line = False, str(e)
        self.host_counts["upgraded" if ok else "upgrade_failed"] += 1
        self.say(f"upgrade of the yolofs host (pid {self.host_pid}): {line}")


    def status_line(self):
        parts = []
        for name, e in self.engines.items():
            parts.append(f"{name} {len(e.hosted) + len(e.legacy)}/{len(e.wanted)} layers"
                         + ("" if e.up else " (down)"))
        if self.nova and self.nova.path:
            parts.append(f"nova {self.nova.path}")
        return ", ".join(parts) or "no engine found"
