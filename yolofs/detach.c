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

static struct {
	const struct fuse_lowlevel_ops *base;   /* the core's operations */
	struct fuse_lowlevel_ops ops;           /* base with unlink/rmdir wrapped */
	int dirfd;                              /* O_PATH fd of the source's top directory */
	char *mountpoint;                       /* as libfuse mounted it (absolute, resolved) */
	long mnt_id;                            /* our mount's id, -1 if not found */
	pthread_mutex_t lock;                   /* serialises detaching */
	atomic_bool detached;                   /* set once detached (under lock) */
} dt = { .dirfd = -1, .mnt_id = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

/* Is `name` the only entry of the source's top directory (and, for a
 * directory, itself empty)?  Read as the daemon: this only decides whether
 * to detach, the removal itself is still done (or refused) as the caller. */
static bool only_entry(const char *name, bool dir)
{
	int fd = openat(dt.dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
	fd = openat(dt.dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
	if (parent != FUSE_ROOT_ID || atomic_load(&dt.detached) || !only_entry(name, dir))
		return;
	long pid = (long)fuse_req_ctx(req)->pid;
	pthread_mutex_lock(&dt.lock);
	if (atomic_load(&dt.detached)) {
		/* another thread just did */
	} else if (dt.mnt_id < 0 || mount_top_id(dt.mountpoint, false, NULL) != dt.mnt_id) {
		ylog(YLOG_WARN, "%s: the last entry of the source is being removed (pid %ld), but "
		     "the topmost mount there is not ours; not detaching", dt.mountpoint, pid);
	} else if (umount2(dt.mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
		ylog(YLOG_ERR, "%s: the source is being removed (pid %ld); detaching failed: %s",
		     dt.mountpoint, pid, strerror(errno));
	} else {
		atomic_store(&dt.detached, true);
		ylog(YLOG_INFO, "%s: the source is being removed (pid %ld removes its last entry "
		     "%s): detached the mount; serving what still holds it, exiting when nothing "
		     "does", dt.mountpoint, pid, name);
	}
	pthread_mutex_unlock(&dt.lock);
}

static void detach_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	maybe_detach(req, parent, name, false);
	dt.base->unlink(req, parent, name);
}

static void detach_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	maybe_detach(req, parent, name, true);
	dt.base->rmdir(req, parent, name);
}

int detach_init(int source_fd, const char *mountpoint)
{
	dt.dirfd = fcntl(source_fd, F_DUPFD_CLOEXEC, 3);
	if (dt.dirfd < 0)
		return -errno;
	dt.mountpoint = strdup(mountpoint);
	return dt.mountpoint ? 0 : -ENOMEM;
}

const struct fuse_lowlevel_ops *detach_ops(const struct fuse_lowlevel_ops *base)
{
	dt.base = base;
	dt.ops = *base;
	dt.ops.unlink = detach_unlink;
	dt.ops.rmdir = detach_rmdir;
	return &dt.ops;
}

void detach_mounted(void)
{
	dt.mnt_id = mount_top_id(dt.mountpoint, true, NULL);
	if (dt.mnt_id < 0)
		ylog(YLOG_WARN, "%s: our mount is not in /proc/self/mountinfo; "
		     "detach_when_emptied will not detach", dt.mountpoint);
}
