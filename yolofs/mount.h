/* mount.h - yolofs's mount set-up (prefix mount_): the options every yolofs
 * mount gets, the kernel readahead window of the mount once made, and which
 * mount is the topmost at a path. */
#ifndef YOLO_MOUNT_H
#define YOLO_MOUNT_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Add the mount options yolofs always uses: the core's own (max_read,
 * default_permissions) and SOURCE as the mount's source (type
 * fuse.yolofs), so `mount -a` sees a yolofs fstab line as mounted.
 * @return 0 or -ENOMEM. */
int mount_add_args(struct fuse_args *args, const char *source);

/* Set the readahead window of the FUSE mount at `mountpoint` (its bdi's
 * read_ahead_kb in sysfs; needs root).  The kernel starts a FUSE mount at
 * the 128 KiB default and applies INIT's max_readahead only as
 * min(window, max_readahead), so max_readahead alone can shrink the window
 * but never grow it.  Call after fuse_session_mount and before the session
 * loop answers INIT; the min() then keeps `bytes` (the core asks for the
 * same value).  @return 0, -ENOENT (no such fuse mount), or -errno. */
int mount_set_readahead(const char *mountpoint, uint32_t bytes);

/* The id of the topmost mount at `path` (with fuse_only, of the topmost
 * FUSE mount there) in /proc/self/mountinfo, and its device number in *dev
 * (may be NULL).  @return the id, or -1 when there is none. */
long mount_top_id(const char *path, bool fuse_only, dev_t *dev);

/* Before a fresh mount at `mountpoint`: a yolofs mount on top there that
 * no daemon serves any more (its daemon died; or its session is held by a
 * descriptor store that did not hand it to this process) is aborted and
 * unmounted (logged), so the directory under it is back.  A live one is
 * left alone: `live` (may be NULL) says whether a daemon owns the mount
 * `dev` (its control socket answers); else it must answer statfs within
 * a second.  @return 0, -EBUSY (a live yolofs serves there), or -errno. */
int mount_clear_stale(const char *mountpoint, bool (*live)(dev_t dev));

#endif /* YOLO_MOUNT_H */
