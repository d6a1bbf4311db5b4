/* passthrough.h - the FUSE pass-through core shared by yolofs (serve mode)
 * and yolo-capture (record mode): inode table, dirfd-relative access to the
 * source tree, attributes, directories, xattrs, and a small hook interface
 * through which a front end serves or observes reads and is told about
 * anything that changes file contents.
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
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Maximum bytes the kernel asks for in one READ (and max_read). */
#define PT_MAX_READ (1u << 20)

/* What an open hook is told about a newly opened regular file. */
struct pt_open_info {
	const char *relpath;             /* path below the source root, or NULL if unknown (unlinked) */
	int fd;                          /* the opened source descriptor (owned by the core) */
	const struct stat *st;           /* fstat(fd) just after opening */
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

/* read hook return value: let the core read the source file itself. */
#define PT_READ_PASS 1

/* Kinds of content change reported to modify_begin/modify_end. */
enum pt_modify {
	PT_MOD_WRITE,                    /* [off, off+len) written */
	PT_MOD_TRUNCATE,                 /* size set to `off` */
	PT_MOD_FALLOCATE,                /* fallocate(mode) over [off, off+len) */
	PT_MOD_COPY,                     /* copy_file_range destination [off, off+len) */
	PT_MOD_TIMES,                    /* timestamps set (utimensat); contents unchanged */
};

/* Hooks; any may be NULL.  `ipriv` is a per-inode slot owned by the hooks:
 * set by `open`, passed to every later hook for that inode, and handed back
 * to `release` when the last open file of the inode is released.  All hooks
 * for one inode may run concurrently on several threads except open and
 * release, which the core serialises per inode. */
struct pt_hooks {
	void *ctx;

	/* A regular file was opened.  May set *ipriv (when info->first) and
	 * may set fi->direct_io / fi->keep_cache.  @return 0 or -errno (the
	 * open then fails). */
	int (*open)(void *ctx, const struct pt_open_info *info, void **ipriv,
		    struct fuse_file_info *fi);
	/* An open file was released; `last` when it was the inode's last. */
	void (*release)(void *ctx, void **ipriv, bool last);

	/* A read of [off, off+size) on `fd`.  @return 0 when served (out->iov
	 * filled; total may be short at EOF), PT_READ_PASS to let the core
	 * read the source, or -errno. */
	int (*read)(void *ctx, void *ipriv, int fd, uint64_t off, size_t size,
		    struct pt_readbuf *out);
	/* Called once the reply of a read that set out->hold was sent (or
	 * failed), so memory the segments pointed into can be released. */
	void (*read_done)(void *ctx, void *hold);

	/* Bracket every change of a file's contents made through the mount.
	 * begin is called before the source is modified, end after (with the
	 * operation's result, 0/-errno or bytes).  begin may block readers
	 * until end.  ipriv is NULL when the inode has no open files. */
	void (*modify_begin)(void *ctx, void *ipriv, enum pt_modify op, uint64_t off, uint64_t len);
	void (*modify_end)(void *ctx, void *ipriv, enum pt_modify op, uint64_t off, uint64_t len,
			   int fd, int64_t result);

	/* A regular file's timestamps were set through the mount (touch), with
	 * its state just before and after; called inside the PT_MOD_TIMES
	 * bracket, after success, so no other change or first open can come
	 * between the two stats. */
	void (*times_set)(void *ctx, const char *relpath, const struct stat *before,
			  const struct stat *after);

	/* A directory entry was renamed (after success). */
	void (*rename)(void *ctx, uint64_t ino, const char *newname);
};

struct pt_config {
	int source_fd;                   /* O_PATH directory fd of the source (ownership passes to the core) */
	double timeout;                  /* entry/attr timeout in seconds */
	bool force_direct_io;            /* direct_io on every open (capture) */
	bool splice;                     /* allow splice replies for source reads */
	bool keep_cache;                 /* keep the kernel page cache of unchanged files across opens */
	uint32_t max_readahead;          /* kernel readahead window in bytes (0 disables) */
	struct pt_hooks hooks;
};

struct pt_fs;

/* Create the core over cfg->source_fd.  @return 0 or -errno. */
int pt_create(struct pt_fs **out, const struct pt_config *cfg);
void pt_destroy(struct pt_fs *fs);

/* The low-level operations (pass `fs` as userdata to fuse_session_new). */
const struct fuse_lowlevel_ops *pt_ops(void);

/* Session, for cache notifications by hooks; set once after fuse_session_new. */
void pt_set_session(struct pt_fs *fs, struct fuse_session *se);

/* Set the readahead window of the FUSE mount at `mountpoint` (its bdi's
 * read_ahead_kb in sysfs; needs root).  The kernel starts a FUSE mount at
 * the 128 KiB default and applies INIT's max_readahead only as
 * min(window, max_readahead), so max_readahead alone can shrink the window
 * but never grow it.  Call after fuse_session_mount and before the session
 * loop answers INIT; the min() then keeps `bytes` (pt_init asks for the
 * same value).  @return 0, -ENOENT (no such fuse mount), or -errno. */
int pt_set_readahead(const char *mountpoint, uint32_t bytes);

/* Process id of the caller whose request the calling hook is serving (0
 * outside a hook, or when the kernel did not say, e.g. readahead). */
pid_t pt_current_pid(void);

/* Relative path of an open descriptor below the source root, in buf.
 * @return 0, -ENOENT if unlinked or outside the source, -ENAMETOOLONG. */
int pt_relpath(const struct pt_fs *fs, int fd, char *buf, size_t len);

/* pread all of [off, off+size) unless EOF comes first, retrying EINTR.
 * @return bytes read (short only at EOF) or -errno. */
ssize_t pt_pread_full(int fd, char *buf, size_t size, off_t off);

/* Logging: one printf-checked sink with levels. */
enum pt_log_level { PT_LOG_ERR, PT_LOG_WARN, PT_LOG_INFO, PT_LOG_DEBUG };
extern int pt_log_threshold;             /* messages above it are dropped */
extern bool pt_log_to_syslog;            /* log to syslog instead of stderr (daemonized) */
void pt_log(enum pt_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* YOLO_PASSTHROUGH_H */
