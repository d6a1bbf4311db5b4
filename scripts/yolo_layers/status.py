"""status.py - the status command: one line per layer (mounted, unmounted,
dead, or another file system's mount), the serving counters of a mounted
layer's yolofs, what was learnt, detached daemons, and (with --all) the
learnt images of layers the engine removed."""
import os

from .common import Fatal, prog
from .host import du_bytes, find_bin, metric, mount_is_dead, run, top_mount
from .learnt import Learnt

# status's names for the counters of a mounted layer, and yolofs's.
SERVING = [("hits", "hits"), ("prefilled_bytes", "bytes_prefilled"), ("files_matched", "files_matched"),
           ("files_stale", "files_stale"), ("source_bytes", "bytes_source"),
           ("passthrough_reads", "reads_passthrough"), ("ns_answered", "ns_answered")]


def image_summary(inspect_text):
    """ files=F blocks=B ns_paths=N from `yolo-image inspect` output (the
    project's own tool, which prints text only: "files:", "blocks:" and
    "namespace:" lines, the number second)."""
    found = {}
    for line in inspect_text.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] in ("files:", "blocks:", "namespace:"):
            found[fields[0]] = int(fields[1]) if fields[1].isdigit() else 0
    return (f" files={found.get('files:', 0)} blocks={found.get('blocks:', 0)}"
            f" ns_paths={found.get('namespace:', 0)}")


def learnt_line(layer_id, key_dir, yolo_image, daemon=None):
    """The line on what was learnt into KEY_DIR (DAEMON: the one learning
    into it, whose count of images written it adds)."""
    written = ""
    if daemon:
        written = f" written={metric('learned_images', os.path.join(daemon.path, 'metrics.prom'))}"
    try:
        images = sorted(n for n in os.listdir(key_dir) if n.endswith(".yolo") and not n.startswith("."))
    except OSError:
        images = []
    for name in images:
        path = os.path.join(key_dir, name)
        if not os.path.isfile(path):
            continue
        info = image_summary(run([yolo_image, "inspect", path]).stdout) if yolo_image else ""
        return f"{layer_id} learnt image={path} bytes={os.stat(path).st_size}{info}{written}"
    return f"{layer_id} learning dir={key_dir} nothing learnt yet{written}"


def layer_state(layer_dir):
    top = top_mount(layer_dir)
    if top == "fuse.yolofs":
        return "dead" if mount_is_dead(layer_dir) else "mounted"
    return f"other:{top}" if top else "unmounted"


def cmd_status(engine, state, args):
    try:
        yolo_image = find_bin("YOLO_IMAGE", "yolo-image", "boot-images/yolo-image")
    except Fatal:
        yolo_image = ""
    learnt = Learnt(state, engine.name)
    if args.all:
        layers = state.all_layers()
        print(f"all layers with {prog()} state: {len(layers)}")
    else:
        layers = engine.image_layers(args.image)
        print(f"image {args.image}: {len(layers)} layers, top first")
    for layer in layers:
        status = layer_state(layer.dir)
        daemon = state.current_daemon(layer.id)
        key_dir = ""
        if status == "mounted" and daemon:
            metrics = os.path.join(daemon.path, "metrics.prom")
            counters = " ".join(f"{shown}={metric(name, metrics)}" for shown, name in SERVING)
            print(f"{layer.id} {status} pid={daemon.value('pid')} image={daemon.image or 'none'} {counters}")
            key_dir = daemon.learn
            if key_dir:
                print(learnt_line(layer.id, key_dir, yolo_image, daemon))
        elif status == "mounted":
            print(f"{layer.id} {status} (not started by {prog()})")
        elif status == "dead":
            print(f"{layer.id} dead (yolofs gone: transport endpoint is not connected; run {prog()} umount)")
        else:
            print(f"{layer.id} {status}")
        if not key_dir:
            key_dir = learnt.learnt_from(layer.dir)
            if key_dir:
                print(learnt_line(layer.id, key_dir, yolo_image))
        for d in state.daemons(layer.id):
            pid = d.running_pid() if d.detached else None
            if pid is not None:
                print(f"{layer.id} detached pid={pid} (serving containers started while it was mounted)")
    # Learnt images of layers the engine removed, until a command deletes them.
    if args.all:
        for key_dir, r in learnt.of_removed_layers():
            size = du_bytes(key_dir)
            print(f"{r.layer_id} removed (by {r.engine}) learnt={key_dir} bytes={'' if size is None else size}: "
                  f"deleted by the next {prog()} mount, umount or capture")
    return 0
