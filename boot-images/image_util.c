/* image_util.c - small helpers of the boot-image library: full-length
 * I/O, header hashing, a file's identity, block checks and fingerprints,
 * and the image file name. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_i.h"

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

bool yolo_ident_same(const struct yolo_file_ident *a, const struct yolo_file_ident *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
	       a->ino == b->ino;
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
