"""watch.py - the watch command: every image the engine pulls from now on
gets its published boot images fetched and its layers mounted (serving
them, and learning what they lack) before its first container can start,
with no command per image.

Docker: the Engine API's event stream over dockerd's socket (GET /events,
image pull events; JSON, not CLI output).  containerd: ctr 1.6 prints events
only as text, so its image list (`ctr images ls -q`: one reference per
line) is polled every --interval seconds and a reference not seen before
is a pull.  For each pulled image: fetch (share.py), then mount --images
DIR --learn LEARN (mount.py); each step's outcome is a log line and a
counter in --metrics FILE (Prometheus text).  A failed fetch (registry
down, nothing published, an image refused) still mounts, learning: the
start is never delayed beyond the fetch's own time nor failed by it.

The state's lock is taken per pulled image, not for the life of the
watch, so the operator's own commands run meanwhile."""
import http.client
import json
import os
import socket
import time
import urllib.parse

from yolo_share.install import stop_cleanly, sweep_temporary
from yolo_share.registry import DIGEST, RegistryError
from yolo_share.textfile import Counters

from .args import MountArgs, ShareArgs
from .common import Fatal, say
from .host import run
from .mount import cmd_mount
from .share import cmd_fetch

RESULTS = ("fetched", "fetch_failed", "mounted", "mount_failed")


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (dockerd's API)."""

    def __init__(self, path):
        super().__init__("localhost")
        self.socket_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.socket_path)
        self.sock = s


def docker_socket(client_opts):
    """dockerd's socket path from -H/--host or DOCKER_HOST (unix only)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    for i in range(0, len(client_opts) - 1, 2):
        if client_opts[i] in ("-H", "--host"):
            host = client_opts[i + 1]
    if not host.startswith("unix://"):
        raise Fatal(f"watch needs dockerd's unix socket, not {host}")
    return host[len("unix://"):]


def open_docker_events(socket_path, filters):
    """dockerd's event stream (GET /events over its socket, FILTERS a dict):
    the response, one JSON event a line, as they come (close it when done);
    OSError when it cannot be opened or is refused."""
    conn = UnixHTTPConnection(socket_path)
    try:
        conn.request("GET", "/events?filters=" + urllib.parse.quote(json.dumps(filters)))
        resp = conn.getresponse()
    except OSError:
        conn.close()
        raise
    if resp.status != 200:
        conn.close()
        raise OSError(f"HTTP {resp.status}")
    return resp


def docker_pulls(client_opts):
    """The references dockerd pulls from now on (a generator)."""
    try:
        resp = open_docker_events(docker_socket(client_opts), {"type": ["image"], "event": ["pull"]})
    except OSError as e:
        raise Fatal(f"dockerd's event stream: {e}") from None
    for line in resp:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        ref = (event.get("Actor") or {}).get("ID") or event.get("id") if isinstance(event, dict) else None
        if isinstance(ref, str) and ref:
            yield ref
    raise Fatal("dockerd closed its event stream")


UNPACK_WAIT_S = 600                      # a pull still unpacking after this is given up


def containerd_pulls(engine, interval):
    """The references that appear in containerd's image list from now on,
    each once it is unpacked (ctr records an image before it unpacks it)."""
    def refs():
        p = run(engine.cmd + ["images", "ls", "-q"])
        if p.returncode != 0:
            say(f"ctr images ls: {p.stdout.strip() or p.returncode}")
            return None
        return set(p.stdout.split())
    known, pending = refs() or set(), {}
    while True:
        time.sleep(interval)
        now = refs()
        if now is None:
            continue
        for ref in now - known:
            if not DIGEST.fullmatch(ref):             # CRI lists images by id too: one image, two names
                pending[ref] = time.monotonic()
        known = now
        for ref in sorted(pending):
            try:
                engine.image_layers(ref)
            except Fatal as e:
                if ref in now and time.monotonic() - pending[ref] < UNPACK_WAIT_S:
                    continue                      # not unpacked yet
                say(f"{ref}: {e}")
                del pending[ref]
                continue
            del pending[ref]
            yield ref


def metrics_lines(engine):
    """The text of yolo_layers_watch_total for ENGINE's counts."""
    return lambda counts: (
        [f"# HELP yolo_layers_watch_total Images pulled while {engine} was watched, by step and outcome.",
         "# TYPE yolo_layers_watch_total counter"]
        + [f'yolo_layers_watch_total{{engine="{engine}",result="{r}"}} {n}' for r, n in counts.items()])


def on_pull(engine, state, args, metrics, ref):
    """Fetch and mount the layers of REF, just pulled.  Whatever goes wrong
    with one image is a line and a counter; the watch goes on."""
    say(f"{ref}: pulled")
    for step, ok, failed, do in (
            ("fetch", "fetched", "fetch_failed",
             lambda: cmd_fetch(engine, state, ShareArgs(ref, args.store, args.images_dir, "", args.auth_file))),
            ("mount", "mounted", "mount_failed",
             lambda: cmd_mount(engine, state, MountArgs(ref, args.images_dir, args.learn_dir, args.yolofs_opts)))):
        try:
            do()
            metrics.count(ok)
        except (Fatal, RegistryError, OSError) as e:
            say(f"{ref}: {step}: {e}")
            metrics.count(failed)
        except Exception as e:                    # a bug must not end the watch: say it, go on
            say(f"{ref}: {step}: unexpected {type(e).__name__}: {e}")
            metrics.count(failed)
        finally:
            state.unlock()


def cmd_watch(engine, state, args):
    stop_cleanly()
    if os.path.isdir(args.images_dir):
        sweep_temporary(args.images_dir)
    metrics = Counters(args.metrics, RESULTS, metrics_lines(engine.name), say)
    pulls = docker_pulls(engine.client_opts) if engine.name == "docker" else containerd_pulls(engine, args.interval)
    say(f"watching {engine.name} for pulls (images {args.images_dir}, learning into {args.learn_dir})")
    for ref in pulls:
        on_pull(engine, state, args, metrics, ref)
    return 0
