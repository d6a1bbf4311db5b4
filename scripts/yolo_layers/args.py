"""args.py - each command's parsed arguments (cli.py fills them; watch.py
builds the fetch's and the mount's for every image it sees pulled)."""
import collections

CaptureArgs = collections.namedtuple("CaptureArgs", "image out_dir merge timeout run")
MountArgs = collections.namedtuple("MountArgs", "image images_dir learn_dir yolofs_opts")
UmountArgs = collections.namedtuple("UmountArgs", "image all force")
StatusArgs = collections.namedtuple("StatusArgs", "image all")
ShareArgs = collections.namedtuple("ShareArgs", "image store images_dir learn_dir auth_file")
WatchArgs = collections.namedtuple("WatchArgs", "images_dir learn_dir store metrics interval auth_file yolofs_opts")
