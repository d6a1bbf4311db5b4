"""node_metrics.py - one metrics file for the node, for node_exporter's
textfile collector: the node's yolofs host writes one file, every series
labelled with its mount (the label the agent attached the layer with);
nova's yolofs and an earlier version's per-layer daemons write one each;
the agent merges them into one, rewritten atomically each round.

Every series gets the labels of its mount, the same on every node:
mount="ENGINE:LAYER" (or "nova:_base"), engine, and layer="sha256:..." (the
layer's chain id) or base (nova's directory).  yolofs's own image label
is a local path; it becomes boot_image="learnt" or "fetched" for a layer
(its base file's name for nova).  Which image references hold a layer is
a series of its own, yolo_agent_layer_image{mount,image} 1, so a layer
shared by several images is one set of series.  Each name gets one HELP
and one TYPE line, whatever the number of mounts; a series that would
repeat (same name and labels) is written once, so node_exporter never
refuses the file."""
import os
import re

SERIES = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_labels(labels):
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}" if labels else ""


class NodeMetrics:
    """The series of one file being built: HELP/TYPE by name, series by
    name in the order first seen."""

    def __init__(self):
        self.meta, self.series, self.seen = {}, {}, set()

    def describe(self, name, kind, help_text):
        self.meta.setdefault(name, (kind, help_text))

    def add(self, name, labels, value):
        """Add NAME{LABELS} VALUE (LABELS: [(label, value)]) unless that
        series is already there."""
        text = name + render_labels(labels)
        if text in self.seen:
            return
        self.seen.add(text)
        self.series.setdefault(name, []).append(f"{text} {value}")

    def add_yolofs(self, text, mount_labels, image_label):
        """The series of one yolofs's own metrics file TEXT (one mount, no
        mount label), with MOUNT_LABELS first and its image="PATH" label
        replaced by IMAGE_LABEL(PATH)."""
        self._add_text(text, lambda labels: list(mount_labels) + labels, image_label)

    def add_host(self, text, mount_extra, image_label):
        """The series of the yolofs host's metrics file TEXT, each labelled
        mount="LABEL": MOUNT_EXTRA(LABEL) gives the labels that follow it
        (engine, layer); image="PATH" is replaced by IMAGE_LABEL(PATH)."""
        def relabel(labels):
            out = []
            for k, v in labels:
                out.append((k, v))
                if k == "mount":
                    out.extend(mount_extra(v))
            return out
        self._add_text(text, relabel, image_label)

    def _add_text(self, text, relabel, image_label):
        kinds, helps = {}, {}
        for line in text.splitlines():
            if line.startswith("# HELP "):
                name, _, h = line[7:].partition(" ")
                helps[name] = h
            elif line.startswith("# TYPE "):
                name, _, k = line[7:].partition(" ")
                kinds[name] = k.strip()
            elif line and not line.startswith("#"):
                m = SERIES.match(line)
                if not m:
                    continue
                name, labels = m.group(1), []
                for k, v in LABEL.findall(m.group(2) or ""):
                    v = v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                    labels.append(("boot_image", image_label(v)) if k == "image" else (k, v))
                self.describe(name, kinds.get(name, "untyped"), helps.get(name, ""))
                self.add(name, relabel(labels), m.group(3))

    def text(self):
        out = []
        for name, lines in self.series.items():
            kind, help_text = self.meta.get(name, ("untyped", ""))
            if help_text:
                out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n"

    def write(self, path):
        """Replace PATH atomically (a scrape never reads half a file)."""
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.text())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
