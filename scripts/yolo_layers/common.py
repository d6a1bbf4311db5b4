"""common.py - what every part of yolo-layers reports with: the program's
name in messages, the one-line notes on stderr, and the two ways a command
ends early (a failure, exit 1; bad usage, exit 2)."""
import sys

_prog = "yolo-layers"


def prog():
    """The name messages start with: yolo-docker or yolo-containerd once the
    engine is known, yolo-layers before."""
    return _prog


def set_prog(name):
    global _prog
    _prog = name


def say(msg):
    """A note to the operator, on stderr."""
    print(f"{_prog}: {msg}", file=sys.stderr, flush=True)


class Fatal(Exception):
    """The command failed; the message says why (exit status 1)."""


class UsageError(Exception):
    """The command line is wrong; the message says how (exit status 2)."""
