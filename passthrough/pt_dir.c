/* pt_dir.c - names and directories of the core: creating (as the caller,
 * with its umask: the new object is the caller's from the start, never
 * chowned afterwards) and removing names, renames, and directory listings,
 * each decided by the source for the caller.  For a root caller a
 * namespace provider may answer listings instead (pt_ns_hooks), and a
 * recorder is told which listings the source gave. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt_i.h"

/* ---- creating and removing names ---- */

/* An inode's descriptor, for an operation as the caller that may have to
 * fail: @return it or -errno.  held_fd_put gives back a successful one
 * (and ignores a failed one). */
static int held_fd(fuse_req_t req, struct pt_inode *dir)
{
	return pt_fd(pt_fs_of(req), dir);
}

static void held_fd_put(fuse_req_t req, struct pt_inode *dir, int fd)
{
	if (fd >= 0)
		pt_fd_put(pt_fs_of(req), dir);
}

/* Reply to a creation: the new name's entry, looked up while still acting
 * as the caller.  `ret` is the creation's result. */
static void reply_created(fuse_req_t req, struct pt_inode *dir, const char *name, int ret,
			  struct pt_as *as)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct fuse_entry_param e;
	if (ret == 0)
		ret = pt_do_lookup(fs, dir, name, &e);
	pt_as_self(as);
	if (ret < 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_entry(req, &e);
}

/* What mknod, mkdir and symlink make. */
struct new_node {
	enum { NEW_NODE, NEW_DIR, NEW_SYMLINK } kind;
	mode_t mode;                     /* not for a symlink */
	dev_t rdev;                      /* NEW_NODE */
	const char *target;              /* NEW_SYMLINK */
};

/* Make `name` in `parent` as the caller (with its umask, which a symlink
 * has no use for) and reply with its entry. */
static void create_node(fuse_req_t req, fuse_ino_t parent, const char *name,
			const struct new_node *n)
{
	struct pt_inode *dir = pt_inode_of(req, parent);
	if (!dir) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_as as;
	int ret = pt_as_caller(req, &as, n->kind != NEW_SYMLINK);
	if (ret < 0) {
		pt_reply_status(req, ret);
		return;
	}
	int dfd = held_fd(req, dir), r = 0;
	if (dfd >= 0)
		r = n->kind == NEW_NODE ? mknodat(dfd, name, n->mode, n->rdev) :
		    n->kind == NEW_DIR ? mkdirat(dfd, name, n->mode) :
		    symlinkat(n->target, dfd, name);
	ret = dfd < 0 ? dfd : r < 0 ? -errno : 0;
	held_fd_put(req, dir, dfd);
	reply_created(req, dir, name, ret, &as);
}

void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct new_node n = { .kind = NEW_NODE, .mode = mode, .rdev = rdev };
	create_node(req, parent, name, &n);
}

void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct new_node n = { .kind = NEW_DIR, .mode = mode };
	create_node(req, parent, name, &n);
}

void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct new_node n = { .kind = NEW_SYMLINK, .target = link };
	create_node(req, parent, name, &n);
}

void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct pt_inode *in = pt_inode_of(req, ino), *dir = pt_inode_of(req, newparent);
	if (!in || !dir) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_as as;
	int ret = pt_as_caller(req, &as, false);
	if (ret < 0) {
		pt_reply_status(req, ret);
		return;
	}
	int fd = held_fd(req, in), dfd = held_fd(req, dir);
	if (fd < 0 || dfd < 0) {
		ret = fd < 0 ? fd : dfd;
	} else if (linkat(fd, "", dfd, newname, AT_EMPTY_PATH) < 0) {
		/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (a root caller);
		 * anyone may link through the descriptor's /proc magic link,
		 * subject to the source's own rules (protected_hardlinks) for
		 * the caller. */
		ret = -errno;
		if (ret == -ENOENT) {
			char pp[64];
			pt_proc_path(pp, sizeof(pp), fd);
			ret = linkat(AT_FDCWD, pp, dfd, newname, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
		}
	}
	held_fd_put(req, in, fd);
	held_fd_put(req, dir, dfd);
	reply_created(req, dir, newname, ret, &as);
}

/* unlinkat as the caller. */
static int remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct pt_inode *dir = pt_inode_of(req, parent);
	if (!dir)
		return -ESTALE;
	struct pt_as as;
	int ret = pt_as_caller(req, &as, false);
	if (ret < 0)
		return ret;
	int dfd = held_fd(req, dir);
	ret = dfd < 0 ? dfd : unlinkat(dfd, name, flags) < 0 ? -errno : 0;
	pt_as_self(&as);
	held_fd_put(req, dir, dfd);
	return ret;
}

void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pt_reply_status(req, remove_name(req, parent, name, 0));
}

void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pt_reply_status(req, remove_name(req, parent, name, AT_REMOVEDIR));
}

void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *dir = pt_inode_of(req, parent), *ndir = pt_inode_of(req, newparent);
	if (!dir || !ndir) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_as as;
	int ret = pt_as_caller(req, &as, false);
	int dfd = -1, ndfd = -1;
	if (ret == 0) {
		dfd = held_fd(req, dir);
		ndfd = held_fd(req, ndir);
		if (dfd < 0 || ndfd < 0)
			ret = dfd < 0 ? dfd : ndfd;
		else
			ret = renameat2(dfd, name, ndfd, newname, flags) < 0 ? -errno : 0;
		pt_as_self(&as);
	}
	if (ret == 0) {
		pt_inode_moved(fs, ndir, newname);
		if (flags & RENAME_EXCHANGE)
			pt_inode_moved(fs, dir, name);
	}
	if (ret == 0 && fs->cfg.hooks.rename) {
		struct stat st;
		if (fstatat(ndfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
			fs->cfg.hooks.rename(fs->cfg.hooks.ctx, st.st_ino, newname);
	}
	held_fd_put(req, dir, dfd);
	held_fd_put(req, ndir, ndfd);
	pt_reply_status(req, ret);
}

/* ---- directories ---- */

/* The provider's listing of `in` (its path in `path`, PATH_MAX bytes, ""
 * when not known).  @return true when it gave one (d->entries). */
static bool ns_listing(struct pt_fs *fs, struct pt_inode *in, struct pt_dir *d, char *path)
{
	path[0] = '\0';
	if (!fs->cfg.ns.listing || !in->fhid || pt_path_of(fs, in, path, PATH_MAX) < 0)
		return false;
	return fs->cfg.ns.listing(fs->cfg.ns.ctx, path, in->fhid, &d->entries, &d->nentries) == 0;
}

void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		pt_reply_status(req, -ENOMEM);
		return;
	}
	int ret = 0;
	char path[PATH_MAX];
	/* For a root caller only. */
	bool answered = pt_ns_answers(req) && ns_listing(fs, in, d, path);
	if (!answered) {
		/* Through the magic link, not openat(fd, "."): listing needs
		 * read permission on the directory only, as on the source. */
		char pp[64];
		struct pt_as as;
		int fd = -1;
		ret = pt_as_caller(req, &as, false);
		if (ret == 0) {
			int pfd = pt_fd(fs, in);
			pt_proc_path(pp, sizeof(pp), pfd);
			fd = pfd < 0 ? pfd : open(pp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			ret = fd < 0 ? (pfd < 0 ? pfd : -errno) : 0;
			pt_as_self(&as);
			held_fd_put(req, in, pfd);
		}
		if (ret == 0 && !(d->dp = fdopendir(fd)))
			ret = -errno;
		if (ret < 0 && fd >= 0)
			close(fd);
		if (ret == 0)
			pt_ns_asked(fs, PT_NS_Q_READDIR, in, NULL, NULL);
	}
	d->h.is_dir = true;
	if (ret == 0 && (ret = pt_handle_add(fs, &d->h)) < 0 && d->dp)
		closedir(d->dp);
	if (ret < 0) {
		free(d->entries);
		free(d);
		pt_reply_status(req, ret);
		return;
	}
	fi->fh = d->h.id;
	pt_handle_record(fs, &d->h, in, O_RDONLY | O_DIRECTORY, false, answered);
	/* A listing the ns provider answers is kept fresh by it: the kernel
	 * may keep it too (an entry dropped through pt_kernel_changed resets
	 * the directory's cache).  Others are asked again at each open. */
	fi->cache_readdir = answered;
	fi->keep_cache = answered;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		pt_handle_del(fs, &d->h);
		pt_close_dir(d);
	}
}

int pt_dir_restore(struct pt_fs *fs, const struct pt_record_handle *r, bool inherited)
{
	struct pt_inode *in = pt_inode_by_id(fs, r->nodeid);
	if (!in)
		return -ESTALE;
	struct pt_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->h = (struct pt_handle){ .id = r->id, .slot = r->slot, .is_dir = true };
	/* Its offsets are the provider's entry indexes: listed by it again
	 * (it answers the same while its answers are fresh). */
	char path[PATH_MAX] = "";
	bool answered = r->answered && ns_listing(fs, in, d, path);
	if (r->answered && !answered)
		ylog(YLOG_WARN, "open directory %s: its listing is no longer answered; listed "
		     "from the source (a listing in progress may repeat or skip entries)", path);
	int fd = -1;
	if (!answered && inherited && pt_inherited_fd_is(r->fd, in)) {
		fd = r->fd;
		pt_set_cloexec(fd, true);
	} else if (!answered) {
		fd = pt_reopen(fs, in, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			free(d);
			return fd;
		}
	}
	if (fd >= 0 && !(d->dp = fdopendir(fd))) {
		int saverr = errno;
		close(fd);
		free(d);
		return -saverr;
	}
	/* The descriptor's position is not the kernel's next offset: seek
	 * at the first read, whatever it asks. */
	d->pos = -1;
	int ret = pt_handle_adopt(fs, &d->h);
	if (ret < 0)
		pt_close_dir(d);
	return ret;
}

static bool is_dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

/* The next entry of a listing: from the source or the provider's. */
struct next_entry {
	const char *name;
	ino_t ino;
	unsigned char type;
	off_t next;                      /* offset of the entry after it */
};

static int next_of(struct pt_dir *d, struct next_entry *x)
{
	if (!d->dp) {
		if ((size_t)d->pos >= d->nentries)
			return 0;
		const struct pt_ns_entry *e = &d->entries[d->pos];
		*x = (struct next_entry){ e->name, e->ino, e->type, d->pos + 1 };
		return 1;
	}
	if (!d->ent) {
		errno = 0;
		d->ent = readdir(d->dp);
		if (!d->ent)
			return errno ? -errno : 0;
	}
	*x = (struct next_entry){ d->ent->d_name, d->ent->d_ino, d->ent->d_type, d->ent->d_off };
	return 1;
}

/* One READDIR(PLUS) reply.  The plus lookups are the caller's (or the
 * provider's, for a root caller): an entry it may not look up (no search
 * permission) is listed without attributes. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_dir *d = pt_dir_of(req, fi);
	struct pt_inode *dir = pt_inode_of(req, ino);
	if (!dir || !d) {
		pt_reply_status(req, dir ? -EBADF : -ESTALE);
		return;
	}
	char *buf = malloc(size);
	size_t used = 0;
	struct pt_as as = { 0 };
	bool ns = pt_ns_answers(req);
	int ret = buf ? 0 : -ENOMEM;
	if (ret == 0 && plus)
		ret = pt_as_caller(req, &as, false);
	if (ret < 0) {
		free(buf);
		pt_reply_status(req, ret);
		return;
	}
	if (off != d->pos) {
		if (d->dp)
			seekdir(d->dp, off);
		d->ent = NULL;
		d->pos = off;
	}
	for (;;) {
		struct next_entry x = { 0 };
		int r = next_of(d, &x);
		if (r <= 0) {
			ret = r;
			break;
		}
		size_t n;
		if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = x.ino;
			e.attr.st_mode = (mode_t)x.type << 12;
			if (!is_dot(x.name)) {
				ret = ns ? pt_ns_lookup(fs, dir, x.name, &e) : PT_NS_UNKNOWN;
				if (ret == PT_NS_UNKNOWN)
					ret = pt_do_lookup(fs, dir, x.name, &e);
				if (ret == -ENOENT) {   /* removed since readdir */
					ret = 0;
					d->ent = NULL;
					d->pos = x.next;
					continue;
				}
				if (ret == -EACCES || ret == -EPERM) {
					memset(&e, 0, sizeof(e));   /* no attributes: a plain entry */
					e.attr.st_ino = x.ino;
					e.attr.st_mode = (mode_t)x.type << 12;
					ret = 0;
				}
				if (ret < 0)
					break;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, x.name, &e, x.next);
			if (n > size - used) {
				if (e.ino)
					pt_inode_put(fs, pt_inode_of(req, e.ino), 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = x.ino, .st_mode = (mode_t)x.type << 12 };
			n = fuse_add_direntry(req, buf + used, size - used, x.name, &st, x.next);
			if (n > size - used)
				break;
		}
		used += n;
		d->ent = NULL;
		d->pos = x.next;
	}
	if (plus)
		pt_as_self(&as);
	/* An error after some entries were returned is reported next time. */
	if (ret < 0 && used == 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = pt_dir_of(req, fi);
	if (d) {
		pt_handle_del(pt_fs_of(req), &d->h);
		pt_close_dir(d);
	}
	pt_reply_status(req, d ? 0 : -EBADF);
}

void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct pt_dir *d = pt_dir_of(req, fi);
	int r = 0;
	if (!d) {
		pt_reply_status(req, -EBADF);
		return;
	}
	if (d->dp) {
		int fd = dirfd(d->dp);
		r = datasync ? fdatasync(fd) : fsync(fd);
	}
	pt_reply_status(req, r < 0 ? -errno : 0);
}
