"""plan.py - one round's decisions for one engine, from what it holds now
and what the agent has mounted: pure, so tests/unit/test_yolo_agent.py
checks them without an engine.

A layer the engine holds and the agent has not mounted is mounted; one
whose yolofs died (a dead mount) is cleared and mounted again; one the
agent has mounted that the engine no longer holds is let go.  Nothing is
let go on a round where the engine did not answer, or answered for only
some of its images: a socket that is down for a second, or one image that
could not be read, must not unmount a node."""
import collections

# LAYER: yolo_layers' Layer (id, dir); KEY: "layer:" + chain id (the layer
# digest every node shares); REFS: the image references holding it; SCOPE:
# where in the engine it is ("" for Docker, the namespace for containerd:
# a layer unpacked in two namespaces is two directories).
Wanted = collections.namedtuple("Wanted", "layer key refs scope")
# An engine's answer: WANTED {layer id: Wanted}; SUBJECTS {reference:
# (registry/repository, manifest digest)} of the images pulled from a
# registry; COMPLETE: every image was read (else nothing is let go).
Answer = collections.namedtuple("Answer", "wanted subjects complete")
Plan = collections.namedtuple("Plan", "mount remount release")


class EngineDown(Exception):
    """The engine cannot be asked this round; the message says why."""


def plan(answer, mounted, dead):
    """MOUNTED: {layer id: layer directory} the agent serves; DEAD: the ids
    among them whose daemon is gone.  The Plan: ids to mount, ids to clear
    and mount again, ids to let go (only on a complete answer); each
    sorted."""
    wanted = answer.wanted
    mount = sorted(i for i in wanted if i not in mounted)
    remount = sorted(i for i in wanted if i in mounted and i in dead)
    release = sorted(i for i in mounted if i not in wanted) if answer.complete else []
    return Plan(mount, remount, release)


def mount_label(engine, w):
    """The mount label of W's series in the node's metrics: unique on the
    node and the same on every node (engine, namespace, chain id)."""
    return ":".join(x for x in (engine, w.scope, w.key[len("layer:"):]) if x)


def refs_to_fetch(wanted, ids, has_image):
    """The image references whose layers among IDS (about to be mounted
    for the first time) have no boot image yet (HAS_IMAGE(layer id)):
    {ref: [Wanted]}, each ref once, its layers in WANTED's order.  A layer
    held by several images is fetched through the first of them."""
    todo, taken = {}, set()
    for i in ids:
        w = wanted[i]
        if has_image(i) or not w.refs:
            continue
        ref = sorted(w.refs)[0]
        if i not in taken:
            todo.setdefault(ref, []).append(w)
            taken.add(i)
    return todo
