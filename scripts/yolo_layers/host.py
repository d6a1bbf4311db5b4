"""host.py - what yolo-layers asks of this machine: which file system is
mounted where (/proc/self/mountinfo), whether a FUSE mount lost its daemon,
whether a process still runs (/proc), where the project's binaries are, and
child commands run for their output.  Also the few file helpers the
commands share (a file's first or last line, a yolofs counter, du -sb)."""
import errno
import os
import shutil
import subprocess
import time

from yolo_share.mountinfo import top_fstype
from yolo_share.programs import ProgramMissing, find_program

from .common import Fatal


# ---------------------------------------------------------------- mounts

def top_mount(path):
    """The file system type of the topmost mount exactly at PATH, or "".
    Only PATH's parent is resolved: a dead FUSE mount at PATH fails stat."""
    if not path:
        return ""
    path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return top_fstype(f.read(), path)
    except OSError:
        return ""


def mount_is_dead(path):
    """The FUSE mount at PATH has lost its daemon.  statfs is never answered
    from a kernel cache (stat of PATH may be, from the attribute cache), and
    unlike a lookup of a made-up name it is no namespace question that a
    learning yolofs would record."""
    try:
        os.statvfs(path)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


# ---------------------------------------------------------------- processes

def alive(pid):
    """The process PID (a number, or its text) exists and is not a zombie."""
    pid = str(pid).strip()
    if not pid.isdigit():
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    # The state follows the command name, which may itself hold ") ".
    fields = stat.rpartition(") ")[2].split()
    return bool(fields) and fields[0] != "Z"


def cmdline(pid):
    """The arguments process PID was started with ([] if it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]]


def open_paths(pid):
    """The paths of the files process PID holds open, by descriptor name."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = sorted(os.listdir(fd_dir))
    except OSError:
        return []
    paths = []
    for name in names:
        try:
            paths.append(os.readlink(os.path.join(fd_dir, name)))
        except OSError:
            continue
    return paths


def wait_for(condition, tries, interval):
    """Call CONDITION up to TRIES times, INTERVAL seconds apart, until it is
    true; return whether it was."""
    for i in range(tries):
        if condition():
            return True
        if i + 1 < tries:
            time.sleep(interval)
    return False


def exit_status(returncode):
    """A child's exit status as a shell reports it (128 + signal if killed)."""
    return 128 - returncode if returncode < 0 else returncode


# ---------------------------------------------------------------- commands

RUN_TIMEOUT = 120                       # seconds: an engine's client that has not answered by then hangs


def run(argv):
    """Run ARGV to its end; its output and errors as text (a command that
    cannot be started fails with status 127 and the reason, one that does
    not end within RUN_TIMEOUT is killed and fails with status 124)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape",
                              timeout=RUN_TIMEOUT)
    except OSError as e:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {e.strerror}\n")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: no answer in {RUN_TIMEOUT} s\n")


def last_line(text):
    """The last line of TEXT, as `tail -n 1` gives it."""
    lines = text.splitlines()
    return lines[-1] if lines else ""


def failure_line(proc):
    """The line that says why a command of run() failed: its last line of
    errors, else of output."""
    return last_line(proc.stderr) or last_line(proc.stdout)


def find_bin(var, name, build_subpath):
    """The program yolo_share.programs.find_program finds; the command
    fails (Fatal) when there is none."""
    try:
        return find_program(var, name, build_subpath)
    except ProgramMissing as e:
        raise Fatal(str(e)) from None


# ---------------------------------------------------------------- files

def read_value(path):
    """A one-value file's text without its trailing newlines ("" if absent)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read().rstrip("\n")
    except OSError:
        return ""


def write_value(path, value):
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(f"{value}\n")


def first_line(path):
    lines = read_value(path).splitlines()
    return lines[0] if lines else ""


def last_line_of(path):
    return last_line(read_value(path))


def make_dirs(path):
    """Create PATH and its missing parents mode 0755, whatever the umask:
    yolofs refuses image and learn directories others may write (trust.h).
    OSError when it cannot."""
    old = os.umask(0o022)
    try:
        os.makedirs(path, exist_ok=True)
    finally:
        os.umask(old)


def rm_rf(path):
    """Remove PATH and all below it; whether nothing is left there."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError:
        return False
    return True


def du_bytes(path):
    """Apparent bytes under PATH, each inode once, as `du -sb` counts them
    (None if PATH cannot be read)."""
    seen, total = set(), 0

    def count(p):
        nonlocal total
        st = os.lstat(p)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    try:
        count(path)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                count(os.path.join(root, name))
    except OSError:
        return None
    return total


def prom_counter(text, name):
    """yolofs_NAME_total summed over its series (one per boot image) in the
    text of a yolofs metrics file (Prometheus' text format, which is what
    yolofs writes: `series{labels} value` lines, the value last)."""
    series = f"yolofs_{name}_total"
    total = 0
    for line in text.splitlines():
        fields = line.split()
        if fields and (fields[0] == series or fields[0].startswith(series + "{")):
            try:
                total += int(fields[-1])
            except ValueError:
                continue                 # not a counter's value
    return total


def metric(name, metrics_file):
    """A counter of the yolofs whose metrics file is METRICS_FILE (0 before
    it first wrote one)."""
    return prom_counter(read_value(metrics_file), name)
