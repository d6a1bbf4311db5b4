/* detach.c - -o detach_when_emptied: detach the mount when the last entry
 * of the source is removed through it (see detach.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "detach.h"
#include "log.h"
#include "mount.h"
#include "passthrough.h"

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

struct detach {
	int dirfd;                              /* O_PATH fd of the source's top directory */
	char *mountpoint;                       /* as libfuse mounted it (absolute, resolved) */
	long mnt_id;                            /* our mount's id, -1 if not found */
	void *userdata;                         /* the session's (its core), which names it */
	pthread_mutex_t lock;                   /* serialises detaching */
	atomic_bool detached;                   /* set once detached (under lock) */
};

/* The sessions with the option, by their requests' userdata: one process
 * may serve many (yolofs --host), and an operation is told only that. */
static struct {
	pthread_mutex_t lock;                   /* protects v and n */
	struct detach **v;
	size_t n, cap;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const struct fuse_lowlevel_ops *base_ops;  /* the core's operations */
static struct fuse_lowlevel_ops wrapped_ops;      /* base with unlink/rmdir wrapped */

static struct detach *detach_of(fuse_req_t req)
{
	void *u = fuse_req_userdata(req);
	struct detach *dt = NULL;
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n && !dt; i++)
		if (reg.v[i]->userdata == u)
			dt = reg.v[i];
	pthread_mutex_unlock(&reg.lock);
	return dt;
}

/* Is `name` the only entry of the source's top directory (and, for a
 * directory, itself empty)?  Read as the daemon: this only decides whether
 * to detach, the removal itself is still done (or refused) as the caller. */
static bool only_entry(struct detach *dt, const char *name, bool dir)
{
	int fd = openat(dt->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	struct dirent *de;
	int others = 0;
	bool seen = false;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strcmp(de->d_name, name) != 0) {
			others++;
			break;
		}
		seen = true;
	}
	closedir(d);
	if (!seen || others)
		return false;
	if (!dir)
		return true;
	fd = openat(dt->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	bool empty = true;
	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* Detach our mount if `name` is the last entry being removed from the top. */
static void maybe_detach(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct detach *dt = parent == FUSE_ROOT_ID ? detach_of(req) : NULL;
	if (!dt || atomic_load(&dt->detached) || !only_entry(dt, name, dir))
		return;
	long pid = (long)fuse_req_ctx(req)->pid;
	pthread_mutex_lock(&dt->lock);
	if (atomic_load(&dt->detached)) {
		/* another thread just did */
	} else if (dt->mnt_id < 0 || mount_top_id(dt->mountpoint, false, NULL) != dt->mnt_id) {
		ylog(YLOG_WARN, "%s: the last entry of the source is being removed (pid %ld), but "
		     "the topmost mount there is not ours; not detaching", dt->mountpoint, pid);
	} else if (umount2(dt->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
		ylog(YLOG_ERR, "%s: the source is being removed (pid %ld); detaching failed: %s",
		     dt->mountpoint, pid, strerror(errno));
	} else {
		atomic_store(&dt->detached, true);
		ylog(YLOG_INFO, "%s: the source is being removed (pid %ld removes its last entry "
		     "%s): detached the mount; serving what still holds it, exiting when nothing "
		     "does", dt->mountpoint, pid, name);
	}
	pthread_mutex_unlock(&dt->lock);
}

static void detach_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	maybe_detach(req, parent, name, false);
	base_ops->unlink(req, parent, name);
}

static void detach_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	maybe_detach(req, parent, name, true);
	base_ops->rmdir(req, parent, name);
}

int detach_create(struct detach **out, int source_fd, const char *mountpoint)
{
	struct detach *dt = calloc(1, sizeof(*dt));
	if (!dt)
		return -ENOMEM;
	dt->mnt_id = -1;
	pthread_mutex_init(&dt->lock, NULL);
	dt->dirfd = fcntl(source_fd, F_DUPFD_CLOEXEC, 3);
	int ret = dt->dirfd < 0 ? -errno : 0;
	if (ret == 0 && !(dt->mountpoint = strdup(mountpoint)))
		ret = -ENOMEM;
	if (ret < 0) {
		detach_free(dt);
		return ret;
	}
	*out = dt;
	return 0;
}

const struct fuse_lowlevel_ops *detach_ops(struct detach *dt, void *userdata)
{
	pthread_mutex_lock(&reg.lock);
	if (!base_ops) {
		base_ops = pt_ops();
		wrapped_ops = *base_ops;
		wrapped_ops.unlink = detach_unlink;
		wrapped_ops.rmdir = detach_rmdir;
	}
	dt->userdata = userdata;
	bool room = reg.n < reg.cap;
	if (!room) {
		size_t cap = reg.cap ? 2 * reg.cap : 16;
		struct detach **v = realloc(reg.v, cap * sizeof(*v));
		if (v) {
			reg.v = v;
			reg.cap = cap;
			room = true;
		}
	}
	if (room)
		reg.v[reg.n++] = dt;
	pthread_mutex_unlock(&reg.lock);
	if (!room)
		ylog(YLOG_WARN, "%s: out of memory: detach_when_emptied will not detach",
		     dt->mountpoint);
	return &wrapped_ops;
}

void detach_mounted(struct detach *dt, long mnt_id)
{
	dt->mnt_id = mnt_id;
	if (dt->mnt_id < 0)
		ylog(YLOG_WARN, "%s: our mount is not in /proc/self/mountinfo; "
		     "detach_when_emptied will not detach", dt->mountpoint);
}

void detach_free(struct detach *dt)
{
	if (!dt)
		return;
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n; i++) {
		if (reg.v[i] != dt)
			continue;
		reg.v[i] = reg.v[--reg.n];
		break;
	}
	pthread_mutex_unlock(&reg.lock);
	if (dt->dirfd >= 0)
		close(dt->dirfd);
	free(dt->mountpoint);
	pthread_mutex_destroy(&dt->lock);
	free(dt);
}
