"""install.py - a fetched boot image becomes one this node serves only
after yolo-image rebind has compared every block of every file it holds
with the node's own source and re-stamped it with the node's identities
(inode numbers and times differ per node and never block a correct image).
An image any of whose files is missing or differs is refused whole: two
nodes' copies of one layer or base file hold the same bytes, so a
difference means a tampered or broken image, not a legitimate one."""
import glob
import os
import signal
import subprocess
import sys

from .registry import BadContent


class Refused(Exception):
    """The fetched image is not installed; the message says why."""


def install(yolo_image, fetched, source_dir, out):
    """Check FETCHED (a file, removed in any case) against SOURCE_DIR and
    install it as OUT (atomically, mode 0644); the rebind's summary line."""
    tmp = out + ".rebind.tmp"
    try:
        p = subprocess.run([yolo_image, "rebind", "--source", source_dir, "-o", tmp, fetched],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", check=False)
        lines = [line for line in p.stdout.splitlines() if line.strip()]
        if p.returncode != 0:
            # The first file rebind names, or its error, says why.
            why = next((line for line in lines if "left out" in line and "files rebound" not in line),
                       lines[-1] if lines else f"yolo-image exit status {p.returncode}")
            raise Refused(why.removeprefix("yolo-image: ").removeprefix("PROBLEM: "))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        # "TMP: N files rebound (B blocks), ... -> OK": the counts.
        summary = lines[-1] if lines else ""
        return summary.removeprefix(tmp + ": ").rpartition(" -> ")[0] or summary
    finally:
        for path in (tmp, fetched):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def fetch_install(store, key, candidates, yolo_image, source_dir, out, say):
    """Install the newest of CANDIDATES (store.candidates) that downloads
    intact and matches SOURCE_DIR as OUT: one bad upload is passed over for
    an older good one.  SAY(message) tells each one passed over.  The
    summary of the one installed; Refused when none could be."""
    why = []
    for cand in candidates:
        if cand.digest is None:
            why.append(cand.where)
            say(f"{cand.where}; passed over")
            continue
        try:
            fetched = store.download(cand, os.path.dirname(out))
        except BadContent as e:                   # an unreachable store is the caller's error
            why.append(str(e))
            say(f"{key} from {cand.where}: download refused: {e}")
            continue
        try:
            return install(yolo_image, fetched, source_dir, out)
        except Refused as e:
            why.append(str(e))
            say(f"{key} from {cand.where}: refused: {e}")
    raise Refused(why[-1] if why else "none published")


def stop_cleanly():
    """SIGTERM (systemd stopping a watcher) ends the program as an
    exception does, so that the temporary files of a fetch in progress are
    removed by the code that made them."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def sweep_temporary(images_dir):
    """Remove what a fetch killed outright (SIGKILL, a crash) left in
    IMAGES_DIR: downloads and rebinds in progress (yolofs loads only
    *.yolo, so they were never served)."""
    for path in glob.glob(os.path.join(glob.escape(images_dir), ".fetch-*.tmp")) + \
            glob.glob(os.path.join(glob.escape(images_dir), "*.yolo.rebind.tmp")):
        try:
            os.unlink(path)
        except OSError:
            pass
