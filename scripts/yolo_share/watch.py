"""watch.py - yolo-share watch: a base file that appears in nova's _base is
fetched, checked and loaded before the first VM boots from it, with no
command per image.

The watcher polls SOURCE_DIR (every --interval seconds; a readdir of one
directory).  A new regular file (not NAME.part or a hidden name: nova
writes NAME.part and renames it) whose size and mtime held still over two
polls is a download that finished; its key (base:NAME:SIZE) is fetched from
the store, checked against the file and installed as DIR/NAME.yolo
(install.py), and the yolofs serving SOURCE_DIR is asked to reload
(`reload` on its control socket).  A file with no published image, a
refused image or an unreachable store is one log line and a counter; the
file is tried again only when it changes (an unreachable store: after
--retry seconds).  Nothing here delays a boot: a VM that starts before the
fetch ends boots as it would have (and yolofs learns it).

yolofs is mounted in place over _base, so the watcher reads the files in a
mount namespace of its own where that mount is taken off (unshare, then
umount -l in the copy): its comparison reads go to the source, never
through yolofs (they would be counted and learnt as a boot).

Metrics (--metrics FILE, Prometheus text for node_exporter's textfile
collector, written atomically): yolo_share_fetches_total{result=...}
(installed, refused, absent, error) and yolo_share_last_error_timestamp_seconds."""
import os
import socket
import stat
import subprocess
import sys
import time

from .install import Refused, fetch_install, stop_cleanly, sweep_temporary
from .keys import BASE_NAME, base_key, open_store
from .mountinfo import top_mount_at
from .registry import RegistryError
from .textfile import Counters

CONTROL_DIR = "/run/yolofs"
RESULTS = ("installed", "refused", "absent", "error")


def say(msg):
    print(f"yolo-share watch: {msg}", file=sys.stderr, flush=True)


def fuse_dev(path):
    """MAJ:MIN of the file system at PATH when the topmost mount there is a
    yolofs, else None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            fstype, dev = top_mount_at(f.read(), path)
    except OSError:
        return None
    return dev if fstype == "fuse.yolofs" else None


def reload_daemon(dev):
    """Ask the yolofs of mount DEV (MAJ:MIN) to reload its images; its
    answer, or why it could not be asked."""
    path = os.path.join(CONTROL_DIR, f"{dev}.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"reload\n")
            return s.recv(600).decode(errors="replace").strip()
    except OSError as e:
        return f"error: {path}: {e.strerror or e}"


def candidates(source):
    """{name: (size, mtime_ns)} of the regular files in SOURCE that look
    finished: not hidden, not NAME.part, a base file name."""
    found = {}
    with os.scandir(source) as it:
        for e in it:
            if e.name.startswith(".") or e.name.endswith((".part", ".tmp")) or not BASE_NAME.fullmatch(e.name):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[e.name] = (st.st_size, st.st_mtime_ns)
    return found


class Metrics(Counters):
    """yolo_share_fetches_total{result}, and when a fetch last failed."""

    def __init__(self, path):
        self.last_error = 0.0
        super().__init__(path, RESULTS, self.lines, say)

    def count(self, result):
        if result in ("refused", "error"):
            self.last_error = time.time()
        super().count(result)

    def lines(self, counts):
        return (["# HELP yolo_share_fetches_total Base files whose boot image a fetch looked for, by outcome.",
                 "# TYPE yolo_share_fetches_total counter"]
                + [f'yolo_share_fetches_total{{result="{r}"}} {n}' for r, n in counts.items()]
                + ["# HELP yolo_share_last_error_timestamp_seconds When a fetch last failed or was refused.",
                   "# TYPE yolo_share_last_error_timestamp_seconds gauge",
                   f"yolo_share_last_error_timestamp_seconds {self.last_error:.3f}"])


def enter_private_namespace(argv, source):
    """Re-run this command in a mount namespace of its own where the yolofs
    mount on SOURCE is off (the source's own files are read); returns in
    the re-run process, with the control socket's MAJ:MIN in the
    environment (None when SOURCE is no yolofs mount)."""
    if os.environ.get("YOLO_SHARE_PRIVATE") == "1":
        while fuse_dev(source):
            if subprocess.run(["umount", "-l", source]).returncode != 0:
                raise RegistryError(f"cannot take the yolofs mount off {source} in the watcher's namespace")
        return os.environ.get("YOLO_SHARE_CONTROL") or None
    dev = fuse_dev(source)
    if not dev:
        return None
    env = dict(os.environ, YOLO_SHARE_PRIVATE="1", YOLO_SHARE_CONTROL=dev)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "yolo-share")
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", sys.executable, script] + argv, env)


def watch(opts, source, argv):
    source = os.path.realpath(source)
    images_dir = os.path.realpath(opts["images"])
    dev = enter_private_namespace(argv, source)
    os.makedirs(images_dir, mode=0o755, exist_ok=True)
    stop_cleanly()
    sweep_temporary(images_dir)
    store = open_store(opts["store"], opts["auth_file"] or None)
    metrics = Metrics(opts.get("metrics") or "")
    yolo_image = opts["yolo_image"]
    say(f"watching {source} (fetching from {store.where()} into {images_dir}"
        + (f", yolofs {dev} reloads" if dev else ", no yolofs mounted there") + ")")
    before, done, retry_at = {}, {}, {}
    while True:
        now = candidates(source)
        for name, ident in now.items():
            if before.get(name) != ident or done.get(name) == ident:
                continue                          # still changing, or handled
            if name in retry_at and time.monotonic() < retry_at[name]:
                continue
            done[name] = ident
            try:
                result = fetch_one(store, yolo_image, source, images_dir, name, ident[0])
            except Exception as e:                # a bug must not end the watch: say it, go on
                say(f"{name}: unexpected {type(e).__name__}: {e}")
                result = "error"
            metrics.count(result)
            if result == "error":
                retry_at[name] = time.monotonic() + opts["retry"]
                del done[name]
            elif result == "installed" and dev:
                say(f"{name}: yolofs: {reload_daemon(dev)}")
        before = now
        time.sleep(opts["interval"])


def fetch_one(store, yolo_image, source, images_dir, name, size):
    """Fetch, check and install NAME's image; the outcome (RESULTS)."""
    out = os.path.join(images_dir, f"{name}.yolo")
    try:
        key = base_key(source, name)
        if key != f"base:{name}:{size}":
            return "error"                        # it changed since the poll: next time
        cands = store.candidates([key]).get(key)
        if not cands:
            say(f"{name}: no image published for {key} in {store.where()}")
            return "absent"
        summary = fetch_install(store, key, cands, yolo_image, source, out, lambda m: say(f"{name}: {m}"))
    except Refused as e:
        say(f"{name}: no fetched image installed ({e})")
        return "refused"
    except (RegistryError, OSError) as e:
        say(f"{name}: {e}")
        return "error"
    say(f"{name}: fetched {key}, checked: {summary}")
    return "installed"
