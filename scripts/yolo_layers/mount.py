"""mount.py - the mount and umount commands: one yolofs per layer, mounted
in place over the layer directory, and taken off again without breaking
the containers still using it.

Each yolofs runs in the foreground of its own session, its state in a
directory of its own (state.py), with -o detach_when_emptied: removing the
image then needs no umount.  containerd removes a layer by emptying its
directory (through the mount) and then removing it, which the mount would
make fail (EBUSY); yolofs detaches its mount when the last entry goes, so
the removal succeeds, and exits once nothing uses it.  (dockerd unmounts
whatever is mounted in a layer directory before removing it.)"""
import os
import signal
import subprocess
import time

from .common import Fatal, prog, say
from .host import alive, find_bin, last_line_of, make_dirs, mount_is_dead, top_mount, wait_for, write_value
from .learnt import Learnt, learn_key

YOLOFS_TYPE = "fuse.yolofs"


def start_yolofs(state, learnt, yolofs, layer, image, learn_dir, opts):
    """Mount one layer, serving IMAGE if not empty and learning into
    LEARN_DIR if not empty; its Daemon, or None if it did not mount."""
    daemon = state.new_daemon(layer.id)
    write_value(os.path.join(daemon.path, "source"), layer.dir)
    write_value(os.path.join(daemon.path, "image"), image)
    ours = f"images={image}," if image else ""
    if learn_dir:
        ours += f"learn={learn_dir},learn_by=mount,"
    ours += f"metrics={daemon.path}/metrics.prom,metrics_interval=1,detach_when_emptied"
    # Its own session (no terminal signals) and / as working directory (no
    # file system kept busy); the lock's descriptor is not inherited.
    try:
        with open(os.path.join(daemon.path, "log"), "ab") as log:
            proc = subprocess.Popen([yolofs, "-f", "-o", ours + (f",{opts}" if opts else ""), layer.dir, layer.dir],
                                    cwd="/", stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    except OSError as e:                 # the binary gone since it was found
        say(f"layer {layer.id}: cannot start {yolofs}: {e.strerror or e}")
        daemon.remove()
        return None
    write_value(os.path.join(daemon.path, "pid"), proc.pid)
    for _ in range(200):
        if top_mount(layer.dir) == YOLOFS_TYPE:
            if learn_dir:
                key = learn_key(proc.pid, learn_dir)
                if key:
                    write_value(os.path.join(daemon.path, "learn"), f"{learn_dir}/{key}")
                    learnt.note(learn_dir, key, layer)
                else:
                    say(f"layer {layer.id}: cannot tell where yolofs {proc.pid} learns "
                        f"(no directory open in {learn_dir})")
            return daemon
        if not alive(proc.pid):
            break
        time.sleep(0.05)
    proc.terminate()
    proc.wait()
    say(f"layer {layer.id}: yolofs did not mount: {last_line_of(os.path.join(daemon.path, 'log'))}")
    daemon.remove()
    return None


def stop_yolofs(layer_dir, daemon):
    """Undo a mount this call made (nothing uses it yet)."""
    pid = int(daemon.value("pid"))
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    wait_for(lambda: not alive(pid), 100, 0.05)
    if top_mount(layer_dir) == YOLOFS_TYPE:
        subprocess.run(["umount", "-l", layer_dir])
    daemon.remove()


def cmd_mount(engine, state, args):
    images_dir = args.images_dir
    if images_dir:
        if not os.path.isdir(images_dir):
            raise Fatal(f"image directory {images_dir} does not exist")
        images_dir = os.path.realpath(images_dir)
    learn_dir = ""
    if args.learn_dir:
        # yolofs refuses a directory others could write to (trust.h).
        if not os.path.isdir(args.learn_dir):
            try:
                make_dirs(args.learn_dir)
            except OSError:
                raise Fatal(f"cannot create {args.learn_dir}") from None
        learn_dir = os.path.realpath(args.learn_dir)
    yolofs = find_bin("YOLOFS", "yolofs", "yolofs/yolofs")
    learnt = Learnt(state, engine.name, learn_dir)
    state.lock()
    learnt.sweep_removed()

    made, with_image = [], 0
    for layer in engine.image_layers(args.image):
        image = ""
        if images_dir and os.path.isfile(os.path.join(images_dir, f"{layer.id}.yolo")):
            image = os.path.join(images_dir, f"{layer.id}.yolo")
        if not image and not learn_dir:
            say(f"layer {layer.id}: no boot image in {images_dir}, not mounted")
            continue
        with_image += 1
        top = top_mount(layer.dir)
        if top == YOLOFS_TYPE and mount_is_dead(layer.dir):
            say(f"layer {layer.id}: its yolofs mount is dead (daemon gone); run {prog()} umount {args.image} first")
        elif top == YOLOFS_TYPE:
            daemon = state.current_daemon(layer.id)
            if daemon and (daemon.image != image or daemon.learn_parent != learn_dir):
                say(f"layer {layer.id}: already mounted, {daemon.describe()} (umount first to mount it as asked)")
            else:
                say(f"layer {layer.id}: already mounted")
            continue
        elif top:
            say(f"layer {layer.id}: {layer.dir} has a {top} mount on it")
        else:
            daemon = start_yolofs(state, learnt, yolofs, layer, image, learn_dir, args.yolofs_opts)
            if daemon:
                made.append((layer.dir, daemon))
                say(f"layer {layer.id}: mounted, {daemon.describe()} (pid {daemon.value('pid')})")
                continue
        # Undo this call's mounts, newest first.
        for layer_dir, daemon in reversed(made):
            stop_yolofs(layer_dir, daemon)
        raise Fatal(f"mount of {args.image} failed; nothing mounted by this call is left")
    if with_image == 0:
        raise Fatal(f"no boot image in {images_dir} for any layer of {args.image} "
                    "(capture first, or mount with --learn)")
    return 0


def unmount_layer(layer, force):
    """Take every yolofs stacked on the layer off (normally one); how many,
    and whether one is left.  A plain umount succeeds even while containers
    use the layer through their overlay (it holds a private clone of the
    mount), and leaves those containers their daemon."""
    taken = 0
    while top_mount(layer.dir) == YOLOFS_TYPE:
        if mount_is_dead(layer.dir):
            if (subprocess.run(["umount", layer.dir], stderr=subprocess.DEVNULL).returncode != 0
                    and subprocess.run(["umount", "-l", layer.dir]).returncode != 0):
                say(f"layer {layer.id}: cannot unmount the dead mount on {layer.dir}")
                return taken, True
            say(f"layer {layer.id}: unmounted a yolofs mount whose daemon had died")
        else:
            p = subprocess.run(["umount", layer.dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="surrogateescape")
            why = p.stdout.rstrip("\n").removeprefix("umount: ")
            if p.returncode == 0:
                say(f"layer {layer.id}: unmounted")
            elif force:
                if subprocess.run(["umount", "-l", layer.dir]).returncode != 0:
                    return taken, True
                say(f"layer {layer.id}: busy ({why}); detached lazily")
            else:
                say(f"layer {layer.id}: {why} (a process has files open on it; --force detaches it)")
                return taken, True
        taken += 1
    return taken, False


def cmd_umount(engine, state, args):
    learnt = Learnt(state, engine.name)
    state.lock()
    learnt.sweep_removed()
    name = "--all" if args.all else args.image
    layers = state.all_layers() if args.all else engine.image_layers(args.image)

    unmounted, failed, released, stop = 0, False, [], []
    for layer in layers:
        daemon = state.current_daemon(layer.id)
        taken, left = unmount_layer(layer, args.force)
        unmounted += taken
        failed = failed or left
        if daemon and top_mount(layer.dir) != YOLOFS_TYPE:
            released.append(daemon)
    # A released daemon exits once the kernel drops its mount, unless
    # containers started while it was mounted still hold it.
    wait_for(lambda: not any(d.process_alive() for d in released), 20, 0.1)
    for daemon in released:
        pid = daemon.running_pid()
        if pid is None:
            continue
        if args.force:
            stop.append(daemon)
        else:
            daemon.mark_detached()
            say(f"layer {daemon.layer_id}: yolofs (pid {pid}) keeps serving containers started while "
                "it was mounted; it exits when they stop")
    # --force also stops daemons detached earlier; the containers they
    # serve then get I/O errors.  Only with nothing mounted on the layer:
    # yolofs stopped by a signal lazily unmounts its mountpoint path, which
    # would take a newer mount there with it.
    if args.force:
        for layer in layers:
            if top_mount(layer.dir) == YOLOFS_TYPE:
                continue
            stop += [d for d in state.daemons(layer.id) if d.detached and d.running_pid() is not None]
        for daemon in stop:
            try:
                os.kill(int(daemon.value("pid")), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        for daemon in stop:
            pid = daemon.value("pid")
            wait_for(lambda: not alive(pid), 100, 0.1)
            say(f"layer {daemon.layer_id}: stopped yolofs (pid {pid}) that was serving running containers")
    # Forget the daemons that are gone.
    for layer in layers:
        for daemon in state.daemons(layer.id):
            if daemon.running_pid() is None:
                daemon.remove()
    if failed:
        raise Fatal(f"some layers of {name} are still mounted")
    if unmounted == 0:
        say(f"{name}: nothing was mounted")
    return 0
