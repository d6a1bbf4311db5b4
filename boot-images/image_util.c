/* image_util.c - small helpers of the boot-image library: error messages,
 * full-length I/O, header hashing, path safety and opening untrusted
 * relative paths strictly beneath a directory descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image_i.h"

int yolo_fail(struct yolo_err *err, int ret, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return ret;
}

int yolo_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int yolo_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

uint64_t yolo_header_hash(const struct yolo_disk_header *h)
{
	struct yolo_disk_header copy = *h;
	memset(copy.header_checksum, 0, sizeof(copy.header_checksum));
	return XXH3_64bits(&copy, sizeof(copy));
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

struct yolo_file_ident yolo_ident_from_stat(const struct stat *st)
{
	return (struct yolo_file_ident){
		.size = (uint64_t)st->st_size,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
		.ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec,
		.ino = (uint64_t)st->st_ino,
		.dev = (uint64_t)st->st_dev,
	};
}

const char *yolo_ident_change(const struct yolo_file_ident *recorded,
			      const struct yolo_file_ident *now)
{
	if (recorded->size != now->size)
		return "size";
	if (recorded->mtime_ns != now->mtime_ns)
		return "mtime";
	if (recorded->ino != now->ino)
		return "inode number";
	return NULL;
}

bool yolo_block_check(const struct yolo_block *b, const void *raw)
{
	return XXH3_64bits(raw, b->raw_len) == b->checksum;
}

bool yolo_is_image_file_name(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && !strcmp(name + n - 5, ".yolo");
}

bool yolo_path_is_safe(const char *path, size_t len)
{
	if (len == 0 || len > YOLO_MAX_PATH || path[0] == '/')
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

uint64_t yolo_fingerprint(const struct yolo_block *blocks, uint32_t count)
{
	/* Fold pairs in fixed-size chunks so no allocation is needed. */
	uint8_t chunk[64 * 16];
	uint64_t h = 0;
	uint32_t i = 0;
	do {
		size_t n = 0;
		for (; i < count && n < sizeof(chunk); i++, n += 16) {
			put_le64(chunk + n, blocks[i].block_id);
			put_le64(chunk + n + 8, blocks[i].checksum);
		}
		h = XXH3_64bits_withSeed(chunk, n, h);
	} while (i < count);
	return h;
}
