#!/usr/bin/python3
"""scripts/yolo_share (and the content keys of yolo_layers): the parts that
need no registry of Debian's: image references, credentials, the
authentication challenge, artifact manifests read as hostile input, the
referrers choice, content keys, and the registry client's protocol against
a scripted HTTP peer on 127.0.0.1 (Bearer tokens, Basic, a redirect to
storage that must not get the credentials, a blob whose bytes do not match
its digest).  The real registry is the integration suite's
(test_share_docker.sh)."""
import base64
import hashlib
import http.server
import json
import os
import sys
import tempfile
import threading
import unittest

ROOT = os.environ.get('YOLO_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, 'scripts'))

from yolo_layers import engines  # noqa: E402
from yolo_layers.common import Fatal  # noqa: E402
from yolo_share import cli, registry, store, watch  # noqa: E402
from yolo_share.registry import RegistryError  # noqa: E402

D1 = 'sha256:' + '1' * 64
D2 = 'sha256:' + '2' * 64
D3 = 'sha256:' + '3' * 64


class References(unittest.TestCase):
    def test_split(self):
        self.assertEqual(registry.split_reference('busybox'), ('docker.io', 'library/busybox', None, None))
        self.assertEqual(registry.split_reference('user/app:1'), ('docker.io', 'user/app', '1', None))
        self.assertEqual(registry.split_reference('docker.io/busybox:1'), ('docker.io', 'library/busybox', '1', None))
        self.assertEqual(registry.split_reference('127.0.0.1:5000/yolo/bb:2'), ('127.0.0.1:5000', 'yolo/bb', '2', None))
        self.assertEqual(registry.split_reference(f'localhost/a@{D1}'), ('localhost', 'a', None, D1))
        self.assertEqual(registry.split_reference(f'reg.example/a/b:t@{D1}'), ('reg.example', 'a/b', 't', D1))
        for bad in ('UPPER/x', 'reg.example/a:bad tag', 'a@sha256:xyz', 'reg.example/../x'):
            with self.assertRaises(RegistryError, msg=bad):
                registry.split_reference(bad)

    def test_loopback(self):
        for host in ('127.0.0.1:5000', 'localhost', 'localhost:5000', '[::1]:5000', '127.1.2.3'):
            self.assertTrue(registry.is_loopback(host), host)
        for host in ('reg.example', '10.0.0.1:5000', 'registry-1.docker.io'):
            self.assertFalse(registry.is_loopback(host), host)

    def test_referrers_tag(self):
        self.assertEqual(registry.referrers_tag(D1), 'sha256-' + '1' * 64)
        with self.assertRaises(RegistryError):
            registry.referrers_tag('sha256:short')


class Credentials(unittest.TestCase):
    def write(self, doc):
        f = tempfile.NamedTemporaryFile('w', delete=False, suffix='.json')
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_auth_file(self):
        path = self.write({'auths': {
            'reg.example:5000': {'auth': base64.b64encode(b'alice:pa:ss').decode()},
            'https://other.example/v1/': {'username': 'bob', 'password': 'x'},
            'broken.example': 'not a dict'}})
        self.assertEqual(registry.load_auths(path), {'reg.example:5000': ('alice', 'pa:ss'),
                                                     'other.example': ('bob', 'x')})
        self.assertEqual(registry.load_auths('/nonexistent/config.json'), {})
        with self.assertRaisesRegex(RegistryError, 'auth file'):
            registry.load_auths(self.write('{not json'))

    def test_challenge(self):
        self.assertEqual(registry.parse_challenge(
            'Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"'),
            ('bearer', {'realm': 'https://auth.example/token', 'service': 'reg', 'scope': 'repository:a:pull'}))
        self.assertEqual(registry.parse_challenge('Basic realm="yolo"'), ('basic', {'realm': 'yolo'}))
        self.assertEqual(registry.parse_challenge(None), ('', {}))


class Artifacts(unittest.TestCase):
    def test_round_trip(self):
        subject = {'mediaType': registry.MANIFEST, 'digest': D3, 'size': 10}
        body = store.artifact_manifest([('layer:' + D1, D2, 42)], subject, created='2026-12-06T00:00:00Z')
        doc = json.loads(body)
        self.assertEqual(doc['artifactType'], store.ARTIFACT_TYPE)
        self.assertEqual(doc['subject'], subject)
        self.assertEqual(doc['config']['digest'], registry.digest_of(b'{}'))
        self.assertEqual(store.artifact_images(body), {'layer:' + D1: (D2, 42)})

    def test_hostile_manifests(self):
        good = {'mediaType': store.IMAGE_TYPE, 'digest': D2, 'size': 1, 'annotations': {store.KEY_ANNOTATION: 'k'}}
        def doc(**changes):
            layer = dict(good, **changes)
            return json.dumps({'artifactType': store.ARTIFACT_TYPE, 'layers': [layer]}).encode()
        self.assertEqual(store.artifact_images(doc()), {'k': (D2, 1)})
        for bad in (dict(digest='sha256:../../etc'), dict(size=-1), dict(size=store.MAX_IMAGE + 1),
                    dict(size='1'), dict(mediaType='text/plain'), dict(annotations={}), dict(annotations='k')):
            self.assertEqual(store.artifact_images(doc(**bad)), {}, bad)
        self.assertEqual(store.artifact_images(b'{"artifactType": "other", "layers": []}'), {})
        self.assertEqual(store.artifact_images(b'\xff not json'), {})
        self.assertEqual(store.artifact_images(b'[]'), {})

    def test_newest_first(self):
        refs = [{'digest': D1, 'annotations': {store.CREATED: '2026-12-01T00:00:00Z'}},
                {'digest': D2},
                {'digest': D3, 'annotations': {store.CREATED: '2026-12-06T00:00:00Z'}}]
        self.assertEqual([r['digest'] for r in store.newest_first(refs)], [D3, D1, D2])

    def test_key_tag(self):
        self.assertEqual(store.key_tag('layer:' + D1), 'layer-sha256-' + '1' * 64)
        self.assertEqual(store.key_tag('base:abc:123'), 'base-abc-123')
        for bad in ('base:../x:1', 'a/b', '', 'x' * 129):
            with self.assertRaises(RegistryError, msg=bad):
                store.key_tag(bad)


class LayerKeys(unittest.TestCase):
    INSPECT = [{
        'RepoDigests': ['other.example/x@' + D3, f'127.0.0.1:5000/yolo/bb@{D1}'],
        'RootFS': {'Layers': [D1, D2]},
        'GraphDriver': {'Name': 'overlay2', 'Data': {
            'UpperDir': '/var/lib/docker/overlay2/top/diff', 'LowerDir': '/var/lib/docker/overlay2/base/diff'}}}]

    def test_docker_layer_keys(self):
        keys = engines.docker_layer_keys(self.INSPECT, 'img')
        top_chain = 'sha256:' + hashlib.sha256(f'{D1} {D2}'.encode()).hexdigest()
        self.assertEqual([(layer.id, key) for layer, key in keys],
                         [('top', 'layer:' + top_chain), ('base', 'layer:' + D1)])
        broken = json.loads(json.dumps(self.INSPECT))
        broken[0]['RootFS']['Layers'] = [D1]
        with self.assertRaisesRegex(Fatal, '2 layer directories but 1 diff ids'):
            engines.docker_layer_keys(broken, 'img')
        broken[0]['RootFS']['Layers'] = ['sha256:nothex', D2]
        with self.assertRaisesRegex(Fatal, 'no diff ids'):
            engines.docker_layer_keys(broken, 'img')

    def test_docker_subject(self):
        self.assertEqual(engines.docker_subject(self.INSPECT, '127.0.0.1:5000/yolo/bb:2'),
                         ('127.0.0.1:5000', 'yolo/bb', D1))
        with self.assertRaisesRegex(Fatal, 'no registry digest'):
            engines.docker_subject(self.INSPECT, 'elsewhere.example/yolo/bb:2')

    def test_chain_ids(self):
        self.assertEqual(engines.chain_ids([D1]), [D1])
        self.assertEqual(engines.chain_ids([D1, D2])[-1], engines.chain_id([D1, D2]))


class LearntBaseImages(unittest.TestCase):
    def test_glob(self):
        with tempfile.TemporaryDirectory() as d:
            for rel in ('k1/abc.0123abcd.yolo', 'k2/abc.89abcdef.yolo', 'k2/abc.def.0123abcd.yolo',
                        'k2/abcd.0123abcd.yolo', 'k3/abc.0123abcd.yolo.tmp'):
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                open(os.path.join(d, rel), 'w').close()
            self.assertEqual([os.path.relpath(p, d) for p in cli.learnt_images([d], 'abc')],
                             ['k1/abc.0123abcd.yolo', 'k2/abc.89abcdef.yolo'])


class Watch(unittest.TestCase):
    def test_candidates(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ('0123abcd', 'img.qcow2', 'dl.part', '.hidden', 'x.tmp', 'bad name'):
                with open(os.path.join(d, name), 'w') as f:
                    f.write('x' * len(name))
            os.mkdir(os.path.join(d, 'subdir'))
            os.symlink('0123abcd', os.path.join(d, 'link'))
            found = watch.candidates(d)
            self.assertEqual(sorted(found), ['0123abcd', 'img.qcow2'])
            self.assertEqual(found['img.qcow2'][0], 9)

    def test_metrics(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'share.prom')
            m = watch.Metrics(path)
            m.count('installed')
            m.count('refused')
            with open(path, encoding='utf-8') as f:
                text = f.read()
            self.assertIn('yolo_share_fetches_total{result="installed"} 1', text)
            self.assertIn('yolo_share_fetches_total{result="refused"} 1', text)
            self.assertIn('yolo_share_fetches_total{result="error"} 0', text)
            self.assertNotIn('yolo_share_last_error_timestamp_seconds 0.000', text)
            self.assertEqual(os.listdir(d), ['share.prom'])


class Peer(http.server.BaseHTTPRequestHandler):
    """A scripted registry: Bearer tokens from /token (Basic alice:pw), a
    manifest, a blob redirected to /storage (which records the headers it
    got), a blob with the wrong bytes."""
    seen = []
    blob = b'boot image bytes'

    def log_message(self, *args):
        pass

    @staticmethod
    def index():
        return json.dumps({'schemaVersion': 2, 'mediaType': registry.INDEX, 'manifests': [
            {'mediaType': registry.MANIFEST, 'digest': D1, 'size': 10, 'artifactType': store.ARTIFACT_TYPE},
            {'mediaType': registry.MANIFEST, 'digest': D2, 'size': 10, 'artifactType': 'application/other'},
            {'mediaType': registry.MANIFEST, 'digest': 'sha256:bad', 'size': 1, 'artifactType': store.ARTIFACT_TYPE},
        ]}).encode()

    def reply(self, code, body=b'', headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def do_GET(self):
        auth = self.headers.get('Authorization') or ''
        Peer.seen.append((self.path, auth))
        if self.path.startswith('/token'):
            ok = auth == 'Basic ' + base64.b64encode(b'alice:pw').decode()
            return self.reply(200 if ok else 401, json.dumps({'token': 'tok'}).encode())
        if self.path.startswith('/storage/'):
            return self.reply(200, Peer.blob)
        if auth != 'Bearer tok':
            port = self.server.server_address[1]
            return self.reply(401, b'{}', [('WWW-Authenticate',
                                            f'Bearer realm="http://127.0.0.1:{port}/token",service="t",scope="x"')])
        if self.path == f'/v2/a/blobs/{registry.digest_of(Peer.blob)}':
            return self.reply(307, headers=[('Location', '/storage/1')])
        if self.path == f'/v2/a/blobs/{D1}':
            return self.reply(200, b'not the bytes of D1')
        if self.path.startswith(f'/v2/a/referrers/{D3}?'):           # a registry with the API
            return self.reply(200, Peer.index(), [('Content-Type', registry.INDEX)])
        if self.path == f'/v2/a/manifests/{registry.referrers_tag(D1)}':  # one without: the tag
            return self.reply(200, Peer.index(), [('Content-Type', registry.INDEX)])
        return self.reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}')

    do_HEAD = do_GET


class Protocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Peer)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.host = f'127.0.0.1:{cls.server.server_address[1]}'
        cls.auth = tempfile.NamedTemporaryFile('w', delete=False, suffix='.json')
        json.dump({'auths': {cls.host: {'auth': base64.b64encode(b'alice:pw').decode()}}}, cls.auth)
        cls.auth.close()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        os.unlink(cls.auth.name)

    def setUp(self):
        Peer.seen.clear()
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def test_bearer_and_redirect(self):
        reg = registry.Registry(self.host, self.auth.name)
        digest = registry.digest_of(Peer.blob)
        path = reg.fetch_blob('a', digest, len(Peer.blob), self.dir.name, 1 << 20)
        with open(path, 'rb') as f:
            self.assertEqual(f.read(), Peer.blob)
        paths = [p for p, _ in Peer.seen]
        self.assertTrue(any(p.startswith('/token') for p in paths), paths)
        # The credentials and the token go to the registry, never to storage.
        self.assertEqual([a for p, a in Peer.seen if p.startswith('/storage/')], [''])

    def test_wrong_bytes_refused(self):
        reg = registry.Registry(self.host, self.auth.name)
        with self.assertRaisesRegex(RegistryError, 'refused|longer'):
            reg.fetch_blob('a', D1, 19, self.dir.name, 1 << 20)
        with self.assertRaisesRegex(RegistryError, 'longer than its 4 bytes'):
            reg.fetch_blob('a', D1, 4, self.dir.name, 1 << 20)
        with self.assertRaisesRegex(RegistryError, 'refused \\(limit 8\\)'):
            reg.fetch_blob('a', D1, 19, self.dir.name, 8)
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_no_credentials(self):
        reg = registry.Registry(self.host, '/nonexistent/config.json')
        with self.assertRaisesRegex(RegistryError, 'token from .*HTTP Error 401'):
            reg.has_blob('a', D1)

    def test_referrers(self):
        reg = registry.Registry(self.host, self.auth.name)
        # The API where the registry has it; the tag schema where it answers 404.
        for subject in (D3, D1):
            self.assertEqual([d['digest'] for d in reg.referrers('a', subject, store.ARTIFACT_TYPE)], [D1], subject)
        self.assertEqual([p for p, _ in Peer.seen if '/referrers/' in p or '/manifests/' in p][-2:],
                         [f'/v2/a/referrers/{D1}?artifactType=' + store.ARTIFACT_TYPE.replace('/', '%2F').replace('+', '%2B'),
                          f'/v2/a/manifests/{registry.referrers_tag(D1)}'])

    def test_not_found(self):
        reg = registry.Registry(self.host, self.auth.name)
        self.assertFalse(reg.has_blob('a', D2))
        self.assertEqual(reg.referrers('a', D2, store.ARTIFACT_TYPE), [])


if __name__ == '__main__':
    unittest.main()
