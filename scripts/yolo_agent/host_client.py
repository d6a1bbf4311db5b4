"""host_client.py - the agent's side of `yolofs --host` (yolofs(8)): the
node's one yolofs, which serves every layer the agent attaches over its
root-only socket.  One request a connection, fields separated by tabs,
the answer's last line "ok ..." or "error: ..."."""
import collections
import socket
import struct

# ID, LABEL (the mount label), SOURCE, STATE (serving, detached, ended),
# DEV (MAJ:MIN), LEARN (the DIR/<key> it learns into, or "").
Session = collections.namedtuple("Session", "id label source state dev learn")

# Attaching loads the layer's images; upgrading hands every session over.
TIMEOUT_S = 300


class HostDown(Exception):
    """The host does not answer; the message says why."""


class Host:
    def __init__(self, path):
        self.path = path

    def ask(self, *fields):
        """Send one request; (ok, its lines, the host's pid).  Raises
        HostDown when nobody answers at the socket."""
        if any("\t" in f or "\n" in f for f in fields):
            return False, ["error: a field holds a tab or a newline"], None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(TIMEOUT_S)
                s.connect(self.path)
                cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                pid = struct.unpack("3i", cred)[0]
                s.sendall(("\t".join(fields) + "\n").encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as e:
            raise HostDown(f"yolofs host at {self.path}: {e.strerror or e}") from None
        lines = data.decode(errors="replace").splitlines()
        last = lines[-1] if lines else "error: no answer (see the host's log)"
        return last.startswith("ok"), lines or [last], pid

    def sessions(self):
        """{source: Session} of every session, and the host's pid."""
        ok, lines, pid = self.ask("list")
        if not ok:
            raise HostDown(f"yolofs host: {lines[-1]}")
        found = {}
        for line in lines[:-1]:
            f = line.split("\t")
            if len(f) >= 6:
                found[f[2]] = Session(*f[:5], "" if f[5] == "-" else f[5])
        return found, pid

    def attach(self, label, source, options):
        """(the Session now serving, or None; the answer's line)."""
        ok, lines, _ = self.ask("attach", label, source, options)
        words = lines[-1].split()
        if not ok or len(words) < 4:
            return None, lines[-1]
        return Session(words[1], label, source, "serving", words[2], "" if words[3] == "-" else words[3]), lines[-1]

    def detach(self, source):
        ok, lines, _ = self.ask("detach", source)
        return ok, lines[-1]

    def upgrade(self):
        ok, lines, _ = self.ask("upgrade")
        return ok, lines[-1]
