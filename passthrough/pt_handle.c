/* pt_handle.c - the core's open handles (fi->fh): the list of open files
 * and directories (freed at exit when their release never came), closing
 * them, and an open file's descriptor on the source, including lazy opens:
 * which opens may wait (see passthrough.h, struct pt_file), the O_PATH
 * descriptor such an open holds, and opening it once something needs the
 * file's bytes. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pt_i.h"

static bool handle_is(const void *ctx, uint64_t item, const void *key)
{
	(void)ctx;
	return ((const struct pt_handle *)(uintptr_t)item)->id == *(const uint64_t *)key;
}

int pt_handle_add(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->id = fs->next_handle + 1;
	h->slot = PT_NO_SLOT;
	int ret = yhash_add(&fs->handles, pt_id_hash(h->id), (uintptr_t)h);
	if (ret == 0)
		fs->next_handle = h->id;
	else
		h->id = 0;
	pthread_mutex_unlock(&fs->handles_lock);
	return ret;
}

int pt_handle_adopt(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	int ret = yhash_add(&fs->handles, pt_id_hash(h->id), (uintptr_t)h);
	if (h->id > fs->next_handle)
		fs->next_handle = h->id;
	pthread_mutex_unlock(&fs->handles_lock);
	return ret;
}

void pt_handle_record(struct pt_fs *fs, struct pt_handle *h, const struct pt_inode *in,
		      int flags, bool backed, bool answered)
{
	struct pt_record_handle v = {
		.nodeid = in->nodeid, .flags = flags, .is_dir = h->is_dir, .backed = backed,
		.answered = answered,
	};
	pthread_mutex_lock(&fs->handles_lock);
	pt_record_handle_new(fs, h, &v);
	pthread_mutex_unlock(&fs->handles_lock);
}

void pt_handle_del(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	yhash_remove(&fs->handles, pt_id_hash(h->id), (uintptr_t)h);
	pt_record_handle_gone(fs, h);
	pthread_mutex_unlock(&fs->handles_lock);
}

struct pt_handle *pt_handle_find(struct pt_fs *fs, uint64_t id, bool is_dir)
{
	uint64_t item;
	pthread_mutex_lock(&fs->handles_lock);
	bool found = yhash_find(&fs->handles, pt_id_hash(id), handle_is, NULL, &id, &item);
	pthread_mutex_unlock(&fs->handles_lock);
	struct pt_handle *h = found ? (struct pt_handle *)(uintptr_t)item : NULL;
	if (!h || h->is_dir != is_dir) {
		ylog(YLOG_ERR, "the kernel named an open %s the daemon does not have (%" PRIu64 ")",
		     is_dir ? "directory" : "file", id);
		return NULL;
	}
	return h;
}

/* Linux 6.9 uapi (Debian 12's headers are older); libfuse's
 * fuse_passthrough_close does the same but needs a request, which an open
 * whose reply failed no longer has. */
#ifndef FUSE_DEV_IOC_BACKING_CLOSE
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
#endif

/* The kernel's open files keep their backing file; the id only lets later
 * opens name it. */
static void backing_close(struct pt_fs *fs, int id)
{
	uint32_t bid = (uint32_t)id;
	if (fs->se && ioctl(fuse_session_fd(fs->se), FUSE_DEV_IOC_BACKING_CLOSE, &bid) < 0)
		ylog(YLOG_WARN, "closing passthrough backing id %d: %s", id, strerror(errno));
}

void pt_close_file(struct pt_fs *fs, struct pt_fh *fh, bool listed)
{
	struct pt_inode *in = fh->in;
	if (listed)
		pt_handle_del(fs, &fh->h);
	pthread_mutex_lock(&in->mu);
	if (fh->backed && --in->nbacked == 0) {
		backing_close(fs, in->backing_id);
		in->backing_id = 0;
		pt_record_node_backing(fs, in);
	}
	bool last = --in->nopen == 0;
	if (fs->cfg.hooks.release)
		fs->cfg.hooks.release(fs->cfg.hooks.ctx, &in->ipriv, last);
	if (last)
		in->ipriv = NULL;
	pthread_mutex_unlock(&in->mu);
	if (fh->fd >= 0)
		close(fh->fd);
	if (fh->path_fd >= 0)
		close(fh->path_fd);
	pt_caller_free(&fh->opener);
	free(fh);
}

void pt_close_dir(struct pt_dir *d)
{
	if (d->dp)
		closedir(d->dp);
	free(d->entries);
	free(d);
}

void pt_close_handles(struct pt_fs *fs)
{
	uint64_t item;
	for (uint32_t pos = 0; yhash_next(&fs->handles, &pos, &item);) {
		struct pt_handle *h = (struct pt_handle *)(uintptr_t)item;
		if (h->is_dir)
			pt_close_dir((struct pt_dir *)h);
		else
			pt_close_file(fs, (struct pt_fh *)h, false);
	}
	yhash_free(&fs->handles);
}

int pt_source_flags(int flags)
{
	return (flags & ~(O_DIRECT | O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC;
}

int pt_lazy_open(fuse_req_t req, struct pt_inode *in, int flags)
{
	struct pt_fs *fs = pt_fs_of(req);
	char path[PATH_MAX];
	struct pt_fhid id;
	struct stat st;
	if (!fs->cfg.ns.lookup || !in->fhid || !pt_ns_answers(req) ||
	    (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT)) ||
	    pt_path_of(fs, in, path, sizeof(path)) < 0 ||
	    fs->cfg.ns.lookup(fs->cfg.ns.ctx, path, &st, &id) != 1 || !S_ISREG(st.st_mode) ||
	    !pt_fhid_equal(&id, in->fhid))
		return -1;
	int fd = pt_fd_dup(fs, in);
	return fd < 0 ? -1 : fd;
}

int pt_fh_fd(struct pt_fh *fh)
{
	int fd = atomic_load(&fh->fd);
	if (fd >= 0)
		return fd;
	/* A lazy open of a root caller: open the object it refers to now,
	 * as the daemon (which is what acting as root is), wherever it is
	 * and whatever is at its name. */
	char pp[64];
	if (fh->path_fd < 0)
		return -EBADF;
	pt_proc_path(pp, sizeof(pp), fh->path_fd);
	fd = open(pp, pt_source_flags(fh->flags));
	if (fd < 0)
		return -errno;
	int lazy = -1;
	if (!atomic_compare_exchange_strong(&fh->fd, &lazy, fd)) {
		close(fd);               /* another thread opened it first */
		return lazy;
	}
	return fd;
}

int pt_file_fd(struct pt_file *file)
{
	return pt_fh_fd((struct pt_fh *)file);
}

int pt_file_stat(struct pt_file *file, struct stat *st)
{
	struct pt_fh *fh = (struct pt_fh *)file;
	int fd = atomic_load(&fh->fd);
	return fstat(fd >= 0 ? fd : fh->path_fd, st) < 0 ? -errno : 0;
}
