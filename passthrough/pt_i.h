/* pt_i.h - internals of the pass-through core shared by its files.  They
 * are layered: each calls only files below it, never one above (pt_file,
 * pt_dir and pt_attr share a floor and call none of each other).
 *   pt_core.c    session set-up, INIT, mount options, the operations table
 *   pt_file.c    regular-file operations: open/create, read, write, release
 *   pt_dir.c     names and directories: create, remove, rename, listings
 *   pt_attr.c    attributes, symlink targets, statfs, access, xattrs, flags
 *   pt_change.c  the change bracket the hooks see around every change
 *   pt_handle.c  open handles: their list, closing, a file's descriptor and
 *                lazy opens
 *   pt_resume.c  taking a session over: the session's descriptor I/O
 *                (INIT kept), a successor rebuilding from the record,
 *                resending lost requests, handing over across exec
 *   pt_inode.c   the inode table, inode descriptors and paths, lookups
 *   pt_record.c  the session record a successor daemon rebuilds from
 *   pt_cred.c    acting as the caller (fsuid, fsgid, groups, caps, umask)
 * (pt_resume.c shares pt_core's floor; pt_record.c sits beside pt_cred.)
 * Below: the shared types, then, per file, what it gives the files above.
 */
#ifndef YOLO_PT_I_H
#define YOLO_PT_I_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>

#include "hashmap.h"
#include "log.h"
#include "passthrough.h"

/* A source object the kernel knows.  Its identity is (dev, ino) and its
 * file handle: an inode number alone is reused by ext4 as soon as it is
 * freed.  It holds no descriptor of its own for long: pt_fd opens it again
 * when an operation needs it (a file by handle on the source root's file
 * system; a directory, or an object on another file system mounted below,
 * by name and checked against the handle)
 * and a bounded number of descriptors on the source's own mount stay open
 * (fs->fds_kept), so a walk of any tree works with any descriptor limit
 * and no mount below the source is kept busy.  An object whose file
 * system has no handles keeps its descriptor, which also pins it, for the
 * inode's life. */
struct pt_inode {
	/* Immutable after creation. */
	fuse_ino_t nodeid;               /* the kernel's name for it: a counter, not an
					  * address, so that a successor daemon can
					  * rebuild the table the kernel refers to */
	dev_t dev;
	ino_t ino;
	mode_t type;                     /* st_mode & S_IFMT */
	struct pt_fhid *fhid;            /* NULL: none (fd is then kept) */

	/* Protected by fs->fd_lock. */
	int fd;                          /* O_PATH|O_NOFOLLOW descriptor, or -1 */
	unsigned fd_users;               /* operations using it now (pt_fd .. pt_fd_put) */
	bool fd_kept;                    /* stays open while unused (counted in fds_kept) */
	bool lost_fd;                    /* taken over after a crash without the descriptor
					  * of a node that has no handle: reopened by name */

	/* Protected by fs->itable_lock. */
	uint64_t slot;                   /* in the session record (PT_NO_SLOT: none) */
	uint64_t nlookup;                /* kernel references, and one per child naming it as
					  * its parent; freed at 0 (never the root) */
	struct pt_inode *parent;         /* where it was found (moved by renames through the
					  * mount), for its path; NULL for the root */
	char *name;                      /* its name there ("" for the root) */

	/* Protected by mu.  Lock order: mu before any lock taken by a hook,
	 * and before fs->fd_lock; never hold fs->itable_lock while taking mu
	 * or vice versa. */
	pthread_mutex_t mu;
	unsigned nopen;                  /* open file handles */
	void *ipriv;                     /* hooks' per-inode state, valid while nopen > 0 */
	bool cache_known;                /* csize/cmtime/cctime: what the kernel may have cached */
	off_t csize;
	struct timespec cmtime, cctime;
	/* Kernel passthrough (pt_file.c): the kernel takes one backing file
	 * per inode and fails (EIO to the caller) an open whose mode differs
	 * from the inode's other opens, direct_io included.  So while
	 * `nbacked` > 0 every open of the inode is a passthrough open of
	 * `backing_id`; while it has other opens, none is. */
	int backing_id;                  /* 0: none */
	unsigned nbacked;                /* open handles using it */
};

struct pt_record;
struct pt_record_handle;

struct pt_fs {
	struct pt_config cfg;
	struct pt_record *record;        /* what a successor daemon rebuilds from */
	struct fuse_session *se;
	char root_path[PATH_MAX];        /* readlink of the source fd, for paths of descriptors */
	size_t root_len;
	int mount_fd;                    /* the source root, O_RDONLY: open_by_handle_at's anchor */
	uint64_t source_mnt;             /* the id of its mount */

	struct pt_inode root;            /* nodeid FUSE_ROOT_ID; fd is cfg.source_fd, kept */

	pthread_mutex_t itable_lock;     /* protects both tables and every inode's nlookup */
	struct yhash inodes;             /* (dev, ino) -> inodes (but the root) */
	struct yhash nodes;              /* nodeid -> inodes (but the root) */
	fuse_ino_t next_nodeid;          /* never reused within a session */

	/* Descriptors of inodes (a leaf lock): at most fds_max stay open
	 * while unused. */
	pthread_mutex_t fd_lock;
	size_t fds_kept, fds_max;

	bool passthrough;                /* the kernel reads and writes backed opens itself (INIT) */

	/* Open handles by their id (fi->fh), also so the ones whose release
	 * never came (the daemon was stopped) are freed at exit.  Protected
	 * by handles_lock (a leaf lock). */
	pthread_mutex_t handles_lock;
	struct yhash handles;            /* id -> struct pt_handle */
	uint64_t next_handle;            /* never reused within a session */

	/* The session's descriptor I/O (pt_resume.c): the kernel's INIT and
	 * the reply it got are kept in the record once; a successor's replayed
	 * INIT is answered into replay_out, never to the kernel. */
	int fuse_fd;
	_Atomic bool init_kept;
	uint64_t init_unique;
	bool replaying;
	unsigned char replay_out[256];
	size_t replay_len;
};

/* Every open file and directory, found by its id (what the kernel holds
 * as fi->fh: a counter, not an address, like node ids). */
struct pt_handle {
	uint64_t id;
	uint64_t slot;                   /* in the session record (PT_NO_SLOT: none) */
	bool is_dir;
};

/* Who a request acts as (pt_cred.c). */
struct pt_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask;
	int ngroups;                     /* -1: not known (look them up) */
	gid_t *groups;                   /* ngroups entries */
};

/* One open regular file. */
struct pt_fh {
	struct pt_handle h;              /* first member */
	_Atomic int fd;                  /* on the source; -1 until a lazy open needs it */
	int path_fd;                     /* a lazy open's O_PATH reference to its object, or -1 */
	int flags;                       /* open(2) flags, for opening it then */
	struct pt_fs *fs;
	_Atomic uint64_t next_off;       /* end of the last source READ: where a stream continues */
	bool page_cached;                /* the kernel caches what it reads (no O_DIRECT, no direct_io) */
	bool backed;                     /* a passthrough open of in->backing_id */
	struct pt_inode *in;
	void *ipriv;                     /* copy of in->ipriv at open (stable until release) */
	struct pt_caller opener;         /* for writes by the same process (groups kept) */
};

/* One open directory: on the source (dp), or a listing the namespace
 * provider gave (entries; offsets are entry indexes + 1). */
struct pt_dir {
	struct pt_handle h;              /* first member */
	DIR *dp;
	off_t pos;                       /* offset of `ent` (or of the next readdir) */
	struct dirent *ent;              /* read but not yet returned, or NULL */
	struct pt_ns_entry *entries;     /* when dp is NULL */
	size_t nentries;
};

static inline struct pt_fs *pt_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The hash of a node or handle id (both counters) in their tables. */
static inline uint64_t pt_id_hash(uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

/* Set or clear a descriptor's close-on-exec flag (across an exec'd
 * successor, pt_resume.c). */
static inline void pt_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl >= 0)
		fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

static inline void pt_proc_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* The one reply idiom for operations that end in an error or nothing:
 * `ret` is 0 or -errno. */
static inline void pt_reply_status(fuse_req_t req, int ret)
{
	fuse_reply_err(req, -ret);
}

/* ---- pt_file.c: regular-file operations (for pt_core) ---- */
void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_create_file(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    struct fuse_file_info *fi);
void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void pt_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		  struct fuse_file_info *fi);
void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			struct fuse_file_info *fi_out, size_t len, int flags);
void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);

/* A successor's open file as recorded (pt_resume).  @return 0 or -errno. */
int pt_file_restore(struct pt_fs *fs, const struct pt_record_handle *r, bool inherited);

/* ---- pt_dir.c: names and directories (for pt_core) ---- */
void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags);
void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
/* A successor's open directory as recorded (pt_resume).  @return 0 or -errno. */
int pt_dir_restore(struct pt_fs *fs, const struct pt_record_handle *r, bool inherited);

/* ---- pt_attr.c: what is asked and set about one object (for pt_core) ---- */
void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		struct fuse_file_info *fi);
void pt_readlink(fuse_req_t req, fuse_ino_t ino);
void pt_statfs(fuse_req_t req, fuse_ino_t ino);
void pt_access(fuse_req_t req, fuse_ino_t ino, int mask);
void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void pt_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
	      unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz);

/* ---- pt_change.c: the change bracket (for pt_file, pt_attr) ---- */
/* Run a change of a regular file bracketed by the hooks.  When the inode
 * has no open file (fh NULL), in->mu is held so the hooks' state cannot go
 * away. */
struct pt_change {
	struct pt_fs *fs;
	struct pt_inode *in;
	void *ipriv;
	bool locked;
	bool fd_held;                    /* fd is the inode's (pt_fd), put at the end */
	enum pt_modify op;
	uint64_t off, len;
	int fd;                          /* the file on the source, for the hooks */
};
void pt_change_begin(struct pt_change *m, struct pt_fs *fs, struct pt_inode *in,
		     struct pt_fh *fh, enum pt_modify op, uint64_t off, uint64_t len);
/* `fd`: the file open on the source, whose state after a successful
 * change is what the kernel caches (-1: not known). */
void pt_change_end(struct pt_change *m, int fd, int64_t result);
/* A change of attributes (times, mode, owner, xattrs, flags) of `in`.  A
 * regular file's is bracketed like a change of its contents (PT_MOD_ATTR),
 * so the hooks can tell a touch or chown (nova touches its base files,
 * libvirt chowns them) from a modification, and once it succeeded the
 * attr_set hook gets its state before and after; any other type's is
 * not reported. */
struct pt_attr_change {
	struct pt_change m;
	bool reg;                        /* a regular file: bracketed */
	bool known;                      /* `before` holds its stat just before */
	struct stat before;
};
void pt_attr_change_begin(struct pt_attr_change *a, struct pt_fs *fs, struct pt_inode *in,
			  struct pt_fh *fh);
void pt_attr_change_end(struct pt_attr_change *a, int fd, int result);

/* ---- pt_handle.c: open handles (for pt_core, pt_file, pt_dir, pt_attr, pt_change) ---- */
/* Give an open handle its id and enter it in fs->handles (@return 0, or
 * -ENOMEM with h->id 0), or take it out. */
int pt_handle_add(struct pt_fs *fs, struct pt_handle *h);
/* Enter a handle a predecessor gave the kernel (h->id, h->slot set).
 * @return 0 or -ENOMEM. */
int pt_handle_adopt(struct pt_fs *fs, struct pt_handle *h);
/* Record an open handle (pt_record_handle_new) before its reply. */
void pt_handle_record(struct pt_fs *fs, struct pt_handle *h, const struct pt_inode *in,
		      int flags, bool backed, bool answered);
void pt_handle_del(struct pt_fs *fs, struct pt_handle *h);
/* The open file (is_dir false) or directory the kernel calls `id`, or NULL
 * (logged: the kernel only names handles it was given). */
struct pt_handle *pt_handle_find(struct pt_fs *fs, uint64_t id, bool is_dir);
/* The open file or directory of a request (fi->fh), or NULL (logged). */
static inline struct pt_fh *pt_fh_of(fuse_req_t req, const struct fuse_file_info *fi)
{
	return (struct pt_fh *)pt_handle_find(pt_fs_of(req), fi->fh, false);
}

static inline struct pt_dir *pt_dir_of(fuse_req_t req, const struct fuse_file_info *fi)
{
	return (struct pt_dir *)pt_handle_find(pt_fs_of(req), fi->fh, true);
}

/* Drop an open file handle: the inode's open count, the hooks' release
 * (with `last` when it was the inode's last), the descriptors.  `listed`:
 * still on fs->handles. */
void pt_close_file(struct pt_fs *fs, struct pt_fh *fh, bool listed);
void pt_close_dir(struct pt_dir *d);
/* Close the handles whose release never came (the session has ended). */
void pt_close_handles(struct pt_fs *fs);
/* Flags for a file's descriptor on the source, from the caller's open(2)
 * flags.  The caller's own O_APPEND stays (an append-only file accepts
 * nothing else; pwrite then appends at the source's end of file, which is
 * where the kernel means to write), O_DIRECT goes (the kernel does its
 * own; the daemon reads into its own buffers), O_NOFOLLOW would refuse the
 * /proc magic link the file is reopened by. */
int pt_source_flags(int flags);
/* May this open be lazy (see passthrough.h, struct pt_file)?  A root
 * caller reading a regular file the provider answers for: root is granted
 * a read-only open by the permission bits, and the answer is fresh.
 * @return an O_PATH descriptor of that very object, or -1. */
int pt_lazy_open(fuse_req_t req, struct pt_inode *in, int flags);
/* The file's descriptor on the source, opened now if the open was lazy
 * (pt_file_fd for the hooks).  @return it (owned by fh) or -errno. */
int pt_fh_fd(struct pt_fh *fh);

/* ---- pt_inode.c: inodes, their descriptors and paths, lookups ---- */
/* The inode the kernel calls `n`, or NULL (logged: the kernel only names
 * inodes it was given and has not forgotten). */
struct pt_inode *pt_inode_of(fuse_req_t req, fuse_ino_t n);
struct pt_inode *pt_inode_by_id(struct pt_fs *fs, fuse_ino_t n);
/* Rebuild the table from the session record (pt_resume): descriptors of
 * nodes without a handle are the recorded ones when `inherited`.
 * @return 0 or -ENOMEM; *n the nodes rebuilt. */
int pt_inode_restore(struct pt_fs *fs, bool inherited, size_t *n);
/* Is `fd`, a descriptor number a predecessor recorded, open here and the
 * object of `in`? */
bool pt_inherited_fd_is(int fd, const struct pt_inode *in);
/* Across exec: the descriptors of nodes without a handle inherited (and
 * recorded), or close-on-exec again. */
void pt_inode_handover(struct pt_fs *fs, bool inherit);
void pt_inode_put(struct pt_fs *fs, struct pt_inode *in, uint64_t n);
void pt_free_inodes(struct pt_fs *fs);
/* The inode's O_PATH descriptor, opened now if it has none open (see
 * struct pt_inode): by its handle, with the daemon's right to open handles
 * whoever the thread acts as, or by name from its parent, as the thread
 * acts, and checked against its handle.  Every successful call is paired
 * with pt_fd_put once the descriptor is no longer used.  @return it or
 * -errno (-ESTALE: the object no longer exists). */
int pt_fd(struct pt_fs *fs, struct pt_inode *in);
void pt_fd_put(struct pt_fs *fs, struct pt_inode *in);
/* A new O_PATH descriptor of the inode's object, owned by the caller.
 * @return it or -errno. */
int pt_fd_dup(struct pt_fs *fs, struct pt_inode *in);
/* Open the inode's object with open(2) `flags` through its O_PATH
 * descriptor's /proc link, which is resolved as a path: as whoever the
 * thread acts as, permissions checked.  @return the descriptor or -errno. */
int pt_reopen(struct pt_fs *fs, struct pt_inode *in, int flags);
/* A malloc'd handle of the object open as `fd`, or NULL (none). */
struct pt_fhid *pt_fhid_of_fd(int fd);
/* fstat of `fd` (an O_PATH one too) and the id of the mount it is on.
 * @return 0 or -errno. */
int pt_stat_fd(int fd, struct stat *st, uint64_t *mnt_id);
int pt_stat_inode(struct pt_fs *fs, struct pt_inode *in, struct stat *st);
/* The inode's path below the source root ("" for the root) in buf.
 * @return 0 or -ENAMETOOLONG. */
int pt_path_of(struct pt_fs *fs, struct pt_inode *in, char *buf, size_t len);
/* The path below the source root of the object `in`, open as `fd`:
 * where the descriptor is now, else where it was found. */
int pt_path_of_open(struct pt_fs *fs, struct pt_inode *in, int fd, char *buf, size_t len);
/* The object now named `name` in `dir` (after a rename through the mount)
 * is found there from now on. */
void pt_inode_moved(struct pt_fs *fs, struct pt_inode *dir, const char *name);
/* Is the namespace provider to be asked for this request (a root caller)? */
bool pt_ns_answers(fuse_req_t req);
/* Look `name` up in `dir` (as whoever the thread acts as) and fill e with
 * one lookup reference taken.  @return 0 or -errno. */
int pt_do_lookup(struct pt_fs *fs, struct pt_inode *dir, const char *name,
		 struct fuse_entry_param *e);
/* The kernel's timeout for what the ns provider answers (pt_config). */
double pt_answer_timeout(struct pt_fs *fs);
/* The namespace provider's answer to that lookup (a lazy inode when new).
 * @return 0, -ENOENT (known absent), or PT_NS_UNKNOWN. */
int pt_ns_lookup(struct pt_fs *fs, struct pt_inode *dir, const char *name,
		 struct fuse_entry_param *e);
/* Tell a recorder that the source answered question q about `in` (or its
 * entry `name`).  */
void pt_ns_asked(struct pt_fs *fs, enum pt_ns_question q, struct pt_inode *in,
		 const char *name, const char *xname);
/* Take a lookup reference on the object open at `fd` (any open mode), just
 * created as `name` in `dir`, and fill e and *in.  @return 0 or -errno. */
int pt_lookup_fd(struct pt_fs *fs, int fd, struct pt_inode *dir, const char *name,
		 struct fuse_entry_param *e, struct pt_inode **in);
/* Operations (for pt_core). */
void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);

/* ---- pt_cred.c: acting as the caller ---- */
/* open_by_handle_at on the source (fs->mount_fd) with the daemon's
 * CAP_DAC_READ_SEARCH, also while the thread acts as a caller without
 * capabilities: the object is already known, only reopened.  @return the
 * descriptor or -errno. */
int pt_open_handle(int mount_fd, const struct pt_fhid *id, int flags);
/* Register `fd` with the kernel as the backing file of passthrough opens
 * (fuse_passthrough_open), with the credentials the thread acts with now
 * plus only the daemon's CAP_SYS_ADMIN (what the kernel asks of whoever
 * registers one): the kernel does the opens' I/O with those credentials.
 * @return the backing id (> 0) or -errno. */
int pt_backing_open(fuse_req_t req, int fd);
/* What pt_as_caller changed on this thread, undone by pt_as_self. */
struct pt_as {
	bool ids;                        /* fsuid/fsgid/groups/capabilities switched */
	bool umask;                      /* the thread's umask was set */
};
/* Make this worker thread act as the caller of `req`: its fsuid, fsgid and
 * supplementary groups (read from /proc for this request), no
 * capabilities unless it is root, and (with_umask) its umask.
 * @return 0, or -errno when the switch failed (the thread is then as
 * before; fail the request). */
int pt_as_caller(fuse_req_t req, struct pt_as *as, bool with_umask);
/* The same for a write on an open file: as the writer, reusing the groups
 * looked up at open when the writer is the process that opened it. */
int pt_as_writer(fuse_req_t req, struct pt_fh *fh, struct pt_as *as);
/* Back to the daemon's own identity.  Aborts the daemon if that fails:
 * a worker must never carry one request's identity into the next. */
void pt_as_self(struct pt_as *as);
/* Remember the caller of `req` (uid, gid, pid and, for a non-root caller,
 * the groups this thread holds now) in c.  @return 0 or -ENOMEM. */
int pt_caller_keep(fuse_req_t req, struct pt_caller *c);
void pt_caller_free(struct pt_caller *c);
/* Parse the "Groups:" line of a /proc/PID/status text.  @return the number
 * of groups (written to out when it fits in max), or -EINVAL when the line
 * is missing or malformed.  Pure: unit-tested. */
int pt_parse_status_groups(const char *text, size_t len, gid_t *out, size_t max);

/* ---- pt_record.c: the session record (for pt_inode, pt_handle, pt_file,
 * pt_dir, pt_resume, pt_core) ---- */
#define PT_NO_SLOT UINT64_MAX
struct yolo_err;
/* Open the record: a new one (fd -1), or the one a predecessor kept (fd,
 * then owned).  @return 0 or -errno. */
int pt_record_open(struct pt_fs *fs, int fd);
void pt_record_close(struct pt_fs *fs);
/* Can this daemon rebuild from the record?  @return 0 or -errno (err says
 * why: another layout version, an incomplete record, no INIT). */
int pt_record_check(struct pt_fs *fs, struct yolo_err *err);
/* Keep the kernel's INIT request (`request`) or the reply it got. */
void pt_record_init(struct pt_fs *fs, bool request, const void *bytes, size_t len);
const void *pt_record_init_bytes(const struct pt_fs *fs, bool request, size_t *len);
/* Nodes, under fs->itable_lock: a new one (its slot written, nodeid last),
 * its lookup count, its parent and name, gone (its slot freed); under
 * in->mu, its passthrough backing id; across exec, the descriptor of a
 * node without a handle. */
void pt_record_node_new(struct pt_fs *fs, struct pt_inode *in);
void pt_record_node_lookups(struct pt_fs *fs, const struct pt_inode *in);
void pt_record_node_moved(struct pt_fs *fs, const struct pt_inode *in);
void pt_record_node_gone(struct pt_fs *fs, struct pt_inode *in);
void pt_record_node_backing(struct pt_fs *fs, const struct pt_inode *in);
void pt_record_node_fd(struct pt_fs *fs, const struct pt_inode *in, int fd);
/* One node as recorded (nodeid 0: a free slot). */
struct pt_record_node {
	uint64_t nodeid, parent, nlookup, slot;
	dev_t dev;
	ino_t ino;
	mode_t type;
	int backing_id;
	int fd;
	struct pt_fhid fhid;
	char name[NAME_MAX + 1];
};
/* @return false past the last slot. */
bool pt_record_node_at(const struct pt_fs *fs, uint64_t i, struct pt_record_node *out);
/* One open handle as recorded (id 0: a free slot). */
struct pt_record_handle {
	uint64_t id, nodeid, slot;
	int flags;
	bool is_dir, backed, answered;
	int fd;
};
/* A new handle (h->id given), before the reply naming it; gone. */
void pt_record_handle_new(struct pt_fs *fs, struct pt_handle *h, const struct pt_record_handle *v);
void pt_record_handle_gone(struct pt_fs *fs, struct pt_handle *h);
void pt_record_handle_fd(struct pt_fs *fs, const struct pt_handle *h, int fd);
bool pt_record_handle_at(const struct pt_fs *fs, uint64_t i, struct pt_record_handle *out);
/* After rebuilding: the free slots, and ids never to give again. */
void pt_record_free_unused(struct pt_fs *fs);

#endif /* YOLO_PT_I_H */
