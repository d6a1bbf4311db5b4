/* host.h - `yolofs --host`: one process serving every mount of a node
 * (prefix host_).  A container node has hundreds of layers; a daemon each
 * would hold an inotify instance each (128 for all of root by default),
 * its own memory budget and its own copy of blocks the layers share.  The
 * host serves them all as sessions (session.h) sharing one background
 * worker, one inotify instance (namespace.h's hub), one memory pool and
 * block store (imageset.h's pool: one memlimit, dedup across layers) and
 * one metrics file, every series labelled with its mount.
 *
 * Mounts are asked for over a root-only socket (default HOST_SOCKET), one
 * request a connection, fields separated by tabs, one line back starting
 * with "ok" or "error:":
 *   attach LABEL SOURCE OPTIONS  mount a session over SOURCE in place
 *                                (yolofs's -o OPTIONS for it, those of the
 *                                process excepted); LABEL names it in the
 *                                metrics (mount="LABEL"); answers "ok ID
 *                                MAJ:MIN LEARN" (LEARN: the DIR/KEY it
 *                                learns into, or -)
 *   detach SOURCE                unmount it (lazily: what still uses it is
 *                                served until it lets go)
 *   list                         one line a session: ID LABEL SOURCE STATE
 *                                MAJ:MIN LEARN (STATE: serving, detached
 *                                or ended)
 *   reload [SOURCE]              re-read images= (of every session)
 *   upgrade                      hand every session to the binary now
 *                                installed (as yolofs --upgrade does)
 * Each mount's own control socket name (takeover.h) leads to this socket,
 * so `yolofs --upgrade` of any of them upgrades the host.
 *
 * Restart and upgrade: the sessions (label, source, options) are listed in
 * SOCKET.sessions, rewritten at each change, and each session's record,
 * /dev/fuse and source descriptors are kept in systemd's descriptor store;
 * a host restarted after a crash takes every listed session over, and an
 * upgrade hands them all to the successor at once (one pause).  Stopping
 * the host (SIGTERM) unmounts every session. */
#ifndef YOLO_HOST_H
#define YOLO_HOST_H

#define HOST_SOCKET "/run/yolofs/host.sock"

/* `yolofs --host [--socket PATH] [-o OPTIONS]`: serve until SIGTERM.
 * `exe`: the binary's path as started (what an upgrade execs).
 * @return the exit status. */
int host_main(int argc, char *argv[], const char *exe);

/* `yolofs --hostctl [--socket PATH] REQUEST [ARGS...]`: send one request,
 * print the answer.  @return the exit status (0: "ok"). */
int host_ctl_command(int argc, char *argv[]);

#endif /* YOLO_HOST_H */
