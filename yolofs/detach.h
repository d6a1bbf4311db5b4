/* detach.h - -o detach_when_emptied (prefix detach_): let the owner of the
 * source directory remove it while yolofs is mounted on it in place.
 *
 * containerd's overlayfs snapshotter removes a layer with Go's os.RemoveAll
 * of .../snapshots/N, whose fs/ is our mountpoint: it opens fs/ (through the
 * mount), unlinks every entry below it (through the mount, so the source
 * really is emptied), then rmdirs fs/ itself, which the kernel refuses with
 * EBUSY while anything is mounted there.  containerd logs "failed to remove
 * directory", leaves N/fs and N behind and the daemon running.  (dockerd
 * unmounts whatever is mounted in a layer directory before removing it.)
 * The rmdir of the mountpoint never reaches a FUSE daemon, but the removal
 * of the last entry of its top directory does.
 *
 * With this option, an UNLINK or RMDIR in the top directory that would leave
 * it empty (the name is its only entry; for RMDIR, that directory is itself
 * empty) first detaches the mount, umount2(MOUNTPOINT, MNT_DETACH |
 * UMOUNT_NOFOLLOW), and only then passes the request to the core, which
 * removes the entry and replies.  When the caller's rmdir of the mountpoint
 * follows, nothing is mounted there any more and it succeeds.  Detaching
 * after the reply is too late: the caller's rmdir races it (measured: lost
 * for one of two layers).  The kernel keeps the detached mount, and this
 * session, for as long as anything still holds it (the remover's open
 * directory, a file still open, a running container's overlay); when the
 * last holder lets go it ends the session, the session loop returns and
 * yolofs exits 0 (libfuse sees the dead session and does not unmount the
 * path again).
 *
 * Detaching is always safe for the data: whoever opens the path afterwards
 * reads the source directory itself, which holds the same files.  If the
 * removal that triggered it then fails, the directory stays unaccelerated,
 * not wrong.  The mount is detached only if it is still the topmost mount at
 * MOUNTPOINT (its mount id, from /proc/self/mountinfo, taken right after
 * mounting): umount2 takes the topmost one, which could be someone else's;
 * otherwise the removal goes on and the refusal is logged.  Only once.  Cost:
 * one read of the source's top directory per UNLINK/RMDIR in it (none for
 * removals elsewhere).
 */
#ifndef YOLO_DETACH_H
#define YOLO_DETACH_H

#include <fuse_lowlevel.h>

struct detach;

/* Before pt_create (which takes source_fd over): keep a descriptor of the
 * source's top directory and the mountpoint.  @return 0 or -errno. */
int detach_create(struct detach **out, int source_fd, const char *mountpoint);
/* The core's operations with unlink and rmdir wrapped, for fuse_session_new
 * with `userdata` (the core), by which a request names its session. */
const struct fuse_lowlevel_ops *detach_ops(struct detach *dt, void *userdata);
/* Right after mounting (or taking over): which mount is ours (its id in
 * /proc/self/mountinfo, -1: not found). */
void detach_mounted(struct detach *dt, long mnt_id);
/* After the session is destroyed. */
void detach_free(struct detach *dt);

#endif /* YOLO_DETACH_H */
