/* namespace.h - yolofs's answers to namespace questions (prefix ns_).
 *
 * A container start is metadata-bound: lookups, attributes, xattrs
 * (security.capability on every exec), symlinks and listings, each of which
 * costs disk reads (directory blocks, inode tables, xattr blocks) when the
 * caches are cold.  A boot image records which questions the boot asked
 * (boot-images: YOLO_EXT_NAMESPACE); yolofs answers them from memory.
 *
 * Never stale, without the disk reads this removes: the answers are not
 * taken from the image but from the source itself, when the image is
 * loaded (in the background, parents first), and kept fresh from then on:
 *   - before an object is read, an inotify watch is put on it: on the
 *     object itself (a change through any of its names, hard links made at
 *     any time, a file handle, a bind mount or another mount namespace is
 *     reported to marks on the inode) and, for a directory, on its entries
 *     (create, delete, rename, write, chmod/chown/touch, xattrs); an open
 *     of a file is reported too (a write through a shared mapping is not);
 *   - each answer is about one object, named by its file handle: the core
 *     uses it only for that object, never for another file that took its
 *     name or its inode number;
 *   - mounts and umounts below the source report nothing to inotify: the
 *     mount table is watched, and a change drops what it covers;
 *   - a report drops the answers it concerns (the entry, what is below it,
 *     its directory's attributes and listing);
 *   - the kernel queues a report before the system call that made the
 *     change returns, and nothing is answered while a report or a mount
 *     table change is queued or being handled (for any ns of the process:
 *     one hub, one inotify instance): a change made before a question is
 *     always seen;
 *   - a lost report (the inotify queue overflowed) drops every answer;
 *   - only local disk file systems are answered for: inotify does not hear
 *     of changes another NFS client makes.
 * A dropped answer is asked of the source from then on.  Not seen: a
 * write through a shared mmap of a source file mapped before the watch
 * (its contents are checked at open as always, freshness.h), and changes
 * while the daemon is not running (the answers are primed anew at start).
 * Answers are given to root callers only (overlayfs reads layers as root);
 * others always get the source's, as themselves (pt_cred.c). */
#ifndef YOLO_NAMESPACE_H
#define YOLO_NAMESPACE_H

#include "passthrough.h"
#include "stats.h"
#include "yolo_image.h"

struct ns;
struct ns_hub;

/* One inotify instance, one reader thread and one watch on the mount
 * table, shared by every ns made over it (one process hosts many sessions;
 * fs.inotify.max_user_instances counts every instance of the user).
 * @return 0 or -errno. */
int ns_hub_create(struct ns_hub **out);
/* Start the reader thread (after daemonizing).  @return 0 or -errno. */
int ns_hub_start(struct ns_hub *hub);
/* Every ns made over it must have been destroyed first.  Stops the reader. */
void ns_hub_destroy(struct ns_hub *hub);

/* Answers about the tree below `source_fd` (borrowed), kept fresh by
 * `hub`: told about reports from now on, answering from ns_start.
 * @return 0 or -errno. */
int ns_create(struct ns **out, struct ns_hub *hub, int source_fd, struct stats *stats);
/* Whom to tell, from the hub's reader thread and with no lock of the ns
 * held, that the kernel's copy of an answer must go: `changed` as
 * pt_kernel_changed (dev 0 and ino 0: every copy).  Before ns_start. */
void ns_set_kernel(struct ns *ns, void (*changed)(void *ctx, dev_t dev, ino_t ino,
						     const char *name), void *ctx);
/* This ns answers and is told about reports (again: if it was stopped
 * before, every answer is dropped first, since reports were not applied
 * meanwhile).  @return 0 or -errno. */
int ns_start(struct ns *ns);
/* From now on this ns answers nothing and its kernel_changed is never
 * called again; returns once the reader is not inside a dispatch to it. */
void ns_stop(struct ns *ns);
/* Stops it, unregisters it from the hub and removes the watches no other
 * ns of the hub holds. */
void ns_destroy(struct ns *ns);

/* Prime: read the answers to `img`'s questions from the source now
 * (watches first).  Slow (disk reads): meant for a background job.
 * @return the questions added. */
uint32_t ns_prime(struct ns *ns, const struct yolo_image *img);

/* A mount below the source (pure, for tests). */
struct ns_submount {
	int id;
	char *rel;                       /* its mountpoint below the source root */
};
/* The mounts of /proc/self/mountinfo text `table` (changed in place) that
 * change what the source's paths name: mounted below `source_path` on its
 * mount `source_mnt`, or on such a mount (not on a mount stacked over the
 * source, such as yolofs's own in place).  *out: malloc'd, *n entries
 * (ns_free_mounts).  @return 0 or -ENOMEM. */
int ns_parse_mounts(char *table, const char *source_path, int source_mnt,
		    struct ns_submount **out, size_t *n);
void ns_free_mounts(struct ns_submount *v, size_t n);

/* The hooks for pt_config.ns, with ctx = ns. */
struct pt_ns_hooks ns_hooks(struct ns *ns);

#endif /* YOLO_NAMESPACE_H */
