"""upgrade.py - the daemons of an older yolofs moved to the one installed
now, without an I/O error: a package upgrade replaces /usr/bin/yolofs and
restarts the agent (its daemons keep serving with the old binary); the
agent's first round then asks each daemon whose binary is no longer the
installed one to hand its session over (`yolofs --upgrade MOUNTPOINT`,
issue 19: the successor is the binary at the daemon's own path, the guests
see a pause).  A daemon that cannot be moved serves on with its binary;
the command's line says why."""
import os
import re

from yolo_layers.host import run

SUCCESSOR = re.compile(r"ok: yolofs \(pid ([0-9]+)\) serves, paused ([0-9.]+) ms")


def outdated(pid, yolofs):
    """Process PID runs a yolofs binary other than the file YOLOFS now is
    (replaced or removed since it started)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        if exe.endswith(" (deleted)"):
            return True
        return not os.path.samefile(f"/proc/{pid}/exe", yolofs)
    except OSError:
        return False                      # gone, or not ours to read: nothing to move


def move(yolofs, mountpoint):
    """Hand the session at MOUNTPOINT to the installed YOLOFS; (successor
    pid or None, the command's line)."""
    p = run([yolofs, "--upgrade", mountpoint])
    line = (p.stdout.strip() or p.stderr.strip()).splitlines()
    line = line[-1] if line else f"exit status {p.returncode}"
    m = SUCCESSOR.search(line)
    return (int(m.group(1)) if p.returncode == 0 and m else None), line
