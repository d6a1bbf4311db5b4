#!/usr/bin/python3
"""scripts/yolo-layers (yolo-docker, yolo-containerd), the parts that need
no engine: an image's layers from Docker's and containerd's JSON answers
(samples taken from docker 20.10 and containerd 1.6.20 with the
integration tests' two-layer image), the mount table and metrics readers,
and the command line (every option form, and the usage errors, exit 2)."""
import os
import sys
import tempfile
import unittest

ROOT = os.environ.get('YOLO_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, 'scripts'))

from yolo_layers import cli, engines, host  # noqa: E402
from yolo_layers.common import Fatal, UsageError  # noqa: E402

OVERLAY2 = '/var/lib/docker/overlay2'
TOP_ID = '86af4027db4294fcdbc1dd44c38e573d55e8ed4b7066fa20d8e509edead905d2'
BASE_ID = 'c433b2c595038caf0e356055aa38dd8348dfd47f104f638d09328351ed8818cd'
DOCKER_INSPECT = [{
    'Id': 'sha256:5c1b0d4b9d3c',
    'RootFS': {'Type': 'layers', 'Layers': [
        'sha256:32874a33e36f072d17402748500cf53fd799072e039638730051946662ba7971',
        'sha256:d135f2a7da7a04bf0d2a428b6107c27209f00796747cc727a8762fdc3733ee2f']},
    'GraphDriver': {'Name': 'overlay2', 'Data': {
        'LowerDir': f'{OVERLAY2}/{BASE_ID}/diff',
        'MergedDir': f'{OVERLAY2}/{TOP_ID}/merged',
        'UpperDir': f'{OVERLAY2}/{TOP_ID}/diff',
        'WorkDir': f'{OVERLAY2}/{TOP_ID}/work'}}}]

BASE_DIFF = 'sha256:32874a33e36f072d17402748500cf53fd799072e039638730051946662ba7971'
TOP_DIFF = 'sha256:33f288a7825fb9e52eeb4f2bda4ca1cc366f519bedd0492b2e4316a1a4132f9c'
TOP_CHAIN = 'sha256:350198387f5754cc9e099cfd9ca756fc821ad3ea0ab9319fe7c1d89aa249c50c'
MANIFEST = 'sha256:86c53804a26758ba154870fa107ac3304051b79979617d398c75c69b425a1070'
CONFIG = 'sha256:fc0920a58ee5135bf07438115695c4aa339f653f1a4901cb77dbee1d9e37ab43'
CONTENT = {
    MANIFEST: {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
               'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': CONFIG, 'size': 274},
               'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': BASE_DIFF,
                           'size': 1996800},
                          {'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': TOP_DIFF,
                           'size': 10240}]},
    CONFIG: {'architecture': 'amd64', 'os': 'linux', 'config': {'Env': ['PATH=/bin'], 'Cmd': ['/bin/sh']},
             'rootfs': {'type': 'layers', 'diff_ids': [BASE_DIFF, TOP_DIFF]}},
}
IMAGES_LS = (
    'REF                              TYPE                                       DIGEST'
    '                                                                  SIZE    PLATFORMS   LABELS \n'
    f'docker.io/library/yolo-explore:1 application/vnd.oci.image.manifest.v1+json {MANIFEST}'
    ' 1.9 MiB linux/amd64 -      \n')
SNAPSHOTS = '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots'
VIEW_OVERLAY = [{'Type': 'overlay', 'Source': 'overlay',
                 'Options': ['index=off', f'lowerdir={SNAPSHOTS}/2/fs:{SNAPSHOTS}/1/fs']}]
VIEW_BIND = [{'Type': 'bind', 'Source': f'{SNAPSHOTS}/1/fs', 'Options': ['ro', 'rbind']}]


class DockerLayers(unittest.TestCase):
    def test_top_first(self):
        layers = engines.docker_layers(DOCKER_INSPECT, 'img')
        self.assertEqual(layers, [(TOP_ID, f'{OVERLAY2}/{TOP_ID}/diff'), (BASE_ID, f'{OVERLAY2}/{BASE_ID}/diff')])

    def test_one_layer(self):
        one = [{'GraphDriver': {'Name': 'overlay2', 'Data': {'UpperDir': f'{OVERLAY2}/{BASE_ID}/diff'}}}]
        self.assertEqual(engines.docker_layers(one, 'img'), [(BASE_ID, f'{OVERLAY2}/{BASE_ID}/diff')])

    def test_refused(self):
        cases = [([{'GraphDriver': {'Name': 'devicemapper', 'Data': {}}}], "storage driver is 'devicemapper'"),
                 ([{}], "storage driver is 'none'"),
                 (None, "storage driver is 'none'"),
                 ([{'GraphDriver': {'Name': 'overlay2', 'Data': None}}], 'gives no UpperDir'),
                 ([{'GraphDriver': {'Name': 'overlay2', 'Data': {'UpperDir': '/x/y'}}}],
                  "unexpected layer directory '/x/y'")]
        for inspect, why in cases:
            with self.assertRaises(Fatal) as e:
                engines.docker_layers(inspect, 'img')
            self.assertIn(why, str(e.exception))

    def test_check_layers(self):
        with self.assertRaisesRegex(Fatal, "unexpected layer id 'a/b'"):
            engines.check_layers('img', [engines.Layer('a/b', '/tmp/x')])
        with self.assertRaisesRegex(Fatal, 'is not on this host'):
            engines.check_layers('img', [engines.Layer('a', '/nonexistent/a/diff')])
        with self.assertRaisesRegex(Fatal, 'the engine lists no layers'):
            engines.check_layers('img', [])
        self.assertEqual(engines.check_layers('img', [engines.Layer('1', '/tmp/fs')]), [('1', '/tmp/fs')])


class ContainerdLayers(unittest.TestCase):
    def test_image_target(self):
        self.assertEqual(engines.image_target(IMAGES_LS), MANIFEST)
        self.assertEqual(engines.image_target(IMAGES_LS.splitlines()[0]), '')

    def test_chain_id(self):
        self.assertEqual(engines.chain_id([BASE_DIFF]), BASE_DIFF)
        self.assertEqual(engines.chain_id([BASE_DIFF, TOP_DIFF]), TOP_CHAIN)

    def test_top_snapshot_of_a_manifest(self):
        tops = engines.top_snapshots(MANIFEST, CONTENT.get, {TOP_CHAIN}.__contains__)
        self.assertEqual(tops, [TOP_CHAIN])
        self.assertEqual(engines.top_snapshots(MANIFEST, CONTENT.get, lambda key: False), [])

    def test_top_snapshot_through_an_index(self):
        other_manifest, other_config = 'sha256:' + 'a' * 64, 'sha256:' + 'b' * 64
        index = 'sha256:' + 'c' * 64
        content = dict(CONTENT)
        content[index] = {'schemaVersion': 2, 'manifests': [
            {'digest': MANIFEST, 'platform': {'architecture': 'amd64', 'os': 'linux'}},
            {'digest': 'sha256:' + 'd' * 64, 'platform': {'architecture': 'arm64', 'os': 'linux'}},
            {'digest': other_manifest, 'platform': {'architecture': 'riscv64', 'os': 'linux'}}]}
        # arm64 was not fetched; riscv64 was, and is unpacked only when its snapshot exists.
        content[other_manifest] = {'config': {'digest': other_config}}
        content[other_config] = {'rootfs': {'diff_ids': [TOP_DIFF]}}
        self.assertEqual(engines.top_snapshots(index, content.get, {TOP_CHAIN}.__contains__), [TOP_CHAIN])
        both = {TOP_CHAIN, TOP_DIFF}.__contains__
        self.assertEqual(engines.top_snapshots(index, content.get, both), [TOP_CHAIN, TOP_DIFF])

    def test_view_mounts(self):
        dirs = engines.view_layer_dirs(VIEW_OVERLAY)
        self.assertEqual(dirs, [f'{SNAPSHOTS}/2/fs', f'{SNAPSHOTS}/1/fs'])
        self.assertEqual(engines.snapshot_layers(dirs, 'img'), [('2', dirs[0]), ('1', dirs[1])])
        self.assertEqual(engines.view_layer_dirs(VIEW_BIND), [f'{SNAPSHOTS}/1/fs'])
        self.assertEqual(engines.view_layer_dirs(None), [])
        with self.assertRaisesRegex(Fatal, "unexpected layer directory '/x/snapshots/a/fs'"):
            engines.snapshot_layers(['/x/snapshots/a/fs'], 'img')


class Host(unittest.TestCase):
    MOUNTINFO = (
        '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n'
        '40 22 0:40 / /var/lib/docker/overlay2/x/diff rw,nosuid shared:20 - fuse.yolofs yolofs rw\n'
        '41 40 0:41 / /var/lib/docker/overlay2/x/diff rw,nosuid shared:21 - fuse.yolo-capture cap rw\n'
        '42 22 0:42 / /srv/with\\040space rw - fuse.yolofs yolofs rw\n')

    def test_top_fstype(self):
        self.assertEqual(host.top_fstype(self.MOUNTINFO, '/var/lib/docker/overlay2/x/diff'), 'fuse.yolo-capture')
        self.assertEqual(host.top_fstype(self.MOUNTINFO, '/srv/with space'), 'fuse.yolofs')
        self.assertEqual(host.top_fstype(self.MOUNTINFO, '/srv'), '')

    def test_top_mount_here(self):
        self.assertEqual(host.top_mount('/proc'), 'proc')
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(host.top_mount(d), '')

    def test_prom_counter(self):
        text = ('# HELP yolofs_hits_total Blocks served from the boot image.\n'
                '# TYPE yolofs_hits_total counter\n'
                'yolofs_hits_total{image="/a b.yolo",generation="1"} 40\n'
                'yolofs_hits_total{image="/c.yolo",generation="1"} 2\n'
                'yolofs_hits_totally 1000\n'
                'yolofs_reads_passthrough_total 7\n')
        self.assertEqual(host.prom_counter(text, 'hits'), 42)
        self.assertEqual(host.prom_counter(text, 'reads_passthrough'), 7)
        self.assertEqual(host.prom_counter(text, 'ns_answered'), 0)

    def test_alive(self):
        self.assertTrue(host.alive(os.getpid()))
        self.assertFalse(host.alive(''))


class CommandLine(unittest.TestCase):
    def test_globals(self):
        g = cli.parse_globals(['--engine', 'containerd', '-a', '/s', '-nk8s.io', 'status', '--all'])
        self.assertEqual(g, ('containerd', ['-a', '/s', '-n', 'k8s.io'], ['status', '--all'], False))
        g = cli.parse_globals(['--engine=docker', '--host=unix:///d', 'mount', 'x'])
        self.assertEqual(g, ('docker', ['--host', 'unix:///d'], ['mount', 'x'], False))
        self.assertTrue(cli.parse_globals(['--engine', 'docker', '--help']).help)
        for argv, why in [(['-x'], 'unknown option -x'), (['--engine'], '--engine needs'), (['-H'], '-H needs a value')]:
            with self.assertRaisesRegex(UsageError, why):
                cli.parse_globals(argv)

    def test_engine_and_client_options(self):
        cli.check_client_opts('docker', ['-H', 'x'])
        with self.assertRaisesRegex(UsageError, '-H is not an option for containerd'):
            cli.check_client_opts('containerd', ['-H', 'x'])
        with self.assertRaisesRegex(UsageError, '--namespace is not an option for docker'):
            cli.check_client_opts('docker', ['--namespace', 'x'])
        with self.assertRaisesRegex(UsageError, "unknown engine 'podman'"):
            cli.check_engine('podman')

    def test_command(self):
        self.assertEqual(cli.parse_command(['unmount', 'x']), ('umount', ['x'], False))
        self.assertEqual(cli.parse_command(['mount', 'x', '-h']), ('mount', ['x', '-h'], True))
        self.assertEqual(cli.parse_command(['capture', 'x', '--', '-h']), ('capture', ['x', '--', '-h'], False))
        with self.assertRaisesRegex(UsageError, 'unknown command bogus'):
            cli.parse_command(['bogus'])

    def test_mount(self):
        m = cli.parse_mount(['img', '--images=/i', '-o', 'serve=ssd', '-omemlimit=1G', '--learn', '/l'])
        self.assertEqual(m, ('img', '/i', '/l', 'serve=ssd,memlimit=1G'))
        for argv, why in [(['img'], '--learn DIR or --images DIR is required'),
                          (['img', '--learn', '/l', '-o', 'a,learn_by=file'],
                           r'-o learn_by= is set by .* \(use --learn DIR\)'),
                          (['img', '--images', '/i', '-ometrics=/m'], '-o metrics= is set by'),
                          (['a', 'b', '--images', '/i'], 'one IMAGE only'),
                          (['img', '--images'], '--images needs a directory')]:
            with self.assertRaisesRegex(UsageError, why):
                cli.parse_mount(argv)

    def test_capture(self):
        c = cli.parse_capture(['img', '-o', '/d', '--merge', '--timeout', '2.5', '--', '-d', 'img', '-o'])
        self.assertEqual(c, ('img', '/d', True, '2.5', ['-d', 'img', '-o']))
        self.assertEqual(cli.parse_capture(['--output', '/d', 'img']).run, [])
        for argv, why in [(['img'], '-o DIR is required'), (['-o', '/d'], 'IMAGE is required'),
                          (['img', '-o', '/d', '--timeout', '1s'], 'needs a number of seconds'),
                          (['img', 'x', '-o', '/d'], r'one IMAGE only \(run arguments go after --\)')]:
            with self.assertRaisesRegex(UsageError, why):
                cli.parse_capture(argv)

    def test_publish_fetch_watch(self):
        self.assertEqual(cli.parse_publish(['img', '--to=/s', '--learn', '/l']), ('img', '/s', '', '/l', ''))
        self.assertEqual(cli.parse_fetch(['--from', 'reg:5000/r', 'img', '--images', '/i', '--auth-file=/a']),
                         ('img', 'reg:5000/r', '/i', '', '/a'))
        w = cli.parse_watch(['--images', '/i', '--learn=/l', '-o', 'serve=ssd', '--interval', '0.5'])
        self.assertEqual(w, ('/i', '/l', '', '', 0.5, '', 'serve=ssd'))
        for parse, argv, why in [(cli.parse_publish, [], 'publish: IMAGE is required'),
                                 (cli.parse_publish, ['a', 'b'], 'one IMAGE only'),
                                 (cli.parse_publish, ['a', '--learn'], '--learn needs a value'),
                                 (cli.parse_fetch, ['a'], '--images DIR is required'),
                                 (cli.parse_fetch, ['a', '--to', '/s', '--images', '/i'], 'unknown option --to'),
                                 (cli.parse_watch, ['--images', '/i'], '--images DIR and --learn DIR are required'),
                                 (cli.parse_watch, ['img', '--images', '/i', '--learn', '/l'], 'takes no IMAGE'),
                                 (cli.parse_watch, ['--images', '/i', '--learn', '/l', '--interval', '0'],
                                  'between 0.1 and 3600'),
                                 (cli.parse_watch, ['--images', '/i', '--learn', '/l', '-oimages=/x'],
                                  '-o images= is set by')]:
            with self.assertRaisesRegex(UsageError, why):
                parse(argv)

    def test_umount_and_status(self):
        self.assertEqual(cli.parse_umount(['-f', '--all']), ('', True, True))
        self.assertEqual(cli.parse_status(['img']), ('img', False))
        for parse, argv, why in [(cli.parse_umount, [], 'IMAGE \\(or --all\\) is required'),
                                 (cli.parse_umount, ['--what', 'x'], 'umount: unknown option --what'),
                                 (cli.parse_status, ['x', '--all'], 'IMAGE or --all, not both'),
                                 (cli.parse_status, ['-f', 'x'], 'status: unknown option -f')]:
            with self.assertRaisesRegex(UsageError, why):
                parse(argv)

    def test_exit_status(self):
        devnull = open(os.devnull, 'w')
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = devnull
        try:
            self.assertEqual(cli.main(['--help']), 0)
            self.assertEqual(cli.main([]), 2)
            self.assertEqual(cli.main(['--engine', 'docker', '-a', 'x', 'status', '--all']), 2)
        finally:
            sys.stdout, sys.stderr = stdout, stderr
            devnull.close()


if __name__ == '__main__':
    unittest.main()
