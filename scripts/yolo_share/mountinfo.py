"""mountinfo.py - which mount is on top at a path, read from the kernel's
mountinfo text (proc(5)): what yolo-layers asks of each layer directory
and what yolo-share watch asks of _base (which yolofs, by its device, to
ask for a reload)."""


def _unescape(field):
    """Undo mountinfo's octal escapes (\\040 for a space, \\134 for \\)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def top_mount_at(mountinfo, path):
    """(file system type, MAJ:MIN) of the topmost mount exactly at PATH in
    the text of a mountinfo file, or ("", "") when PATH is no mountpoint.
    The kernel's own format: fields separated by spaces (escaped inside a
    field), the type first after the " - " separator."""
    at = []                              # (mount id, parent id, type, device)
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        if not sep or len(fields) < 5 or _unescape(fields[4]) != path:
            continue
        at.append((fields[0], fields[1], _unescape(right.split(" ")[0]), fields[2]))
    # A mount stacked on another at the same path has it as its parent.
    parents = {parent for _, parent, _, _ in at}
    tops = [(fstype, dev) for mount_id, _, fstype, dev in at if mount_id not in parents]
    return tops[-1] if tops else ("", "")


def top_fstype(mountinfo, path):
    """The file system type of the topmost mount at PATH, or ""."""
    return top_mount_at(mountinfo, path)[0]
