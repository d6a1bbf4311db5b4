"""capture.py - the capture command: record which blocks a container start
reads from each layer of an image (one yolo-capture per layer, mounted in
place over its directory while the container runs) and write one boot
image per layer read, DIR/<layer-id>.yolo."""
import os
import re
import signal
import subprocess
import tempfile
import time

from .common import Fatal, prog, say
from .host import (alive, exit_status, find_bin, first_line, last_line_of, read_value, rm_rf,
                   top_mount)
from .learnt import Learnt

# yolo-capture's own messages (it reports in text only): a layer not read,
# and its count of reads (not the reason it failed).
NOT_READ = re.compile(r"no reads of .* were recorded")
READS_LINE = re.compile(r"yolo-capture: [0-9]* reads")


def _ignore_interrupts():
    # What a shell does for its background jobs: the terminal's Ctrl-C
    # stops yolo-layers, whose cleanup then stops them in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def _exit_on_signal(signum, frame):
    raise SystemExit(1)


class Capture:
    """One capture: its work directory (next to DIR's files, so that images
    are renamed into place), the recorders, the client running the
    container, and the cleanup that undoes them on any exit."""

    def __init__(self, engine, layers, out_dir):
        self.engine = engine
        self.layers = layers
        self.work = tempfile.mkdtemp(prefix=".capture.", dir=out_dir)
        self.token = f"{os.path.basename(self.work)[len('.capture.'):]}.{os.getpid()}"
        self.recorders = []
        self.client = None

    def file(self, layer, suffix):
        return os.path.join(self.work, f"{layer.id}.{suffix}")

    def start_recorders(self, yolo_capture):
        """One yolo-capture per layer, each waiting for the stop file."""
        for layer in self.layers:
            with open(self.file(layer, "out"), "wb") as out, open(self.file(layer, "err"), "wb") as err:
                self.recorders.append(subprocess.Popen(
                    [yolo_capture, "-o", self.file(layer, "yolo"), "-u", os.path.join(self.work, "stop"),
                     layer.dir, "--", "sleep", "infinity"],
                    cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=_ignore_interrupts))
        for layer, rec in zip(self.layers, self.recorders):
            for _ in range(200):
                if top_mount(layer.dir) == "fuse.yolo-capture" or rec.poll() is not None:
                    break
                time.sleep(0.05)
            if top_mount(layer.dir) != "fuse.yolo-capture":
                raise Fatal(f"layer {layer.id}: yolo-capture did not mount: {last_line_of(self.file(layer, 'err'))}")

    def run_container(self, run_args, timeout):
        """Run the container until its run command returns; with TIMEOUT
        (seconds), also while it still runs (-d), but no longer than that.
        Whether the timeout ended it; the seconds it took."""
        t0 = time.monotonic_ns()
        deadline = t0 + int(float(timeout) * 1e9) if timeout else 0
        self.client = subprocess.Popen(self.engine.capture_argv(run_args, self.work, self.token),
                                       stdin=subprocess.DEVNULL, preexec_fn=_ignore_interrupts)
        timed_out = False
        while True:
            if deadline and time.monotonic_ns() >= deadline:
                timed_out = True
                break
            if self.client.poll() is None:
                time.sleep(0.1)
                continue
            if not timeout or not self.engine.capture_running():
                break
            time.sleep(0.1)
        if timed_out:
            self.engine.remove_capture()
        rc = exit_status(self.client.wait())
        self.client = None
        self.engine.remove_capture()
        if not timed_out and rc != 0:
            raise Fatal(f"{self.engine.run_name} exited with status {rc}; no images kept")
        return timed_out, (time.monotonic_ns() - t0) / 1e9

    def collect(self, out_dir, merge, yolo_image):
        """Stop the recorders (each unmounts and writes its layer's image)
        and move the images into OUT_DIR; how many were written, and whether
        a layer failed."""
        open(os.path.join(self.work, "stop"), "a").close()
        written, failed = 0, False
        for layer, rec in zip(self.layers, self.recorders):
            new, out = self.file(layer, "yolo"), os.path.join(out_dir, f"{layer.id}.yolo")
            if rec.wait() == 0 and os.path.isfile(new) and os.path.getsize(new) > 0:
                merged = ""
                if merge and os.path.isfile(out):
                    if subprocess.run([yolo_image, "merge", "-o", self.file(layer, "merged"), out, new],
                                      stdout=subprocess.DEVNULL).returncode != 0:
                        say(f"layer {layer.id}: merging with {out} failed")
                        failed = True
                        continue
                    os.replace(self.file(layer, "merged"), new)
                    merged = ", merged with the older image"
                os.replace(new, out)
                written += 1
                summary = first_line(self.file(layer, "out")).removeprefix(f"{new}: ")
                say(f"layer {layer.id}: {summary}{merged} -> {out}")
            elif NOT_READ.search(read_value(self.file(layer, "err"))):
                if not os.path.isfile(out):
                    say(f"layer {layer.id}: not read; no image")
                elif merge:
                    say(f"layer {layer.id}: not read; its older image is kept")
                else:
                    os.unlink(out)
                    say(f"layer {layer.id}: not read; its older image is removed")
            else:
                why = [line for line in read_value(self.file(layer, "err")).splitlines() if not READS_LINE.match(line)]
                say(f"layer {layer.id}: yolo-capture failed: {why[-1] if why else ''}")
                failed = True
        self.recorders = []
        return written, failed

    def cleanup(self):
        open(os.path.join(self.work, "stop"), "a").close()
        if self.client and alive(self.client.pid):
            self.client.terminate()
        self.engine.remove_capture()
        for rec in self.recorders:
            rec.wait()
        rm_rf(self.work)


def cmd_capture(engine, state, args):
    run_args = args.run or engine.default_run(args.image)
    yolo_capture = find_bin("YOLO_CAPTURE", "yolo-capture", "yolo-capture/yolo-capture")
    yolo_image = find_bin("YOLO_IMAGE", "yolo-image", "boot-images/yolo-image") if args.merge else ""
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError:
        raise Fatal(f"cannot create {args.out_dir}") from None
    out_dir = os.path.realpath(args.out_dir)
    learnt = Learnt(state, engine.name)
    state.lock()
    learnt.sweep_removed()
    layers = engine.image_layers(args.image)
    for layer in layers:
        top = top_mount(layer.dir)
        if top:
            raise Fatal(f"layer {layer.id} has a {top} mount on it (run {prog()} umount {args.image} first)")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        capture = Capture(engine, layers, out_dir)
    except OSError as e:
        raise Fatal(f"cannot create a work directory in {out_dir}: {e.strerror}") from None
    try:
        capture.start_recorders(yolo_capture)
        say(f"recording {len(layers)} layers while running: {engine.run_name} {' '.join(run_args)}")
        timed_out, seconds = capture.run_container(run_args, args.timeout)
        say(f"recorded for {seconds:.1f} s{', stopped by --timeout' if timed_out else ''}")
        written, failed = capture.collect(out_dir, args.merge, yolo_image)
    except OSError as e:
        raise Fatal(f"{e.filename}: {e.strerror}") from None
    finally:
        capture.cleanup()
    if failed:
        raise Fatal(f"capture of {args.image} failed for some layers")
    if written == 0:
        raise Fatal(f"the container start read nothing from any layer of {args.image}")
    return 0
