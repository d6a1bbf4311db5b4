/* pt_attr.c - what the kernel asks and sets about one object: its
 * attributes (getattr; setattr as the caller, mode and owner, size, times),
 * a symlink's target, statfs, access, extended attributes, and the
 * file-attribute flags behind lsattr/chattr.  For a root caller the
 * namespace provider may answer attributes, symlink targets and xattr
 * reads (pt_ns_hooks), and a recorder is told which questions the source
 * answered.  A regular file's attribute changes are bracketed and reported
 * to the hooks (pt_attr_change_begin). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "pt_i.h"

/* ---- attributes ---- */

void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct stat st;
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	char path[PATH_MAX];
	struct pt_fhid id;
	int ret = PT_NS_UNKNOWN;
	double timeout = fs->cfg.timeout;
	struct pt_fh *fh = fi && fi->fh && in->type == S_IFREG ? pt_fh_of(req, fi) : NULL;
	if (fh) {
		ret = pt_file_stat((struct pt_file *)fh, &st);
	} else if (in->fhid && fs->cfg.ns.lookup && pt_ns_answers(req) &&
		   pt_path_of(fs, in, path, sizeof(path)) == 0 &&
		   fs->cfg.ns.lookup(fs->cfg.ns.ctx, path, &st, &id) == 1 &&
		   pt_fhid_equal(&id, in->fhid)) {
		ret = 0;                 /* the answer is about this very object */
		timeout = pt_answer_timeout(fs);
	}
	if (ret == PT_NS_UNKNOWN) {
		ret = pt_stat_inode(fs, in, &st);
		if (ret == 0 && in == &fs->root)
			pt_ns_asked(fs, PT_NS_Q_LOOKUP, in, NULL, NULL);
	}
	if (ret < 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_attr(req, &st, timeout);
}

/* Does changing the mode from `st` to `mode` only clear setuid/setgid?
 * That is how the kernel removes privileges after a write, truncate or
 * chown by someone else than the owner (libfuse 3.14 cannot ask the kernel
 * to leave that to us): a chmod the caller may not make itself, but the
 * kernel already refused any chmod by a non-owner (default_permissions),
 * so this one comes from the kernel on behalf of a change the caller may
 * make.  The source would clear the bits itself, by force. */
static bool only_drops_privileges(const struct stat *st, mode_t mode)
{
	mode_t cur = st->st_mode & 07777, next = mode & 07777;
	return next != cur && (next & ~cur) == 0 && ((cur & ~next) & ~(mode_t)(S_ISUID | S_ISGID)) == 0;
}

/* Mode and owner, as the caller.  @return 0 or -errno. */
static int set_mode_owner(fuse_req_t req, struct pt_inode *in, struct pt_fh *fh,
			  const struct stat *attr, int valid)
{
	struct pt_fs *fs = pt_fs_of(req);
	char pp[64];
	struct pt_as as = { 0 };
	struct stat st;
	bool forced = (valid & FUSE_SET_ATTR_MODE) && pt_stat_inode(fs, in, &st) == 0 &&
		      only_drops_privileges(&st, attr->st_mode);
	int ret = forced ? 0 : pt_as_caller(req, &as, false);
	if (ret < 0)
		return ret;
	int fd = pt_fd(fs, in);
	if (fd < 0) {
		pt_as_self(&as);
		return fd;
	}
	pt_proc_path(pp, sizeof(pp), fd);
	if (valid & FUSE_SET_ATTR_MODE) {
		if (in->type == S_IFLNK)
			ret = -EOPNOTSUPP;       /* Linux has no lchmod */
		else if (fh && (ret = pt_fh_fd(fh)) >= 0)
			ret = fchmod(ret, attr->st_mode) < 0 ? -errno : 0;
		else if (!fh && chmod(pp, attr->st_mode) < 0)
			ret = -errno;
	}
	if (forced && ret == 0)
		ret = pt_as_caller(req, &as, false);
	if (ret == 0 && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			ret = -errno;
	}
	pt_as_self(&as);
	pt_fd_put(fs, in);
	return ret;
}

static int set_times(fuse_req_t req, struct pt_inode *in, struct pt_fh *fh,
		     const struct stat *attr, int valid)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	char pp[64];
	struct pt_as as;
	int ret = pt_as_caller(req, &as, false);
	if (ret < 0)
		return ret;
	int fd = pt_fd(pt_fs_of(req), in);
	if (fd < 0) {
		pt_as_self(&as);
		return fd;
	}
	pt_proc_path(pp, sizeof(pp), fd);
	int r;
	if (fh) {
		int ffd = pt_fh_fd(fh);
		r = ffd < 0 ? (errno = -ffd, -1) : futimens(ffd, tv);
	}
	else if (in->type == S_IFLNK)
		r = utimensat(fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	else
		r = utimensat(AT_FDCWD, pp, tv, 0);
	ret = r < 0 ? -errno : 0;
	pt_as_self(&as);
	pt_fd_put(pt_fs_of(req), in);
	return ret;
}

static int set_size(fuse_req_t req, struct pt_fs *fs, struct pt_inode *in, struct pt_fh *fh,
		    off_t size)
{
	char pp[64];
	struct pt_change m;
	struct pt_as as;
	pt_change_begin(&m, fs, in, fh, PT_MOD_TRUNCATE, (uint64_t)size, 0);
	int ret = fh ? pt_as_writer(req, fh, &as) : pt_as_caller(req, &as, false);
	if (ret == 0) {
		int fd = fh ? pt_fh_fd(fh) : pt_fd(fs, in);
		pt_proc_path(pp, sizeof(pp), fd);
		if (fd < 0)
			ret = fd;
		else if ((fh ? ftruncate(fd, size) : truncate(pp, size)) < 0)
			ret = -errno;
		pt_as_self(&as);
		if (!fh && fd >= 0)
			pt_fd_put(fs, in);
	}
	pt_change_end(&m, fh ? fh->fd : -1, ret);
	return ret;
}

void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_fh *fh = fi && fi->fh && in->type == S_IFREG ? pt_fh_of(req, fi) : NULL;
	int ret = 0;
	struct pt_attr_change a;
	if (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		pt_attr_change_begin(&a, fs, in, fh);
		ret = set_mode_owner(req, in, fh, attr, valid);
		pt_attr_change_end(&a, fh ? fh->fd : -1, ret);
	}
	if (ret == 0 && (valid & FUSE_SET_ATTR_SIZE))
		ret = set_size(req, fs, in, fh, attr->st_size);
	if (ret == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		pt_attr_change_begin(&a, fs, in, fh);
		ret = set_times(req, in, fh, attr, valid);
		pt_attr_change_end(&a, fh ? fh->fd : -1, ret);
	}
	if (ret < 0)
		pt_reply_status(req, ret);
	else
		pt_getattr(req, ino, fi);
}

/* ---- a symlink's target, the file system, access ---- */

void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	char buf[PATH_MAX + 1], path[PATH_MAX];
	ssize_t n = PT_NS_UNKNOWN;
	if (fs->cfg.ns.readlink && in->fhid && pt_ns_answers(req) &&
	    pt_path_of(fs, in, path, sizeof(path)) == 0)
		n = fs->cfg.ns.readlink(fs->cfg.ns.ctx, path, in->fhid, buf, sizeof(buf));
	if (n == PT_NS_UNKNOWN) {
		int fd = pt_fd(fs, in);
		n = fd < 0 ? fd : readlinkat(fd, "", buf, sizeof(buf));
		if (fd >= 0 && n < 0)
			n = -errno;
		if (fd >= 0)
			pt_fd_put(fs, in);
		if (n >= 0)
			pt_ns_asked(fs, PT_NS_Q_READLINK, in, NULL, NULL);
	}
	if (n < 0) {
		pt_reply_status(req, (int)n);
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		pt_reply_status(req, -ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	int fd = pt_fd(fs, in);
	int ret = fd < 0 ? fd : fstatvfs(fd, &sv) < 0 ? -errno : 0;
	if (fd >= 0)
		pt_fd_put(fs, in);
	if (ret < 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_statfs(req, &sv);
}

/* Only sent without default_permissions; answered by the source, as the
 * caller, all the same (AT_EACCESS: faccessat otherwise checks the real
 * ids, i.e. root's). */
void pt_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	char pp[64];
	struct pt_as as;
	int ret = pt_as_caller(req, &as, false);
	if (ret == 0) {
		struct pt_inode *in = pt_inode_of(req, ino);
		int fd = in ? pt_fd(pt_fs_of(req), in) : -ESTALE;
		pt_proc_path(pp, sizeof(pp), fd);
		ret = fd < 0 ? fd : faccessat(AT_FDCWD, pp, mask, AT_EACCESS) < 0 ? -errno : 0;
		pt_as_self(&as);
		if (fd >= 0)
			pt_fd_put(pt_fs_of(req), in);
	}
	pt_reply_status(req, ret);
}

/* ---- extended attributes ---- */

/* Symlinks cannot be reached through /proc/self/fd for xattrs; they are
 * reported as having none (overlayfs only needs xattrs on dirs and files). */

/* getxattr (name) or listxattr (name NULL) and the reply: the size alone
 * when the kernel asks with size 0, else the value or list.  A root
 * caller's may come from the provider; otherwise the source answers, as
 * the caller (whose identity is what hides trusted.* from unprivileged
 * users). */
static void reply_xattr_query(fuse_req_t req, struct pt_inode *in, const char *name, size_t size)
{
	struct pt_fs *fs = pt_fs_of(req);
	char pp[64], path[PATH_MAX];
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		pt_reply_status(req, -ENOMEM);
		return;
	}
	ssize_t n = PT_NS_UNKNOWN;
	if (fs->cfg.ns.xattr && in->fhid && pt_ns_answers(req) &&
	    pt_path_of(fs, in, path, sizeof(path)) == 0)
		n = fs->cfg.ns.xattr(fs->cfg.ns.ctx, path, in->fhid, name, buf, size);
	if (n == PT_NS_UNKNOWN) {
		struct pt_as as;
		n = pt_as_caller(req, &as, false);
		if (n == 0) {
			int fd = pt_fd(fs, in);
			pt_proc_path(pp, sizeof(pp), fd);
			if (fd < 0)
				n = fd;
			else if ((n = name ? getxattr(pp, name, buf, size) : listxattr(pp, buf, size)) < 0)
				n = -errno;
			pt_as_self(&as);
			if (fd >= 0)
				pt_fd_put(fs, in);
		}
		if (n >= 0 || n == -ENODATA)
			pt_ns_asked(fs, name ? PT_NS_Q_GETXATTR : PT_NS_Q_LISTXATTR, in, NULL, name);
	}
	if (n < 0)
		pt_reply_status(req, (int)n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	if (in->type == S_IFLNK)
		pt_reply_status(req, -ENODATA);
	else
		reply_xattr_query(req, in, name, size);
}

void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	if (in->type != S_IFLNK)
		reply_xattr_query(req, in, NULL, size);
	else if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

/* setxattr (value) or removexattr (value NULL) as the caller; a regular
 * file's change is bracketed and reported like other attribute changes. */
static int change_xattr(fuse_req_t req, struct pt_inode *in, const char *name,
			const char *value, size_t size, int flags)
{
	struct pt_fs *fs = pt_fs_of(req);
	char pp[64];
	struct pt_attr_change a;
	struct pt_as as;
	pt_attr_change_begin(&a, fs, in, NULL);
	int ret = pt_as_caller(req, &as, false);
	if (ret == 0) {
		int fd = pt_fd(fs, in);
		pt_proc_path(pp, sizeof(pp), fd);
		int r = fd < 0 ? -1 : value ? setxattr(pp, name, value, size, flags) : removexattr(pp, name);
		ret = fd < 0 ? fd : r < 0 ? -errno : 0;
		pt_as_self(&as);
		if (fd >= 0)
			pt_fd_put(fs, in);
	}
	pt_attr_change_end(&a, -1, ret);
	return ret;
}

void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags)
{
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	if (in->type == S_IFLNK)
		pt_reply_status(req, -EPERM);
	else
		pt_reply_status(req, change_xattr(req, in, name, value ? value : "", size, flags));
}

void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	if (in->type == S_IFLNK)
		pt_reply_status(req, -ENODATA);
	else
		pt_reply_status(req, change_xattr(req, in, name, NULL, 0, 0));
}

/* ---- file attributes (lsattr/chattr) ---- */

/* The kernel turns FS_IOC_GETFLAGS/SETFLAGS and FS_IOC_FSGETXATTR/
 * FSSETXATTR on a FUSE file or directory into these requests on a handle
 * it opens for the purpose.  Setting runs as the caller: the source checks
 * ownership and CAP_LINUX_IMMUTABLE for the append-only and immutable
 * flags. */
/* pt_ioctl on the descriptor `fd`. */
static void ioctl_on(fuse_req_t req, struct pt_inode *in, int fd, unsigned int cmd,
		     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct pt_fs *fs = pt_fs_of(req);
	unsigned c = cmd;
	union {
		int flags;
		struct fsxattr fsx;
	} v;
	size_t vlen = c == FS_IOC_GETFLAGS || c == FS_IOC_SETFLAGS ? sizeof(v.flags) : sizeof(v.fsx);
	if (flags & FUSE_IOCTL_COMPAT) {
		pt_reply_status(req, -ENOSYS);
		return;
	}
	if (c == FS_IOC_GETFLAGS || c == FS_IOC_FSGETXATTR) {
		if (out_bufsz < vlen) {
			pt_reply_status(req, -EINVAL);
			return;
		}
		if (ioctl(fd, c, &v) < 0)
			pt_reply_status(req, -errno);
		else
			fuse_reply_ioctl(req, 0, &v, vlen);
		return;
	}
	if (in_bufsz < vlen) {
		pt_reply_status(req, -EINVAL);
		return;
	}
	memcpy(&v, in_buf, vlen);
	struct pt_attr_change a;
	struct pt_as as;
	pt_attr_change_begin(&a, fs, in, NULL);
	int ret = pt_as_caller(req, &as, false);
	if (ret == 0) {
		ret = ioctl(fd, c, &v) < 0 ? -errno : 0;
		pt_as_self(&as);
	}
	pt_attr_change_end(&a, fd, ret);
	if (ret < 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_ioctl(req, 0, NULL, 0);
}

void pt_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
	      unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	bool dir = flags & FUSE_IOCTL_DIR;
	if (cmd != FS_IOC_GETFLAGS && cmd != FS_IOC_SETFLAGS && cmd != FS_IOC_FSGETXATTR &&
	    cmd != FS_IOC_FSSETXATTR) {
		/* Not one of ours (isatty's TCGETS, from every Python open):
		 * answered without opening a lazy file on the source. */
		pt_reply_status(req, -ENOTTY);
		return;
	}
	struct pt_dir *d = dir ? pt_dir_of(req, fi) : NULL;
	struct pt_fh *fh = dir ? NULL : pt_fh_of(req, fi);
	if (!d && !fh) {
		pt_reply_status(req, -EBADF);
		return;
	}
	int fd = dir ? (d->dp ? dirfd(d->dp) : -1) : pt_fh_fd(fh), own = -1;
	if (!dir && fd < 0) {
		pt_reply_status(req, fd);
		return;
	}
	if (fd < 0) {
		/* A listing the provider gave: open the directory itself. */
		fd = own = pt_reopen(fs, in, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			pt_reply_status(req, fd);
			return;
		}
	}
	ioctl_on(req, in, fd, cmd, flags, in_buf, in_bufsz, out_bufsz);
	if (own >= 0)
		close(own);
}
