"""cli.py - yolo-share: boot images of VM base files between nodes (a
container image's layers travel with yolo-docker / yolo-containerd publish
and fetch).  A base file's image is keyed by its name and size (nova names
a file in _base by the SHA-1 of its Glance image id, the same on every
node) and stored under the tag of that key in a registry repository, or in
a shared directory."""
import glob
import os
import subprocess
import sys
import tempfile

from .install import Refused, fetch_install
from .keys import base_key, open_store
from .programs import ProgramMissing, find_program
from .registry import RegistryError
from .watch import watch

USAGE = """\
usage: yolo-share publish --to STORE [--learn DIR]... [--image FILE]... [--auth-file F] SOURCE_DIR NAME
       yolo-share fetch --from STORE --images DIR [--auth-file F] SOURCE_DIR NAME...
       yolo-share watch --from STORE --images DIR [--metrics FILE] [--interval S] [--retry S]
                        [--auth-file F] SOURCE_DIR

  publish  Publish the boot image of base file NAME of SOURCE_DIR (nova's
           _base): the images learnt for it in each learn directory DIR
           (yolofs -o learn=DIR: DIR/<key>/NAME.<hash>.yolo) and each FILE,
           merged into one, under the key base:NAME:SIZE.
  fetch    Fetch the published image of each NAME, check its digest, compare
           every block of it with SOURCE_DIR/NAME (an image that differs
           anywhere is refused) and write it, re-stamped for this node, as
           DIR/NAME.yolo.  yolofs -o images=DIR serves it after a reload
           (systemctl reload yolofs@..., or SIGHUP).  Fetch before yolofs is
           mounted over SOURCE_DIR in place, or its comparison reads go
           through the mount (correct, but counted and learnt as reads).
  watch    Do what fetch does for every base file that appears in SOURCE_DIR
           (nova's download: NAME.part renamed to NAME), with no command per
           image: poll every S seconds (default 2), fetch a file once its size
           and mtime held still over two polls, install DIR/NAME.yolo and ask
           the yolofs mounted on SOURCE_DIR to reload (its control socket).
           The files are read in a mount namespace of the watcher's own
           without that mount.  An unreachable store is retried after
           --retry seconds (default 60); every outcome is a log line and a
           counter in --metrics FILE (node_exporter's textfile format).
           Runs until stopped (a systemd service).

STORE: a shared directory (absolute path) or REGISTRY/REPOSITORY (e.g.
registry.example:5000/yolo/base): HTTPS, the certificate checked against the
system's CA store (SSL_CERT_FILE adds one); plain HTTP only for a loopback
registry that does not speak TLS.  Credentials: --auth-file F, else $DOCKER_CONFIG/config.json or
~/.docker/config.json (as docker login writes them).
Environment: YOLO_IMAGE (the yolo-image binary; default from PATH, then the
build/ directory next to this script).
Exit status: 0 done, 1 failed (a store unreachable, an image refused), 2 bad usage.
"""


class UsageError(Exception):
    pass


class Fatal(Exception):
    pass


def say(msg):
    print(f"yolo-share: {msg}", file=sys.stderr, flush=True)


def find_yolo_image():
    return find_program("YOLO_IMAGE", "yolo-image", "boot-images/yolo-image")


def parse(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        return None
    command, args = argv[0], argv[1:]
    if command not in ("publish", "fetch", "watch"):
        raise UsageError(f"unknown command {command}")
    opts = {"--to": "store", "--from": "store", "--images": "images", "--auth-file": "auth_file",
            "--metrics": "metrics", "--interval": "interval", "--retry": "retry"}
    multi = {"--learn": "learn", "--image": "image"}
    allowed = {"publish": {"--to", "--learn", "--image", "--auth-file"},
               "fetch": {"--from", "--images", "--auth-file"},
               "watch": {"--from", "--images", "--auth-file", "--metrics", "--interval", "--retry"}}[command]
    found = {"store": "", "images": "", "auth_file": "", "learn": [], "image": [], "metrics": "",
             "interval": "2", "retry": "60"}
    positional, i = [], 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if not a.startswith("-"):
            positional.append(a)
        elif name not in allowed:
            raise UsageError(f"{command}: unknown option {a}")
        else:
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"{command}: {a} needs a value")
                value, i = args[i + 1], i + 1
            if name in multi:
                found[multi[name]].append(value)
            else:
                found[opts[name]] = value
        i += 1
    if not found["store"]:
        raise UsageError(f"{command}: {'--to' if command == 'publish' else '--from'} STORE is required")
    if command != "publish" and not found["images"]:
        raise UsageError(f"{command}: --images DIR is required")
    for key in ("interval", "retry"):
        try:
            found[key] = float(found[key])
        except ValueError:
            raise UsageError(f"{command}: --{key} needs seconds") from None
        if not 0.1 <= found[key] <= 86400:
            raise UsageError(f"{command}: --{key} must be between 0.1 and 86400 seconds")
    if command == "watch":
        if len(positional) != 1:
            raise UsageError("watch: one SOURCE_DIR is required")
        return command, found, positional[0], []
    if len(positional) < 2 or (command == "publish" and len(positional) != 2):
        raise UsageError(f"{command}: SOURCE_DIR and {'NAME' if command == 'publish' else 'NAME...'} are required")
    return command, found, positional[0], positional[1:]


def learnt_images(learn_dirs, name):
    """The images learnt for base file NAME in each learn directory
    (yolofs by-file learning: DIR/<key>/NAME.<8 hex digits>.yolo)."""
    found = []
    for d in learn_dirs:
        found += sorted(p for p in glob.glob(os.path.join(glob.escape(d), "*", glob.escape(name) + ".*.yolo"))
                        if os.path.basename(p)[len(name) + 1:-len(".yolo")].isalnum())
    return found


def publish(opts, source, name):
    images = learnt_images(opts["learn"], name) + opts["image"]
    if not images:
        raise Fatal(f"{name}: no boot image (none learnt in {', '.join(opts['learn']) or 'no --learn DIR'}, "
                    "no --image FILE)")
    key = base_key(source, name)
    store = open_store(opts["store"], opts["auth_file"] or None)
    with tempfile.TemporaryDirectory(prefix="yolo-share.") as work:
        path = images[0]
        if len(images) > 1:
            path = os.path.join(work, "merged.yolo")
            p = subprocess.run([find_yolo_image(), "merge", "-o", path] + images, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", check=False)
            if p.returncode != 0:
                raise Fatal(f"{name}: cannot merge {' '.join(images)}: {p.stdout.strip()}")
        digest = store.publish_key(key, path)
    say(f"{name}: published {key} to {store.where()} ({digest})")


def fetch(opts, source, names):
    images_dir = opts["images"]
    old = os.umask(0o022)
    try:
        os.makedirs(images_dir, exist_ok=True)
    finally:
        os.umask(old)
    store = open_store(opts["store"], opts["auth_file"] or None)
    yolo_image, refused = find_yolo_image(), 0
    keys = {name: base_key(source, name) for name in names}
    cands = store.candidates(list(keys.values()))
    for name, key in keys.items():
        if not cands.get(key):
            say(f"{name}: no image published for {key} in {store.where()}")
            continue
        try:
            summary = fetch_install(store, key, cands[key], yolo_image, source,
                                    os.path.join(images_dir, f"{name}.yolo"), lambda m, n=name: say(f"{n}: {m}"))
        except Refused as e:
            refused += 1
            say(f"{name}: no fetched image installed ({e})")
            continue
        say(f"{name}: fetched {key}, checked against {source}/{name}: {summary}")
    if refused:
        raise Fatal(f"{refused} base file(s) got no image (every one published was refused)")


def main(argv):
    try:
        parsed = parse(argv)
        if parsed is None:
            print(USAGE, end="")
            return 0
        command, opts, source, names = parsed
        if not os.path.isdir(source):
            raise Fatal(f"source directory {source} does not exist")
        if command == "publish":
            publish(opts, source, names[0])
        elif command == "fetch":
            fetch(opts, source, names)
        else:
            opts["yolo_image"] = find_yolo_image()
            return watch(opts, source, argv)
        return 0
    except UsageError as e:
        print(f"yolo-share: {e} (try yolo-share --help)", file=sys.stderr)
        return 2
    except (Fatal, ProgramMissing, RegistryError, OSError) as e:
        print(f"yolo-share: {e}", file=sys.stderr)
        return 1
