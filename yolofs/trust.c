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

/* May `st` (of `what`) be trusted?  @return 0, or -EPERM with err. */
static int trusted(const struct stat *st, const char *what, struct yolo_err *err)
{
	uid_t me = geteuid();
	if (st->st_uid != 0 && st->st_uid != me)
		return yolo_fail(err, -EPERM, "%s is owned by uid %u, not by root%s", what,
				 (unsigned)st->st_uid, me ? " or the daemon's user" : "");
	if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_IWGRP | S_IWOTH)))
		return yolo_fail(err, -EPERM, "%s is writable by %s (mode %04o)", what,
				 (st->st_mode & S_IWOTH) ? "others" : "its group",
				 (unsigned)(st->st_mode & 07777));
	return 0;
}

/* Open `path` as it is, without the checks (insecure_images): only the
 * kind of object is checked. */
static int open_unchecked(const char *path, int oflags, bool want_dir, struct yolo_err *err)
{
	/* O_NONBLOCK: a FIFO named like an image must not hang the start. */
	int fd = open(path, oflags | O_NONBLOCK), saved;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		return yolo_fail(err, -saved, "%s", strerror(saved));
	}
	if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		close(fd);
		return yolo_fail(err, -EINVAL, "not a %s", want_dir ? "directory" : "regular file");
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* A walk from / to what a path names, one checked component at a time. */
struct walk {
	char rest[PATH_MAX * 2];         /* what is left to walk (grows when a symlink is followed) */
	char sofar[PATH_MAX * 2];        /* what was walked, for messages */
	int cur;                         /* O_PATH: the directory reached */
	int hops;                        /* symlinks followed */
	struct yolo_err *err;
};

/* Start at /, which must be trusted too.  @return 0 or -errno with err. */
static int walk_start(struct walk *w, const char *path)
{
	struct stat st;
	snprintf(w->rest, sizeof(w->rest), "%s", path);
	w->sofar[0] = '\0';
	w->hops = 0;
	w->cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->cur < 0 || fstat(w->cur, &st) < 0) {
		int saved = errno;
		return yolo_fail(w->err, -saved, "/: %s", strerror(saved));
	}
	return trusted(&st, "directory /", w->err);
}

/* Take the next name off w->rest into `comp`; *last: nothing but slashes
 * follows it.  @return 1, 0 when nothing is left, or -errno with err. */
static int walk_next_name(struct walk *w, char comp[NAME_MAX + 1], bool *last)
{
	char *p = w->rest;
	while (*p == '/')
		p++;
	if (!*p)
		return 0;
	char *slash = strchr(p, '/');
	size_t clen = slash ? (size_t)(slash - p) : strlen(p);
	if (clen > NAME_MAX)
		return yolo_fail(w->err, -ENAMETOOLONG, "a name is too long");
	memcpy(comp, p, clen);
	comp[clen] = '\0';
	memmove(w->rest, p + clen, strlen(p + clen) + 1);
	*last = strspn(w->rest, "/") == strlen(w->rest);
	return 1;
}

/* Open `comp` in the directory reached, without following it, and check
 * it.  @return an O_PATH descriptor (its stat in *st), or -errno with err. */
static int walk_open_name(struct walk *w, const char *comp, struct stat *st)
{
	size_t used = strlen(w->sofar);
	snprintf(w->sofar + used, sizeof(w->sofar) - used, "/%s", comp);
	int fd = openat(w->cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC), ret;
	if (fd < 0 || fstat(fd, st) < 0) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		return yolo_fail(w->err, -saved, "%s: %s", w->sofar, strerror(saved));
	}
	char what[PATH_MAX * 2 + 32];
	snprintf(what, sizeof(what), "%s %s", S_ISDIR(st->st_mode) ? "directory" :
		 S_ISLNK(st->st_mode) ? "symlink" : "file", w->sofar);
	if ((ret = trusted(st, what, w->err)) < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

/* Follow the symlink open as `fd` (closed here) by hand: its target is
 * walked next with the same checks, from / or from the directory holding
 * it.  @return 0 or -errno with err. */
static int walk_follow(struct walk *w, int fd)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
	int saved = errno;
	close(fd);
	if (n <= 0 || ++w->hops > MAX_HOPS)
		return yolo_fail(w->err, n < 0 ? -saved : -ELOOP, "%s: %s", w->sofar,
				 n < 0 ? strerror(saved) : "too many symlinks");
	target[n] = '\0';
	char joined[sizeof(w->rest)];
	if (snprintf(joined, sizeof(joined), "%s/%s", target, w->rest) >= (int)sizeof(joined))
		return yolo_fail(w->err, -ENAMETOOLONG, "%s: path too long", w->sofar);
	strcpy(w->rest, joined);
	*strrchr(w->sofar, '/') = '\0';
	if (target[0] == '/') {
		close(w->cur);
		w->cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		w->sofar[0] = '\0';
		if (w->cur < 0)
			return -errno;
	}
	return 0;
}

/* The object the path names, checked and open as O_PATH `fd` (closed
 * here): reopen that very inode for reading, if it is of the kind wanted.
 * @return a descriptor, or -errno with err. */
static int walk_reopen(struct walk *w, int fd, const struct stat *st, int oflags, bool want_dir)
{
	if (want_dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
		close(fd);
		return yolo_fail(w->err, -EINVAL, "%s: not a %s", w->sofar,
				 want_dir ? "directory" : "regular file");
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int ret = open(proc, oflags);
	if (ret < 0) {
		int saved = errno;
		ret = yolo_fail(w->err, -saved, "%s: %s", w->sofar, strerror(saved));
	}
	close(fd);
	return ret;
}

/* Open `path` for reading, a regular file or (want_dir) a directory, with
 * the checks of trust.h on every component. */
static int open_trusted(const char *path, bool want_dir, bool check, struct yolo_err *err)
{
	int oflags = O_RDONLY | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0);
	if (!check)
		return open_unchecked(path, oflags, want_dir, err);
	if (path[0] != '/')
		return yolo_fail(err, -EINVAL, "not an absolute path");
	struct walk w = { .err = err };
	int ret = walk_start(&w, path);
	while (ret == 0) {
		char comp[NAME_MAX + 1];
		bool last = false;
		ret = walk_next_name(&w, comp, &last);
		if (ret == 0 && want_dir) {      /* "/" itself, or ending in "." */
			ret = openat(w.cur, ".", oflags);
			if (ret < 0)
				ret = -errno;
			break;
		}
		if (ret == 0) {
			ret = yolo_fail(err, -EISDIR, "names a directory");
			break;
		}
		if (ret < 0)
			break;
		ret = 0;
		if (strcmp(comp, ".") == 0)
			continue;
		struct stat st;
		int fd = walk_open_name(&w, comp, &st);
		if (fd < 0) {
			ret = fd;
		} else if (S_ISLNK(st.st_mode)) {
			ret = walk_follow(&w, fd);
		} else if (!last && !S_ISDIR(st.st_mode)) {
			close(fd);
			ret = yolo_fail(err, -ENOTDIR, "%s: not a directory", w.sofar);
		} else if (!last) {
			close(w.cur);
			w.cur = fd;      /* ".." from here is checked like any directory */
		} else {
			ret = walk_reopen(&w, fd, &st, oflags, want_dir);
			break;
		}
	}
	if (w.cur >= 0)
		close(w.cur);
	return ret;
}

int trust_open_image(const char *path, bool check, struct yolo_err *err)
{
	return open_trusted(path, false, check, err);
}

int trust_open_dir(const char *path, bool check, struct yolo_err *err)
{
	return open_trusted(path, true, check, err);
}

int trust_check_fd(int fd, const char *what, struct yolo_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int saved = errno;
		return yolo_fail(err, -saved, "%s: %s", what, strerror(saved));
	}
	return trusted(&st, what, err);
}
