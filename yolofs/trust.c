/* trust.c - opening boot images only when nobody but root (or the daemon's
 * user) can have changed them (see trust.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"

/* Symlinks followed on one path at most (as the kernel's own limit). */
#define MAX_HOPS 40

/* May `st` (of `what`) be trusted?  @return 0, or -EPERM with why. */
static int trusted(const struct stat *st, const char *what, char *why, size_t len)
{
	uid_t me = geteuid();
	if (st->st_uid != 0 && st->st_uid != me) {
		snprintf(why, len, "%s is owned by uid %u, not by root%s", what, (unsigned)st->st_uid,
			 me ? " or the daemon's user" : "");
		return -EPERM;
	}
	if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, len, "%s is writable by %s (mode %04o)", what,
			 (st->st_mode & S_IWOTH) ? "others" : "its group",
			 (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Open `path` for reading, a regular file or (want_dir) a directory, with
 * the checks of trust.h on every component. */
static int open_trusted(const char *path, bool want_dir, bool check, char *why, size_t whylen)
{
	int oflags = O_RDONLY | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0);
	if (!check) {
		/* O_NONBLOCK: a FIFO named like an image must not hang the start. */
		int fd = open(path, oflags | O_NONBLOCK), saved;
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			saved = errno;
			snprintf(why, whylen, "%s", strerror(saved));
			if (fd >= 0)
				close(fd);
			return -saved;
		}
		if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
			close(fd);
			snprintf(why, whylen, "not a %s", want_dir ? "directory" : "regular file");
			return -EINVAL;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		return fd;
	}
	if (path[0] != '/') {
		snprintf(why, whylen, "not an absolute path");
		return -EINVAL;
	}
	/* rest: what is left to walk (grows when a symlink is followed). */
	char rest[PATH_MAX * 2], sofar[PATH_MAX * 2] = "";
	snprintf(rest, sizeof(rest), "%s", path);
	int cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), ret = 0, hops = 0;
	struct stat st;
	if (cur < 0 || fstat(cur, &st) < 0) {
		ret = -errno;
		snprintf(why, whylen, "/: %s", strerror(errno));
		goto out;
	}
	if ((ret = trusted(&st, "directory /", why, whylen)) < 0)
		goto out;
	for (;;) {
		char *p = rest;
		while (*p == '/')
			p++;
		if (!*p && want_dir) {           /* "/" itself */
			ret = openat(cur, ".", oflags);
			if (ret < 0)
				ret = -errno;
			goto out;
		}
		if (!*p) {
			snprintf(why, whylen, "names a directory");
			ret = -EISDIR;
			goto out;
		}
		char *slash = strchr(p, '/');
		size_t clen = slash ? (size_t)(slash - p) : strlen(p);
		char comp[NAME_MAX + 1];
		if (clen > NAME_MAX) {
			snprintf(why, whylen, "a name is too long");
			ret = -ENAMETOOLONG;
			goto out;
		}
		memcpy(comp, p, clen);
		comp[clen] = '\0';
		memmove(rest, p + clen, strlen(p + clen) + 1);
		bool last = strspn(rest, "/") == strlen(rest);
		if (strcmp(comp, ".") == 0)
			continue;
		size_t used = strlen(sofar);
		snprintf(sofar + used, sizeof(sofar) - used, "/%s", comp);
		int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			ret = -errno;
			snprintf(why, whylen, "%s: %s", sofar, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		char what[PATH_MAX * 2 + 32];
		snprintf(what, sizeof(what), "%s %s", S_ISDIR(st.st_mode) ? "directory" :
			 S_ISLNK(st.st_mode) ? "symlink" : "file", sofar);
		if ((ret = trusted(&st, what, why, whylen)) < 0) {
			close(fd);
			goto out;
		}
		if (S_ISLNK(st.st_mode)) {
			/* Followed by hand: its target is walked with the same
			 * checks, from / or from the directory holding it. */
			char target[PATH_MAX];
			ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
			close(fd);
			if (n <= 0 || ++hops > MAX_HOPS) {
				ret = n < 0 ? -errno : -ELOOP;
				snprintf(why, whylen, "%s: %s", sofar, n < 0 ? strerror(errno) :
					 "too many symlinks");
				goto out;
			}
			target[n] = '\0';
			char joined[sizeof(rest)];
			if (snprintf(joined, sizeof(joined), "%s/%s", target, rest) >= (int)sizeof(joined)) {
				ret = -ENAMETOOLONG;
				snprintf(why, whylen, "%s: path too long", sofar);
				goto out;
			}
			strcpy(rest, joined);
			*strrchr(sofar, '/') = '\0';
			if (target[0] == '/') {
				close(cur);
				cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
				sofar[0] = '\0';
				if (cur < 0) {
					ret = -errno;
					goto out;
				}
			}
			continue;
		}
		if (!last) {
			if (!S_ISDIR(st.st_mode)) {
				close(fd);
				ret = -ENOTDIR;
				snprintf(why, whylen, "%s: not a directory", sofar);
				goto out;
			}
			close(cur);
			cur = fd;        /* ".." from here is checked like any directory */
			continue;
		}
		if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
			close(fd);
			ret = -EINVAL;
			snprintf(why, whylen, "%s: not a %s", sofar, want_dir ? "directory" :
				 "regular file");
			goto out;
		}
		/* Reopen the very inode checked for reading. */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		ret = open(proc, oflags);
		if (ret < 0) {
			ret = -errno;
			snprintf(why, whylen, "%s: %s", sofar, strerror(errno));
		}
		close(fd);
		goto out;
	}
out:
	if (cur >= 0)
		close(cur);
	return ret;
}

int trust_open_image(const char *path, bool check, char *why, size_t whylen)
{
	return open_trusted(path, false, check, why, whylen);
}

int trust_open_dir(const char *path, bool check, char *why, size_t whylen)
{
	return open_trusted(path, true, check, why, whylen);
}

int trust_check_fd(int fd, const char *what, char *why, size_t whylen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "%s: %s", what, strerror(errno));
		return -errno;
	}
	return trusted(&st, what, why, whylen);
}
