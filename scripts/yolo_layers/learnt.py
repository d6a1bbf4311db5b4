"""learnt.py - the images yolofs learns with mount --learn DIR, and their
removal once the engine removed their layer.

yolofs -o learn=DIR keeps what it learns of a layer in DIR/<key>/ (one
image, mount.yolo, with learn_by=mount), <key> made by yolofs from the
layer directory's path.  The tool takes <key> from the daemon itself (the
directory it holds open) and notes in DIR/.yolo-layers/<key> what it was
learnt from (three lines: layer directory, engine, layer id), so that it
still knows once the daemon, its state and the layer itself are gone;
STATE/learn-dirs lists the DIRs this tool has mounted with.

When the engine removes a layer (docker rmi, containerd's garbage
collector), its learnt images can never be served again: a layer pulled
again gets a new directory, so a new <key>.  Kept, they would waste the
disk and count against learn_max of every other daemon learning into DIR
(each removes only its own images to stay within it).  So every command
that takes the lock deletes them, and says so; status lists them until
then."""
import collections
import os
import re

from .common import say
from .host import du_bytes, open_paths, read_value, rm_rf

NOTES = ".yolo-layers"
KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

Record = collections.namedtuple("Record", "key layer_dir engine layer_id")


def learn_key(pid, learn_dir):
    """The name of the directory LEARN_DIR/<key> that yolofs PID holds open
    (yolofs keeps DIR and DIR/<key> open while it learns), or None."""
    for path in open_paths(pid):
        if path.startswith(learn_dir + "/") and KEY.fullmatch(path[len(learn_dir) + 1:]):
            return path[len(learn_dir) + 1:]
    return None


def records(learn_dir):
    """The notes in LEARN_DIR: what each <key> was learnt from."""
    notes = os.path.join(learn_dir, NOTES)
    try:
        keys = sorted(k for k in os.listdir(notes) if not k.startswith("."))
    except OSError:
        return []
    found = []
    for key in keys:
        if not KEY.fullmatch(key) or key.endswith(".tmp") or not os.path.isfile(os.path.join(notes, key)):
            continue
        lines = read_value(os.path.join(notes, key)).split("\n")
        if len(lines) >= 3:
            found.append(Record(key, *(line.strip() for line in lines[:3])))
    return found


def layer_removed(layer_dir):
    """The engine removed the layer whose directory is LAYER_DIR
    (.../<layer>/diff, .../snapshots/<N>/fs): <layer> is gone while the
    directory of layers is there (not an unmounted disk, not another mount
    namespace)."""
    layer = os.path.dirname(layer_dir)
    return not os.path.lexists(layer) and os.path.isdir(os.path.dirname(layer))


class Learnt:
    """The learn directories of one engine's state (and of this call's
    mount --learn DIR, LEARN_DIR)."""

    def __init__(self, state, engine_name, learn_dir=""):
        self.state = state
        self.engine_name = engine_name
        self.learn_dir = learn_dir

    def dirs(self):
        listed = read_value(self.state.learn_dirs_file).splitlines() + [self.learn_dir]
        found = []
        for d in (line.strip() for line in listed):
            if d and d not in found and os.path.isdir(d):
                found.append(d)
        return found

    def note(self, learn_dir, key, layer):
        """Remember that LEARN_DIR/KEY is learnt from LAYER."""
        notes = os.path.join(learn_dir, NOTES)
        try:
            os.makedirs(notes, exist_ok=True)
            with open(os.path.join(notes, key + ".tmp"), "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(f"{layer.dir}\n{self.engine_name}\n{layer.id}\n")
            os.replace(os.path.join(notes, key + ".tmp"), os.path.join(notes, key))
        except OSError:
            say(f"layer {layer.id}: cannot note what {learn_dir}/{key} is learnt from")
        if learn_dir not in read_value(self.state.learn_dirs_file).splitlines():
            with open(self.state.learn_dirs_file, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(learn_dir + "\n")

    def in_use(self, key_dir):
        """A running daemon of this tool learns into KEY_DIR."""
        return any(d.learn == key_dir and d.running_pid() is not None for d in self.state.daemons())

    def learnt_from(self, layer_dir):
        """The DIR/<key> learnt from LAYER_DIR, from the notes, or ""."""
        for d in self.dirs():
            for r in records(d):
                if r.layer_dir == layer_dir and os.path.isdir(os.path.join(d, r.key)):
                    return os.path.join(d, r.key)
        return ""

    def of_removed_layers(self):
        """(DIR/<key>, record) for each learnt image whose layer the engine
        removed."""
        return [(os.path.join(d, r.key), r) for d in self.dirs() for r in records(d)
                if os.path.isdir(os.path.join(d, r.key)) and layer_removed(r.layer_dir)]

    def sweep_removed(self):
        """Delete the learnt images of removed layers (the lock held)."""
        for d in self.dirs():
            for r in records(d):
                key_dir, note = os.path.join(d, r.key), os.path.join(d, NOTES, r.key)
                if not os.path.isdir(key_dir):
                    rm_rf(note)                              # deleted by hand
                    continue
                if not layer_removed(r.layer_dir) or self.in_use(key_dir):
                    continue
                size = du_bytes(key_dir)
                if rm_rf(key_dir) and rm_rf(note):
                    say(f"layer {r.layer_id} ({r.engine}) was removed; deleted its learnt images "
                        f"{key_dir} ({'?' if size is None else size} bytes)")
