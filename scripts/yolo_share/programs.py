"""programs.py - where the project's programs (yolo-image, yolofs,
yolo-capture) are, for yolo-share, yolo-layers and yolo-agent: the file an
environment variable names, else the one in the build/ directory of the
source tree these scripts run from (scripts/ in it), else the one on PATH
(an installed YOLO's PREFIX/bin)."""
import os
import shutil

TREE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


class ProgramMissing(Exception):
    """No such program found, or the variable names no executable."""


def find_program(var, name, build_subpath):
    """The program environment variable VAR names; else, run from a source
    tree, the tree's build/BUILD_SUBPATH when built (the tree's tools use
    the tree's programs, not an installed package's); else NAME from PATH."""
    path = os.environ.get(var, "")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ProgramMissing(f"{var}={path} is not an executable")
        return path
    built = os.path.realpath(os.path.join(TREE_DIR, "build", build_subpath))
    if os.path.isfile(os.path.join(TREE_DIR, "meson.build")) and os.access(built, os.X_OK):
        return built
    path = shutil.which(name)
    if path:
        return path
    raise ProgramMissing(f"{name} not found (set {var} or add it to PATH)")
