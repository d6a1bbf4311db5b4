/* testutil.c - see testutil.h: temporary directories, deterministic block
 * contents, image and source-tree builders, raw-byte editing helpers. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "testutil.h"

char *tu_tmpdir;

int tu_group_setup(void **state)
{
	(void)state;
	tu_tmpdir = tu_mkdtemp();
	return tu_tmpdir ? 0 : -1;
}

int tu_group_teardown(void **state)
{
	(void)state;
	tu_rmtree(tu_tmpdir);
	free(tu_tmpdir);
	tu_tmpdir = NULL;
	return 0;
}

char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl;
	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&tmpl, "%s/yolo-unit.XXXXXX", base) < 0)
		return NULL;
	if (!mkdtemp(tmpl)) {
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st; (void)type; (void)ftw;
	remove(path);
	return 0;
}

void tu_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int tu_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

enum tu_kind tu_block_kind(uint64_t block)
{
	return (enum tu_kind)(block % 3);
}

void tu_block_content(const char *path, uint64_t block, uint8_t *buf, uint32_t len)
{
	switch (tu_block_kind(block)) {
	case TU_ZERO:
		memset(buf, 0, len);
		break;
	case TU_TEXT: {
		char line[128];
		int n = snprintf(line, sizeof(line), "block %llu of %s: the quick brown fox\n",
				 (unsigned long long)block, path);
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)line[i % (uint32_t)n];
		break;
	}
	case TU_RANDOM: {
		uint64_t x = XXH3_64bits_withSeed(path, strlen(path), block) | 1;
		for (uint32_t i = 0; i < len; i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			buf[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
		}
		break;
	}
	}
}

uint32_t tu_block_len(uint64_t size, uint32_t bs, uint64_t block)
{
	uint64_t off = block * bs;
	if (off >= size)
		return 0;
	return size - off < bs ? (uint32_t)(size - off) : bs;
}

struct yolo_file_ident tu_ident(uint32_t i, uint64_t size)
{
	struct yolo_file_ident id = {
		.size = size,
		.mtime_ns = 1700000000123456789ll + i,
		.ino = 1000 + i,
		.dev = 42,
	};
	return id;
}

int tu_write_image(const char *path, const struct yolo_writer_opts *opts,
		   const struct tu_file *files, size_t nfiles,
		   const struct yolo_file_ident *idents,
		   const struct tu_access *acc, size_t nacc, struct yolo_err *err)
{
	struct yolo_writer *w;
	int ret = yolo_writer_create(&w, path, opts, err);
	if (ret < 0)
		return ret;
	uint32_t bs = yolo_writer_block_size(w);
	uint8_t *buf = malloc(bs);
	if (!buf) {
		yolo_writer_discard(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nfiles; i++) {
		struct yolo_file_ident id = idents ? idents[i] : tu_ident((uint32_t)i, files[i].size);
		uint32_t fid;
		ret = yolo_writer_add_file(w, files[i].path, &id, &fid, err);
		if (ret < 0)
			goto fail;
		if (fid != i) {
			ret = -EPROTO;
			goto fail;
		}
	}
	for (size_t i = 0; i < nacc; i++) {
		const struct tu_file *f = &files[acc[i].file];
		uint32_t len = tu_block_len(f->size, bs, acc[i].block);
		tu_block_content(f->path, acc[i].block, buf, len);
		ret = yolo_writer_add_block(w, acc[i].file, acc[i].block, buf, len, err);
		if (ret < 0)
			goto fail;
	}
	free(buf);
	return yolo_writer_commit(w, err);
fail:
	free(buf);
	yolo_writer_discard(w);
	return ret;
}

int tu_write_ns_image(const char *path)
{
	struct yolo_writer *w;
	struct yolo_err err = { "" };
	struct yolo_file_ident id = tu_ident(0, 4096);
	uint32_t fid, n, py;
	uint8_t blk[4096] = { 1 };
	if (yolo_writer_create(&w, path, NULL, &err) < 0 ||
	    yolo_writer_add_file(w, "usr/bin/python3", &id, &fid, &err) < 0 ||
	    yolo_writer_add_block(w, fid, 0, blk, 4096, &err) < 0)
		return -1;
	int r = 0;
	r |= yolo_writer_add_ns(w, "usr/bin/python3", YOLO_NS_LOOKUP, &py, &err);
	r |= yolo_writer_add_ns(w, "usr/lib", YOLO_NS_READDIR | YOLO_NS_LOOKUP, &n, &err);
	r |= yolo_writer_add_ns(w, "usr/bin/python", YOLO_NS_LOOKUP, &n, &err);
	r |= yolo_writer_add_ns(w, "usr/bin/python", YOLO_NS_READLINK, &n, &err);   /* merged */
	r |= yolo_writer_add_ns(w, "etc/missing.conf", YOLO_NS_LOOKUP, &n, &err);
	r |= yolo_writer_add_ns(w, "", YOLO_NS_LISTXATTR, &n, &err);                 /* the root */
	r |= yolo_writer_add_ns_xattr(w, py, "security.capability", &err);
	r |= yolo_writer_add_ns_xattr(w, py, "security.capability", &err);           /* once */
	r |= yolo_writer_add_ns_xattr(w, py, "trusted.overlay.origin", &err);
	if (r)
		return -1;
	return yolo_writer_commit(w, &err);
}

static int mkdirs_for(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	for (char *p = strchr(copy + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
			int saverr = errno;
			free(copy);
			return -saverr;
		}
		*p = '/';
	}
	free(copy);
	return 0;
}

int tu_make_source(const char *dir, const struct tu_file *files, size_t n, uint32_t bs,
		   struct yolo_file_ident *idents)
{
	uint8_t *buf = malloc(bs);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *p = tu_join(dir, files[i].path);
		int ret = p ? mkdirs_for(p) : -ENOMEM;
		int fd = ret < 0 ? -1 : open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			ret = ret < 0 ? ret : -errno;
			free(p);
			free(buf);
			return ret;
		}
		for (uint64_t b = 0; b * bs < files[i].size; b++) {
			uint32_t len = tu_block_len(files[i].size, bs, b);
			tu_block_content(files[i].path, b, buf, len);
			if (pwrite(fd, buf, len, (off_t)(b * bs)) != (ssize_t)len) {
				ret = -EIO;
				break;
			}
		}
		struct stat st;
		if (ret == 0 && fstat(fd, &st) < 0)
			ret = -errno;
		close(fd);
		free(p);
		if (ret < 0) {
			free(buf);
			return ret;
		}
		idents[i] = yolo_ident_from_stat(&st);
	}
	free(buf);
	return 0;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	size_t done = 0;
	while (buf && done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n <= 0) {
			free(buf);
			buf = NULL;
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	if (buf)
		*len = done;
	return buf;
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n <= 0) {
			close(fd);
			return -EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	return 0;
}

uint16_t tu_get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
uint32_t tu_get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
uint64_t tu_get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
void tu_put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
void tu_put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
void tu_put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

#define HDR(field) offsetof(struct yolo_disk_header, field)

static bool in_range(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

void tu_fix_meta(uint8_t *img, size_t len)
{
	if (len < YOLO_HEADER_SIZE)
		return;
	uint64_t ft = tu_get64(img + HDR(file_table_off)), fts = tu_get64(img + HDR(file_table_size));
	uint64_t st = tu_get64(img + HDR(strings_off)), sts = tu_get64(img + HDR(strings_size));
	uint64_t ix = tu_get64(img + HDR(index_off)), ixs = tu_get64(img + HDR(index_size));
	if (!in_range(ft, fts, len) || !in_range(st, sts, len) || !in_range(ix, ixs, len))
		return;
	XXH3_state_t *s = XXH3_createState();
	XXH3_64bits_reset(s);
	XXH3_64bits_update(s, img + ft, fts);
	XXH3_64bits_update(s, img + st, sts);
	XXH3_64bits_update(s, img + ix, ixs);
	XXH64_canonical_t c;
	XXH64_canonicalFromHash(&c, XXH3_64bits_digest(s));
	XXH3_freeState(s);
	memcpy(img + HDR(meta_checksum), c.digest, 8);
}

static void put_hash(uint8_t *p, uint64_t h)
{
	XXH64_canonical_t c;
	XXH64_canonicalFromHash(&c, h);
	memcpy(p, c.digest, 8);
}

void tu_fix_ext(uint8_t *img, size_t len, bool sections)
{
	if (len < YOLO_HEADER_SIZE)
		return;
	uint64_t off = tu_get64(img + HDR(ext_off));
	uint32_t n = tu_get32(img + HDR(ext_count));
	if (n > YOLO_MAX_EXT || !in_range(off, (uint64_t)n * sizeof(struct yolo_disk_ext), len))
		return;
	for (uint32_t i = 0; sections && i < n; i++) {
		uint8_t *e = img + off + (uint64_t)i * sizeof(struct yolo_disk_ext);
		uint64_t so = tu_get64(e + offsetof(struct yolo_disk_ext, off));
		uint64_t ss = tu_get64(e + offsetof(struct yolo_disk_ext, size));
		if (in_range(so, ss, len))
			put_hash(e + offsetof(struct yolo_disk_ext, checksum), XXH3_64bits(img + so, ss));
	}
	put_hash(img + HDR(ext_checksum), XXH3_64bits(img + off, (uint64_t)n * sizeof(struct yolo_disk_ext)));
}

void tu_fix_header(uint8_t *img)
{
	uint8_t copy[YOLO_HEADER_SIZE];
	memcpy(copy, img, sizeof(copy));
	memset(copy + HDR(header_checksum), 0, 8);
	XXH64_canonical_t c;
	XXH64_canonicalFromHash(&c, XXH3_64bits(copy, sizeof(copy)));
	memcpy(img + HDR(header_checksum), c.digest, 8);
}
