#!/usr/bin/python3
"""scripts/yolo_agent: the parts that need no engine: the configuration
(defaults, refusals), a round's decisions, Docker's layer store read from
its files (a made-up data root, hostile entries included), ctr's image
table, nova.conf's _base, and the node's metrics file (labels on every
series, no repeated series, no local path).  The real engines and systemd
are the integration suite's (test_agent.sh)."""
import json
import os
import socket
import sys
import tempfile
import threading
import unittest

ROOT = os.environ.get('YOLO_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, 'scripts'))

from yolo_agent import agent, config, containerd, docker, fetch, host_client, node_metrics, nova, plan  # noqa: E402
from yolo_layers.common import Fatal  # noqa: E402
from yolo_layers.engines import Layer, chain_ids  # noqa: E402
from yolo_share.store import DirStore, RegistryStore  # noqa: E402

H = lambda c: c * 64  # noqa: E731


class ConfigTest(unittest.TestCase):
    def test_defaults(self):
        c = config.parse("")
        self.assertEqual(c.host, "/run/yolofs/host.sock")
        self.assertEqual(c.learn, "/var/lib/yolo/learn")
        self.assertEqual(c.docker.root, "")                       # dockerd's own (daemon.json)
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
                     "[docker]\nenabled = sometimes\n", "[agent]\nhost = run/h.sock\n", "[dokcer]\nroot = /x\n", "[agent]\nlaern = /x\n",
                     "no section\n"):
            with self.assertRaises(config.ConfigError, msg=text):
                config.parse(text)


def wanted(i, refs=("a:1",), scope=""):
    return plan.Wanted(Layer(i, f"/l/{i}/diff"), f"layer:sha256:{i}", tuple(refs), scope)


class PlanTest(unittest.TestCase):
    def test_mount_remount_release(self):
        w = {i: wanted(i) for i in ("a", "b", "c")}
        p = plan.plan(plan.Answer(w, {}, True), {"b": "/l/b/diff", "c": "/l/c/diff", "z": "/l/z/diff"}, {"c"})
        self.assertEqual(p.mount, ["a"])
        self.assertEqual(p.remount, ["c"])
        self.assertEqual(p.release, ["z"])

    def test_partial_answer_lets_nothing_go(self):
        w = {"a": wanted("a")}
        p = plan.plan(plan.Answer(w, {}, False), {"z": "/l/z/diff"}, set())
        self.assertEqual(p, plan.Plan(["a"], [], []))

    def test_nothing_to_do(self):
        w = {"a": wanted("a")}
        self.assertEqual(plan.plan(plan.Answer(w, {}, True), {"a": "/l/a/diff"}, set()), plan.Plan([], [], []))

    def test_fetch_once_per_layer_through_one_ref(self):
        w = {"a": wanted("a", ("x:1", "y:1")), "b": wanted("b", ("y:1",)), "c": wanted("c", ()),
             "d": wanted("d", ("x:1",))}
        todo = plan.refs_to_fetch(w, ["a", "b", "c", "d"], lambda i: i == "d")
        self.assertEqual({r: [x.layer.id for x in ws] for r, ws in todo.items()}, {"x:1": ["a"], "y:1": ["b"]})

    def test_mount_label(self):
        self.assertEqual(plan.mount_label("docker", wanted("a")), "docker:sha256:a")
        self.assertEqual(plan.mount_label("containerd", wanted("a", scope="k8s.io")), "containerd:k8s.io:sha256:a")


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
        w, subjects, complete = files.answer()
        self.assertTrue(complete)
        self.assertEqual(sorted(w), [H("5"), H("6")])
        top = w[H("6")]
        self.assertEqual(top.layer.dir, os.path.join(self.root, "overlay2", H("6"), "diff"))
        self.assertEqual(top.key, "layer:" + self.chains[1])
        self.assertEqual(top.refs, ("local:dev", "reg:5000/app:1"))
        self.assertEqual(subjects, {"reg:5000/app:1": ("reg:5000/app", "sha256:" + H("d"))})

    def test_garbage_repositories_is_engine_down(self):
        with open(os.path.join(self.store, "repositories.json"), "w") as f:
            f.write("{not json")
        with self.assertRaises(plan.EngineDown):
            docker.DockerFiles(self.root).answer()

    def test_absent_store(self):
        self.assertFalse(docker.DockerFiles(os.path.join(self.root, "none")).present())

    def test_data_root(self):
        conf = os.path.join(self.root, "daemon.json")
        self.assertEqual(docker.data_root("", conf), "/var/lib/docker")          # no daemon.json
        with open(conf, "w") as f:
            json.dump({"data-root": "/srv/docker"}, f)
        self.assertEqual(docker.data_root("", conf), "/srv/docker")
        self.assertEqual(docker.data_root("/x", conf), "/x")                     # configured wins
        for bad in ('["list"]', '{"data-root": "relative"}', "{garbage"):
            with open(conf, "w") as f:
                f.write(bad)
            self.assertEqual(docker.data_root("", conf), "/var/lib/docker", bad)


class FakeContainerd:
    """yolo_layers' Containerd as the agent uses it: LAYERS[ref] answers
    layer_keys(ref) (a Fatal when absent: not unpacked yet); CALLS counts."""
    layers, calls = {}, []

    def __init__(self, client_opts):
        self.ns = client_opts[-1]

    def layer_keys(self, ref):
        FakeContainerd.calls.append((self.ns, ref))
        if ref not in FakeContainerd.layers:
            raise Fatal(f"{ref} is not unpacked")
        return FakeContainerd.layers[ref]


class ContainerdTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.saved = containerd.Containerd
        containerd.Containerd = FakeContainerd
        FakeContainerd.layers, FakeContainerd.calls = {}, []

    def tearDown(self):
        containerd.Containerd = self.saved
        self.tmp.cleanup()

    def snapshot(self, n):
        d = os.path.join(self.tmp.name, "snapshots", str(n), "fs")
        os.makedirs(d, exist_ok=True)
        return Layer(str(n), d)

    def images(self, tables):
        said = []
        c = containerd.ContainerdImages("/run/c.sock", (), agent.Notes(said.append).once)
        c.namespaces = lambda: list(tables)
        c._ctr = lambda args, ns=None: tables[ns]
        return c, said

    def test_image_rows(self):
        table = ("REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
                 f"docker.io/library/nginx:1 application/vnd.oci.image.index.v1+json sha256:{H('1')} 60.1 MiB linux/amd64 -\n"
                 f"sha256:{H('2')} application/vnd.oci.image.index.v1+json sha256:{H('1')} 60.1 MiB linux/amd64 -\n"
                 "garbage line\n")
        self.assertEqual(containerd.image_rows(table), [("docker.io/library/nginx:1", "sha256:" + H("1"))])

    def test_namespaces_subjects_and_partial(self):
        row = lambda ref, t: f"{ref} application/vnd.oci.image.manifest.v1+json sha256:{H(t)} 1 MiB linux/amd64 -\n"  # noqa: E731
        hdr = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        FakeContainerd.layers = {"reg:5000/a:1": [(self.snapshot(1), "layer:sha256:" + H("c"))]}
        c, said = self.images({"k8s.io": hdr + row("reg:5000/a:1", "1") + row("reg:5000/b:1", "2"),
                               "moby": hdr})
        ans = c.answer()
        self.assertFalse(ans.complete)                       # b is not unpacked yet
        self.assertEqual(list(ans.wanted), ["1"])
        self.assertEqual(ans.wanted["1"].scope, "k8s.io")
        self.assertEqual(ans.subjects["reg:5000/a:1"], ("reg:5000/a", "sha256:" + H("1")))
        self.assertEqual(len(said), 1)
        c.answer()
        self.assertEqual(len(said), 1, "said once, not every round")

    def test_cache_forgets_collected_and_removed(self):
        hdr = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        tab = hdr + f"reg:5000/a:1 application/vnd.oci.image.manifest.v1+json sha256:{H('1')} 1 MiB linux/amd64 -\n"
        old = self.snapshot(1)
        FakeContainerd.layers = {"reg:5000/a:1": [(old, "layer:sha256:" + H("c"))]}
        tables = {"default": tab}
        c, _ = self.images(tables)
        self.assertEqual(list(c.answer().wanted), ["1"])
        self.assertEqual(list(c.answer().wanted), ["1"])
        self.assertEqual(len(FakeContainerd.calls), 1, "worked out once per target")
        tables["default"] = hdr                              # removed
        self.assertEqual(c.answer().wanted, {})
        self.assertEqual(c.keys, {}, "a target no image has is forgotten")
        os.rmdir(old.dir)
        os.rmdir(os.path.dirname(old.dir))                   # collected
        FakeContainerd.layers = {"reg:5000/a:1": [(self.snapshot(7), "layer:sha256:" + H("c"))]}
        tables["default"] = tab                              # the same digest pulled again
        self.assertEqual(list(c.answer().wanted), ["7"])


class FakeHost:
    """A socket answering as yolofs --host does: ANSWERS[request's first
    field] (lines), the requests kept."""

    def __init__(self, path, answers):
        self.answers, self.requests = answers, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    data += conn.recv(4096)
                fields = data.decode().rstrip("\n").split("\t")
                self.requests.append(fields)
                conn.sendall("".join(line + "\n" for line in self.answers[fields[0]]).encode())


class HostClientTest(unittest.TestCase):
    def test_requests_and_answers(self):
        with tempfile.TemporaryDirectory() as d:
            fake = FakeHost(os.path.join(d, "h.sock"), {
                "list": ["1\tdocker:sha256:aa\t/l/1/diff\tserving\t0:51\t/learn/docker/l_1.ab",
                         "2\tcontainerd:k8s.io:sha256:bb\t/s/7/fs\tdetached\t0:52\t-", "ok 2 sessions"],
                "attach": ["ok 3 0:53 /learn/docker/l_3.cd"],
                "detach": ["error: /x is not attached"]})
            h = host_client.Host(os.path.join(d, "h.sock"))
            sessions, pid = h.sessions()
            self.assertEqual(pid, os.getpid())
            self.assertEqual(sessions["/l/1/diff"].label, "docker:sha256:aa")
            self.assertEqual(sessions["/l/1/diff"].learn, "/learn/docker/l_1.ab")
            self.assertEqual(sessions["/s/7/fs"].state, "detached")
            self.assertEqual(sessions["/s/7/fs"].learn, "")
            session, line = h.attach("docker:sha256:cc", "/l/3/diff", "learn=/learn/docker")
            self.assertEqual(session, host_client.Session("3", "docker:sha256:cc", "/l/3/diff", "serving", "0:53",
                                                          "/learn/docker/l_3.cd"))
            self.assertEqual(line, "ok 3 0:53 /learn/docker/l_3.cd")
            self.assertEqual(fake.requests[-1], ["attach", "docker:sha256:cc", "/l/3/diff", "learn=/learn/docker"])
            self.assertEqual(h.detach("/x"), (False, "error: /x is not attached"))
            self.assertIsNone(h.attach("a\tb", "/l", "")[0], "a tab in a field is never sent")
            fake.sock.close()
        with self.assertRaises(host_client.HostDown):
            host_client.Host("/nonexistent/h.sock").sessions()


class FetchTest(unittest.TestCase):
    def test_subject_registry(self):
        cfg = config.parse("")
        store, digest = fetch.open_for(cfg, "reg:5000/yolo/a:1", ("reg:5000/yolo/a", "sha256:" + H("1")))
        self.assertIsInstance(store, RegistryStore)
        self.assertEqual(store.where(), "reg:5000/yolo/a")
        self.assertEqual(digest, "sha256:" + H("1"))

    def test_no_subject_no_registry(self):
        with self.assertRaises(fetch.RegistryError):
            fetch.open_for(config.parse(""), "local:dev", None)

    def test_shared_directory(self):
        with tempfile.TemporaryDirectory() as d:
            store, digest = fetch.open_for(config.parse(f"[agent]\nstore = {d}\n"), "local:dev", None)
            self.assertIsInstance(store, DirStore)
            self.assertIsNone(digest)


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

    def test_host_file(self):
        m = node_metrics.NodeMetrics()
        text = ("# HELP yolofs_reads_total Reads.\n# TYPE yolofs_reads_total counter\n"
                'yolofs_reads_total{mount="docker:sha256:aa",image="/var/lib/yolo/learn/docker/k/mount.yolo",'
                'generation="0"} 5\n'
                'yolofs_reads_total{mount="containerd:k8s.io:sha256:bb",image="/var/lib/yolo/images/c/7/x.yolo",'
                'generation="1"} 6\n'
                "# HELP yolofs_memory_resident_bytes Memory.\n# TYPE yolofs_memory_resident_bytes gauge\n"
                'yolofs_memory_resident_bytes{mount="host"} 4096\n')
        extra = {"docker:sha256:aa": [("engine", "docker"), ("layer", "sha256:aa")],
                 "containerd:k8s.io:sha256:bb": [("engine", "containerd"), ("layer", "sha256:bb")]}
        m.add_host(text, lambda mount: extra.get(mount, []),
                   lambda p: "fetched" if p.startswith("/var/lib/yolo/images/") else "learnt")
        out = m.text()
        self.assertIn('yolofs_reads_total{mount="docker:sha256:aa",engine="docker",layer="sha256:aa",'
                      'boot_image="learnt",generation="0"} 5', out)
        self.assertIn('engine="containerd",layer="sha256:bb",boot_image="fetched",generation="1"} 6', out)
        self.assertIn('yolofs_memory_resident_bytes{mount="host"} 4096', out)
        self.assertNotIn("/var/lib", out)
        self.assertEqual(out.count("# TYPE yolofs_reads_total counter"), 1)

    def test_escaping(self):
        m = node_metrics.NodeMetrics()
        m.add("x", [("image", 'we"ird\\ref\n')], 1)
        self.assertIn('x{image="we\\"ird\\\\ref\\n"} 1', m.text())


if __name__ == "__main__":
    unittest.main(verbosity=1)
