/* pt_inode.c - the core's inodes: the table of source objects known to the
 * kernel, keyed by (st_dev, st_ino) and told apart by their file handles
 * (an inode number is reused as soon as it is freed); the FUSE node id is
 * the address of the inode object, the root is FUSE_ROOT_ID.  Their O_PATH
 * descriptors (pt_fd), opened again by handle or by name when needed and
 * kept open up to a bound; their paths below the source root; lookups (by
 * the source as the caller, or answered by the namespace provider) and
 * forget.  Attributes are the source's own (its st_ino too, so inode
 * numbers are stable). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pt_i.h"

static uint64_t hash_key(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
	return h ^ (h >> 29);
}

int pt_stat_fd(int fd, struct stat *st, uint64_t *mnt_id)
{
	struct statx x;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID,
		  &x) < 0)
		return -errno;
	*st = (struct stat){
		.st_dev = makedev(x.stx_dev_major, x.stx_dev_minor),
		.st_ino = x.stx_ino, .st_mode = x.stx_mode, .st_nlink = x.stx_nlink,
		.st_uid = x.stx_uid, .st_gid = x.stx_gid,
		.st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor),
		.st_size = (off_t)x.stx_size, .st_blksize = x.stx_blksize,
		.st_blocks = (blkcnt_t)x.stx_blocks,
		.st_atim = { x.stx_atime.tv_sec, x.stx_atime.tv_nsec },
		.st_mtim = { x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec },
		.st_ctim = { x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec },
	};
	*mnt_id = (x.stx_mask & STATX_MNT_ID) ? x.stx_mnt_id : UINT64_MAX;
	return 0;
}

/* A copy of `id` as small as its length, or NULL (none, or ENOMEM). */
static struct pt_fhid *fhid_dup(const struct pt_fhid *id)
{
	if (!id || !id->len)
		return NULL;
	struct pt_fhid *c = malloc(offsetof(struct pt_fhid, bytes) + id->len);
	if (c) {
		c->type = id->type;
		c->len = id->len;
		memcpy(c->bytes, id->bytes, id->len);
	}
	return c;
}

struct pt_fhid *pt_fhid_of_fd(int fd)
{
	struct pt_fhid id;
	pt_fhid_of(fd, &id);
	return fhid_dup(&id);
}

/* Is `in` the object (st, id)?  An inode without a handle holds its
 * descriptor, so its inode number cannot have been reused. */
static bool is_object(const struct pt_inode *in, const struct stat *st, const struct pt_fhid *id)
{
	if (in->dev != st->st_dev || in->ino != st->st_ino)
		return false;
	return in->fhid ? pt_fhid_equal(in->fhid, id) : !(id && id->len);
}

/* The inode table (itable_lock held): (dev, ino) -> inodes, items their
 * addresses; several inodes of one (dev, ino) are told apart by handle. */
struct object_key {
	const struct stat *st;
	const struct pt_fhid *id;
};

static struct pt_inode *inode_at(uint64_t item)
{
	return (struct pt_inode *)(uintptr_t)item;
}

static bool inode_is(const void *ctx, uint64_t item, const void *key)
{
	const struct object_key *k = key;
	(void)ctx;
	return is_object(inode_at(item), k->st, k->id);
}

static struct pt_inode *table_find(struct pt_fs *fs, const struct stat *st,
				   const struct pt_fhid *id)
{
	struct object_key k = { st, id };
	uint64_t item, hash = hash_key(st->st_dev, st->st_ino);
	return yhash_find(&fs->inodes, hash, inode_is, NULL, &k, &item) ? inode_at(item) : NULL;
}

static bool nodeid_is(const void *ctx, uint64_t item, const void *key)
{
	(void)ctx;
	return inode_at(item)->nodeid == *(const fuse_ino_t *)key;
}

struct pt_inode *pt_inode_by_id(struct pt_fs *fs, fuse_ino_t n)
{
	uint64_t item;
	if (n == FUSE_ROOT_ID)
		return &fs->root;
	pthread_mutex_lock(&fs->itable_lock);
	bool found = yhash_find(&fs->nodes, pt_id_hash(n), nodeid_is, NULL, &n, &item);
	pthread_mutex_unlock(&fs->itable_lock);
	return found ? inode_at(item) : NULL;
}

struct pt_inode *pt_inode_of(fuse_req_t req, fuse_ino_t n)
{
	struct pt_inode *in = pt_inode_by_id(pt_fs_of(req), n);
	if (!in)
		ylog(YLOG_ERR, "the kernel named an inode the daemon does not have (%" PRIu64 ")",
		     (uint64_t)n);
	return in;
}

/* Give the inode the descriptor `fd` (owned) if it has none open and may
 * keep one; else close it.  Only a descriptor on the source's own mount is
 * kept: one through another mount would keep that mount busy. */
static void fd_offer(struct pt_fs *fs, struct pt_inode *in, int fd, uint64_t mnt_id)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&fs->fd_lock);
	if (in->fd < 0 && mnt_id == fs->source_mnt && fs->fds_kept < fs->fds_max) {
		in->fd = fd;
		in->fd_kept = true;
		fs->fds_kept++;
		fd = -1;
	}
	pthread_mutex_unlock(&fs->fd_lock);
	if (fd >= 0)
		close(fd);
}

/* Find the inode of the object (st, id) and take one lookup reference, or
 * insert a new one, found as `name` in `parent` (which it then holds a
 * reference to).  `fd` (owned; -1 for an object known from an answer),
 * on mount `mnt_id`, may be kept as its descriptor; an object without a
 * handle must come with one.  @return the inode or NULL (ENOMEM or no way
 * to open it again; fd closed). */
static struct pt_inode *inode_get(struct pt_fs *fs, int fd, uint64_t mnt_id,
				  const struct stat *st, const struct pt_fhid *id,
				  struct pt_inode *parent, const char *name)
{
	pthread_mutex_lock(&fs->itable_lock);
	if (st->st_dev == fs->root.dev && st->st_ino == fs->root.ino) {
		fs->root.nlookup++;
		pthread_mutex_unlock(&fs->itable_lock);
		if (fd >= 0)
			close(fd);
		return &fs->root;
	}
	struct pt_inode *in = table_find(fs, st, id);
	if (in) {
		in->nlookup++;
		pt_record_node_lookups(fs, in);
		pthread_mutex_unlock(&fs->itable_lock);
		fd_offer(fs, in, fd, mnt_id);
		return in;
	}
	in = calloc(1, sizeof(*in));
	char *copy = strdup(name ? name : "");
	struct pt_fhid *fhid = fhid_dup(id);
	if (in)
		in->nodeid = fs->next_nodeid + 1;
	bool added = in && copy && (fhid || fd >= 0) &&
		     yhash_add(&fs->nodes, pt_id_hash(in->nodeid), (uintptr_t)in) == 0;
	if (added && yhash_add(&fs->inodes, hash_key(st->st_dev, st->st_ino), (uintptr_t)in) < 0) {
		yhash_remove(&fs->nodes, pt_id_hash(in->nodeid), (uintptr_t)in);
		added = false;
	}
	if (!added) {
		pthread_mutex_unlock(&fs->itable_lock);
		if (fd >= 0)
			close(fd);
		free(in);
		free(copy);
		free(fhid);
		return NULL;
	}
	fs->next_nodeid = in->nodeid;
	in->fd = -1;
	in->fhid = fhid;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->type = st->st_mode & S_IFMT;
	in->nlookup = 1;
	in->name = copy;
	if ((in->parent = parent)) {
		parent->nlookup++;
		pt_record_node_lookups(fs, parent);
	}
	pt_record_node_new(fs, in);
	pthread_mutex_init(&in->mu, NULL);
	pthread_mutex_unlock(&fs->itable_lock);
	if (fhid) {
		fd_offer(fs, in, fd, mnt_id);
	} else {
		in->fd = fd;             /* its only way back to the object */
		in->fd_kept = true;
	}
	return in;
}

static void inode_free(struct pt_fs *fs, struct pt_inode *in)
{
	if (in->fd >= 0)
		close(in->fd);
	if (in->fd_kept && in->fhid) {
		pthread_mutex_lock(&fs->fd_lock);
		fs->fds_kept--;
		pthread_mutex_unlock(&fs->fd_lock);
	}
	pthread_mutex_destroy(&in->mu);
	free(in->fhid);
	free(in->name);
	free(in);
}

void pt_inode_put(struct pt_fs *fs, struct pt_inode *in, uint64_t n)
{
	/* NULL: a node id the daemon does not have (pt_inode_of logged it). */
	/* Freeing an inode drops the reference it held on its parent, which
	 * may free that one in turn. */
	while (in) {
		pthread_mutex_lock(&fs->itable_lock);
		if (in->nlookup < n) {
			ylog(YLOG_WARN, "forget of %" PRIu64 " exceeds lookups of inode %ju", n,
			     (uintmax_t)in->ino);
			n = in->nlookup;
		}
		in->nlookup -= n;
		pt_record_node_lookups(fs, in);
		if (in->nlookup > 0 || in == &fs->root) {
			pthread_mutex_unlock(&fs->itable_lock);
			return;
		}
		pt_record_node_gone(fs, in);
		yhash_remove(&fs->inodes, hash_key(in->dev, in->ino), (uintptr_t)in);
		yhash_remove(&fs->nodes, pt_id_hash(in->nodeid), (uintptr_t)in);
		struct pt_inode *parent = in->parent;
		pthread_mutex_unlock(&fs->itable_lock);
		inode_free(fs, in);
		in = parent;
		n = 1;
	}
}

void pt_free_inodes(struct pt_fs *fs)
{
	uint64_t item;
	for (uint32_t pos = 0; yhash_next(&fs->inodes, &pos, &item);)
		inode_free(fs, inode_at(item));
	yhash_free(&fs->inodes);
	yhash_free(&fs->nodes);
}

/* Open `name` in directory `dir` as an O_PATH descriptor (as whoever the
 * thread acts as: resolving it checks search permission on dir).
 * @return the descriptor or -errno. */
static int open_child(struct pt_fs *fs, struct pt_inode *dir, const char *name)
{
	int dfd = pt_fd(fs, dir);
	if (dfd < 0)
		return dfd;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int saverr = errno;
	pt_fd_put(fs, dir);
	return fd < 0 ? -saverr : fd;
}

/* Open the object of `in` again through its name, from its parent's
 * descriptor, into *mnt_id the mount it is on: an object on another file
 * system than the source root's (open_by_handle_at cannot reach it without
 * keeping its mount busy), and a directory (open_by_handle_at reconnects a
 * directory to its root by reading each parent's entries until it finds
 * the name, evicted directory blocks included: a cold container start read
 * 32 directory blocks more than by name).  @return an O_PATH descriptor or
 * -ESTALE when the name holds another object (its handle tells, not only
 * its inode number). */
static int reopen_by_name(struct pt_fs *fs, struct pt_inode *in, uint64_t *mnt_id)
{
	char name[NAME_MAX + 1];
	pthread_mutex_lock(&fs->itable_lock);
	struct pt_inode *parent = in->parent;
	snprintf(name, sizeof(name), "%s", in->name);
	pthread_mutex_unlock(&fs->itable_lock);
	if (!parent)
		return -ESTALE;
	int fd = open_child(fs, parent, name);
	if (fd < 0)
		return fd == -ENOENT ? -ESTALE : fd;
	struct stat st;
	struct pt_fhid id;
	pt_fhid_of(fd, &id);
	if (pt_stat_fd(fd, &st, mnt_id) < 0 || !is_object(in, &st, &id)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* Make `fd` (just opened, on mount `mnt_id`) the inode's descriptor unless
 * another thread made one first, and take a use of it.  A node without a
 * handle keeps it for life (its only way back to its object).
 * @return the inode's descriptor. */
static int install_fd(struct pt_fs *fs, struct pt_inode *in, int fd, uint64_t mnt_id)
{
	int extra = -1;
	pthread_mutex_lock(&fs->fd_lock);
	if (in->fd >= 0) {
		extra = fd;              /* another thread opened it first */
		fd = in->fd;
	} else if (!in->fhid) {
		in->fd = fd;
		in->fd_kept = true;
		in->lost_fd = false;
	} else {
		in->fd = fd;
		if (mnt_id == fs->source_mnt && fs->fds_kept < fs->fds_max) {
			in->fd_kept = true;
			fs->fds_kept++;
		}
	}
	in->fd_users++;
	pthread_mutex_unlock(&fs->fd_lock);
	if (extra >= 0)
		close(extra);
	return fd;
}

/* A node without a handle taken over after a crash: its descriptor died
 * with the old daemon.  Opened again by name (told apart by device and
 * inode number only) and kept, as at its lookup. */
static int reopen_lost(struct pt_fs *fs, struct pt_inode *in)
{
	uint64_t mnt_id;
	int fd = reopen_by_name(fs, in, &mnt_id);
	return fd < 0 ? fd : install_fd(fs, in, fd, mnt_id);
}

int pt_fd(struct pt_fs *fs, struct pt_inode *in)
{
	pthread_mutex_lock(&fs->fd_lock);
	int fd = in->fd;
	if (fd >= 0)
		in->fd_users++;
	pthread_mutex_unlock(&fs->fd_lock);
	if (fd >= 0)
		return fd;
	if (!in->fhid)
		return in->lost_fd ? reopen_lost(fs, in) : -ESTALE;
	/* That very object, wherever it is now, or ESTALE once it is gone
	 * (never another file that took its inode number): by handle, or by
	 * name checked against the handle. */
	bool on_source = in->dev == fs->root.dev;
	uint64_t mnt_id = fs->source_mnt;
	fd = on_source && in->type != S_IFDIR ? -ESTALE : reopen_by_name(fs, in, &mnt_id);
	if (fd < 0 && on_source) {
		mnt_id = fs->source_mnt;  /* renamed away from its name, or not searchable */
		fd = pt_open_handle(fs->mount_fd, in->fhid, O_PATH | O_CLOEXEC);
	}
	return fd < 0 ? fd : install_fd(fs, in, fd, mnt_id);
}

void pt_fd_put(struct pt_fs *fs, struct pt_inode *in)
{
	int fd = -1;
	pthread_mutex_lock(&fs->fd_lock);
	if (in->fd_users && --in->fd_users == 0 && !in->fd_kept) {
		fd = in->fd;
		in->fd = -1;
	}
	pthread_mutex_unlock(&fs->fd_lock);
	if (fd >= 0)
		close(fd);
}

int pt_fd_dup(struct pt_fs *fs, struct pt_inode *in)
{
	pthread_mutex_lock(&fs->fd_lock);
	int fd = in->fd >= 0 ? fcntl(in->fd, F_DUPFD_CLOEXEC, 0) : -2;
	int saverr = errno;
	pthread_mutex_unlock(&fs->fd_lock);
	if (fd == -2 && in->fhid && in->dev == fs->root.dev)   /* none open: by handle */
		return pt_open_handle(fs->mount_fd, in->fhid, O_PATH | O_CLOEXEC);
	uint64_t mnt_id;
	if (fd == -2 && in->fhid)
		return reopen_by_name(fs, in, &mnt_id);
	return fd == -2 ? -ESTALE : fd < 0 ? -saverr : fd;
}

int pt_reopen(struct pt_fs *fs, struct pt_inode *in, int flags)
{
	char pp[64];
	int pfd = pt_fd(fs, in);
	if (pfd < 0)
		return pfd;
	pt_proc_path(pp, sizeof(pp), pfd);
	int fd = open(pp, flags);
	int saverr = errno;
	pt_fd_put(fs, in);
	return fd < 0 ? -saverr : fd;
}

int pt_path_of(struct pt_fs *fs, struct pt_inode *in, char *buf, size_t len)
{
	const char *parts[PATH_MAX / 2];
	size_t n = 0, total = 0;
	int ret = 0;
	pthread_mutex_lock(&fs->itable_lock);
	for (; in && in != &fs->root; in = in->parent) {
		if (n == sizeof(parts) / sizeof(parts[0])) {
			ret = -ENAMETOOLONG;
			break;
		}
		parts[n++] = in->name;
		total += strlen(in->name) + 1;
	}
	if (ret == 0 && total + 1 > len)
		ret = -ENAMETOOLONG;
	size_t at = 0;
	buf[0] = '\0';
	while (ret == 0 && n--) {
		size_t l = strlen(parts[n]);
		if (at)
			buf[at++] = '/';
		memcpy(buf + at, parts[n], l);
		at += l;
		buf[at] = '\0';
	}
	pthread_mutex_unlock(&fs->itable_lock);
	return ret;
}

/* The path of `name` in directory `dir`.  @return 0 or -ENAMETOOLONG. */
static int child_path(struct pt_fs *fs, struct pt_inode *dir, const char *name, char *buf,
		      size_t len)
{
	int ret = pt_path_of(fs, dir, buf, len);
	if (ret < 0)
		return ret;
	size_t at = strlen(buf), l = strlen(name);
	if (at + l + 2 > len)
		return -ENAMETOOLONG;
	if (at)
		buf[at++] = '/';
	memcpy(buf + at, name, l + 1);
	return 0;
}

/* Relative path of an open descriptor below the source root, in buf.
 * @return 0, -ENOENT if unlinked or outside the source, -ENAMETOOLONG. */
static int relpath(const struct pt_fs *fs, int fd, char *buf, size_t len)
{
	char pp[64], link[PATH_MAX];
	struct stat st;
	pt_proc_path(pp, sizeof(pp), fd);
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

int pt_path_of_open(struct pt_fs *fs, struct pt_inode *in, int fd, char *buf, size_t len)
{
	int ret = relpath(fs, fd, buf, len);
	struct stat st, at;
	if (ret != -ENOENT || fstat(fd, &st) < 0 || st.st_nlink == 0)
		return ret;
	/* Opened by handle, its dentry may be disconnected (no path): where
	 * it was found, if it is still there. */
	ret = pt_path_of(fs, in, buf, len);
	if (ret == 0 && (fstatat(fs->root.fd, buf[0] ? buf : ".", &at, AT_SYMLINK_NOFOLLOW) < 0 ||
			 at.st_dev != st.st_dev || at.st_ino != st.st_ino))
		ret = -ENOENT;
	return ret;
}

void pt_inode_moved(struct pt_fs *fs, struct pt_inode *dir, const char *name)
{
	struct stat st;
	struct pt_fhid id;
	char *copy = strdup(name);
	int fd = open_child(fs, dir, name);
	if (fd < 0 || !copy || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		free(copy);
		return;
	}
	pt_fhid_of(fd, &id);
	close(fd);
	struct pt_inode *old = NULL;
	pthread_mutex_lock(&fs->itable_lock);
	struct pt_inode *in = table_find(fs, &st, &id);
	if (in && in != &fs->root) {
		old = in->parent;
		in->parent = dir;
		dir->nlookup++;
		pt_record_node_lookups(fs, dir);
		free(in->name);
		in->name = copy;
		copy = NULL;
		pt_record_node_moved(fs, in);
	}
	pthread_mutex_unlock(&fs->itable_lock);
	free(copy);
	if (old)
		pt_inode_put(fs, old, 1);
}

bool pt_ns_answers(fuse_req_t req)
{
	return fuse_req_ctx(req)->uid == 0;
}

int pt_stat_inode(struct pt_fs *fs, struct pt_inode *in, struct stat *st)
{
	int fd = pt_fd(fs, in);
	if (fd < 0)
		return fd;
	int ret = fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	pt_fd_put(fs, in);
	return ret;
}

static void entry_init(struct pt_fs *fs, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = fs->cfg.timeout;
	e->entry_timeout = fs->cfg.timeout;
}

double pt_answer_timeout(struct pt_fs *fs)
{
	return fs->cfg.answer_timeout > 0 ? fs->cfg.answer_timeout : fs->cfg.timeout;
}

static bool number_is(const void *ctx, uint64_t item, const void *key)
{
	const struct stat *st = key;
	(void)ctx;
	return inode_at(item)->dev == st->st_dev && inode_at(item)->ino == st->st_ino;
}

/* Every object's attributes and entry, and every directory's listing:
 * each the kernel knows (node id, parent node id and name copied under the
 * lock, dropped without it). */
static void kernel_changed_all(struct pt_fs *fs, struct fuse_session *se)
{
	struct known { fuse_ino_t id, parent; char *name; bool dir; } *v;
	size_t n = 0;
	uint64_t item;
	pthread_mutex_lock(&fs->itable_lock);
	v = calloc((size_t)fs->inodes.count + 1, sizeof(*v));
	for (uint32_t pos = 0; v && yhash_next(&fs->inodes, &pos, &item);) {
		struct pt_inode *in = inode_at(item);
		v[n].id = in->nodeid;
		v[n].parent = in->parent ? in->parent->nodeid : 0;
		v[n].name = in->parent && in->name ? strdup(in->name) : NULL;
		v[n].dir = S_ISDIR(in->type);
		n++;
	}
	pthread_mutex_unlock(&fs->itable_lock);
	if (!v) {
		ylog(YLOG_ERR, "out of memory: the kernel may keep attributes until they time out");
		return;
	}
	fuse_lowlevel_notify_inval_inode(se, FUSE_ROOT_ID, 0, 0);
	for (size_t i = 0; i < n; i++) {
		fuse_lowlevel_notify_inval_inode(se, v[i].id, v[i].dir ? 0 : -1, 0);
		if (v[i].name)
			fuse_lowlevel_notify_inval_entry(se, v[i].parent, v[i].name,
							 strlen(v[i].name));
		free(v[i].name);
	}
	free(v);
}

void pt_kernel_changed(struct pt_fs *fs, dev_t dev, ino_t ino, const char *name)
{
	struct stat key = { .st_dev = dev, .st_ino = ino };
	fuse_ino_t ids[8];
	bool dir[8];
	size_t n = 0;
	uint64_t item;
	struct fuse_session *se = fs->se;
	if (!se)
		return;
	if (dev == 0 && ino == 0) {
		kernel_changed_all(fs, se);
		return;
	}
	pthread_mutex_lock(&fs->itable_lock);
	if (fs->root.dev == dev && fs->root.ino == ino) {
		dir[n] = true;
		ids[n++] = FUSE_ROOT_ID;
	}
	for (uint32_t pos = 0; n < sizeof(ids) / sizeof(*ids) &&
	     yhash_find_next(&fs->inodes, hash_key(dev, ino), number_is, NULL, &key, &pos, &item);) {
		dir[n] = S_ISDIR(inode_at(item)->type);
		ids[n++] = inode_at(item)->nodeid;
	}
	pthread_mutex_unlock(&fs->itable_lock);
	/* A node id the kernel has forgotten meanwhile is refused (ENOENT),
	 * and one reused since names another object: dropping its copy too
	 * costs one question.  A file's pages follow its mtime and size
	 * (AUTO_INVAL_DATA); a directory's pages are the listing the kernel
	 * keeps (pt_opendir), dropped with its attributes and with any change
	 * of its entries: an entry the kernel never looked up, or an mtime
	 * set back, would leave it standing otherwise. */
	for (size_t i = 0; i < n; i++) {
		if (name)
			fuse_lowlevel_notify_inval_entry(se, ids[i], name, strlen(name));
		if (!name || dir[i])
			fuse_lowlevel_notify_inval_inode(se, ids[i], dir[i] ? 0 : -1, 0);
	}
}

/* Enter the O_PATH descriptor `fd` (owned), found as `name` in `dir`, into
 * the table and fill e; *out (if not NULL) is then the inode. */
static int entry_of_fd(struct pt_fs *fs, int fd, struct pt_inode *dir, const char *name,
		       struct fuse_entry_param *e, struct pt_inode **out)
{
	struct pt_fhid id;
	uint64_t mnt_id;
	entry_init(fs, e);
	int ret = pt_stat_fd(fd, &e->attr, &mnt_id);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	pt_fhid_of(fd, &id);
	struct pt_inode *in = inode_get(fs, fd, mnt_id, &e->attr, &id, dir, name);
	if (!in)
		return -ENOMEM;
	e->ino = in->nodeid;
	if (out)
		*out = in;
	return 0;
}

int pt_ns_lookup(struct pt_fs *fs, struct pt_inode *dir, const char *name,
		 struct fuse_entry_param *e)
{
	char path[PATH_MAX];
	struct pt_fhid id = { 0 };
	if (!fs->cfg.ns.lookup || child_path(fs, dir, name, path, sizeof(path)) < 0)
		return PT_NS_UNKNOWN;
	entry_init(fs, e);
	int r = fs->cfg.ns.lookup(fs->cfg.ns.ctx, path, &e->attr, &id);
	if (r == -ENOENT)
		return -ENOENT;
	if (r != 1 || !id.len)
		return PT_NS_UNKNOWN;    /* no handle: the object could not be opened again */
	struct pt_inode *in = inode_get(fs, -1, fs->source_mnt, &e->attr, &id, dir, name);
	if (!in)
		return -ENOMEM;
	e->ino = in->nodeid;
	e->attr_timeout = e->entry_timeout = pt_answer_timeout(fs);
	return 0;
}

void pt_ns_asked(struct pt_fs *fs, enum pt_ns_question q, struct pt_inode *in,
		 const char *name, const char *xname)
{
	char path[PATH_MAX];
	if (!fs->cfg.ns_rec.asked)
		return;
	int r = name ? child_path(fs, in, name, path, sizeof(path))
		     : pt_path_of(fs, in, path, sizeof(path));
	if (r == 0)
		fs->cfg.ns_rec.asked(fs->cfg.ns_rec.ctx, q, path, xname);
}

int pt_do_lookup(struct pt_fs *fs, struct pt_inode *dir, const char *name,
		 struct fuse_entry_param *e)
{
	int fd = open_child(fs, dir, name);
	if (fd < 0) {
		if (fd == -ENOENT)
			pt_ns_asked(fs, PT_NS_Q_LOOKUP, dir, name, NULL);
		return fd;
	}
	int ret = entry_of_fd(fs, fd, dir, name, e, NULL);
	if (ret == 0)
		pt_ns_asked(fs, PT_NS_Q_LOOKUP, dir, name, NULL);
	return ret;
}

int pt_lookup_fd(struct pt_fs *fs, int fd, struct pt_inode *dir, const char *name,
		 struct fuse_entry_param *e, struct pt_inode **in)
{
	char pp[64];
	pt_proc_path(pp, sizeof(pp), fd);
	int pfd = open(pp, O_PATH | O_CLOEXEC);      /* the same object, no name involved */
	if (pfd < 0)
		return -errno;
	return entry_of_fd(fs, pfd, dir, name, e, in);
}

void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *dir = pt_inode_of(req, parent);
	if (!dir) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct fuse_entry_param e;
	struct pt_as as;
	YLOG_TRACE("lookup(%" PRIu64 ", %s)", (uint64_t)parent, name);
	int ret = pt_ns_answers(req) ? pt_ns_lookup(fs, dir, name, &e) : PT_NS_UNKNOWN;
	if (ret == -ENOENT) {            /* known absent: the kernel may remember that */
		entry_init(fs, &e);
		e.entry_timeout = pt_answer_timeout(fs);
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret == PT_NS_UNKNOWN && (ret = pt_as_caller(req, &as, false)) == 0) {
		ret = pt_do_lookup(fs, dir, name, &e);
		pt_as_self(&as);
	}
	if (ret < 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_entry(req, &e);
}

void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	pt_inode_put(pt_fs_of(req), pt_inode_of(req, ino), nlookup);
	fuse_reply_none(req);
}

void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		pt_inode_put(pt_fs_of(req), pt_inode_of(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

/* ---- taking a session over ---- */

bool pt_inherited_fd_is(int fd, const struct pt_inode *in)
{
	struct stat st;
	return fcntl(fd, F_GETFD) >= 0 && fstat(fd, &st) == 0 && st.st_dev == in->dev &&
	       st.st_ino == in->ino;
}

static struct pt_inode *inode_of_record(struct pt_fs *fs, const struct pt_record_node *r,
					bool inherited)
{
	struct pt_inode *in = calloc(1, sizeof(*in));
	char *name = strdup(r->name);
	struct pt_fhid *fhid = fhid_dup(&r->fhid);
	if (!in || !name || (r->fhid.len && !fhid)) {
		free(in);
		free(name);
		free(fhid);
		return NULL;
	}
	in->nodeid = r->nodeid;
	in->dev = r->dev;
	in->ino = r->ino;
	in->type = r->type;
	in->fhid = fhid;
	in->name = name;
	in->nlookup = r->nlookup;
	in->slot = r->slot;
	in->backing_id = r->backing_id;
	in->fd = -1;
	if (!fhid && inherited && pt_inherited_fd_is(r->fd, in)) {
		in->fd = r->fd;
		in->fd_kept = true;
		pt_set_cloexec(r->fd, true);
	} else if (!fhid) {
		in->lost_fd = true;
	}
	pthread_mutex_init(&in->mu, NULL);
	return in;
}

int pt_inode_restore(struct pt_fs *fs, bool inherited, size_t *count)
{
	struct pt_record_node r;
	int ret = 0;
	*count = 0;
	pthread_mutex_lock(&fs->itable_lock);
	for (uint64_t i = 0; ret == 0 && pt_record_node_at(fs, i, &r); i++) {
		if (!r.nodeid)
			continue;
		struct pt_inode *in = inode_of_record(fs, &r, inherited);
		if (!in || yhash_add(&fs->nodes, pt_id_hash(in->nodeid), (uintptr_t)in) < 0) {
			if (in)
				inode_free(fs, in);
			ret = -ENOMEM;
			break;
		}
		if (yhash_add(&fs->inodes, hash_key(in->dev, in->ino), (uintptr_t)in) < 0) {
			yhash_remove(&fs->nodes, pt_id_hash(in->nodeid), (uintptr_t)in);
			inode_free(fs, in);
			ret = -ENOMEM;
			break;
		}
		/* Its parent's node id for now: resolved once all are in. */
		in->parent = (struct pt_inode *)(uintptr_t)r.parent;
		pt_record_node_fd(fs, in, -1);
		if (in->nodeid > fs->next_nodeid)
			fs->next_nodeid = in->nodeid;
		(*count)++;
	}
	uint64_t item;
	for (uint32_t pos = 0; yhash_next(&fs->nodes, &pos, &item);) {
		struct pt_inode *in = inode_at(item);
		fuse_ino_t p = (fuse_ino_t)(uintptr_t)in->parent;
		uint64_t pitem;
		in->parent = NULL;
		if (p == FUSE_ROOT_ID)
			in->parent = &fs->root;
		else if (p && yhash_find(&fs->nodes, pt_id_hash(p), nodeid_is, NULL, &p, &pitem))
			in->parent = inode_at(pitem);
		/* A child holds a reference on its parent, so the record has
		 * every parent; without one its path would be another's. */
		if (!in->parent && ret == 0)
			ret = -EUCLEAN;
	}
	pthread_mutex_unlock(&fs->itable_lock);
	return ret;
}

void pt_inode_handover(struct pt_fs *fs, bool inherit)
{
	uint64_t item;
	pthread_mutex_lock(&fs->itable_lock);
	pthread_mutex_lock(&fs->fd_lock);
	for (uint32_t pos = 0; yhash_next(&fs->nodes, &pos, &item);) {
		struct pt_inode *in = inode_at(item);
		if (in->fhid || in->fd < 0)
			continue;
		pt_set_cloexec(in->fd, !inherit);
		pt_record_node_fd(fs, in, inherit ? in->fd : -1);
	}
	pthread_mutex_unlock(&fs->fd_lock);
	pthread_mutex_unlock(&fs->itable_lock);
}
