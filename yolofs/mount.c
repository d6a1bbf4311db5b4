/* mount.c - yolofs's mount set-up: the options it always adds, the
 * readahead window of the mount, and clearing a dead yolofs mount from
 * the mount point (see mount.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mount.h"
#include "passthrough.h"

int mount_add_args(struct fuse_args *args, const char *source)
{
	char fsname[4200];
	snprintf(fsname, sizeof(fsname), "-ofsname=%s", source);
	for (char *c = fsname; *c; c++)
		if (*c == ',')
			*c = '_';        /* a comma would end the option */
	if (pt_mount_args(args) < 0 || fuse_opt_add_arg(args, fsname) != 0)
		return -ENOMEM;
	return 0;
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

/* mount_top_id, and the file system type of the mount found (fstype,
 * `cap` bytes, may be NULL). */
static long top_mount(const char *path, bool fuse_only, dev_t *dev, char *fstype, size_t fstype_len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	long id = -1;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE ...": later
	 * lines stack over earlier ones at the same path. */
	while (getline(&line, &cap, f) > 0) {
		long mid;
		unsigned a, b;
		int mp = 0, mpend = 0;
		if (sscanf(line, "%ld %*u %u:%u %*s %n%*s%n", &mid, &a, &b, &mp, &mpend) != 3 ||
		    !mpend || !line[mpend])
			continue;
		line[mpend] = '\0';
		const char *sep = strstr(line + mpend + 1, " - ");
		if (fuse_only && !(sep && strncmp(sep + 3, "fuse", 4) == 0))
			continue;
		if (mountinfo_path_is(line + mp, path)) {
			id = mid;
			if (dev)
				*dev = makedev(a, b);
			if (fstype && sep)
				snprintf(fstype, fstype_len, "%.*s", (int)strcspn(sep + 3, " \n"), sep + 3);
		}
	}
	free(line);
	fclose(f);
	return id;
}

long mount_top_id(const char *path, bool fuse_only, dev_t *dev)
{
	return top_mount(path, fuse_only, dev, NULL, 0);
}

/* statfs of a FUSE mount on a thread of its own: a session nobody serves
 * (kept in a descriptor store) never answers. */
struct probe {
	const char *path;
	int result;                      /* 0, -errno, or 1 while waiting */
	pthread_mutex_t lock;
	pthread_cond_t done;
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	struct statfs sfs;
	int r = statfs(p->path, &sfs) == 0 ? 0 : -errno;
	pthread_mutex_lock(&p->lock);
	p->result = r;
	pthread_cond_signal(&p->done);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* @return 0 (it answers), -errno (dead: ENOTCONN), or 1 (no answer in time). */
static int probe_mount(const char *path, pthread_t *thread, struct probe *p)
{
	*p = (struct probe){ .path = path, .result = 1 };
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->done, NULL);
	if (pthread_create(thread, NULL, probe_main, p) != 0)
		return -EAGAIN;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&p->lock);
	while (p->result == 1 && pthread_cond_timedwait(&p->done, &p->lock, &until) == 0)
		;
	int r = p->result;
	pthread_mutex_unlock(&p->lock);
	return r;
}

int mount_clear_stale(const char *mountpoint, bool (*live)(dev_t dev))
{
	char fstype[64] = "";
	dev_t dev;
	for (int round = 0; round < 8; round++) {
		if (top_mount(mountpoint, true, &dev, fstype, sizeof(fstype)) < 0 ||
		    strcmp(fstype, "fuse.yolofs") != 0)
			return 0;
		if (live && live(dev))
			return -EBUSY;
		pthread_t thread;
		struct probe p;
		int r = probe_mount(mountpoint, &thread, &p), ret = 0;
		if (r == 0) {
			ret = -EBUSY;    /* a yolofs (an older one) answers there */
		} else {
			ylog(YLOG_WARN, "unmounting a stale yolofs mount at %s (%s)", mountpoint,
			     r == 1 ? "nobody serves its session" : strerror(-r));
			/* MNT_FORCE aborts the session (callers waiting on it,
			 * the probe too, get an error) before unmounting; a busy
			 * mount is then detached. */
			if (umount2(mountpoint, MNT_FORCE) < 0 && umount2(mountpoint, MNT_DETACH) < 0)
				ret = -errno;
		}
		if (r != -EAGAIN)
			pthread_join(thread, NULL);
		pthread_mutex_destroy(&p.lock);
		pthread_cond_destroy(&p.done);
		if (ret < 0)
			return ret;
	}
	return -ELOOP;
}

int mount_set_readahead(const char *mountpoint, uint32_t bytes)
{
	/* The topmost FUSE mount there is the one just made (it may stack
	 * over the source directory's own mount). */
	dev_t dev;
	if (mount_top_id(mountpoint, true, &dev) < 0)
		return -ENOENT;
	char path[64], val[16];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev), minor(dev));
	int len = snprintf(val, sizeof(val), "%u\n", bytes >> 10);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, val, (size_t)len);
	int ret = w == len ? 0 : w < 0 ? -errno : -EIO;
	close(fd);
	return ret;
}
