#!/usr/bin/python3
"""bench/report.py, the benchmark's report program (issue 14):
 1. the committed raw data regenerates the committed bench-results/bench.md
    and plots exactly (nobody edited the report by hand, and the program
    that rendered it is this one);
 2. a failed run is shown as FAILED, never as a number: one replay run of
    the newest committed replay figure is marked failed (as bench/bench
    writes it when a replay exits non-zero), and its cell, the ratios and
    the targets that use it must say FAILED while the other cells keep
    their numbers."""
import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get('YOLO_SOURCE_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
REPORT = os.path.join(ROOT, 'bench', 'report.py')
RESULTS = os.path.join(ROOT, 'bench-results')


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    sys.exit(1)


def render(raws, out):
    p = subprocess.run([sys.executable, REPORT, '--out', out, '--no-readme'] + raws,
                       capture_output=True, text=True)
    if p.returncode != 0:
        fail(f'report.py exited {p.returncode}: {p.stderr.strip()}')
    with open(os.path.join(out, 'bench.md'), encoding='utf-8') as f:
        return f.read()


def main():
    raws = sorted(d for d in glob.glob(os.path.join(RESULTS, 'raw', '*'))
                  if os.path.isfile(os.path.join(d, 'runs.tsv')))
    if not raws:
        fail('no committed raw data under bench-results/raw/')
    with tempfile.TemporaryDirectory() as tmp:
        # 1. Regenerated exactly.
        out = os.path.join(tmp, 'out')
        md = render(raws, out)
        with open(os.path.join(RESULTS, 'bench.md'), encoding='utf-8') as f:
            if f.read() != md:
                fail('bench-results/bench.md is not what bench/bench report renders from the committed '
                     'raw data (regenerate it: bench/bench report)')
        for svg in glob.glob(os.path.join(out, '*.svg')):
            with open(svg, encoding='utf-8') as a, \
                    open(os.path.join(RESULTS, os.path.basename(svg)), encoding='utf-8') as b:
                if a.read() != b.read():
                    fail(f'{os.path.basename(svg)} differs from what the report renders')
        print(f'regenerated bench.md ({len(md)} bytes) from {len(raws)} raw directories: identical')

        # 2. A failed replay run.
        with_replay = [d for d in raws if any(r['figure'] == 'replay' for r in
                                              csv.DictReader(open(os.path.join(d, 'runs.tsv')),
                                                             delimiter='\t'))]
        if not with_replay:
            fail('no committed raw directory has the replay figure')
        src = with_replay[-1]
        raw = os.path.join(tmp, 'raw', os.path.basename(src))
        shutil.copytree(src, raw, ignore=shutil.ignore_patterns('logs'))
        path = os.path.join(raw, 'runs.tsv')
        with open(path, encoding='utf-8') as f:
            rows = list(csv.DictReader(f, delimiter='\t'))
            header = list(rows[0].keys())
        # A run of the largest N: the ratio line and the targets use that N.
        cands = [r for r in rows if r['figure'] == 'replay' and r['policy'] == 'yolofs-memory'
                 and r['think'] == '0' and r['mode'] == 'distinct' and r['profile'] == 'hdd']
        if not cands:
            fail(f'{src} has no yolofs-memory replay run of distinct images on the hdd profile')
        victim = max(cands, key=lambda r: int(r['n']))
        victim.update(status='failed', seconds='-', bytes='-', misses='-',
                      extra='error=replay 1 of 1 exited 1: injected by test_bench_report')
        with open(path, 'w', encoding='utf-8', newline='') as f:
            w = csv.DictWriter(f, header, delimiter='\t', lineterminator='\n')
            w.writeheader()
            w.writerows(rows)
        md = render([raw], os.path.join(tmp, 'out2'))
        n = victim['n']
        table_row = next((l for l in md.splitlines() if l.startswith(f'| {n} |')), None)
        if table_row is None:
            fail(f'no replay table row for N={n}')
        cells = [c.strip() for c in table_row.strip('|').split('|')]
        lines = md.splitlines()
        header_row = next(l for l in reversed(lines[:lines.index(table_row)]) if l.startswith('| N |'))
        names = [c.strip() for c in header_row.strip('|').split('|')]
        cell = cells[names.index('yolofs-memory')]
        if not cell.startswith('**FAILED**'):
            fail(f'the failed run\'s cell shows {cell!r}, not FAILED')
        if not any(c[0].isdigit() for c in cells[1:] if c):
            fail('the other cells of that row lost their numbers')
        if '## FAILED' not in md:
            fail('the report has no FAILED section')
        line = next((l for l in md.splitlines() if l.startswith(f'N={n}, ratios')), '')
        if 'cold / yolofs-memory **FAILED**' not in line:
            fail(f'the ratio over the failed cell is not FAILED: {line!r}')
        target = next((l for l in md.splitlines()
                       if f'{n} distinct boots: cold / yolofs-memory' in l and l.startswith('- ')), '')
        if '**FAILED**' not in target:
            fail(f'the target over the failed cell is not FAILED: {target!r}')
        print(f'a failed replay (N={n}, yolofs-memory) shows as {cell}; its ratio and target as FAILED')


if __name__ == '__main__':
    main()
