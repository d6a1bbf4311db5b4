/* pt_file.c - the operations on regular files: open and create (as the
 * caller: the source checks access, O_APPEND and append-only/immutable
 * flags; a lazy open when pt_lazy_open allows), the keep_cache decision,
 * reads (served by the read hook or from the source, never as another
 * identity: reading an open descriptor needs none), writes and other
 * changes of the contents (as the writer, so reserved blocks and quotas
 * count against it, inside the change bracket), release, fsync and lseek. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt_i.h"

static __thread pid_t cur_pid;           /* set around read hooks */

pid_t pt_current_pid(void)
{
	return cur_pid;
}

/* ---- open ---- */

/* Make an open whose reads no hook wants a passthrough open (the kernel
 * reads and writes the source file itself), when the kernel can and the
 * inode's other opens allow it (pt_i.h, struct pt_inode).  The backing file
 * is the first such open's own descriptor, registered with its opener's
 * credentials; the kernel makes every later open of the inode share it.
 * Called with in->mu held. */
static void choose_passthrough(fuse_req_t req, struct pt_fh *fh, bool wanted,
			       struct fuse_file_info *fi)
{
#ifdef HAVE_FUSE_PASSTHROUGH
	struct pt_fs *fs = fh->fs;
	struct pt_inode *in = fh->in;
	if (!fs->passthrough)
		return;
	if (in->nbacked == 0) {
		if (!wanted || in->nopen > 0)
			return;
		int fd = pt_fh_fd(fh);   /* a lazy open is opened now */
		struct pt_as as;
		int id = fd < 0 ? fd : pt_as_writer(req, fh, &as);
		if (id == 0) {
			id = pt_backing_open(req, fd);
			pt_as_self(&as);
		}
		if (id < 0) {
			YLOG_TRACE("ino %ju: no passthrough: %s", (uintmax_t)in->ino, strerror(-id));
			return;
		}
		in->backing_id = id;
		pt_record_node_backing(fs, in);
	}
	in->nbacked++;
	fh->backed = true;
	fi->backing_id = in->backing_id;
	fi->direct_io = 0;
	fi->keep_cache = 0;
	if (fs->cfg.passthrough_opens)
		atomic_fetch_add(fs->cfg.passthrough_opens, 1);
#endif
}

/* Finish an open: call the hook, decide caching, reply.  Called with
 * in->mu held and releases it; `fd` and `opener` are owned.  `fd` -1: a
 * lazy open, of the object `path_fd` (owned) refers to. */
static void finish_open(fuse_req_t req, struct pt_inode *in, int fd, int flags,
			struct fuse_file_info *fi, const struct fuse_entry_param *e,
			struct pt_caller *opener, int path_fd)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct stat st;
	char rel[PATH_MAX];
	int ret = 0;
	struct pt_fh *fh = calloc(1, sizeof(*fh));
	if (!fh) {
		ret = -ENOMEM;
		goto fail;
	}
	fh->path_fd = -1;
	if (fstat(fd >= 0 ? fd : path_fd, &st) < 0) {
		ret = -errno;
		goto fail;
	}
	if ((ret = pt_handle_add(fs, &fh->h)) < 0)
		goto fail;
	atomic_init(&fh->fd, fd);
	fh->path_fd = path_fd;
	path_fd = -1;
	fh->flags = flags;
	fh->fs = fs;
	fh->in = in;
	fh->opener = *opener;
	opener->groups = NULL;
	fi->direct_io = fs->cfg.force_direct_io;
	fi->keep_cache = fs->cfg.keep_cache && in->cache_known && in->csize == st.st_size &&
			 in->cmtime.tv_sec == st.st_mtim.tv_sec &&
			 in->cmtime.tv_nsec == st.st_mtim.tv_nsec &&
			 in->cctime.tv_sec == st.st_ctim.tv_sec &&
			 in->cctime.tv_nsec == st.st_ctim.tv_nsec;
	if (fs->cfg.hooks.open) {
		/* A lazy open's object is the one its fresh answer named at this
		 * path (their handles matched): no need to ask the source where
		 * it is, which walks the path (directory reads when cold). */
		int r = fd >= 0 ? pt_path_of_open(fs, in, fd, rel, sizeof(rel)) :
			pt_path_of(fs, in, rel, sizeof(rel));
		struct pt_open_info info = {
			.relpath = r == 0 ? rel : NULL,
			.st = &st, .flags = flags, .first = in->nopen == 0,
			.se = fs->se, .nodeid = in->nodeid,
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
	/* Without an open hook nothing is served: all may pass through. */
	choose_passthrough(req, fh, !fs->cfg.hooks.open || ret == PT_OPEN_PASSTHROUGH, fi);
	in->nopen++;
	fh->ipriv = in->ipriv;
	fh->page_cached = !fi->direct_io && !fh->backed && !(flags & O_DIRECT);
	in->cache_known = true;
	in->csize = st.st_size;
	in->cmtime = st.st_mtim;
	in->cctime = st.st_ctim;
	pthread_mutex_unlock(&in->mu);
	fi->fh = fh->h.id;
	fi->noflush = 1;
	pt_handle_record(fs, &fh->h, in, flags, fh->backed, false);
	YLOG_TRACE("open ino %ju fd %d keep_cache %d direct_io %d backing %d", (uintmax_t)in->ino,
		   fd, fi->keep_cache, fi->direct_io, fh->backed ? in->backing_id : 0);
	if (e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi))
		pt_close_file(fs, fh, true);     /* interrupted: the kernel will not send release */
	return;
fail:
	pthread_mutex_unlock(&in->mu);
	if (fd >= 0)
		close(fd);
	if (path_fd >= 0)
		close(path_fd);
	if (fh && fh->path_fd >= 0)
		close(fh->path_fd);
	if (fh && fh->h.id)
		pt_handle_del(fs, &fh->h);
	if (fh)
		pt_caller_free(&fh->opener);
	pt_caller_free(opener);
	free(fh);
	if (e)
		pt_inode_put(fs, in, 1);
	pt_reply_status(req, ret);
}

void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_inode_of(req, ino);
	if (!in) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_caller opener = { .ngroups = -1 };
	struct pt_as as;
	bool trunc = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
	int path_fd = pt_lazy_open(req, in, fi->flags);
	if (path_fd >= 0) {
		pthread_mutex_lock(&in->mu);
		finish_open(req, in, -1, fi->flags, fi, NULL, &opener, path_fd);
		return;
	}
	pthread_mutex_lock(&in->mu);
	int tfd = trunc ? pt_fd(fs, in) : -1;
	if (trunc && fs->cfg.hooks.modify_begin)
		fs->cfg.hooks.modify_begin(fs->cfg.hooks.ctx, in->nopen ? in->ipriv : NULL,
					   PT_MOD_TRUNCATE, 0, 0, tfd);
	int fd = -1, ret = pt_as_caller(req, &as, false);
	if (ret == 0) {
		fd = pt_reopen(fs, in, pt_source_flags(fi->flags));
		ret = fd < 0 ? fd : pt_caller_keep(req, &opener);
		pt_as_self(&as);
	}
	if (trunc && fs->cfg.hooks.modify_end)
		fs->cfg.hooks.modify_end(fs->cfg.hooks.ctx, in->nopen ? in->ipriv : NULL,
					 PT_MOD_TRUNCATE, 0, 0, tfd, ret);
	if (tfd >= 0)
		pt_fd_put(fs, in);
	if (ret < 0) {
		pthread_mutex_unlock(&in->mu);
		if (fd >= 0)
			close(fd);
		pt_reply_status(req, ret);
		return;
	}
	finish_open(req, in, fd, fi->flags, fi, NULL, &opener, -1);
}

/* Open flags for opening a taken-over file again: it exists, and what
 * O_TRUNC did was done at the first open. */
static int reopen_flags(int flags)
{
	return pt_source_flags(flags) & ~O_TRUNC;
}

int pt_file_restore(struct pt_fs *fs, const struct pt_record_handle *r, bool inherited)
{
	struct pt_inode *in = pt_inode_by_id(fs, r->nodeid);
	if (!in)
		return -ESTALE;
	struct stat st;
	/* Not the descriptor it was: opened again. */
	int fd = inherited && pt_inherited_fd_is(r->fd, in) ? r->fd : -1;
	if (fd >= 0) {
		pt_set_cloexec(fd, true);
	} else {
		/* As the daemon: the caller's open was allowed then. */
		fd = pt_reopen(fs, in, reopen_flags(r->flags));
		if (fd < 0)
			return fd;
	}
	struct pt_fh *fh = calloc(1, sizeof(*fh));
	if (!fh || fstat(fd, &st) < 0) {
		int saverr = fh ? errno : ENOMEM;
		free(fh);
		close(fd);
		return -saverr;
	}
	fh->h = (struct pt_handle){ .id = r->id, .slot = r->slot };
	atomic_init(&fh->fd, fd);
	fh->path_fd = -1;
	fh->flags = r->flags;
	fh->fs = fs;
	fh->in = in;
	fh->opener = (struct pt_caller){ .ngroups = -1 };
	struct fuse_file_info fi = { .flags = r->flags };
	char rel[PATH_MAX];
	int ret = 0;
	pthread_mutex_lock(&in->mu);
	if (fs->cfg.hooks.open) {
		/* No session for the hook: nothing is pushed into the kernel's
		 * cache of a file the kernel already has open. */
		struct pt_open_info info = {
			.relpath = pt_path_of_open(fs, in, fd, rel, sizeof(rel)) == 0 ? rel : NULL,
			.st = &st, .flags = r->flags, .first = in->nopen == 0, .nodeid = in->nodeid,
		};
		if (info.first)
			in->ipriv = NULL;
		ret = fs->cfg.hooks.open(fs->cfg.hooks.ctx, &info, &in->ipriv, &fi);
		if (ret < 0 && info.first)
			in->ipriv = NULL;
	}
	if (ret >= 0) {
		if (r->backed) {
			in->nbacked++;
			fh->backed = true;
		}
		in->nopen++;
		fh->ipriv = in->ipriv;
		fh->page_cached = !fi.direct_io && !fh->backed && !(r->flags & O_DIRECT);
	}
	pthread_mutex_unlock(&in->mu);
	if (ret >= 0 && (ret = pt_handle_adopt(fs, &fh->h)) < 0) {
		pt_close_file(fs, fh, false);
		return ret;
	}
	if (ret < 0) {
		close(fd);
		free(fh);
		return ret;
	}
	return 0;
}

void pt_create_file(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *dir = pt_inode_of(req, parent);
	if (!dir) {
		pt_reply_status(req, -ESTALE);
		return;
	}
	struct pt_caller opener = { .ngroups = -1 };
	struct fuse_entry_param e;
	struct pt_inode *in = NULL;
	struct pt_as as;
	/* Created and opened in one step by the caller: nobody else's file
	 * can be opened in its place, and nothing is chowned afterwards.
	 * O_NOFOLLOW: a symlink that appeared under the name is not followed
	 * (the kernel saw no entry there). */
	int fd = -1, ret = pt_as_caller(req, &as, true);
	if (ret == 0) {
		int dfd = pt_fd(fs, dir);
		fd = dfd < 0 ? dfd : openat(dfd, name, pt_source_flags(fi->flags) | O_CREAT |
					    O_NOFOLLOW | (fi->flags & O_EXCL), mode);
		ret = fd < 0 ? (dfd < 0 ? dfd : -errno) : pt_caller_keep(req, &opener);
		pt_as_self(&as);
		if (dfd >= 0)
			pt_fd_put(fs, dir);
	}
	if (ret == 0)
		ret = pt_lookup_fd(fs, fd, dir, name, &e, &in);
	if (ret < 0) {
		if (fd >= 0)
			close(fd);
		pt_caller_free(&opener);
		pt_reply_status(req, ret);
		return;
	}
	pthread_mutex_lock(&in->mu);
	finish_open(req, in, fd, fi->flags, fi, &e, &opener, -1);
}

void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fh *fh = pt_fh_of(req, fi);
	if (fh)
		pt_close_file(pt_fs_of(req), fh, true);
	pt_reply_status(req, fh ? 0 : -EBADF);
}

void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	pt_reply_status(req, 0);
}

void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct pt_fh *fh = pt_fh_of(req, fi);
	if (!fh) {
		pt_reply_status(req, -EBADF);
		return;
	}
	int fd = atomic_load(&fh->fd);
	int r = fd < 0 ? 0 : datasync ? fdatasync(fd) : fsync(fd);   /* lazy: nothing written */
	pt_reply_status(req, r < 0 ? -errno : 0);
}

/* ---- reading ---- */

#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080         /* Linux 6.14 */
#endif
static _Atomic bool dontcache_ok = true; /* cleared when the kernel or source fs refuses it */

ssize_t pt_read_source(int fd, void *buf, size_t size, off_t off, int rwf)
{
	size_t got = 0;
	while (got < size) {
		struct iovec iov = { (char *)buf + got, size - got };
		ssize_t n = preadv2(fd, &iov, 1, off + (off_t)got, rwf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Read a READ the core serves from the source.  The kernel's READs are its
 * own readahead decisions.  For a stream, the source's page cache and
 * readahead under them keep the disk busy ahead of the next READ; for an
 * isolated read they only keep a second copy of what the FUSE page cache
 * holds, and that copy makes the next nearby read look sequential to the
 * source's readahead, which then fetches data nobody asked for (4 % more
 * from the disk, +5-16 % time, in the benchmark's random reads on the ssd
 * profile).  So a READ that does not continue near the previous one of the
 * same open file bypasses the source's cache (RWF_DONTCACHE), unless the
 * kernel does not cache it either (O_DIRECT, e.g. qemu cache=none: then the
 * source's cache is the only one, shared by every VM on that base image). */
static ssize_t read_for_reply(struct pt_fh *fh, char *buf, size_t size, off_t off)
{
	uint64_t o = (uint64_t)off;
	uint64_t prev = atomic_exchange_explicit(&fh->next_off, o + size, memory_order_relaxed);
	int fd = pt_fh_fd(fh);
	if (fd < 0)
		return fd;
	/* Threads may take a stream's READs slightly out of order. */
	bool stream = o + 2 * PT_MAX_READ >= prev && o <= prev + PT_MAX_READ;
	if (stream || !fh->page_cached || !atomic_load_explicit(&dontcache_ok, memory_order_relaxed))
		return pt_read_source(fd, buf, size, off, 0);
	ssize_t n = pt_read_source(fd, buf, size, off, RWF_DONTCACHE);
	if (n == -EOPNOTSUPP || n == -EINVAL) {
		atomic_store_explicit(&dontcache_ok, false, memory_order_relaxed);
		n = pt_read_source(fd, buf, size, off, 0);
	}
	return n;
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

void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_fh *fh = pt_fh_of(req, fi);
	struct pt_tls *t = tls_get();
	if (!t || !fh) {
		pt_reply_status(req, t ? -EBADF : -ENOMEM);
		return;
	}
	if (size > PT_MAX_READ)
		size = PT_MAX_READ;
	YLOG_TRACE("read ino %ju off %jd size %zu", (uintmax_t)fh->in->ino, (intmax_t)off, size);
	if (fs->cfg.hooks.read) {
		t->rb.cnt = 0;
		t->rb.hold = NULL;
		cur_pid = fuse_req_ctx(req)->pid;
		int ret = fs->cfg.hooks.read(fs->cfg.hooks.ctx, fh->ipriv, (struct pt_file *)fh,
					     (uint64_t)off, size, &t->rb);
		cur_pid = 0;
		if (ret < 0)
			pt_reply_status(req, ret);
		else if (ret == 0)
			fuse_reply_iov(req, t->rb.iov, t->rb.cnt);
		if (t->rb.hold && fs->cfg.hooks.read_done)
			fs->cfg.hooks.read_done(fs->cfg.hooks.ctx, t->rb.hold);
		if (ret <= 0)
			return;
	}
	if (fs->cfg.splice) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		int fd = pt_fh_fd(fh);
		if (fd < 0) {
			pt_reply_status(req, fd);
			return;
		}
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	ssize_t n = read_for_reply(fh, t->rb.scratch, size, off);
	if (n < 0)
		pt_reply_status(req, (int)n);
	else
		fuse_reply_buf(req, t->rb.scratch, (size_t)n);
}

/* ---- changing ---- */

void pt_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct pt_fh *fh = pt_fh_of(req, fi);
	struct pt_change m;
	struct pt_as as;
	size_t done = 0;
	if (!fh) {
		pt_reply_status(req, -EBADF);
		return;
	}
	pt_change_begin(&m, pt_fs_of(req), fh->in, fh, PT_MOD_WRITE, (uint64_t)off, size);
	int ret = pt_as_writer(req, fh, &as);
	while (ret == 0 && done < size) {
		ssize_t n = pwrite(fh->fd, buf + done, size - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = -errno;
		else
			done += (size_t)n;
	}
	pt_as_self(&as);
	pt_change_end(&m, fh->fd, done ? (int64_t)done : ret);
	if (done == 0 && ret < 0)
		pt_reply_status(req, ret);
	else
		fuse_reply_write(req, done);
}

void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		  struct fuse_file_info *fi)
{
	struct pt_fh *fh = pt_fh_of(req, fi);
	struct pt_change m;
	struct pt_as as;
	if (!fh) {
		pt_reply_status(req, -EBADF);
		return;
	}
	pt_change_begin(&m, pt_fs_of(req), fh->in, fh, PT_MOD_FALLOCATE, (uint64_t)off,
			(uint64_t)len);
	int ret = pt_as_writer(req, fh, &as);
	if (ret == 0) {
		ret = fallocate(fh->fd, mode, off, len) < 0 ? -errno : 0;
		pt_as_self(&as);
	}
	pt_change_end(&m, fh->fd, ret);
	pt_reply_status(req, ret);
}

void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct pt_fh *in = pt_fh_of(req, fi_in), *out = pt_fh_of(req, fi_out);
	struct pt_change m;
	struct pt_as as;
	if (!in || !out) {
		pt_reply_status(req, -EBADF);
		return;
	}
	pt_change_begin(&m, pt_fs_of(req), out->in, out, PT_MOD_COPY, (uint64_t)off_out, len);
	ssize_t n = pt_as_writer(req, out, &as);
	int ifd = pt_fh_fd(in);
	if (n == 0 && ifd < 0) {
		n = ifd;
		pt_as_self(&as);
	} else if (n == 0) {
		n = copy_file_range(ifd, &off_in, out->fd, &off_out, len, (unsigned)flags);
		if (n < 0)
			n = -errno;
		pt_as_self(&as);
	}
	pt_change_end(&m, out->fd, n);
	if (n < 0)
		pt_reply_status(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct pt_fh *fh = pt_fh_of(req, fi);
	int fd = fh ? pt_fh_fd(fh) : -EBADF;
	if (fd < 0) {
		pt_reply_status(req, fd);
		return;
	}
	off_t r = lseek(fd, off, whence);
	if (r < 0)
		pt_reply_status(req, -errno);
	else
		fuse_reply_lseek(req, r);
}
