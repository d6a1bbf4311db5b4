"""config.py - /etc/yolo/agent.conf, an INI file; every setting has a
default, so the file may be absent or empty.

    [agent]
    learn = /var/lib/yolo/learn          yolofs -o learn=: what boots read, learnt
    images = /var/lib/yolo/images        fetched images, IMAGES/<engine>/<layer id>/
    metrics = /var/lib/prometheus/node-exporter/yolo.prom   ("" for none)
    metrics_interval = 15                seconds between rewrites of it
    interval = 2                         seconds between rounds without an event
    yolofs_options =                     more yolofs options for every mount
    fetch = yes                          fetch published images before a first mount
    store =                              where from ("": each image's own registry;
                                         REGISTRY/REPOSITORY; a shared directory)
    auth_file =                          registry credentials ("": Docker's config.json)
    host = /run/yolofs/host.sock         the node's yolofs (yolofs-host.service), which serves
                                         every layer
    host_metrics = /run/yolofs/host.prom its metrics file (the unit's metrics=)
    [docker]
    enabled = auto                       auto: when ROOT holds an overlay2 layer store
    root =                               "": daemon.json's data-root, else /var/lib/docker
    socket = /var/run/docker.sock        the Engine API (events start a round early)
    pidfile = /var/run/docker.pid        events are followed only while it names dockerd
    [containerd]
    enabled = auto                       auto: when the socket exists
    address = /run/containerd/containerd.sock
    namespaces =                         names, comma-separated ("": every namespace)
    [nova]
    enabled = auto                       auto: when the nova.conf file exists
    config = /etc/nova/nova.conf         its instances_path and [image_cache]
                                         subdirectory_name name the _base directory
    store =                              base file images (yolo-share's store)

A wrong value is an error at start (the agent refuses to run on a
configuration it would half follow)."""
import collections
import configparser

DEFAULT_PATH = "/etc/yolo/agent.conf"

DEFAULTS = {
    "agent": {"learn": "/var/lib/yolo/learn", "images": "/var/lib/yolo/images",
              "metrics": "/var/lib/prometheus/node-exporter/yolo.prom", "metrics_interval": "15", "interval": "2",
              "yolofs_options": "", "fetch": "yes", "store": "", "auth_file": "",
              "host": "/run/yolofs/host.sock", "host_metrics": "/run/yolofs/host.prom"},
    "docker": {"enabled": "auto", "root": "", "socket": "/var/run/docker.sock", "pidfile": "/var/run/docker.pid"},
    "containerd": {"enabled": "auto", "address": "/run/containerd/containerd.sock", "namespaces": ""},
    "nova": {"enabled": "auto", "config": "/etc/nova/nova.conf", "store": ""},
}

Config = collections.namedtuple("Config", "learn images metrics metrics_interval interval yolofs_options fetch "
                                "store auth_file host host_metrics docker containerd nova path")
Docker = collections.namedtuple("Docker", "enabled root socket pidfile")
Containerd = collections.namedtuple("Containerd", "enabled address namespaces")
Nova = collections.namedtuple("Nova", "enabled config store")


class ConfigError(Exception):
    """The configuration cannot be followed; the message says where."""


def _enabled(section, value):
    if value not in ("auto", "yes", "no"):
        raise ConfigError(f"[{section}] enabled = {value!r}: give auto, yes or no")
    return value


def _absolute(section, name, value, empty_ok=False):
    if (value or not empty_ok) and not value.startswith("/"):
        raise ConfigError(f"[{section}] {name} = {value!r}: give an absolute path")
    return value


def parse(text, path=DEFAULT_PATH):
    """The Config in TEXT (an INI file's content)."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_dict(DEFAULTS)
    try:
        ini.read_string(text, source=path)
    except configparser.Error as e:
        raise ConfigError(str(e).replace("\n", " ")) from None
    for section in ini.sections():
        if section not in DEFAULTS:
            raise ConfigError(f"{path}: unknown section [{section}]")
        for name in ini[section]:
            if name not in DEFAULTS[section]:
                raise ConfigError(f"{path}: [{section}] {name}: unknown setting")
    a = ini["agent"]
    try:
        interval = float(a["interval"])
    except ValueError:
        interval = 0
    if not 0.1 <= interval <= 3600:
        raise ConfigError(f"[agent] interval = {a['interval']!r}: give seconds, 0.1 to 3600")
    if not (a["metrics_interval"].isdigit() and 1 <= int(a["metrics_interval"]) <= 3600):
        raise ConfigError(f"[agent] metrics_interval = {a['metrics_interval']!r}: give seconds, 1 to 3600")
    if a["fetch"] not in ("yes", "no"):
        raise ConfigError(f"[agent] fetch = {a['fetch']!r}: give yes or no")
    d, c, n = ini["docker"], ini["containerd"], ini["nova"]
    namespaces = tuple(s.strip() for s in c["namespaces"].split(",") if s.strip())
    return Config(
        learn=_absolute("agent", "learn", a["learn"]), images=_absolute("agent", "images", a["images"]),
        metrics=_absolute("agent", "metrics", a["metrics"], empty_ok=True),
        metrics_interval=int(a["metrics_interval"]), interval=interval,
        yolofs_options=a["yolofs_options"].strip(), fetch=a["fetch"] == "yes", store=a["store"].strip(),
        auth_file=a["auth_file"].strip() or None, host=_absolute("agent", "host", a["host"]),
        host_metrics=_absolute("agent", "host_metrics", a["host_metrics"]),
        docker=Docker(_enabled("docker", d["enabled"]), _absolute("docker", "root", d["root"], empty_ok=True),
                      _absolute("docker", "socket", d["socket"]), _absolute("docker", "pidfile", d["pidfile"])),
        containerd=Containerd(_enabled("containerd", c["enabled"]), _absolute("containerd", "address", c["address"]),
                              namespaces),
        nova=Nova(_enabled("nova", n["enabled"]), _absolute("nova", "config", n["config"]), n["store"].strip()),
        path=path)


def load(path=DEFAULT_PATH):
    """The Config in file PATH (defaults alone if it does not exist)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    return parse(text, path)
