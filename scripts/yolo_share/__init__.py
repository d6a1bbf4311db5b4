"""yolo_share - boot images between nodes (issue 20): content keys, the
stores they travel through, and the check a fetched image passes before a
node serves it.  Used by yolo-layers (publish, fetch of a container
image's layers) and yolo-share (VM base files).

    registry.py  a client of the OCI distribution API (standard library only)
    store.py     the registry and shared-directory stores, by content key
    keys.py      content keys of VM base files; store addresses
    install.py   a fetched image checked against the node's source and installed
    watch.py     yolo-share watch: base files fetched as they appear in _base
    cli.py       yolo-share's command line
    mountinfo.py the topmost mount at a path (also yolo-layers')
    textfile.py  a watcher's counters for node_exporter (also yolo-layers')
    programs.py  where yolo-image, yolofs, yolo-capture are (also yolo-layers')

Nothing fetched is trusted: a blob is refused unless its sha256 is the
digest the store gave for it, and then installed only if yolo-image rebind
finds every block of every file it holds equal to the node's own source."""
