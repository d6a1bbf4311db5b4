/* detach.c - -o detach_when_emptied (prototype, issue 13): let the owner of
 * the source directory remove it while yolofs is mounted on it in place.
 *
 * containerd's overlayfs snapshotter removes a layer with Go's os.RemoveAll
 * of .../snapshots/N, whose fs/ is our mountpoint: it opens fs/ (through the
 * mount), unlinks every entry below it (through the mount, so the source
 * really is emptied), then rmdirs fs/ itself, which the kernel refuses with
 * EBUSY while anything is mounted there.  containerd logs "failed to remove
 * directory", leaves N/fs and N behind and the daemon running.  (dockerd
 * unmounts whatever is mounted in a layer directory before removing it.)
 * The rmdir of the mountpoint never reaches a FUSE daemon, but the removal
 * of the last entry of its top directory does.
 *
 * With this option, an UNLINK or RMDIR in the top directory that would leave
 * it empty (the name is its only entry; for RMDIR, that directory is itself
 * empty) first detaches the mount, umount2(MOUNTPOINT, MNT_DETACH |
 * UMOUNT_NOFOLLOW), and only then passes the request to the core, which
 * removes the entry and replies.  When the caller's rmdir of the mountpoint
 * follows, nothing is mounted there any more and it succeeds.  Detaching
 * after the reply is too late: the caller's rmdir races it (measured: lost
 * for one of two layers).  The kernel keeps the detached mount, and this
 * session, for as long as anything still holds it (the remover's open
 * directory, a file still open, a running container's overlay); when the
 * last holder lets go it ends the session, the session loop returns and
 * yolofs exits 0 (libfuse sees the dead session and does not unmount the
 * path again).
 *
 * Detaching is always safe for the data: whoever opens the path afterwards
 * reads the source directory itself, which holds the same files.  If the
 * removal that triggered it then fails, the directory stays unaccelerated,
 * not wrong.  The mount is detached only if it is still the topmost mount at
 * MOUNTPOINT (its mount id, from /proc/self/mountinfo, taken right after
 * mounting): umount2 takes the topmost one, which could be someone else's;
 * otherwise the removal goes on and the refusal is logged.  Only once.  Cost:
 * one read of the source's top directory per UNLINK/RMDIR in it (none for
 * removals elsewhere).
 *
 * The interface is three functions, declared here and again in main.c (its
 * only caller); on re-integration they become detach.h, and the mountinfo
 * parsing is shared with mount.c. */
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

#include "log.h"
#include "passthrough.h"

int detach_init(int source_fd, const char *mountpoint);
const struct fuse_lowlevel_ops *detach_ops(const struct fuse_lowlevel_ops *base);
void detach_mounted(void);

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

/* Does a /proc/self/mountinfo path field (space, tab, newline and backslash
 * written as \ooo) name `path`? */
static bool mi_path_is(const char *field, const char *path)
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

/* Mount id of the topmost mount at `path` (the last mountinfo line naming
 * it); with fuse_only, of the topmost FUSE mount there.  @return the id or
 * -1. */
static long top_mount_id(const char *path, bool fuse_only)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	long id = -1;
	while (getline(&line, &cap, f) > 0) {
		long mid;
		int mp = 0, mpend = 0;
		if (sscanf(line, "%ld %*u %*u:%*u %*s %n%*s%n", &mid, &mp, &mpend) != 1 || !mpend ||
		    !line[mpend])
			continue;
		line[mpend] = '\0';
		const char *sep = strstr(line + mpend + 1, " - ");
		if (fuse_only && !(sep && strncmp(sep + 3, "fuse", 4) == 0))
			continue;
		if (mi_path_is(line + mp, path))
			id = mid;
	}
	free(line);
	fclose(f);
	return id;
}

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
	} else if (dt.mnt_id < 0 || top_mount_id(dt.mountpoint, false) != dt.mnt_id) {
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

/* Before pt_create (which takes source_fd over): keep our own descriptor
 * of the source's top directory and the mountpoint.  @return 0 or -errno. */
int detach_init(int source_fd, const char *mountpoint)
{
	dt.dirfd = fcntl(source_fd, F_DUPFD_CLOEXEC, 3);
	if (dt.dirfd < 0)
		return -errno;
	dt.mountpoint = strdup(mountpoint);
	return dt.mountpoint ? 0 : -ENOMEM;
}

/* `base` with unlink and rmdir wrapped (for fuse_session_new). */
const struct fuse_lowlevel_ops *detach_ops(const struct fuse_lowlevel_ops *base)
{
	dt.base = base;
	dt.ops = *base;
	dt.ops.unlink = detach_unlink;
	dt.ops.rmdir = detach_rmdir;
	return &dt.ops;
}

/* Right after the mount: remember which mount is ours. */
void detach_mounted(void)
{
	dt.mnt_id = top_mount_id(dt.mountpoint, true);
	if (dt.mnt_id < 0)
		ylog(YLOG_WARN, "%s: our mount is not in /proc/self/mountinfo; "
		     "detach_when_emptied will not detach", dt.mountpoint);
}
