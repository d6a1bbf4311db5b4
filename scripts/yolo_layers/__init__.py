"""yolo_layers - the program behind scripts/yolo-layers (yolo-docker,
yolo-containerd): boot images for a container image's layers (issues 6
and 13).

A container of IMAGE reads its files through overlayfs from one directory
per layer: diff/ under the overlay2 data root (Docker), snapshots/N/fs
under the overlayfs snapshotter's root (containerd).  `capture` records
which blocks a container start reads from each layer (one yolo-capture per
layer, mounted in place over its directory, while the tool runs the
container) and writes one boot image per layer, named after the layer's
directory id.  `mount` mounts yolofs in place over each layer directory
that has an image, so containers started afterwards read those blocks from
memory; `umount` reverses it without breaking containers that are still
running; `status` reports.  `mount --learn DIR` needs no capture: every
layer gets a yolofs in learning mode (-o learn=DIR,learn_by=mount), which
writes the layer's image itself from the first container start and serves
the next ones.

One tool, not one per engine: everything but two questions is the same for
both, and the shared part knows a layer only as (id, directory).

    cli.py      usage, options, dispatch
    engines.py  the two questions: an image's layers; the capture container
    state.py    the state directory: its lock, one directory per yolofs
    learnt.py   learnt images and their removal with their layer
    mount.py    mount, umount
    status.py   status
    capture.py  capture
    host.py     mounts, processes, binaries and files of this machine
    common.py   messages and the two early exits

Every command that changes something takes the state's lock, so concurrent
invocations do not interleave."""
