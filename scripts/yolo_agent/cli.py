"""cli.py - the command line of yolo-agent."""
import os
import sys

from yolo_layers.common import Fatal, set_prog
from yolo_layers.state import State

from .agent import Agent
from .config import DEFAULT_PATH, ConfigError, load
from .host_client import HostDown

USAGE = """\
usage: yolo-agent [--config FILE] [--once]
       yolo-agent status [--config FILE]

Puts every committed container layer of the node (Docker's overlay2,
containerd's overlayfs snapshotter, every namespace) under the node's one
yolofs (yolofs-host.service) and nova's _base directory under its own, learning what boots read and serving the boot
images learnt or fetched, with no command per image; follows pulls and
removals; after a reboot or an engine restart, mounts everything again.
Run by yolo-agent.service (`systemctl enable --now yolo-agent`).

  --config FILE   settings (default /etc/yolo/agent.conf; see yolo-agent(8))
  --once          one round, then exit (the mounts stay)
  status          what each engine holds and what is mounted

State: $YOLO_AGENT_STATE (default /run/yolo-agent).  Stopping the agent
leaves the mounts serving."""

STATE_ROOT = os.environ.get("YOLO_AGENT_STATE") or "/run/yolo-agent"


def say(msg):
    print(f"yolo-agent: {msg}", file=sys.stderr, flush=True)


def status(agent):
    """A line for the host, one per engine, one per mount."""
    try:
        sessions, pid = agent.host.sessions()
        print(f"yolofs host (pid {pid}): {len(sessions)} mounts")
    except HostDown as e:
        sessions = {}
        print(e)
    for name in ("docker", "containerd"):
        hosted = [s for s in sessions.values() if s.label.startswith(name + ":")]
        root = os.path.join(agent.state_root, name)
        # Per-layer daemons an earlier version started serve on until their layer goes.
        own = [d for d in State(root).daemons() if d.running_pid() is not None] if os.path.isdir(root) else []
        if not hosted and not own:
            continue
        print(f"{name}: {sum(s.state == 'serving' for s in hosted) + sum(not d.detached for d in own)} layers "
              f"mounted, {sum(s.state != 'serving' for s in hosted) + sum(d.detached for d in own)} let go but "
              "still serving containers")
        for s in hosted:
            print(f"  {s.label}: {s.source}: {s.state}" + (f", learning into {s.learn}" if s.learn else ""))
        for d in own:
            print(f"  {d.layer_id}: {d.source}: {d.describe()} (its own yolofs, pid {d.running_pid()})"
                  + (" [let go]" if d.detached else ""))
    return 0


def main(argv):
    set_prog("yolo-agent")
    command, config, once = "run", DEFAULT_PATH, False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("-h", "--help"):
            print(USAGE)
            return 0
        if a == "--config" and args:
            config = args.pop(0)
        elif a == "--once":
            once = True
        elif a == "status" and command == "run":
            command = "status"
        else:
            print(f"yolo-agent: unexpected argument {a!r}\n{USAGE}", file=sys.stderr)
            return 2
    try:
        agent = Agent(load(config), STATE_ROOT, say)
        return status(agent) if command == "status" else agent.run(once)
    except ConfigError as e:
        say(f"configuration: {e}")
        return 1
    except Fatal as e:
        say(str(e))
        return 1
