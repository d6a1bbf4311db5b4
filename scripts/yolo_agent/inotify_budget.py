"""inotify_budget.py - how many inotify instances the agent's daemons may
take.  fs.inotify.max_user_instances (128 by default) counts every inotify
instance of a user on the machine, and each layer's yolofs holds one for
its namespace answers: past about 120 layers, root would have none left
(systemd, udev, the engines themselves need theirs).  So the agent keeps
RESERVE instances for the rest of the node; the layers it mounts beyond
that get -o no_namespace (every namespace question asked of the layer:
slower, never wrong).  One yolofs for all the node's layers, with one
instance, is the lasting answer (docs/design.md)."""
import os

MAX_INSTANCES = "/proc/sys/fs/inotify/max_user_instances"


def root_instances(proc="/proc"):
    """Inotify instances open in root's processes (an instance shared by
    several processes counts for each: the estimate errs high)."""
    n = 0
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            if os.stat(os.path.join(proc, pid)).st_uid != 0:
                continue
            for fd in os.listdir(fd_dir):
                if os.readlink(os.path.join(fd_dir, fd)) == "anon_inode:inotify":
                    n += 1
        except OSError:
            continue                      # gone meanwhile
    return n


def max_instances():
    try:
        with open(MAX_INSTANCES, encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 128


class InotifyBudget:
    def __init__(self, reserve, count=root_instances, limit=max_instances):
        self.reserve, self.count, self.limit = reserve, count, limit
        self.used = None                  # counted at the first question of a round

    def new_round(self):
        self.used = None

    def take(self):
        """May one more daemon hold an instance?  If so, it is counted."""
        if self.used is None:
            self.used = self.count()
        if self.used + 1 > self.limit() - self.reserve:
            return False
        self.used += 1
        return True
