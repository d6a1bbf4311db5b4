"""yolo_agent - the node agent (yolo-agent, issue 21): every committed
container layer and every VM base file of the node under yolofs, learning,
and serving the boot images fetched for them, with no command per image;
kept so through pulls, removals, engine restarts and reboots.

It is a reconciliation loop, not an event handler: each round asks every
engine present which layers it holds now (what should be mounted), looks
at what this agent has mounted (the state directories of yolo_layers),
and mounts what is missing and lets go of what is no longer wanted.  An
event (a Docker pull, a removal) only starts a round early; a lost event,
an engine restarted, an agent restarted or a reboot are all the same
round.  One engine failing (socket gone, garbage in its files) is a line
in the log and leaves the other engines' mounts alone.

    config.py        /etc/yolo/agent.conf
    docker.py        Docker's committed layers, from its own files
    containerd.py    containerd's, per namespace, through ctr's JSON
    nova.py          nova's _base directory, from nova.conf
    plan.py          the round's decisions (pure, unit-tested)
    fetch.py         boot images fetched before a layer's first mount
    upgrade.py       daemons of an older yolofs moved to the installed one
    node_metrics.py  one metrics file for the node (textfile collector)
    agent.py         the loop
    cli.py           the command line

The mounts themselves are yolo_layers' (one yolofs per layer, mounted in
place over the layer directory, -o detach_when_emptied so the engine's
own removal needs no unmount); the agent's state is under /run/yolo-agent
and survives an agent restart, not a reboot (nor do the mounts)."""
