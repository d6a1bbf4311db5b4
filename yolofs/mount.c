/* mount.c - yolofs's mount set-up: the options it always adds and the
 * readahead window of the mount (see mount.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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

long mount_top_id(const char *path, bool fuse_only, dev_t *dev)
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
		}
	}
	free(line);
	fclose(f);
	return id;
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
