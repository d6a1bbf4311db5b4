"""containerd.py - containerd's committed layers, per namespace (k8s.io,
moby, default, ... or those the configuration names): the layers of every
image unpacked for the overlayfs snapshotter, found as yolo-containerd
finds them (yolo_layers.engines.Containerd: the image's manifest and
config as JSON, a view of its top snapshot for the directories).

Asked through ctr, containerd's own client: its namespace list and image
references one per line (-q); the image list's DIGEST column is the one
answer read from a table (ctr 1.6 has no JSON image list).  An image's
layers are worked out once per target digest (content never changes
under a digest) and forgotten once no image has that target, or one of
its directories is gone (an image removed, collected and pulled again is
unpacked into new snapshots).  An image still unpacking is tried again
next round, and that round's answer is not complete: nothing is let go
on it.  CRI also names each image by its id (sha256:...): that name is
skipped, it is the same image."""
import os

from yolo_layers.common import Fatal
from yolo_layers.engines import DIGEST, Containerd, client
from yolo_layers.host import failure_line, run
from yolo_share.registry import RegistryError, split_reference

from .plan import Answer, EngineDown, Wanted


def image_rows(table):
    """[(reference, target digest)] from `ctr images ls` output (REF TYPE
    DIGEST ..., a header line first)."""
    rows = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and DIGEST.fullmatch(fields[2]) and not DIGEST.fullmatch(fields[0]):
            rows.append((fields[0], fields[2]))
    return rows


class ContainerdImages:
    def __init__(self, address, namespaces, say_once):
        self.address, self.only, self.say_once = address, namespaces, say_once
        self.ctr = None
        self.keys = {}                    # (namespace, target) -> [(Layer, key)]

    def _ctr(self, args, namespace=None):
        if self.ctr is None:
            try:
                self.ctr = client("CTR", "ctr", "ctr")
            except Fatal as e:
                raise EngineDown(str(e)) from None
        argv = [self.ctr, "-a", self.address] + (["-n", namespace] if namespace else []) + args
        p = run(argv)
        if p.returncode != 0:
            raise EngineDown(f"ctr {' '.join(args)}: {failure_line(p)}")
        return p.stdout

    def namespaces(self):
        return list(self.only) or self._ctr(["namespaces", "ls", "-q"]).split()

    def answer(self):
        """The layers of every unpacked image of every namespace.  A layer
        unpacked in two namespaces is two snapshots, two directories, two
        layer ids."""
        found, holders, subjects, complete, listed = {}, {}, {}, True, set()
        for ns in self.namespaces():
            for ref, target in image_rows(self._ctr(["images", "ls"], ns)):
                listed.add((ns, target))
                keys = self.keys.get((ns, target))
                if keys is not None and not all(os.path.isdir(os.path.dirname(layer.dir)) for layer, _ in keys):
                    keys = None                   # collected since: unpacked anew
                if keys is None:
                    engine = Containerd(["-a", self.address, "-n", ns])
                    try:
                        keys = engine.layer_keys(ref)
                    except Fatal as e:
                        self.say_once(("unpacked", ns, ref, target), f"containerd {ns}/{ref}: not yet ({e})")
                        complete = False
                        continue
                    self.keys[(ns, target)] = keys
                try:
                    host, repo, _, _ = split_reference(ref)
                    subjects[ref] = (f"{host}/{repo}", target)
                except RegistryError:
                    pass                          # a local name: nothing to fetch through it
                for layer, key in keys:
                    found[layer.id] = (layer, key, ns)
                    holders.setdefault(layer.id, set()).add(ref)
        self.keys = {k: v for k, v in self.keys.items() if k in listed}
        return Answer({i: Wanted(layer, key, tuple(sorted(holders[i])), ns)
                       for i, (layer, key, ns) in found.items()}, subjects, complete)
