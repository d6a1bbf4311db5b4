"""keys.py - what names a boot image's source the same way on every node,
and where a store is.

A container layer's key is "layer:" + its chain id (yolo_layers.engines).
A VM base file's is "base:NAME:SIZE": nova names a file in _base by the
SHA-1 of its Glance image id, the same on every node; the size guards
against a name reused for other contents (the content check would refuse
them anyway)."""
import os
import re

from .registry import Registry, RegistryError
from .store import DirStore, RegistryStore

BASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}")


def base_key(source_dir, name):
    """The key of base file NAME in SOURCE_DIR (it must be a regular file)."""
    if not BASE_NAME.fullmatch(name):
        raise RegistryError(f"{name!r}: not a base file name (letters, digits, '_', '.', '-')")
    st = os.stat(os.path.join(source_dir, name))
    if not (st.st_mode & 0o170000) == 0o100000:
        raise RegistryError(f"{source_dir}/{name}: not a regular file")
    return f"base:{name}:{st.st_size}"


def open_store(address, auth_file=None, plain_http=None):
    """A store from its address: an absolute path is a shared directory,
    anything else REGISTRY/REPOSITORY (e.g. registry.example:5000/yolo/base)."""
    if address.startswith("/"):
        if not os.path.isdir(address):
            raise RegistryError(f"store directory {address} does not exist")
        return DirStore(address)
    host, _, repo = address.partition("/")
    if not host or not repo:
        raise RegistryError(f"store {address!r}: give a directory (absolute path) or REGISTRY/REPOSITORY")
    return RegistryStore(Registry(host, auth_file, plain_http), repo)
