/* passthrough.h - the FUSE pass-through core shared by yolofs (serve mode)
 * and yolo-capture (record mode), prefix pt_: inode table, dirfd-relative
 * access to the source tree, attributes, names, directories, xattrs, open
 * files, and a small hook interface through which a front end serves or
 * observes reads and is told about anything that changes a file.
 *
 * Acting as the caller: every operation the source filesystem would check
 * permissions for runs on a worker thread that has taken the requesting
 * process's fsuid, fsgid, supplementary groups and umask, with no
 * capabilities unless the caller is root, so the source decides exactly as
 * if the caller had used it directly (pt_cred.c).  Reads on an open file
 * never switch.  Hooks always run as the daemon.
 *
 * Errno convention: hooks return 0 (or the documented positive value) or a
 * negative errno; the core negates once in fuse_reply_err().
 *
 * Locks are not implemented as FUSE operations on purpose: without
 * getlk/setlk/flock the kernel keeps POSIX, OFD and flock locks locally,
 * which is what QEMU's image locking needs (verified by tests/mount).
 */
#ifndef YOLO_PASSTHROUGH_H
#define YOLO_PASSTHROUGH_H

#include "config.h"

#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Most bytes the kernel asks for in one READ (the core's max_read). */
#define PT_MAX_READ (1u << 20)

/* An open regular file as the hooks see it.  An open is made on the
 * source at once, as the caller, except a "lazy" one (a container start
 * opens dozens of files whose bytes all come from a boot image): a
 * read-only open (no O_TRUNC) by a root caller of a file that the
 * namespace provider's lookup, asked at open, names at its path with the
 * inode's own file handle.  A lazy open holds an O_PATH descriptor of that
 * very object (the inode's, duplicated, or opened again by its handle, or
 * by its name and checked against the handle), which pins it; its
 * attributes are read through that descriptor, and it is opened for real
 * (the caller's flags, as the daemon) the first time something needs its
 * descriptor: pt_file_fd, a read the core serves itself, lseek, copying
 * from it, lsattr/chattr, a change through it.  So a lazy open behaves as
 * an open one: renamed over or unlinked on the source, it keeps its file,
 * its bytes and its attributes. */
struct pt_file;
/* Its descriptor on the source, opened now if it was lazy.  @return the
 * descriptor (owned by the core) or -errno. */
int pt_file_fd(struct pt_file *file);
/* Its attributes now (fstat of its object; a lazy open stays lazy).
 * @return 0 or -errno. */
int pt_file_stat(struct pt_file *file, struct stat *st);

struct pt_open_info {
	const char *relpath;             /* path below the source root, or NULL if unknown (unlinked) */
	const struct stat *st;           /* its attributes just after opening */
	int flags;                       /* open(2) flags as requested by the caller */
	bool first;                      /* first open of this inode (per-inode state is NULL) */
	/* For kernel cache notifications from the open hook.  During a first
	 * open nobody else has the inode open through the mount (opens are
	 * serialised per inode), so no write can race a notify_store. */
	struct fuse_session *se;         /* NULL before pt_set_session */
	fuse_ino_t nodeid;
};

/* Result of a read hook that serves the data itself: `cnt` segments that
 * together form the reply.  Segments may point into the hook's own
 * immutable memory or into `scratch` (PT_MAX_READ bytes, per thread). */
#define PT_IOV_MAX 260
struct pt_readbuf {
	struct iovec iov[PT_IOV_MAX];
	int cnt;
	char *scratch;                   /* thread-local, PT_MAX_READ bytes, page aligned */
	void *hold;                      /* set by the hook: passed to read_done after the reply */
};

/* open hook return value: no hook serves or needs to see this open's
 * reads, so the kernel may read the source file itself (passthrough),
 * without the daemon.  The core does so for a read-only open when the
 * kernel can and the inode's other opens allow it (pt_i.h, struct
 * pt_inode); otherwise the open is served as any other. */
#define PT_OPEN_PASSTHROUGH 1

/* read hook return value: let the core read the source file itself. */
#define PT_READ_PASS 1

/* Kinds of change reported to modify_begin/modify_end. */
enum pt_modify {
	PT_MOD_WRITE,                    /* [off, off+len) written */
	PT_MOD_TRUNCATE,                 /* size set to `off` */
	PT_MOD_FALLOCATE,                /* fallocate(mode) over [off, off+len) */
	PT_MOD_COPY,                     /* copy_file_range destination [off, off+len) */
	PT_MOD_ATTR,                     /* times, mode, owner or xattrs set; contents unchanged */
};

/* Hooks; any may be NULL.  `ipriv` is a per-inode slot owned by the hooks:
 * set by `open`, passed to every later hook for that inode, and handed back
 * to `release` when the last open file of the inode is released.  All hooks
 * for one inode may run concurrently on several threads except open and
 * release, which the core serialises per inode. */
struct pt_hooks {
	void *ctx;

	/* A regular file was opened.  May set *ipriv (when info->first) and
	 * may set fi->direct_io / fi->keep_cache.  @return 0, PT_OPEN_PASSTHROUGH
	 * or -errno (the open then fails). */
	int (*open)(void *ctx, const struct pt_open_info *info, void **ipriv,
		    struct fuse_file_info *fi);
	/* An open file was released; `last` when it was the inode's last. */
	void (*release)(void *ctx, void **ipriv, bool last);

	/* A read of [off, off+size) of `file` (pt_file_stat, pt_file_fd).
	 * @return 0 when served (out->iov filled; total may be short at EOF),
	 * PT_READ_PASS to let the core read the source, or -errno. */
	int (*read)(void *ctx, void *ipriv, struct pt_file *file, uint64_t off, size_t size,
		    struct pt_readbuf *out);
	/* Called once the reply of a read that set out->hold was sent (or
	 * failed), so memory the segments pointed into can be released. */
	void (*read_done)(void *ctx, void *hold);

	/* Bracket every change of a regular file made through the mount.
	 * begin is called before the source is modified, end after (with the
	 * operation's result, 0/-errno or bytes).  begin may block readers
	 * until end.  ipriv is NULL when the inode has no open files.  `fd`
	 * refers to the file on the source (for fstat; -1 if it cannot be
	 * had), the same in both calls. */
	void (*modify_begin)(void *ctx, void *ipriv, enum pt_modify op, uint64_t off, uint64_t len,
			     int fd);
	void (*modify_end)(void *ctx, void *ipriv, enum pt_modify op, uint64_t off, uint64_t len,
			   int fd, int64_t result);

	/* A regular file's attributes (times, mode, owner, xattrs; never its
	 * contents) were changed through the mount, with its state just
	 * before and after.  Called inside the PT_MOD_ATTR bracket after
	 * success, so no other change through the mount or first open comes
	 * between the two stats. */
	void (*attr_set)(void *ctx, const char *relpath, const struct stat *before,
			 const struct stat *after);

	/* A directory entry was renamed (after success). */
	void (*rename)(void *ctx, uint64_t ino, const char *newname);
};

/* Namespace questions and answers.  A front end may answer lookups,
 * attributes, xattrs, symlinks and directory listings of root callers
 * (overlayfs and dockerd, the container case, ask as root) without the
 * source: the core asks `ns` first, and an object it knows only from such
 * an answer is opened on the source (by its file handle) only when an
 * operation needs it.  Non-root callers always get the source's answers,
 * as themselves.  The core does not report the changes it makes: a
 * provider must see every change of the source, whoever makes it and
 * through whatever name, handle or mount (namespace.c).  Every hook is
 * optional. */
#define PT_NS_UNKNOWN (-100000)          /* the hook does not know: ask the source */

/* A source object's file handle (name_to_handle_at): what identifies it
 * when its inode number has been reused (ext4's handle holds the inode's
 * generation), and what opens it again (open_by_handle_at).  len 0: none
 * (the file system has no handles, or the object is on another one). */
#define PT_FHID_MAX 128
struct pt_fhid {
	int type;
	unsigned len;
	unsigned char bytes[PT_FHID_MAX];
};
/* The handle of the object open as `fd` (O_PATH too) into id; len 0 when
 * its file system has none. */
static inline void pt_fhid_of(int fd, struct pt_fhid *id)
{
	struct {
		struct file_handle h;
		unsigned char bytes[PT_FHID_MAX];
	} fh = { .h.handle_bytes = PT_FHID_MAX };
	int mnt;
	id->len = 0;
	if (name_to_handle_at(fd, "", &fh.h, &mnt, AT_EMPTY_PATH) < 0 || fh.h.handle_bytes == 0)
		return;
	id->type = fh.h.handle_type;
	id->len = fh.h.handle_bytes;
	memcpy(id->bytes, fh.h.f_handle, id->len);
}

/* Are a and b the same object's handles (both present)? */
static inline bool pt_fhid_equal(const struct pt_fhid *a, const struct pt_fhid *b)
{
	return a && b && a->len && a->len == b->len && a->type == b->type &&
	       memcmp(a->bytes, b->bytes, a->len) == 0;
}

enum pt_ns_question {
	PT_NS_Q_LOOKUP,                  /* its attributes (or that it is absent) */
	PT_NS_Q_READDIR,                 /* a directory's listing */
	PT_NS_Q_READLINK,                /* a symlink's target */
	PT_NS_Q_LISTXATTR,               /* its xattr names */
	PT_NS_Q_GETXATTR,                /* one xattr's value (or that it is absent) */
};

struct pt_ns_entry {
	const char *name;
	ino_t ino;
	unsigned char type;              /* DT_* */
};

/* Every answer is about the object at `path` now; the core gives it only
 * for that very object (`id`, its file handle: a path may have come to
 * name another object than the one the kernel asks about). */
struct pt_ns_hooks {
	void *ctx;
	/* The object at `path` ("" is the source root).  @return 1 with *st
	 * and *id filled, -ENOENT when it is absent, or PT_NS_UNKNOWN. */
	int (*lookup)(void *ctx, const char *path, struct stat *st, struct pt_fhid *id);
	/* getxattr `name` (listxattr when NULL) of `path`, if it is the
	 * object `id`, into buf (size 0: the size only).  @return the size,
	 * -ENODATA, -ERANGE, or PT_NS_UNKNOWN. */
	ssize_t (*xattr)(void *ctx, const char *path, const struct pt_fhid *id, const char *name,
			 void *buf, size_t size);
	/* The target of the symlink at `path`, if it is the object `id` (not
	 * NUL-terminated).  @return its length, -ENAMETOOLONG, or
	 * PT_NS_UNKNOWN. */
	ssize_t (*readlink)(void *ctx, const char *path, const struct pt_fhid *id, char *buf,
			    size_t size);
	/* The listing of the directory at `path`, if it is the object `id`,
	 * "." and ".." included: a malloc'd array of *n entries whose names
	 * live in the same block (free(*entries) frees all).  @return 0 or
	 * PT_NS_UNKNOWN. */
	int (*listing)(void *ctx, const char *path, const struct pt_fhid *id,
		       struct pt_ns_entry **entries, size_t *n);
};

/* A recorder of the namespace questions the source answered (yolo-capture,
 * yolofs's learning): question `q` about `path` (`xname`: the xattr of
 * PT_NS_Q_GETXATTR).  Optional. */
struct pt_ns_recorder {
	void *ctx;
	void (*asked)(void *ctx, enum pt_ns_question q, const char *path, const char *xname);
};

struct pt_config {
	int source_fd;                   /* O_PATH directory fd of the source (ownership passes to the core) */
	double timeout;                  /* entry/attr timeout in seconds */
	/* Entry/attr timeout of the answers the ns provider gives: it watches
	 * every object it answers for and reports each change through
	 * pt_kernel_changed, which drops the kernel's copy, so the kernel may
	 * keep them for long.  0: `timeout`. */
	double answer_timeout;
	bool force_direct_io;            /* direct_io on every open (capture) */
	bool splice;                     /* allow splice replies for source reads */
	bool keep_cache;                 /* keep the kernel page cache of unchanged files across opens */
	uint32_t max_readahead;          /* kernel readahead window in bytes (0 disables) */
	bool passthrough;                /* ask for kernel passthrough (PT_OPEN_PASSTHROUGH) */
	/* Optional (NULL): set at INIT to whether the kernel does passthrough,
	 * and counted for each passthrough open. */
	atomic_uint_fast64_t *passthrough_active;
	atomic_uint_fast64_t *passthrough_opens;
	struct pt_hooks hooks;
	struct pt_ns_hooks ns;
	struct pt_ns_recorder ns_rec;
};

struct pt_fs;

/* Create the core over cfg->source_fd.  @return 0 or -errno. */
int pt_create(struct pt_fs **out, const struct pt_config *cfg);
void pt_destroy(struct pt_fs *fs);

/* The low-level operations (pass `fs` as userdata to fuse_session_new). */
const struct fuse_lowlevel_ops *pt_ops(void);

/* Add the mount options the core depends on to `args`: max_read (the
 * largest READ it serves) and default_permissions (the kernel checks each
 * path component with the attributes it has; the source then decides
 * again, as the caller, at the operation).  @return 0 or -ENOMEM. */
int pt_mount_args(struct fuse_args *args);

/* Session, for cache notifications by hooks; set once after fuse_session_new. */
void pt_set_session(struct pt_fs *fs, struct fuse_session *se);

/* The source object (dev, ino) changed (`name` NULL: its attributes, xattrs
 * or contents), or its directory entry `name` did (created, removed,
 * renamed, mounted over): drop what the kernel keeps of it (a directory's
 * kept listing included), so its next question reaches the daemon.  For every object the core knows by that
 * number (a reused number's too: dropping more is harmless); dev and ino
 * 0: of every object the kernel knows.  Call it
 * without holding a lock a FUSE request may wait for: the kernel takes the
 * directory's lock to drop an entry. */
void pt_kernel_changed(struct pt_fs *fs, dev_t dev, ino_t ino, const char *name);

/* Send libfuse's own messages to the project's logger (common/log.h), so
 * they are kept once the daemon runs in the background. */
void pt_log_to_ylog(void);

/* Process id of the caller whose request the calling hook is serving (0
 * outside a hook, or when the kernel did not say, e.g. readahead). */
pid_t pt_current_pid(void);

/* Read [off, off+size) of a source file into buf, retrying EINTR and
 * partial reads.  `rwf` is passed to preadv2 (0 or RWF_* flags).
 * @return the bytes read, fewer than `size` only at end of file; or -errno:
 * an error part way fails the whole read (never a short count). */
ssize_t pt_read_source(int fd, void *buf, size_t size, off_t off, int rwf);

/* ---- Taking a session over (an upgrade in place, or a restart after a
 * crash; pt_resume.c).  The core keeps a session record (a memfd, kept
 * current) from which a successor daemon rebuilds its nodes and open
 * handles over the same kernel session. ---- */

/* After fuse_session_mount: the session's descriptor `fd` is read and
 * written through the core, which keeps the kernel's INIT in the record
 * (a session started otherwise cannot be taken over).  @return 0 or -errno. */
int pt_session_io(struct pt_fs *fs, struct fuse_session *se, int fd);
/* As a successor, instead of mounting: take the session `fuse_fd` over,
 * with the record `record_fd` its daemon kept (owned from then on), on
 * `se` (fuse_session_new'd with this core, not mounted): the INIT replayed
 * (refused, -EPROTO, when this daemon would have answered it otherwise),
 * the nodes and open handles rebuilt, their descriptors inherited
 * (`inherited`: an exec) or opened again (a crash).  Call it once the
 * hooks can serve.  @return 0 or -errno, with err saying why. */
struct yolo_err;
int pt_resume(struct pt_fs *fs, struct fuse_session *se, int record_fd, int fuse_fd,
	      bool inherited, struct yolo_err *err);
/* Ask the kernel to send again every request the previous daemon read but
 * never answered (Linux >= 6.9); call just before the session loop.
 * @return 0 or -errno (logged). */
int pt_resend(struct pt_fs *fs);
/* Before exec'ing a successor (the session loop stopped): every descriptor
 * it needs is inherited (close-on-exec cleared) and its number recorded;
 * the record's and the source's are returned.  `inherit` false undoes it
 * (the exec failed). */
void pt_handover(struct pt_fs *fs, bool inherit, int *record_fd, int *source_fd);
/* The source directory's descriptor (O_PATH; the core's). */
int pt_source_fd(const struct pt_fs *fs);
/* The session record's descriptor, for systemd's descriptor store. */
int pt_record_fd(const struct pt_fs *fs);
/* The front end's own part of the record: PT_RECORD_USER_MAX bytes, zero
 * in a new one, which a successor finds as they were. */
#define PT_RECORD_USER_MAX 2048
void *pt_record_user(struct pt_fs *fs);

#endif /* YOLO_PASSTHROUGH_H */
