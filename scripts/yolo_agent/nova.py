"""nova.py - nova's _base directory (one backing file per Glance image),
from nova.conf: [DEFAULT] instances_path (default /var/lib/nova/instances)
and [image_cache] subdirectory_name (default _base; older releases:
[DEFAULT] image_cache_subdirectory_name).  Only the libvirt driver's file
backends (qcow2, raw, flat) keep base files there; rbd keeps images in
Ceph and gains nothing.

_base is served by the yolofs@ unit for its path (crash restart, upgrade
in place: issue 19), learning each base file's boot: the agent writes the
unit's settings (/etc/yolo/INSTANCE.conf) unless the operator has, and
enables the unit, which then starts before nova-compute at every boot.
With a store configured, a `yolo-share watch` beside it fetches the
images other nodes published for each base file nova downloads."""
import configparser
import ctypes
import os
import signal
import subprocess

from yolo_layers.host import failure_line, run

from .upgrade import move, outdated

# yolo-share is beside the packages (scripts/ in the tree, PREFIX/lib/yolo installed).
YOLO_SHARE = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "yolo-share")

NOVA_DEFAULT_INSTANCES = "/var/lib/nova/instances"


def base_dir(conf_text):
    """The _base directory nova.conf's text names."""
    ini = configparser.ConfigParser(interpolation=None, strict=False)
    ini.read_string(conf_text)
    instances = ini.get("DEFAULT", "instances_path", fallback="").strip() or NOVA_DEFAULT_INSTANCES
    sub = (ini.get("image_cache", "subdirectory_name", fallback="").strip()
           or ini.get("DEFAULT", "image_cache_subdirectory_name", fallback="").strip() or "_base")
    return os.path.join(instances, sub)


def unit_instance(path):
    """The yolofs@ instance name of PATH (systemd-escape --path)."""
    p = run(["systemd-escape", "--path", path])
    return p.stdout.strip() if p.returncode == 0 else ""


def unit_conf_text(learn, images, metrics):
    return (f"# Written by yolo-agent for nova's _base; edit freely, the agent never rewrites it.\n"
            f"YOLOFS_OPTIONS=learn={learn},learn_max=20G,images={images},allow_other"
            + (f",metrics={metrics}" if metrics else "") + "\n")


PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In a child before exec: SIGTERM when the agent dies (the unit's
    KillMode=process would leave the watcher running)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class NovaBase:
    def __init__(self, conf_path, cfg, state_dir, say, say_once):
        self.conf_path, self.cfg, self.state_dir = conf_path, cfg, state_dir
        self.say, self.say_once = say, say_once
        self.path = ""
        self.instance = ("", "")          # (path, its yolofs@ instance): asked once per path
        self.share = None                 # the yolo-share watch child
        self.images = os.path.join(cfg.images, "nova")
        self.learn = os.path.join(cfg.learn, "nova")   # learn_max counts nova's images alone

    def present(self):
        return os.path.isfile(self.conf_path)

    def round(self):
        """Make sure _base is served and watched; what is served (for the
        metrics), or None."""
        with open(self.conf_path, encoding="utf-8", errors="replace") as f:
            self.path = base_dir(f.read())
        if not os.path.isdir(self.path):
            return None                   # nova has not downloaded a base file yet
        if not os.path.isdir("/run/systemd/system"):
            self.say_once("nova", f"nova {self.path}: not served (the agent serves _base through "
                          "the yolofs@ unit, and systemd is not running)")
            return None
        inst = self._instance()
        unit = f"yolofs@{inst}.service"
        conf = os.path.join("/etc/yolo", inst.replace("\\", "") + ".conf")
        metrics = os.path.join(self.state_dir, "nova.prom")
        if not os.path.exists(conf):
            os.makedirs(self.learn, mode=0o755, exist_ok=True)
            os.makedirs(self.images, mode=0o755, exist_ok=True)
            with open(conf + ".tmp", "w", encoding="utf-8") as f:
                f.write(unit_conf_text(self.learn, self.images, metrics))
            os.replace(conf + ".tmp", conf)
            self.say(f"nova {self.path}: wrote {conf}")
        if run(["systemctl", "is-active", "--quiet", unit]).returncode != 0:
            p = run(["systemctl", "enable", "--now", unit])
            if p.returncode == 0:
                self.say(f"nova {self.path}: systemctl enable --now {unit}: done")
            else:                         # said again only when the reason changes
                self.say_once("nova", f"nova {self.path}: systemctl enable --now {unit}: {failure_line(p)}")
        self._watch_share()
        return metrics

    def _instance(self):
        if self.instance[0] != self.path or not self.instance[1]:
            self.instance = (self.path, unit_instance(self.path))
        return self.instance[1]

    def upgrade(self, yolofs):
        """Move _base's yolofs to YOLOFS if it runs an older binary (the
        unit's main process: the successor tells systemd its pid)."""
        if not self.path or not os.path.isdir("/run/systemd/system"):
            return
        unit = f"yolofs@{self._instance()}.service"
        p = run(["systemctl", "show", "-p", "MainPID", "--value", unit])
        pid = p.stdout.strip()
        if p.returncode == 0 and pid.isdigit() and pid != "0" and outdated(int(pid), yolofs):
            _, line = move(yolofs, self.path)
            self.say(f"nova {self.path}: upgrade of yolofs (pid {pid}): {line}")

    def _watch_share(self):
        if not self.cfg.nova.store or (self.share and self.share.poll() is None):
            return
        if self.share:
            self.say(f"nova: yolo-share watch exited ({self.share.returncode}); starting it again")
        argv = [YOLO_SHARE, "watch",
                "--from", self.cfg.nova.store, "--images", self.images,
                "--metrics", os.path.join(self.state_dir, "nova-share.prom"), self.path]
        if self.cfg.auth_file:
            argv[2:2] = ["--auth-file", self.cfg.auth_file]
        self.share = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def stop(self):
        if self.share and self.share.poll() is None:
            self.share.terminate()
            self.share.wait(10)
