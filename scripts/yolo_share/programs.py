"""programs.py - where the project's programs (yolo-image, yolofs,
yolo-capture) are, for yolo-share and yolo-layers: the file an environment
variable names, else the one on PATH (an installed YOLO's PREFIX/bin),
else the one in the build/ directory of the source tree these scripts
run from (scripts/ in it)."""
import os
import shutil

TREE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


class ProgramMissing(Exception):
    """No such program found, or the variable names no executable."""


def find_program(var, name, build_subpath):
    """The program environment variable VAR names, else NAME from PATH,
    else build/BUILD_SUBPATH in the source tree."""
    path = os.environ.get(var, "")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ProgramMissing(f"{var}={path} is not an executable")
        return path
    path = shutil.which(name)
    if path:
        return path
    path = os.path.realpath(os.path.join(TREE_DIR, "build", build_subpath))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ProgramMissing(f"{name} not found (set {var} or add it to PATH)")
    return path
