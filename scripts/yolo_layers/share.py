"""share.py - the publish and fetch commands: a container image's layer
images travel between nodes by content key (yolo_share).

publish: for each layer, the image learnt for it (mount --learn) and the
one in --images DIR (captured or fetched), merged when there are both, is
published under the layer's key ("layer:" + chain id, the same on every
node): by default to the registry the image came from, as an artifact
whose subject is the image's manifest; or to --to STORE.

fetch: the newest published image of each layer is downloaded, its digest
checked, compared block by block with the node's own layer and re-stamped
(yolo_share.install), and written as DIR/<layer-id>.yolo, which mount
--images DIR serves (a layer already mounted with that image reloads it).
Nothing fetched is served unless every block equals the layer's."""
import os
import signal
import subprocess
import tempfile

from yolo_share.install import Refused, fetch_install
from yolo_share.keys import open_store
from yolo_share.registry import Registry, RegistryError
from yolo_share.store import RegistryStore

from .common import Fatal, say
from .host import find_bin, make_dirs
from .learnt import Learnt


def store_for(engine, image, address, auth_file):
    """(store, subject digest, (registry, repository) IMAGE came from):
    --to/--from ADDRESS, else IMAGE's registry."""
    try:
        if address:
            store = open_store(address, auth_file)
            if not isinstance(store, RegistryStore):
                return store, None, None
            host, repo, digest = engine.subject(image)
            return store, digest, (host, repo)
        host, repo, digest = engine.subject(image)
        return RegistryStore(Registry(host, auth_file), repo), digest, (host, repo)
    except RegistryError as e:
        raise Fatal(str(e)) from None


def layer_image(learnt, images_dir, layer, yolo_image, work):
    """The image to publish for LAYER: its learnt one and DIR/<id>.yolo,
    merged into WORK when both exist; None when it has none."""
    found = []
    key_dir = learnt.learnt_from(layer.dir)
    if key_dir and os.path.isfile(os.path.join(key_dir, "mount.yolo")):
        found.append(os.path.join(key_dir, "mount.yolo"))
    if images_dir and os.path.isfile(os.path.join(images_dir, f"{layer.id}.yolo")):
        found.append(os.path.join(images_dir, f"{layer.id}.yolo"))
    if len(found) < 2:
        return found[0] if found else None
    merged = os.path.join(work, f"{layer.id}.yolo")
    p = subprocess.run([yolo_image, "merge", "-o", merged] + found, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace", check=False)
    if p.returncode != 0:
        say(f"layer {layer.id}: cannot merge {' and '.join(found)} ({p.stdout.strip()}); "
            f"publishing {found[0]}")
        return found[0]
    return merged


def cmd_publish(engine, state, args):
    yolo_image = find_bin("YOLO_IMAGE", "yolo-image", "boot-images/yolo-image")
    learnt = Learnt(state, engine.name, os.path.realpath(args.learn_dir) if args.learn_dir else "")
    keys = engine.image_layer_keys(args.image)
    store, digest, origin = store_for(engine, args.image, args.store, args.auth_file)
    with tempfile.TemporaryDirectory(prefix="yolo-publish.") as work:
        images = []
        for layer, key in keys:
            path = layer_image(learnt, args.images_dir, layer, yolo_image, work)
            if path:
                images.append((key, path))
            else:
                say(f"layer {layer.id}: no boot image (learnt or in --images), not published")
        if not images:
            raise Fatal(f"{args.image}: no layer has a boot image to publish")
        try:
            where = store.publish_for(digest, images, origin)
        except (RegistryError, OSError) as e:
            raise Fatal(f"publish to {store.where()}: {e}") from None
    say(f"published {len(images)} layer image(s) of {args.image} to {store.where()}"
        + (f" (artifact {where})" if isinstance(where, str) else ""))
    return 0


def cmd_fetch(engine, state, args):
    yolo_image = find_bin("YOLO_IMAGE", "yolo-image", "boot-images/yolo-image")
    images_dir = args.images_dir
    try:
        make_dirs(images_dir)
    except OSError as e:
        raise Fatal(f"cannot create {images_dir}: {e.strerror}") from None
    images_dir = os.path.realpath(images_dir)
    keys = engine.image_layer_keys(args.image)
    store, digest, _ = store_for(engine, args.image, args.store, args.auth_file)
    try:
        cands = store.candidates([key for _, key in keys], digest)
    except (RegistryError, OSError) as e:
        raise Fatal(f"fetch from {store.where()}: {e}") from None
    if not any(cands.values()):
        say(f"{args.image}: no boot images published in {store.where()}")
        return 0
    installed, refused = 0, 0
    state.lock()
    for layer, key in keys:
        if not cands.get(key):
            say(f"layer {layer.id}: none published")
            continue
        out = os.path.join(images_dir, f"{layer.id}.yolo")
        try:
            summary = fetch_install(store, key, cands[key], yolo_image, layer.dir, out,
                                    lambda msg, lid=layer.id: say(f"layer {lid}: {msg}"))
        except Refused as e:
            refused += 1
            say(f"layer {layer.id}: no fetched image installed ({e})")
            continue
        except (RegistryError, OSError) as e:
            raise Fatal(f"fetch from {store.where()}: {e}") from None
        installed += 1
        say(f"layer {layer.id}: fetched, checked against the layer: {summary}")
        daemon = state.current_daemon(layer.id)
        pid = daemon.running_pid() if daemon else None
        if pid is not None and daemon.image == out:
            try:
                os.kill(pid, signal.SIGHUP)         # yolofs reloads its images
                say(f"layer {layer.id}: yolofs (pid {pid}) reloads it")
            except OSError:
                say(f"layer {layer.id}: its yolofs (pid {pid}) is gone")
        elif pid is not None:
            say(f"layer {layer.id}: mounted without {out}; umount and mount --images {images_dir} to serve it")
    if refused:
        raise Fatal(f"{args.image}: {refused} layer(s) got no image (every one published was refused), "
                    f"{installed} installed")
    return 0
