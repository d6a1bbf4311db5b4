"""fetch.py - the boot images other nodes published for a layer, fetched
before the agent first mounts it, so the first container start on this
node is served (issue 20's store and checks: yolo_share).

Each layer of an image that has no image yet gets the newest published one
that downloads intact and matches this node's layer block for block,
written as IMAGES/<engine>/<layer id>/fetched.yolo (the layer's yolofs
serves the directory, images=).  Only before the first mount: once mounted,
the layer's reads go through yolofs, and a comparison would be recorded as
a boot by the learning.  A store that does not answer, nothing published,
an image refused: a line, a counter, and the layer is mounted learning."""
import os

from yolo_layers.host import find_bin, make_dirs
from yolo_share.install import Refused, fetch_install
from yolo_share.keys import open_store
from yolo_share.registry import Registry, RegistryError, split_reference
from yolo_share.store import RegistryStore


def layer_image_dir(images, engine, layer_id):
    return os.path.join(images, engine, layer_id)


def open_for(cfg, ref, subject):
    """(store, subject digest) to fetch REF's layer images from: the
    configured store, else the registry REF came from.  SUBJECT: (repository
    or reference, manifest digest), or None when REF has no registry
    digest."""
    if cfg.store:
        store = open_store(cfg.store, cfg.auth_file)
        if not isinstance(store, RegistryStore):
            return store, None
    if subject is None:
        raise RegistryError(f"{ref}: no registry digest (pulled from no registry)")
    name, digest = subject
    host, repo, _, _ = split_reference(f"{name}@{digest}")
    if cfg.store:
        return store, digest
    return RegistryStore(Registry(host, cfg.auth_file), repo), digest


def fetch(cfg, engine, ref, subject, layers, say):
    """Fetch REF's LAYERS ([Wanted]); (installed, refused, failed) counts."""
    try:
        store, digest = open_for(cfg, ref, subject)
        cands = store.candidates([w.key for w in layers], digest)
    except (RegistryError, OSError) as e:
        say(f"{ref}: fetch: {e}")
        return 0, 0, 1
    yolo_image = find_bin("YOLO_IMAGE", "yolo-image", "boot-images/yolo-image")
    installed = refused = 0
    for w in layers:
        if not cands.get(w.key):
            continue
        out_dir = layer_image_dir(cfg.images, engine, w.layer.id)
        make_dirs(out_dir)
        try:
            summary = fetch_install(store, w.key, cands[w.key], yolo_image, w.layer.dir,
                                    os.path.join(out_dir, "fetched.yolo"),
                                    lambda msg, lid=w.layer.id: say(f"{engine} layer {lid}: {msg}"))
        except Refused as e:
            refused += 1
            say(f"{engine} layer {w.layer.id}: no fetched image ({e})")
            continue
        except (RegistryError, OSError) as e:
            say(f"{ref}: fetch from {store.where()}: {e}")
            return installed, refused, 1
        installed += 1
        say(f"{engine} layer {w.layer.id} ({w.key}): fetched from {store.where()}: {summary}")
    if not installed and not refused:
        say(f"{ref}: no boot images published in {store.where()}")
    return installed, refused, 0
