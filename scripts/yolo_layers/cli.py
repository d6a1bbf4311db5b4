"""cli.py - the command line of yolo-layers: the usage text, the global
options (the engine, then its client's), each command's options, and the
dispatch to the commands.  Parsing is separate from doing: the parse_*
functions only read the arguments and raise UsageError (exit 2)."""
import collections
import os
import re
import signal
import sys

from .args import CaptureArgs, MountArgs, ShareArgs, StatusArgs, UmountArgs, WatchArgs
from .capture import cmd_capture
from .common import Fatal, UsageError, prog, set_prog
from .engines import ENGINES
from .mount import cmd_mount, cmd_umount
from .share import cmd_fetch, cmd_publish
from .watch import cmd_watch
from .state import State
from .status import cmd_status

USAGE = """\
usage: yolo-docker     [-H HOST]                    COMMAND [options] IMAGE
       yolo-containerd [-a ADDRESS] [-n NAMESPACE]  COMMAND [options] IMAGE
       yolo-layers --engine docker|containerd [those options] COMMAND ...

  capture IMAGE -o DIR [--merge] [--timeout S] [-- RUN_ARGS...]
        Record the reads a container start makes of each layer of IMAGE and
        write DIR/<layer-id>.yolo for each layer that was read (layers not
        read get no image; an older image of theirs is removed unless
        --merge).  The layer id is its overlay2 directory id (Docker) or its
        snapshot directory number, snapshots/N/fs (containerd).  RUN_ARGS
        are passed verbatim to `docker run` (default: --rm IMAGE) or to
        `ctr run` (default: --rm IMAGE yolo-capture-PID).  Recording ends
        when that command returns; with --timeout S it ends after S seconds
        at most, and a container still running then (e.g. a service started
        with -d) is stopped.  The capture container is removed at the end.
        --merge adds this start's blocks to the existing images (yolo-image
        merge) instead of replacing them.  The container's output goes to
        stdout.
  mount IMAGE --learn DIR [--images DIR] [-o YOLOFS_OPTS]...
  mount IMAGE --images DIR [-o YOLOFS_OPTS]...
        Mount yolofs in place over the directory of IMAGE's layers.
        --learn DIR (zero-touch, no capture): every layer, in learning mode
        (yolofs -o learn=DIR,learn_by=mount).  The first container start
        after the mount is recorded; once the layer has had no read for
        learn_idle seconds (default 15), yolofs writes the layer's image,
        DIR/<key>/mount.yolo (<key> names the layer directory), checks it
        against the layer and serves it to the next starts, answering their
        lookups, xattrs and listings from memory too; a later start that
        reads more extends it.  DIR is created if missing; it and every
        directory above it must be writable by root only.  Images learnt
        earlier are served at once.  The learnt images of a layer the
        engine has removed are deleted by the next {prog} command.
        --images DIR: serve DIR/<layer-id>.yolo (from capture or fetch); without
        --learn only layers that have one are mounted.
        Layers already mounted are left as they are.  If one mount fails,
        the ones made by this call are undone.  YOLOFS_OPTS are passed to
        yolofs (e.g. serve=ssd,memlimit=1G, learn_idle=5, learn_max=2G;
        images=, metrics=, learn=, learn_by= and detach_when_emptied are
        set by this tool).  Containers started from now on read through
        yolofs; running ones are not affected.  Removing the image needs no
        umount first.
  publish IMAGE [--to STORE] [--images DIR] [--learn DIR] [--auth-file FILE]
        Publish each layer's boot image so that other nodes start IMAGE
        fast the first time: the image learnt for the layer (mount --learn;
        the learn directories this tool mounted with, and --learn DIR) and
        DIR/<layer-id>.yolo of --images DIR, merged when both exist.  Each
        is keyed by the layer's content (its chain id), not by this node's
        directories.  By default they go to the registry IMAGE was pulled
        from, as one artifact (OCI 1.1) referring to IMAGE's manifest, in
        its repository; --to STORE: a shared directory (absolute path) or
        another REGISTRY/REPOSITORY.
  fetch IMAGE --images DIR [--from STORE] [--auth-file FILE]
        Fetch the newest published image of each layer of IMAGE (from
        IMAGE's registry, or --from STORE), check its digest, compare every
        block of every file with this node's layer (an image that differs
        anywhere is refused whole) and write it, re-stamped for this node,
        as DIR/<layer-id>.yolo; mount IMAGE --images DIR [--learn L] then
        serves it from the first start.  A layer already mounted with that
        image reloads it.  Credentials: FILE, else $DOCKER_CONFIG/config.json
        or ~/.docker/config.json (as docker login writes them).
  watch --images DIR --learn DIR [--from STORE] [--metrics FILE] [--interval S]
        [--auth-file FILE] [-o YOLOFS_OPTS]...
        Run until stopped (a service): every image pulled from now on is
        fetched (as fetch: from its registry, or --from STORE) and mounted
        (as mount --images DIR --learn DIR) as soon as the pull ends, with
        no command per image.  A fetch that fails (nothing published, the
        registry down, an image refused) still mounts, learning.  Docker:
        dockerd's event stream (its API socket, -H or DOCKER_HOST);
        containerd: its image list, polled every S seconds (default 2).
        Each outcome is a log line and a counter in FILE (Prometheus text).
  umount [--force] IMAGE | --all
        Unmount yolofs from IMAGE's layers (also a mount whose daemon died);
        --all: from every layer this tool mounted, whatever its image.  A
        daemon still serving containers started while it was mounted keeps
        running, detached, and exits when they stop; --force stops it now
        (those containers then get I/O errors) and detaches busy mounts.
  status IMAGE | --all
        One line per layer: mounted, unmounted or dead; for a mounted layer
        the yolofs pid, boot image and serving counters (hits, bytes
        prefilled, files matched, files stale, bytes and reads that went to
        the layer directory, namespace questions answered from memory);
        detached daemons; for a layer mounted with --learn (or unmounted
        with a learnt image kept) a second line: what was learnt.

  -H HOST       Docker: the daemon to talk to (as docker -H; DOCKER_HOST also works)
  -a ADDRESS    containerd: its socket (as ctr -a; CONTAINERD_ADDRESS also works)
  -n NAMESPACE  containerd: the namespace (as ctr -n; CONTAINERD_NAMESPACE also
                works; Kubernetes uses k8s.io)

Environment: DOCKER, CTR (the clients; default docker, ctr); YOLOFS,
YOLO_CAPTURE, YOLO_IMAGE (binaries; default from PATH, then the build/
directory next to this script); YOLO_DOCKER_STATE, YOLO_CONTAINERD_STATE
(state directories; default /run/yolo-docker, /run/yolo-containerd).
Exit status: 0 done, 1 failed, 2 bad usage.  Needs root.
"""

Globals = collections.namedtuple("Globals", "engine client_opts rest help")

# Client options: the engine each belongs to.
CLIENT_OPTS = {"-H": "docker", "--host": "docker", "-a": "containerd", "--address": "containerd",
               "-n": "containerd", "--namespace": "containerd"}
SET_BY_TOOL = {"images": "", "metrics": "", "learn": " (use --learn DIR)", "learn_by": " (use --learn DIR)"}


def usage(name):
    return USAGE.format(prog=name)


def parse_globals(argv):
    """The options before the command: --engine (the wrappers pass it),
    then the client's (-H HOST, -HHOST, --host=HOST, and -a, -n alike)."""
    engine, client_opts, i = "", [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--engine":
            if i + 1 >= len(argv):
                raise UsageError("--engine needs docker or containerd")
            engine, i = argv[i + 1], i + 2
        elif a.startswith("--engine="):
            engine, i = a.partition("=")[2], i + 1
        elif a in CLIENT_OPTS:
            if i + 1 >= len(argv):
                raise UsageError(f"{a} needs a value")
            client_opts += [a, argv[i + 1]]
            i += 2
        elif a[:2] in ("-H", "-a", "-n") and len(a) > 2:
            client_opts += [a[:2], a[2:]]
            i += 1
        elif a.partition("=")[0] in ("--host", "--address", "--namespace") and "=" in a:
            client_opts += list(a.split("=", 1))
            i += 1
        elif a in ("-h", "--help", "help"):
            return Globals(engine, client_opts, argv[i + 1:], True)
        elif a.startswith("-"):
            raise UsageError(f"unknown option {a}")
        else:
            break
    return Globals(engine, client_opts, argv[i:], False)


def check_engine(engine):
    if not engine:
        raise UsageError("--engine docker|containerd is required (or run yolo-docker, yolo-containerd)")
    if engine not in ENGINES:
        raise UsageError(f"unknown engine '{engine}' (docker or containerd)")


def check_client_opts(engine, client_opts):
    for opt in client_opts[::2]:
        if CLIENT_OPTS[opt] != engine:
            raise UsageError(f"{opt} is not an option for {engine}")


def parse_command(rest):
    """The command (unmount is umount) and whether its arguments ask for
    help (before any --)."""
    if not rest:
        raise UsageError("a command is required")
    command = {"unmount": "umount"}.get(rest[0], rest[0])
    if command not in COMMANDS:
        raise UsageError(f"unknown command {rest[0]}")
    args = rest[1:]
    before_run_args = args[:args.index("--")] if "--" in args else args
    return command, args, any(a in ("-h", "--help") for a in before_run_args)


def _value(args, i, message):
    if i + 1 >= len(args):
        raise UsageError(message)
    return args[i + 1]


def _image_arg(command, image, arg, message):
    """The IMAGE argument `arg` of `command`: an option it does not know,
    or a second IMAGE (`message`), stops it."""
    if arg.startswith("-"):
        raise UsageError(f"{command}: unknown option {arg}")
    if image:
        raise UsageError(f"{command}: {message}")
    return arg


def parse_capture(args):
    image, out_dir, merge, timeout, run, i = "", "", False, "", [], 0
    while i < len(args):
        a = args[i]
        if a in ("-o", "--output"):
            out_dir, i = _value(args, i, "capture: -o needs a directory"), i + 2
            continue
        if a == "--merge":
            merge = True
        elif a == "--timeout":
            timeout, i = _value(args, i, "capture: --timeout needs seconds"), i + 2
            continue
        elif a == "--":
            run = args[i + 1:]
            break
        else:
            image = _image_arg("capture", image, a, "one IMAGE only (run arguments go after --)")
        i += 1
    if not image:
        raise UsageError("capture: IMAGE is required")
    if not out_dir:
        raise UsageError("capture: -o DIR is required")
    if timeout and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", timeout):
        raise UsageError("capture: --timeout needs a number of seconds")
    return CaptureArgs(image, out_dir, merge, timeout, run)


def parse_mount(args):
    image, images_dir, learn_dir, opts, i = "", "", "", [], 0
    while i < len(args):
        a = args[i]
        if a == "--images":
            images_dir, i = _value(args, i, "--images needs a directory"), i + 2
            continue
        if a == "--learn":
            learn_dir, i = _value(args, i, "--learn needs a directory"), i + 2
            continue
        if a == "-o":
            opts.append(_value(args, i, "-o needs yolofs options"))
            i += 2
            continue
        if a.startswith("--images="):
            images_dir = a.partition("=")[2]
        elif a.startswith("--learn="):
            learn_dir = a.partition("=")[2]
        elif a.startswith("-o"):
            opts.append(a[2:])
        else:
            image = _image_arg("mount", image, a, "one IMAGE only")
        i += 1
    if not image:
        raise UsageError("mount: IMAGE is required")
    if not images_dir and not learn_dir:
        raise UsageError("mount: --learn DIR or --images DIR is required")
    yolofs_opts = ",".join(o for o in opts if o)
    check_yolofs_opts("mount", yolofs_opts)
    return MountArgs(image, images_dir, learn_dir, yolofs_opts)


def check_yolofs_opts(command, yolofs_opts):
    """Options the tool sets itself may not be given with -o."""
    for o in yolofs_opts.split(","):
        name = o.partition("=")[0]
        if "=" in o and name in SET_BY_TOOL:
            raise UsageError(f"{command}: -o {name}= is set by {prog()}{SET_BY_TOOL[name]}")


def _parse_image_or_all(command, args, flags):
    """IMAGE or --all, and FLAGS (option -> name) as booleans."""
    image, found = "", {"all": False, **{name: False for name in flags.values()}}
    for a in args:
        if a == "--all":
            found["all"] = True
        elif a in flags:
            found[flags[a]] = True
        else:
            image = _image_arg(command, image, a, "one IMAGE only")
    if found["all"] and image:
        raise UsageError(f"{command}: IMAGE or --all, not both")
    if not found["all"] and not image:
        raise UsageError(f"{command}: IMAGE (or --all) is required")
    return image, found


def parse_umount(args):
    image, found = _parse_image_or_all("umount", args, {"--force": "force", "-f": "force"})
    return UmountArgs(image, found["all"], found["force"])


def parse_status(args):
    image, found = _parse_image_or_all("status", args, {})
    return StatusArgs(image, found["all"])


def _options(command, args, options, with_o=False):
    """(found, positional, yolofs options) of ARGS: OPTIONS (--option ->
    name) each take a value, as --opt VALUE or --opt=VALUE; -o OPTS too
    when WITH_O; any other option stops the command."""
    found, positional, opts, i = {}, [], [], 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if with_o and a == "-o":
            opts.append(_value(args, i, f"{command}: -o needs yolofs options"))
            i += 1
        elif with_o and a.startswith("-o"):
            opts.append(a[2:])
        elif name in options and eq:
            found[options[name]] = value
        elif a in options:
            found[options[a]] = _value(args, i, f"{command}: {a} needs a value")
            i += 1
        elif a.startswith("-"):
            raise UsageError(f"{command}: unknown option {a}")
        else:
            positional.append(a)
        i += 1
    return found, positional, ",".join(o for o in opts if o)


def _parse_share(command, args, options):
    """IMAGE and OPTIONS of publish and fetch."""
    found, positional, _ = _options(command, args, options)
    if len(positional) > 1:
        raise UsageError(f"{command}: one IMAGE only")
    if not positional:
        raise UsageError(f"{command}: IMAGE is required")
    return ShareArgs(positional[0], found.get("store", ""), found.get("images_dir", ""),
                     found.get("learn_dir", ""), found.get("auth_file", ""))


def parse_publish(args):
    return _parse_share("publish", args, {"--to": "store", "--images": "images_dir",
                                          "--learn": "learn_dir", "--auth-file": "auth_file"})


def parse_watch(args):
    found, positional, yolofs_opts = _options("watch", args, {
        "--images": "images_dir", "--learn": "learn_dir", "--from": "store", "--metrics": "metrics",
        "--interval": "interval", "--auth-file": "auth_file"}, with_o=True)
    if positional:
        raise UsageError(f"watch: takes no IMAGE ({positional[0]}): it follows every pull")
    if not found.get("images_dir") or not found.get("learn_dir"):
        raise UsageError("watch: --images DIR and --learn DIR are required")
    try:
        interval = float(found.get("interval", "2"))
    except ValueError:
        raise UsageError("watch: --interval needs seconds") from None
    if not 0.1 <= interval <= 3600:
        raise UsageError("watch: --interval must be between 0.1 and 3600 seconds")
    check_yolofs_opts("watch", yolofs_opts)
    return WatchArgs(found["images_dir"], found["learn_dir"], found.get("store", ""), found.get("metrics", ""),
                     interval, found.get("auth_file", ""), yolofs_opts)


def parse_fetch(args):
    parsed = _parse_share("fetch", args, {"--from": "store", "--images": "images_dir",
                                          "--auth-file": "auth_file"})
    if not parsed.images_dir:
        raise UsageError("fetch: --images DIR is required")
    return parsed


COMMANDS = {"capture": (parse_capture, cmd_capture), "mount": (parse_mount, cmd_mount),
            "umount": (parse_umount, cmd_umount), "status": (parse_status, cmd_status),
            "publish": (parse_publish, cmd_publish), "fetch": (parse_fetch, cmd_fetch),
            "watch": (parse_watch, cmd_watch)}


def run_command(argv):
    g = parse_globals(argv)
    if g.help:
        print(usage(prog()), end="")
        return 0
    check_engine(g.engine)
    set_prog(f"yolo-{g.engine}")
    check_client_opts(g.engine, g.client_opts)
    command, args, wants_help = parse_command(g.rest)
    if wants_help:
        print(usage(prog()), end="")
        return 0
    engine = ENGINES[g.engine](g.client_opts)
    if command != "status" and os.geteuid() != 0:
        raise Fatal(f"{command} needs root (it mounts over the {g.engine} layer directories)")
    parse, do = COMMANDS[command]
    parsed = parse(args)
    return do(engine, State(engine.state_dir()), parsed)


def main(argv):
    # As a shell script would: a broken pipe or Ctrl-C ends the program
    # quietly (capture handles Ctrl-C itself, to clean up).
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return run_command(argv)
    except UsageError as e:
        print(f"{prog()}: {e} (try {prog()} --help)", file=sys.stderr)
        return 2
    except Fatal as e:
        print(f"{prog()}: {e}", file=sys.stderr)
        return 1
