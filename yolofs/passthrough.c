/* passthrough.c - the FUSE pass-through core (prefix pt_): the inode table,
 * dirfd-relative access to the source tree (every object is reached from the
 * source directory descriptor opened before mounting, never through the
 * mountpoint), attributes, directories, xattrs, opens, reads and writes, and
 * the calls into the front end's hooks (passthrough.h).
 *
 * Objects are held as O_PATH descriptors keyed by (st_dev, st_ino); the FUSE
 * node id is the address of the inode object (the root is FUSE_ROOT_ID).
 * Attributes report the source st_ino, so inode numbers are stable.
 * Regular files are (re)opened through /proc/self/fd/N, a magic link that
 * does not walk the mountpoint.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include "passthrough.h"

/* ---- logging ---- */

int pt_log_threshold = PT_LOG_INFO;
bool pt_log_to_syslog;

void pt_log(enum pt_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	if ((int)lvl > pt_log_threshold)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (pt_log_to_syslog)
		syslog(prio[lvl], "%s", msg);
	else
		fprintf(stderr, "yolofs: %s: %s\n", names[lvl], msg);
}

#define PT_TRACE(...) \
	do { if (pt_log_threshold >= PT_LOG_DEBUG) pt_log(PT_LOG_DEBUG, __VA_ARGS__); } while (0)

/* ---- data ---- */

struct pt_inode {
	/* Immutable after creation. */
	int fd;                          /* O_PATH|O_NOFOLLOW descriptor of the source object */
	dev_t dev;
	ino_t ino;
	mode_t type;                     /* st_mode & S_IFMT */

	/* Protected by fs->itable_lock. */
	struct pt_inode *next;           /* hash chain */
	uint64_t nlookup;                /* kernel references; freed at 0 (never the root) */

	/* Protected by mu.  Lock order: mu before any lock taken by a hook;
	 * never hold fs->itable_lock while taking mu or vice versa. */
	pthread_mutex_t mu;
	unsigned nopen;                  /* open file handles */
	void *ipriv;                     /* hooks' per-inode state, valid while nopen > 0 */
	bool cache_known;                /* cstat describes what the kernel may have cached */
	off_t csize;
	struct timespec cmtime, cctime;
};

struct pt_fs {
	struct pt_config cfg;
	struct fuse_session *se;
	char root_path[PATH_MAX];        /* readlink of the source fd, for pt_relpath */
	size_t root_len;

	struct pt_inode root;            /* nodeid FUSE_ROOT_ID; fd is cfg.source_fd */

	pthread_mutex_t itable_lock;     /* protects the table and every inode's next/nlookup */

	/* Open handles, so the ones whose release never came (the daemon was
	 * stopped) are freed at exit.  Protected by handles_lock (a leaf lock). */
	pthread_mutex_t handles_lock;
	struct pt_handle *handles;
	struct pt_inode **buckets;
	size_t nbuckets;                 /* power of two */
	size_t ninodes;
};

/* Links every open file and directory handle into pt_fs.handles. */
struct pt_handle {
	struct pt_handle *prev, *next;
	bool is_dir;
};

/* One open regular file. */
struct pt_fh {
	struct pt_handle h;              /* first member */
	int fd;
	struct pt_inode *in;
	void *ipriv;                     /* copy of in->ipriv at open (stable until release) */
};

/* One open directory. */
struct pt_dir {
	struct pt_handle h;              /* first member */
	DIR *dp;
	off_t pos;                       /* offset of `ent` (or of the next readdir) */
	struct dirent *ent;              /* read but not yet returned, or NULL */
};

static struct pt_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pt_inode *inode_of(fuse_req_t req, fuse_ino_t n)
{
	if (n == FUSE_ROOT_ID)
		return &fs_of(req)->root;
	return (struct pt_inode *)(uintptr_t)n;
}

static fuse_ino_t nodeid_of(struct pt_fs *fs, struct pt_inode *in)
{
	return in == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

static struct pt_fh *fh_of(const struct fuse_file_info *fi)
{
	return (struct pt_fh *)(uintptr_t)fi->fh;
}

static void handle_add(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev = NULL;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

static void handle_del(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
}

static void proc_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* ---- per-thread state ---- */

static __thread pid_t cur_pid;           /* caller of the request being handled by a hook */

pid_t pt_current_pid(void)
{
	return cur_pid;
}


struct pt_tls {
	struct pt_readbuf rb;
};
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
	struct pt_tls *t = p;
	free(t->rb.scratch);
	free(t);
}

static void tls_init(void)
{
	pthread_key_create(&tls_key, tls_free);
}

static struct pt_tls *tls_get(void)
{
	pthread_once(&tls_once, tls_init);
	struct pt_tls *t = pthread_getspecific(tls_key);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (posix_memalign((void **)&t->rb.scratch, 4096, PT_MAX_READ) ||
	    pthread_setspecific(tls_key, t)) {
		free(t->rb.scratch);
		free(t);
		return NULL;
	}
	return t;
}

/* ---- inode table ---- */

static size_t hash_key(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
	return (size_t)(h ^ (h >> 29));
}

/* Called with itable_lock held. */
static void table_grow(struct pt_fs *fs)
{
	size_t n = fs->nbuckets * 2;
	struct pt_inode **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;                  /* keep the longer chains */
	for (size_t i = 0; i < fs->nbuckets; i++) {
		struct pt_inode *in = fs->buckets[i], *next;
		for (; in; in = next) {
			next = in->next;
			size_t b = hash_key(in->dev, in->ino) & (n - 1);
			in->next = nb[b];
			nb[b] = in;
		}
	}
	free(fs->buckets);
	fs->buckets = nb;
	fs->nbuckets = n;
}

/* Find the inode for `st` and take one lookup reference, or insert a new
 * one owning `fd`.  `fd` is closed when an existing inode is returned.
 * @return the inode or NULL (ENOMEM; fd closed). */
static struct pt_inode *inode_get(struct pt_fs *fs, int fd, const struct stat *st)
{
	if (st->st_dev == fs->root.dev && st->st_ino == fs->root.ino) {
		pthread_mutex_lock(&fs->itable_lock);
		fs->root.nlookup++;
		pthread_mutex_unlock(&fs->itable_lock);
		close(fd);
		return &fs->root;
	}
	pthread_mutex_lock(&fs->itable_lock);
	size_t b = hash_key(st->st_dev, st->st_ino) & (fs->nbuckets - 1);
	for (struct pt_inode *in = fs->buckets[b]; in; in = in->next) {
		if (in->dev == st->st_dev && in->ino == st->st_ino) {
			in->nlookup++;
			pthread_mutex_unlock(&fs->itable_lock);
			close(fd);
			return in;
		}
	}
	struct pt_inode *in = calloc(1, sizeof(*in));
	if (!in) {
		pthread_mutex_unlock(&fs->itable_lock);
		close(fd);
		return NULL;
	}
	in->fd = fd;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->type = st->st_mode & S_IFMT;
	in->nlookup = 1;
	pthread_mutex_init(&in->mu, NULL);
	in->next = fs->buckets[b];
	fs->buckets[b] = in;
	if (++fs->ninodes > fs->nbuckets * 2)
		table_grow(fs);
	pthread_mutex_unlock(&fs->itable_lock);
	return in;
}

static void inode_put(struct pt_fs *fs, struct pt_inode *in, uint64_t n)
{
	pthread_mutex_lock(&fs->itable_lock);
	if (in->nlookup < n) {
		pt_log(PT_LOG_WARN, "forget of %" PRIu64 " exceeds lookups of inode %ju",
		       n, (uintmax_t)in->ino);
		n = in->nlookup;
	}
	in->nlookup -= n;
	if (in->nlookup > 0 || in == &fs->root) {
		pthread_mutex_unlock(&fs->itable_lock);
		return;
	}
	size_t b = hash_key(in->dev, in->ino) & (fs->nbuckets - 1);
	for (struct pt_inode **pp = &fs->buckets[b]; *pp; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	fs->ninodes--;
	pthread_mutex_unlock(&fs->itable_lock);
	close(in->fd);
	pthread_mutex_destroy(&in->mu);
	free(in);
}

/* ---- relative paths ---- */

int pt_relpath(const struct pt_fs *fs, int fd, char *buf, size_t len)
{
	char pp[64], link[PATH_MAX];
	struct stat st;
	proc_path(pp, sizeof(pp), fd);
	ssize_t n = readlink(pp, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	if (fstat(fd, &st) == 0 && st.st_nlink == 0)
		return -ENOENT;
	const char *rel;
	if (fs->root_len == 1)
		rel = link + 1;          /* source is "/" */
	else if ((size_t)n > fs->root_len && memcmp(link, fs->root_path, fs->root_len) == 0 &&
		 link[fs->root_len] == '/')
		rel = link + fs->root_len + 1;
	else
		return -ENOENT;
	if (strlen(rel) + 1 > len)
		return -ENAMETOOLONG;
	strcpy(buf, rel);
	return 0;
}

/* ---- lookup and attributes ---- */

static int stat_inode(struct pt_inode *in, struct stat *st)
{
	if (fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static int do_lookup(struct pt_fs *fs, struct pt_inode *dir, const char *name,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = fs->cfg.timeout;
	e->entry_timeout = fs->cfg.timeout;
	int fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int saverr = errno;
		close(fd);
		return -saverr;
	}
	struct pt_inode *in = inode_get(fs, fd, &e->attr);
	if (!in)
		return -ENOMEM;
	e->ino = nodeid_of(fs, in);
	return 0;
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	PT_TRACE("lookup(%" PRIu64 ", %s)", (uint64_t)parent, name);
	int ret = do_lookup(fs_of(req), inode_of(req, parent), name, &e);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_put(fs_of(req), inode_of(req, ino), nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		inode_put(fs_of(req), inode_of(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int ret;
	if (fi && fi->fh && inode_of(req, ino)->type == S_IFREG)
		ret = fstat(fh_of(fi)->fd, &st) < 0 ? -errno : 0;
	else
		ret = stat_inode(inode_of(req, ino), &st);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, fs_of(req)->cfg.timeout);
}

/* Record the current state of an open file as what the kernel caches. */
static void note_cached(struct pt_inode *in, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return;
	pthread_mutex_lock(&in->mu);
	in->cache_known = true;
	in->csize = st.st_size;
	in->cmtime = st.st_mtim;
	in->cctime = st.st_ctim;
	pthread_mutex_unlock(&in->mu);
}

/* Run a content change bracketed by the hooks.  When the inode has no open
 * file (fh NULL), in->mu is held so the hooks' state cannot go away. */
struct modify {
	struct pt_fs *fs;
	struct pt_inode *in;
	void *ipriv;
	bool locked;
	enum pt_modify op;
	uint64_t off, len;
};

static void modify_begin(struct modify *m, struct pt_fs *fs, struct pt_inode *in,
			 struct pt_fh *fh, enum pt_modify op, uint64_t off, uint64_t len)
{
	*m = (struct modify){ .fs = fs, .in = in, .op = op, .off = off, .len = len };
	if (fh) {
		m->ipriv = fh->ipriv;
	} else {
		pthread_mutex_lock(&in->mu);
		m->locked = true;
		m->ipriv = in->nopen ? in->ipriv : NULL;
	}
	if (fs->cfg.hooks.modify_begin)
		fs->cfg.hooks.modify_begin(fs->cfg.hooks.ctx, m->ipriv, op, off, len);
}

static void modify_end(struct modify *m, int fd, int64_t result)
{
	struct pt_fs *fs = m->fs;
	if (fs->cfg.hooks.modify_end)
		fs->cfg.hooks.modify_end(fs->cfg.hooks.ctx, m->ipriv, m->op, m->off, m->len, fd,
					 result);
	if (m->locked)
		pthread_mutex_unlock(&m->in->mu);
	/* The kernel applied this change to its own cache; remember the new
	 * state so the next open may keep it. */
	if (fd >= 0 && result >= 0)
		note_cached(m->in, fd);
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct pt_fs *fs = fs_of(req);
	struct pt_inode *in = inode_of(req, ino);
	struct pt_fh *fh = fi && fi->fh && in->type == S_IFREG ? fh_of(fi) : NULL;
	char pp[64];
	int ret = 0;
	proc_path(pp, sizeof(pp), in->fd);

	if (valid & FUSE_SET_ATTR_MODE) {
		if (in->type == S_IFLNK)
			ret = -EOPNOTSUPP;
		else if ((fh ? fchmod(fh->fd, attr->st_mode) : chmod(pp, attr->st_mode)) < 0)
			ret = -errno;
		if (ret < 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			ret = -errno;
			goto out;
		}
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		struct modify m;
		int fd = fh ? fh->fd : -1;
		modify_begin(&m, fs, in, fh, PT_MOD_TRUNCATE, (uint64_t)attr->st_size, 0);
		if ((fh ? ftruncate(fh->fd, attr->st_size) : truncate(pp, attr->st_size)) < 0)
			ret = -errno;
		modify_end(&m, fd, ret);
		if (ret < 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		int r;
		if (in->type == S_IFLNK) {
			r = utimensat(in->fd, "", tv, AT_EMPTY_PATH);
		} else if (in->type != S_IFREG) {
			r = utimensat(AT_FDCWD, pp, tv, 0);
		} else {
			/* Bracketed like a content change so the hooks can tell a
			 * touch (nova touches its base files) from a modification. */
			struct modify m;
			struct stat before, after;
			modify_begin(&m, fs, in, fh, PT_MOD_TIMES, 0, 0);
			bool known = stat_inode(in, &before) == 0;
			r = fh ? futimens(fh->fd, tv) : utimensat(AT_FDCWD, pp, tv, 0);
			int saved = errno;
			char rel[PATH_MAX];
			if (r == 0 && known && fs->cfg.hooks.times_set && stat_inode(in, &after) == 0 &&
			    pt_relpath(fs, in->fd, rel, sizeof(rel)) == 0)
				fs->cfg.hooks.times_set(fs->cfg.hooks.ctx, rel, &before, &after);
			modify_end(&m, fh ? fh->fd : -1, r < 0 ? -saved : 0);
			errno = saved;
		}
		if (r < 0) {
			ret = -errno;
			goto out;
		}
	}
out:
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	pt_getattr(req, ino, fi);
}

static void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode_of(req, ino)->fd, "", buf, sizeof(buf));
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	if (fstatvfs(inode_of(req, ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- creating and removing names ---- */

/* Give a new object the caller's owner (the daemon runs as root). */
static int chown_new(fuse_req_t req, struct pt_inode *dir, const char *name)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->uid == geteuid() && c->gid == getegid())
		return 0;
	struct stat dst;
	gid_t gid = c->gid;
	if (stat_inode(dir, &dst) == 0 && (dst.st_mode & S_ISGID))
		gid = (gid_t)-1;         /* setgid directory: keep the inherited group */
	if (fchownat(dir->fd, name, c->uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static void reply_new_entry(fuse_req_t req, struct pt_inode *dir, const char *name, int ret)
{
	struct fuse_entry_param e;
	if (ret == 0)
		ret = chown_new(req, dir, name);
	if (ret == 0)
		ret = do_lookup(fs_of(req), dir, name, &e);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct pt_inode *dir = inode_of(req, parent);
	int ret = mknodat(dir->fd, name, mode, rdev) < 0 ? -errno : 0;
	reply_new_entry(req, dir, name, ret);
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct pt_inode *dir = inode_of(req, parent);
	int ret = mkdirat(dir->fd, name, mode) < 0 ? -errno : 0;
	reply_new_entry(req, dir, name, ret);
}

static void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct pt_inode *dir = inode_of(req, parent);
	int ret = symlinkat(link, dir->fd, name) < 0 ? -errno : 0;
	reply_new_entry(req, dir, name, ret);
}

static void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct pt_inode *in = inode_of(req, ino), *dir = inode_of(req, newparent);
	int ret = 0;
	if (linkat(in->fd, "", dir->fd, newname, AT_EMPTY_PATH) < 0) {
		char pp[64];
		proc_path(pp, sizeof(pp), in->fd);
		if (in->type == S_IFLNK || linkat(AT_FDCWD, pp, dir->fd, newname, AT_SYMLINK_FOLLOW) < 0)
			ret = -errno;
	}
	struct fuse_entry_param e;
	if (ret == 0)
		ret = do_lookup(fs_of(req), dir, newname, &e);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(inode_of(req, parent)->fd, name, 0) < 0 ? errno : 0);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(inode_of(req, parent)->fd, name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct pt_fs *fs = fs_of(req);
	int dfd = inode_of(req, parent)->fd, ndfd = inode_of(req, newparent)->fd;
	if (renameat2(dfd, name, ndfd, newname, flags) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (fs->cfg.hooks.rename) {
		struct stat st;
		if (fstatat(ndfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
			fs->cfg.hooks.rename(fs->cfg.hooks.ctx, st.st_ino, newname);
	}
	fuse_reply_err(req, 0);
}

/* ---- directories ---- */

static struct pt_dir *dir_of(const struct fuse_file_info *fi)
{
	return (struct pt_dir *)(uintptr_t)fi->fh;
}

static void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int fd = openat(inode_of(req, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int saverr = errno;
		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, saverr);
		return;
	}
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 0;
	d->h.is_dir = true;
	handle_add(fs_of(req), &d->h);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_del(fs_of(req), &d->h);
		closedir(d->dp);
		free(d);
	}
}

static bool is_dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct pt_fs *fs = fs_of(req);
	struct pt_dir *d = dir_of(fi);
	struct pt_inode *dir = inode_of(req, ino);
	char *buf = malloc(size);
	size_t used = 0;
	int ret = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->pos) {
		seekdir(d->dp, off);
		d->ent = NULL;
		d->pos = off;
	}
	for (;;) {
		if (!d->ent) {
			errno = 0;
			d->ent = readdir(d->dp);
			if (!d->ent) {
				if (errno)
					ret = -errno;
				break;
			}
		}
		const char *name = d->ent->d_name;
		off_t next = d->ent->d_off;
		size_t n;
		if (plus) {
			struct fuse_entry_param e;
			if (is_dot(name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->ent->d_ino;
				e.attr.st_mode = (mode_t)d->ent->d_type << 12;
			} else {
				ret = do_lookup(fs, dir, name, &e);
				if (ret == -ENOENT) {   /* removed since readdir */
					ret = 0;
					d->ent = NULL;
					d->pos = next;
					continue;
				}
				if (ret < 0)
					break;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
			if (n > size - used) {
				if (e.ino)
					inode_put(fs, inode_of(req, e.ino), 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = d->ent->d_ino,
					   .st_mode = (mode_t)d->ent->d_type << 12 };
			n = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
			if (n > size - used)
				break;
		}
		used += n;
		d->ent = NULL;
		d->pos = next;
	}
	/* An error after some entries were returned is reported next time. */
	if (ret < 0 && used == 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = dir_of(fi);
	handle_del(fs_of(req), &d->h);
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd(dir_of(fi)->dp);
	int r = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

/* ---- open files ---- */

/* Flags for the source descriptor: the kernel supplies every offset (so no
 * O_APPEND) and does its own O_DIRECT handling; the daemon reads through
 * its own aligned buffers. */
static int source_flags(int flags)
{
	return (flags & ~(O_APPEND | O_DIRECT | O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY)) |
	       O_CLOEXEC;
}

/* Drop an open file handle: the inode's open count, the hooks' release
 * (with `last` when it was the inode's last), the descriptor. */
static void close_handle(struct pt_fs *fs, struct pt_fh *fh)
{
	struct pt_inode *in = fh->in;
	handle_del(fs, &fh->h);
	pthread_mutex_lock(&in->mu);
	bool last = --in->nopen == 0;
	if (fs->cfg.hooks.release)
		fs->cfg.hooks.release(fs->cfg.hooks.ctx, &in->ipriv, last);
	if (last)
		in->ipriv = NULL;
	pthread_mutex_unlock(&in->mu);
	close(fh->fd);
	free(fh);
}

/* Finish an open: call the hook, decide caching, reply.  Called with
 * in->mu held and releases it; `fd` is owned. */
static void finish_open(fuse_req_t req, struct pt_inode *in, int fd, int flags,
			struct fuse_file_info *fi, const struct fuse_entry_param *e)
{
	struct pt_fs *fs = fs_of(req);
	struct stat st;
	char rel[PATH_MAX];
	int ret = 0;
	struct pt_fh *fh = calloc(1, sizeof(*fh));
	if (!fh) {
		ret = -ENOMEM;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto fail;
	}
	fh->fd = fd;
	fh->in = in;
	fi->direct_io = fs->cfg.force_direct_io;
	fi->keep_cache = fs->cfg.keep_cache && in->cache_known && in->csize == st.st_size &&
			 in->cmtime.tv_sec == st.st_mtim.tv_sec &&
			 in->cmtime.tv_nsec == st.st_mtim.tv_nsec &&
			 in->cctime.tv_sec == st.st_ctim.tv_sec &&
			 in->cctime.tv_nsec == st.st_ctim.tv_nsec;
	if (fs->cfg.hooks.open) {
		struct pt_open_info info = {
			.relpath = pt_relpath(fs, fd, rel, sizeof(rel)) == 0 ? rel : NULL,
			.fd = fd, .st = &st, .flags = flags, .first = in->nopen == 0,
			.se = fs->se, .nodeid = nodeid_of(fs, in),
		};
		if (info.first)
			in->ipriv = NULL;
		ret = fs->cfg.hooks.open(fs->cfg.hooks.ctx, &info, &in->ipriv, fi);
		if (ret < 0) {
			if (info.first && fs->cfg.hooks.release)
				fs->cfg.hooks.release(fs->cfg.hooks.ctx, &in->ipriv, true);
			if (info.first)
				in->ipriv = NULL;
			goto fail;
		}
	}
	in->nopen++;
	fh->ipriv = in->ipriv;
	in->cache_known = true;
	in->csize = st.st_size;
	in->cmtime = st.st_mtim;
	in->cctime = st.st_ctim;
	pthread_mutex_unlock(&in->mu);
	fi->fh = (uintptr_t)fh;
	fi->noflush = 1;
	handle_add(fs, &fh->h);
	PT_TRACE("open ino %ju fd %d keep_cache %d direct_io %d", (uintmax_t)in->ino, fd,
		 fi->keep_cache, fi->direct_io);
	if (e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi))
		close_handle(fs, fh);    /* interrupted: the kernel will not send release */
	return;
fail:
	pthread_mutex_unlock(&in->mu);
	close(fd);
	free(fh);
	if (e)
		inode_put(fs, in, 1);
	fuse_reply_err(req, -ret);
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = fs_of(req);
	struct pt_inode *in = inode_of(req, ino);
	char pp[64];
	proc_path(pp, sizeof(pp), in->fd);
	bool trunc = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_lock(&in->mu);
	if (trunc && fs->cfg.hooks.modify_begin)
		fs->cfg.hooks.modify_begin(fs->cfg.hooks.ctx, in->nopen ? in->ipriv : NULL,
					   PT_MOD_TRUNCATE, 0, 0);
	int fd = open(pp, source_flags(fi->flags));
	int saverr = errno;
	if (trunc && fs->cfg.hooks.modify_end)
		fs->cfg.hooks.modify_end(fs->cfg.hooks.ctx, in->nopen ? in->ipriv : NULL,
					 PT_MOD_TRUNCATE, 0, 0, fd, fd < 0 ? -saverr : 0);
	if (fd < 0) {
		pthread_mutex_unlock(&in->mu);
		fuse_reply_err(req, saverr);
		return;
	}
	finish_open(req, in, fd, fi->flags, fi, NULL);
}

static void pt_create_file(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			   struct fuse_file_info *fi)
{
	struct pt_fs *fs = fs_of(req);
	struct pt_inode *dir = inode_of(req, parent);
	struct fuse_entry_param e;
	int fd = openat(dir->fd, name, source_flags(fi->flags) | O_CREAT | (fi->flags & O_EXCL),
			mode);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	int ret = chown_new(req, dir, name);
	if (ret == 0)
		ret = do_lookup(fs, dir, name, &e);
	if (ret < 0) {
		close(fd);
		fuse_reply_err(req, -ret);
		return;
	}
	struct pt_inode *in = inode_of(req, e.ino);
	if (in->type != S_IFREG) {
		close(fd);
		inode_put(fs, in, 1);
		fuse_reply_err(req, EISDIR);
		return;
	}
	pthread_mutex_lock(&in->mu);
	finish_open(req, in, fd, fi->flags, fi, &e);
}

static void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	close_handle(fs_of(req), fh_of(fi));
	fuse_reply_err(req, 0);
}

static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = fh_of(fi)->fd;
	int r = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

/* Read [off, off+size) from the source into buf.  @return bytes (short
 * only at EOF) or -errno. */
ssize_t pt_pread_full(int fd, char *buf, size_t size, off_t off)
{
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, off + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return got ? (ssize_t)got : -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct pt_fs *fs = fs_of(req);
	struct pt_fh *fh = fh_of(fi);
	struct pt_tls *t = tls_get();
	if (!t) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (size > PT_MAX_READ)
		size = PT_MAX_READ;
	PT_TRACE("read ino %ju off %jd size %zu", (uintmax_t)fh->in->ino, (intmax_t)off, size);
	if (fs->cfg.hooks.read) {
		t->rb.cnt = 0;
		t->rb.hold = NULL;
		cur_pid = fuse_req_ctx(req)->pid;
		int ret = fs->cfg.hooks.read(fs->cfg.hooks.ctx, fh->ipriv, fh->fd, (uint64_t)off,
					     size, &t->rb);
		cur_pid = 0;
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else if (ret == 0)
			fuse_reply_iov(req, t->rb.iov, t->rb.cnt);
		if (t->rb.hold && fs->cfg.hooks.read_done)
			fs->cfg.hooks.read_done(fs->cfg.hooks.ctx, t->rb.hold);
		if (ret <= 0)
			return;
	}
	if (fs->cfg.splice) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = fh->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	ssize_t n = pt_pread_full(fh->fd, t->rb.scratch, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, t->rb.scratch, (size_t)n);
}

static void pt_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct pt_fh *fh = fh_of(fi);
	struct modify m;
	modify_begin(&m, fs_of(req), fh->in, fh, PT_MOD_WRITE, (uint64_t)off, size);
	size_t done = 0;
	int ret = 0;
	while (done < size) {
		ssize_t n = pwrite(fh->fd, buf + done, size - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		done += (size_t)n;
	}
	modify_end(&m, fh->fd, done ? (int64_t)done : ret);
	if (done == 0 && ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, done);
}

static void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct pt_fh *fh = fh_of(fi);
	struct modify m;
	modify_begin(&m, fs_of(req), fh->in, fh, PT_MOD_FALLOCATE, (uint64_t)off, (uint64_t)len);
	int ret = fallocate(fh->fd, mode, off, len) < 0 ? -errno : 0;
	modify_end(&m, fh->fd, ret);
	fuse_reply_err(req, -ret);
}

static void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct pt_fh *in = fh_of(fi_in), *out = fh_of(fi_out);
	struct modify m;
	modify_begin(&m, fs_of(req), out->in, out, PT_MOD_COPY, (uint64_t)off_out, len);
	ssize_t n = copy_file_range(in->fd, &off_in, out->fd, &off_out, len, (unsigned)flags);
	int saverr = errno;
	modify_end(&m, out->fd, n < 0 ? -saverr : n);
	if (n < 0)
		fuse_reply_err(req, saverr);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t r = lseek(fh_of(fi)->fd, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

/* ---- extended attributes ---- */

/* getxattr (name) or listxattr (name NULL) of `pp` and the reply: the size
 * alone when the kernel asks with size 0, else the value or list. */
static void reply_xattr_query(fuse_req_t req, const char *pp, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = name ? getxattr(pp, name, buf, size) : listxattr(pp, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Symlinks cannot be reached through /proc/self/fd for xattrs; they are
 * reported as having none (overlayfs only needs xattrs on dirs and files). */
static void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct pt_inode *in = inode_of(req, ino);
	char pp[64];
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	proc_path(pp, sizeof(pp), in->fd);
	reply_xattr_query(req, pp, name, size);
}

static void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct pt_inode *in = inode_of(req, ino);
	char pp[64];
	if (in->type == S_IFLNK) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	proc_path(pp, sizeof(pp), in->fd);
	reply_xattr_query(req, pp, NULL, size);
}

static void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct pt_inode *in = inode_of(req, ino);
	char pp[64];
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, EPERM);
		return;
	}
	proc_path(pp, sizeof(pp), in->fd);
	fuse_reply_err(req, setxattr(pp, name, value, size, flags) < 0 ? errno : 0);
}

static void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct pt_inode *in = inode_of(req, ino);
	char pp[64];
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	proc_path(pp, sizeof(pp), in->fd);
	fuse_reply_err(req, removexattr(pp, name) < 0 ? errno : 0);
}

/* ---- session ---- */

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct pt_fs *fs = userdata;
	unsigned splice = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ;
	if (fs->cfg.splice)
		conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	else
		conn->want &= ~splice;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->max_readahead = fs->cfg.max_readahead;
	conn->max_read = PT_MAX_READ;    /* must equal -o max_read (main adds it) */
	pt_log(PT_LOG_DEBUG, "init: proto %u.%u max_write %u max_readahead %u want 0x%x",
	       conn->proto_major, conn->proto_minor, conn->max_write, conn->max_readahead,
	       conn->want);
}

int pt_create(struct pt_fs **out, const struct pt_config *cfg)
{
	struct pt_fs *fs = calloc(1, sizeof(*fs));
	struct stat st;
	char pp[64];
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	if (fstat(cfg->source_fd, &st) < 0) {
		int saverr = errno;
		free(fs);
		return -saverr;
	}
	if (!S_ISDIR(st.st_mode)) {
		free(fs);
		return -ENOTDIR;
	}
	proc_path(pp, sizeof(pp), cfg->source_fd);
	ssize_t n = readlink(pp, fs->root_path, sizeof(fs->root_path) - 1);
	if (n <= 0) {
		int saverr = n < 0 ? errno : EINVAL;
		free(fs);
		return -saverr;
	}
	fs->root_path[n] = '\0';
	fs->root_len = (size_t)n;
	fs->root.fd = cfg->source_fd;
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = S_IFDIR;
	fs->root.nlookup = 2;
	pthread_mutex_init(&fs->root.mu, NULL);
	pthread_mutex_init(&fs->itable_lock, NULL);
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->nbuckets = 1024;
	fs->buckets = calloc(fs->nbuckets, sizeof(*fs->buckets));
	if (!fs->buckets) {
		free(fs);
		return -ENOMEM;
	}
	*out = fs;
	return 0;
}

void pt_set_session(struct pt_fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

/* Does a /proc/self/mountinfo path field (space, tab, newline and backslash
 * written as \ooo) name `path`? */
static bool mountinfo_path_is(const char *field, const char *path)
{
	while (*field) {
		int c = (unsigned char)*field;
		if (c == '\\' && field[1] >= '0' && field[1] <= '3' && field[2] >= '0' &&
		    field[2] <= '7' && field[3] >= '0' && field[3] <= '7') {
			c = (field[1] - '0') << 6 | (field[2] - '0') << 3 | (field[3] - '0');
			field += 4;
		} else {
			field++;
		}
		if (c != (unsigned char)*path++)
			return false;
	}
	return *path == '\0';
}

int pt_set_readahead(const char *mountpoint, uint32_t bytes)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	unsigned maj = 0, min = 0;
	bool found = false;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE ...": the
	 * last fuse* line for the mountpoint is the mount just made (it may
	 * stack over the source directory's own mount). */
	while (getline(&line, &cap, f) > 0) {
		unsigned a, b;
		int mp = 0, mpend = 0;
		if (sscanf(line, "%*u %*u %u:%u %*s %n%*s%n", &a, &b, &mp, &mpend) != 2 || !mpend ||
		    !line[mpend])
			continue;
		line[mpend] = '\0';
		const char *sep = strstr(line + mpend + 1, " - ");
		if (sep && strncmp(sep + 3, "fuse", 4) == 0 && mountinfo_path_is(line + mp, mountpoint)) {
			maj = a;
			min = b;
			found = true;
		}
	}
	free(line);
	fclose(f);
	if (!found)
		return -ENOENT;
	char path[64], val[16];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	int len = snprintf(val, sizeof(val), "%u\n", bytes >> 10);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, val, (size_t)len);
	int ret = w == len ? 0 : w < 0 ? -errno : -EIO;
	close(fd);
	return ret;
}

void pt_destroy(struct pt_fs *fs)
{
	if (!fs)
		return;
	/* Handles whose release never arrived (the session has ended). */
	while (fs->handles) {
		struct pt_handle *h = fs->handles;
		fs->handles = h->next;
		if (h->is_dir) {
			struct pt_dir *d = (struct pt_dir *)h;
			closedir(d->dp);
			free(d);
			continue;
		}
		struct pt_fh *fh = (struct pt_fh *)h;
		bool last = --fh->in->nopen == 0;
		if (fs->cfg.hooks.release)
			fs->cfg.hooks.release(fs->cfg.hooks.ctx, &fh->in->ipriv, last);
		close(fh->fd);
		free(fh);
	}
	for (size_t i = 0; i < fs->nbuckets; i++) {
		struct pt_inode *in = fs->buckets[i], *next;
		for (; in; in = next) {
			next = in->next;
			close(in->fd);
			pthread_mutex_destroy(&in->mu);
			free(in);
		}
	}
	free(fs->buckets);
	close(fs->root.fd);
	free(fs);
}

static const struct fuse_lowlevel_ops pt_lowlevel_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.open = pt_open,
	.create = pt_create_file,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.fallocate = pt_fallocate,
	.copy_file_range = pt_copy_file_range,
	.lseek = pt_lseek,
	.statfs = pt_statfs,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.setxattr = pt_setxattr,
	.removexattr = pt_removexattr,
};

const struct fuse_lowlevel_ops *pt_ops(void)
{
	return &pt_lowlevel_ops;
}
