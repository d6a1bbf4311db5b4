"""cli.py - the command line of yolo-agent."""
import os
import sys

from yolo_layers.common import Fatal, set_prog

from .agent import Agent, EngineMounts, Notes
from .config import DEFAULT_PATH, ConfigError, load

USAGE = """\
usage: yolo-agent [--config FILE] [--once]
       yolo-agent status [--config FILE]

Puts every committed container layer of the node (Docker's overlay2,
containerd's overlayfs snapshotter, every namespace) and nova's _base
directory under yolofs, learning what boots read and serving the boot
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
    """One line per engine, one per mount."""
    for name in ("docker", "containerd"):
        root = os.path.join(agent.state_root, name)
        if not os.path.isdir(root):
            continue
        e = EngineMounts(name, None, agent.cfg, agent.state_root, Notes(say))
        daemons = [d for d in e.state.daemons() if d.running_pid() is not None]
        print(f"{name}: {sum(not d.detached for d in daemons)} layers mounted"
              f", {sum(d.detached for d in daemons)} let go but still serving containers")
        for d in daemons:
            print(f"  {d.layer_id}: {d.source}: {d.describe()} (pid {d.running_pid()})"
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
