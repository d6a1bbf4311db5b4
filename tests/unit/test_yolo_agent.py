#!/usr/bin/python3
"""scripts/yolo_agent: the parts that need no engine: the configuration
(defaults, refusals), a round's decisions, Docker's layer store read from
its files (a made-up data root, hostile entries included), ctr's image
table, nova.conf's _base, and the node's metrics file (labels on every
series, no repeated series, no local path).  The real engines and systemd
are the integration suite's (test_agent.sh)."""
import json
import os
import sys
import tempfile
import unittest

ROOT = os.environ.get('YOLO_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, 'scripts'))

from yolo_agent import config, containerd, docker, node_metrics, nova, plan  # noqa: E402
from yolo_layers.engines import Layer, chain_ids  # noqa: E402

H = lambda c: c * 64  # noqa: E731


class ConfigTest(unittest.TestCase):
    def test_defaults(self):
        c = config.parse("")
        self.assertEqual(c.learn, "/var/lib/yolo/learn")
        self.assertEqual(c.docker.root, "/var/lib/docker")
        self.assertEqual(c.containerd.namespaces, ())
        self.assertTrue(c.fetch)

    def test_values(self):
        c = config.parse("[agent]\ninterval = 0.5\nfetch = no\n[containerd]\nnamespaces = k8s.io, moby\n"
                         "[nova]\nenabled = no\n")
        self.assertEqual(c.interval, 0.5)
        self.assertFalse(c.fetch)
        self.assertEqual(c.containerd.namespaces, ("k8s.io", "moby"))
        self.assertEqual(c.nova.enabled, "no")

    def test_refusals(self):
        for text in ("[agent]\nlearn = relative\n", "[agent]\ninterval = 0\n", "[agent]\nfetch = maybe\n",
                     "[docker]\nenabled = sometimes\n", "[dokcer]\nroot = /x\n", "[agent]\nlaern = /x\n",
                     "no section\n"):
            with self.assertRaises(config.ConfigError, msg=text):
                config.parse(text)


def wanted(i, refs=("a:1",)):
    return plan.Wanted(Layer(i, f"/l/{i}/diff"), f"layer:sha256:{i}", tuple(refs))


class PlanTest(unittest.TestCase):
    def test_mount_remount_release(self):
        w = {i: wanted(i) for i in ("a", "b", "c")}
        p = plan.plan(w, {"b": "/l/b/diff", "c": "/l/c/diff", "z": "/l/z/diff"}, {"c"})
        self.assertEqual(p.mount, ["a"])
        self.assertEqual(p.remount, ["c"])
        self.assertEqual(p.release, ["z"])

    def test_nothing_to_do(self):
        w = {"a": wanted("a")}
        self.assertEqual(plan.plan(w, {"a": "/l/a/diff"}, set()), plan.Plan([], [], []))

    def test_fetch_once_per_layer_through_one_ref(self):
        w = {"a": wanted("a", ("x:1", "y:1")), "b": wanted("b", ("y:1",)), "c": wanted("c", ()),
             "d": wanted("d", ("x:1",))}
        todo = plan.refs_to_fetch(w, ["a", "b", "c", "d"], lambda i: i == "d")
        self.assertEqual({r: [x.layer.id for x in ws] for r, ws in todo.items()}, {"x:1": ["a"], "y:1": ["b"]})


class DockerFilesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.store = os.path.join(self.root, "image", "overlay2")
        diff_ids = ["sha256:" + H("1"), "sha256:" + H("2")]
        self.chains = chain_ids(diff_ids)
        for n, chain in enumerate(self.chains):
            d = os.path.join(self.store, "layerdb", "sha256", chain[7:])
            os.makedirs(d)
            with open(os.path.join(d, "cache-id"), "w") as f:
                f.write(H(str(n + 5)))
        os.makedirs(os.path.join(self.store, "layerdb", "sha256", "tmp"))       # not a layer
        bad = os.path.join(self.store, "layerdb", "sha256", H("9"))
        os.makedirs(bad)
        with open(os.path.join(bad, "cache-id"), "w") as f:
            f.write("../../etc")                                                 # hostile: refused
        cfg = os.path.join(self.store, "imagedb", "content", "sha256")
        os.makedirs(cfg)
        with open(os.path.join(cfg, H("a")), "w") as f:
            json.dump({"rootfs": {"type": "layers", "diff_ids": diff_ids}}, f)
        with open(os.path.join(self.store, "repositories.json"), "w") as f:
            json.dump({"Repositories": {"reg:5000/app": {
                "reg:5000/app:1": "sha256:" + H("a"), "reg:5000/app@sha256:" + H("d"): "sha256:" + H("a")},
                "local": {"local:dev": "sha256:" + H("a")}, "junk": ["not", "a", "dict"]}}, f)

    def tearDown(self):
        self.tmp.cleanup()

    def test_layers_refs_subjects(self):
        files = docker.DockerFiles(self.root)
        self.assertTrue(files.present())
        w, subjects = files.wanted()
        self.assertEqual(sorted(w), [H("5"), H("6")])
        top = w[H("6")]
        self.assertEqual(top.layer.dir, os.path.join(self.root, "overlay2", H("6"), "diff"))
        self.assertEqual(top.key, "layer:" + self.chains[1])
        self.assertEqual(top.refs, ("local:dev", "reg:5000/app:1"))
        self.assertEqual(subjects, {"reg:5000/app:1": ("reg:5000/app", "sha256:" + H("d"))})

    def test_garbage_repositories_is_engine_down(self):
        with open(os.path.join(self.store, "repositories.json"), "w") as f:
            f.write("{not json")
        with self.assertRaises(docker.EngineDown):
            docker.DockerFiles(self.root).wanted()

    def test_absent_store(self):
        self.assertFalse(docker.DockerFiles(os.path.join(self.root, "none")).present())


class ContainerdTest(unittest.TestCase):
    def test_image_rows(self):
        table = ("REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
                 f"docker.io/library/nginx:1 application/vnd.oci.image.index.v1+json sha256:{H('1')} 60.1 MiB linux/amd64 -\n"
                 f"sha256:{H('2')} application/vnd.oci.image.index.v1+json sha256:{H('1')} 60.1 MiB linux/amd64 -\n"
                 "garbage line\n")
        self.assertEqual(containerd.image_rows(table), [("docker.io/library/nginx:1", "sha256:" + H("1"))])


class NovaTest(unittest.TestCase):
    def test_base_dir(self):
        self.assertEqual(nova.base_dir(""), "/var/lib/nova/instances/_base")
        self.assertEqual(nova.base_dir("[DEFAULT]\ninstances_path = /srv/nova\n[image_cache]\n"
                                       "subdirectory_name = cache\n"), "/srv/nova/cache")
        self.assertEqual(nova.base_dir("[DEFAULT]\nimage_cache_subdirectory_name = old\n"),
                         "/var/lib/nova/instances/old")
        # nova.conf may repeat options (strict=False) and holds %-signs
        self.assertEqual(nova.base_dir("[DEFAULT]\ntransport_url = rabbit://u:p%40@h\n"
                                       "instances_path = /a\ninstances_path = /b\n"), "/b/_base")


YOLOFS_METRICS = """# HELP yolofs_reads_total Reads.
# TYPE yolofs_reads_total counter
yolofs_reads_total 7
# HELP yolofs_image_bytes_total Bytes from each image.
# TYPE yolofs_image_bytes_total counter
yolofs_image_bytes_total{image="/var/lib/yolo/images/docker/abc/fetched.yolo",generation="1"} 10
yolofs_image_bytes_total{image="/var/lib/yolo/learn/k/mount.yolo",generation="2"} 20
"""


class NodeMetricsTest(unittest.TestCase):
    def test_labels_and_no_duplicates(self):
        m = node_metrics.NodeMetrics()
        label = lambda p: "fetched" if p.startswith("/var/lib/yolo/images/") else "learnt"  # noqa: E731
        for layer in ("sha256:" + H("1"), "sha256:" + H("2")):
            m.add_yolofs(YOLOFS_METRICS, [("mount", "docker:" + layer), ("engine", "docker"), ("layer", layer)],
                         label)
        m.add_yolofs(YOLOFS_METRICS, [("mount", "docker:sha256:" + H("1")), ("engine", "docker"),
                                      ("layer", "sha256:" + H("1"))], label)   # the same mount twice
        text = m.text()
        series = [line for line in text.splitlines() if not line.startswith("#")]
        names = [s.rpartition(" ")[0] for s in series]
        self.assertEqual(len(names), len(set(names)), text)
        self.assertEqual(len(series), 6)
        self.assertTrue(all('mount="docker:sha256:' in s for s in series), text)
        self.assertNotIn("/var/lib", text)
        self.assertIn('boot_image="fetched",generation="1"', text)
        self.assertIn('boot_image="learnt",generation="2"', text)
        self.assertEqual(text.count("# TYPE yolofs_reads_total counter"), 1)
        self.assertEqual(text.count("# HELP yolofs_image_bytes_total"), 1)

    def test_escaping(self):
        m = node_metrics.NodeMetrics()
        m.add("x", [("image", 'we"ird\\ref\n')], 1)
        self.assertIn('x{image="we\\"ird\\\\ref\\n"} 1', m.text())


if __name__ == "__main__":
    unittest.main(verbosity=1)
