#!/usr/bin/python3
"""test_man_pages.py - the manual pages (issue 21), checked as lintian
checks a Debian package's:
 1. every command the build installs (its bin/ and sbin/ entries) and every
    operator tool in scripts/ (yolo-*) has a page docs/man/NAME.N that
    `meson install` installs, and every page there belongs to a command
    (but the pages of commands this build leaves out, YOLO_MAN_NOT_BUILT:
    yolofs and yolo-capture without libfuse);
 2. each page's .TH names its command and the section of its file name;
 3. each page has a NAME line lexgrog(1) can read (the whatis entry) and
    renders without a single warning from man(1), run as lintian runs it.
Without man(1) the rendering cannot be checked: exit 77 (meson: SKIP), or a
failure under CI=true (scripts/setup.sh installs man-db)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.environ.get('YOLO_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get('YOLO_BUILD_ROOT') or os.path.join(ROOT, 'build')
MAN_DIR = os.path.join(ROOT, 'docs', 'man')
# lintian's groff check: the page rendered for an 80-column UTF-8 terminal.
RENDER_ENV = dict(os.environ, LC_ALL='C.UTF-8', MANROFFSEQ='', MANWIDTH='80')

failures = []


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    failures.append(msg)


def meson_info(name):
    with open(os.path.join(BUILD, 'meson-info', 'intro-' + name + '.json')) as f:
        return json.load(f)


def installed():
    """(commands installed into bindir or sbindir, man pages installed: name
    -> its path under the prefix's man directory)."""
    opts = {o['name']: o['value'] for o in meson_info('buildoptions')}
    prefix = opts['prefix']
    bindirs = {os.path.join(prefix, opts[d]) for d in ('bindir', 'sbindir')}
    mandir = os.path.join(prefix, opts['mandir'])
    commands, pages = set(), {}
    for dest in meson_info('installed').values():
        if os.path.dirname(dest) in bindirs:
            commands.add(os.path.basename(dest))
        elif os.path.dirname(os.path.dirname(dest)) == mandir:
            pages[os.path.basename(dest)] = dest
    return commands, pages


def script_commands():
    """The operator tools in scripts/: executable files named yolo-*."""
    return {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'scripts', 'yolo-*'))
            if os.path.isfile(p) and os.access(p, os.X_OK)}


def check_coverage(commands, installed_pages, pages):
    not_built = set(os.environ.get('YOLO_MAN_NOT_BUILT', '').split())
    by_command = {}
    for page in set(pages) - not_built:
        by_command.setdefault(page.rpartition('.')[0], []).append(page)
    for command in sorted(commands):
        found = by_command.get(command, [])
        if len(found) != 1:
            fail(f'{command}: expected one page docs/man/{command}.N, found {found or "none"}')
        elif found[0] not in installed_pages:
            fail(f'{command}: docs/man/{found[0]} is not installed (docs/man/meson.build)')
    for name in sorted(set(by_command) - commands):
        fail(f'docs/man/{by_command[name][0]}: no installed command {name}')


def check_header(page):
    name, _, section = page.rpartition('.')
    with open(os.path.join(MAN_DIR, page), encoding='utf-8') as f:
        th = next((line for line in f if line.startswith('.TH ')), '')
    m = re.match(r'\.TH (\S+) (\S+) ', th)
    if not m:
        fail(f'{page}: no .TH line')
    elif m.group(1).replace('\\-', '-') != name.upper() or m.group(2) != section:
        fail(f'{page}: .TH says {m.group(1)} {m.group(2)}, the file name {name.upper()} {section}')


def check_render(page):
    path = os.path.join(MAN_DIR, page)
    p = subprocess.run(['lexgrog', path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, check=False)
    if p.returncode != 0:
        fail(f'{page}: lexgrog finds no whatis entry: {p.stdout.strip()}')
    p = subprocess.run(['man', '--warnings', '-E', 'UTF-8', '-l', '-Tutf8', '-Z', path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=RENDER_ENV, check=False)
    if p.returncode != 0 or p.stderr.strip():
        fail(f'{page}: man --warnings (exit {p.returncode}):\n{p.stderr.rstrip()}')


def main():
    built, installed_pages = installed()
    commands = built | script_commands()
    pages = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MAN_DIR, '*.[1-8]')))
    print(f'commands: {" ".join(sorted(commands))}')
    check_coverage(commands, installed_pages, pages)
    for page in pages:
        check_header(page)
    if not shutil.which('man') or not shutil.which('lexgrog'):
        if failures:
            return 1
        if os.environ.get('CI') == 'true':
            fail('man and lexgrog (man-db) are needed to check the pages render')
            return 1
        print('SKIP: no man or lexgrog (apt-get install man-db) to render the pages')
        return 77
    for page in pages:
        check_render(page)
    if failures:
        return 1
    print(f'{len(pages)} pages: each installed command has one, each renders without warnings')
    return 0


if __name__ == '__main__':
    sys.exit(main())
