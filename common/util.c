/* util.c - small helpers every YOLO program shares (see util.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t yolo_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t yolo_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int yolo_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

bool yolo_path_is_safe(const char *path, size_t len)
{
	if (len == 0 || len > YOLO_SAFE_PATH_MAX || path[0] == '/')
		return false;
	if (memchr(path, '\0', len))
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		size_t clen = i - start;
		const char *c = path + start;
		if (clen == 0 || (clen == 1 && c[0] == '.') ||
		    (clen == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

/* Kernels before 5.6 lack openat2: walk the path one component at a time,
 * refusing symlinks, which gives the same "never escape dirfd" guarantee
 * (at the cost of also refusing benign in-tree symlinks). */
static int open_beneath_walk(int dirfd, const char *relpath, int flags)
{
	char *copy = strdup(relpath);
	if (!copy)
		return -ENOMEM;
	int cur = dirfd, ret;
	char *save = NULL;
	char *comp = strtok_r(copy, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		int fd = next ? openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			      : openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC);
		int saverr = errno;
		if (cur != dirfd)
			close(cur);
		if (fd < 0) {
			free(copy);
			return -(saverr == ELOOP ? EXDEV : saverr);
		}
		cur = fd;
		comp = next;
	}
	free(copy);
	ret = cur == dirfd ? -EINVAL : cur;
	return ret;
}

int yolo_open_beneath(int dirfd, const char *relpath, int flags)
{
	if (!yolo_path_is_safe(relpath, strlen(relpath)))
		return -EINVAL;
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, relpath, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	if (errno == ENOSYS)
		return open_beneath_walk(dirfd, relpath, flags);
	return -errno;
}

const char *yolo_printable(const char *s, size_t len, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		size_t need = plain ? 1 : 4;
		if (o + need + 4 > buflen) {     /* room for "..." and NUL */
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (plain) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}
