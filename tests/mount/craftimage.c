/* craftimage.c - test helper: turn a valid boot image into a hostile one
 * whose tables still check out, to prove that yolofs checks blocks, not
 * just tables.
 *
 *   craftimage IMAGE FILE BLOCK zero-flag
 *       flag the image's block BLOCK of FILE as all zeros (no data), keeping
 *       its recorded checksum, which is that of the real, non-zero bytes;
 *   craftimage IMAGE FILE BLOCK zstd-garbage
 *       keep the block's zstd frame magic and overwrite the rest of its
 *       stored bytes, so the frame does not decode (the image must have been
 *       written with -z and the block compressed);
 *   craftimage IMAGE FILE BLOCK zstd-sizeless
 *       replace the block's stored bytes with a valid zstd frame that has no
 *       content size and decodes to half the block's length;
 *   craftimage IMAGE FILE BLOCK flip
 *       change one byte of the block's stored (uncompressed) bytes and
 *       record the checksum of the new bytes: a forgery only a comparison
 *       with the source can tell;
 *   craftimage IMAGE FILE rename PATH
 *       rename FILE to PATH, of the same length, in the string table (an
 *       unsafe path such as ../x, or another file's path: a duplicate);
 *   craftimage IMAGE FILE stamp OTHER
 *       record for FILE the identity (size, mtime, change time, inode) of
 *       the file OTHER, as someone who can stat a source file can;
 * the metadata, extension and header checksums are recomputed, so the image
 * opens and only what the server checks besides tells.
 * Exit 0 done, 1 with a message otherwise. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

#include "yolo_image.h"

static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static void put_hash(uint8_t *p, uint64_t h)
{
	XXH64_canonical_t c;
	XXH64_canonicalFromHash(&c, h);
	memcpy(p, c.digest, 8);
}

#define HDR(f) offsetof(struct yolo_disk_header, f)
#define DB(f) offsetof(struct yolo_disk_block, f)
#define DF(f) offsetof(struct yolo_disk_file, f)
#define EXT(f) offsetof(struct yolo_disk_ext, f)

int main(int argc, char **argv)
{
	bool zero = argc == 5 && strcmp(argv[4], "zero-flag") == 0;
	bool garbage = argc == 5 && strcmp(argv[4], "zstd-garbage") == 0;
	bool sizeless = argc == 5 && strcmp(argv[4], "zstd-sizeless") == 0;
	bool flip = argc == 5 && strcmp(argv[4], "flip") == 0;
	bool stamp = argc == 5 && strcmp(argv[3], "stamp") == 0;
	bool rename = argc == 5 && strcmp(argv[3], "rename") == 0;
	bool block = zero || garbage || sizeless || flip;
	if (rename && strlen(argv[4]) != strlen(argv[2])) {
		fprintf(stderr, "craftimage: rename: the new path must be as long as the old one\n");
		return 1;
	}
	if (!block && !stamp && !rename) {
		fprintf(stderr, "usage: craftimage IMAGE FILE BLOCK zero-flag|zstd-garbage|zstd-sizeless|flip"
			" | IMAGE FILE stamp OTHER | IMAGE FILE rename PATH\n");
		return 1;
	}
	struct stat other;
	if (stamp && stat(argv[4], &other) < 0) {
		perror(argv[4]);
		return 1;
	}
	struct yolo_err err = { { 0 } };
	struct yolo_image *img;
	if (yolo_image_open(argv[1], &img, &err) < 0) {
		fprintf(stderr, "craftimage: %s\n", err.msg);
		return 1;
	}
	uint32_t fid = UINT32_MAX;
	const struct yolo_block *b = NULL;
	if (yolo_image_find_file(img, argv[2], &fid) == 0 && block)
		b = yolo_image_lookup(img, fid, strtoull(argv[3], NULL, 0));
	uint64_t entry = b ? (uint64_t)(b - yolo_image_block(img, 0)) : 0;
	struct yolo_block blk = b ? *b : (struct yolo_block){ 0 };
	uint64_t data_start = yolo_image_info(img)->data_off;
	yolo_image_close(img);
	if (fid == UINT32_MAX || (block && !b)) {
		fprintf(stderr, "craftimage: no such file or block in the image\n");
		return 1;
	}
	if ((garbage || sizeless) && !(blk.flags & YOLO_BLOCK_ZSTD)) {
		fprintf(stderr, "craftimage: that block is not zstd-compressed (mkimage -z)\n");
		return 1;
	}
	if (flip && (blk.flags & (YOLO_BLOCK_ZSTD | YOLO_BLOCK_ZERO))) {
		fprintf(stderr, "craftimage: that block is not stored raw\n");
		return 1;
	}
	FILE *f = fopen(argv[1], "r+b");
	if (!f || fseek(f, 0, SEEK_END) < 0) {
		perror(argv[1]);
		return 1;
	}
	long len = ftell(f);
	uint8_t *buf = malloc((size_t)len);
	rewind(f);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		perror(argv[1]);
		return 1;
	}
	uint64_t ft = le64(buf + HDR(file_table_off)), fts = le64(buf + HDR(file_table_size));
	uint64_t st = le64(buf + HDR(strings_off)), sts = le64(buf + HDR(strings_size));
	uint64_t ix = le64(buf + HDR(index_off)), ixs = le64(buf + HDR(index_size));
	if (zero) {
		uint8_t *e = buf + ix + entry * sizeof(struct yolo_disk_block);
		put16(e + DB(flags), YOLO_BLOCK_ZERO);
		put32(e + DB(stored_len), 0);
		put64(e + DB(data_off), 0);
	} else if (garbage) {
		uint8_t *d = buf + data_start + blk.data_off;
		for (uint32_t i = 4; i < blk.stored_len; i++)   /* after the 4-byte magic */
			d[i] = (uint8_t)(0xa5 ^ i);
	} else if (sizeless) {
		uint8_t *d = buf + data_start + blk.data_off;
		size_t half = blk.raw_len / 2;
		uint8_t *raw = calloc(1, half ? half : 1), *frame = malloc(ZSTD_compressBound(half));
		ZSTD_CCtx *c = ZSTD_createCCtx();
		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
		size_t n = frame && raw && c ? ZSTD_compress2(c, frame, ZSTD_compressBound(half), raw, half) : 0;
		ZSTD_freeCCtx(c);
		if (!n || ZSTD_isError(n) || n > blk.stored_len ||
		    ZSTD_getFrameContentSize(frame, n) != ZSTD_CONTENTSIZE_UNKNOWN) {
			fprintf(stderr, "craftimage: cannot make a sizeless frame that fits\n");
			return 1;
		}
		memcpy(d, frame, n);
		uint8_t *e = buf + ix + entry * sizeof(struct yolo_disk_block);
		put32(e + DB(stored_len), (uint32_t)n);
		free(raw);
		free(frame);
	} else if (flip) {
		uint8_t *d = buf + data_start + blk.data_off;
		d[blk.raw_len / 2] ^= 0x5a;
		put_hash(buf + ix + entry * sizeof(struct yolo_disk_block) + DB(checksum),
			 XXH3_64bits(d, blk.raw_len));
	} else if (rename) {
		uint8_t *fe = buf + ft + (uint64_t)fid * sizeof(struct yolo_disk_file);
		memcpy(buf + st + le64(fe + DF(path_off)), argv[4], strlen(argv[4]));
	} else {
		uint8_t *fe = buf + ft + (uint64_t)fid * sizeof(struct yolo_disk_file);
		put64(fe + DF(size), (uint64_t)other.st_size);
		put64(fe + DF(mtime_ns), (uint64_t)(other.st_mtim.tv_sec * 1000000000ll + other.st_mtim.tv_nsec));
		put64(fe + DF(ino), (uint64_t)other.st_ino);
		/* The change time lives in the file times extension. */
		uint64_t xo = le64(buf + HDR(ext_off));
		uint32_t xn = (uint32_t)le64(buf + HDR(ext_count)) & 0xffffffffu;
		for (uint32_t i = 0; i < xn; i++) {
			uint8_t *x = buf + xo + (uint64_t)i * sizeof(struct yolo_disk_ext);
			if ((le64(x + EXT(type)) & 0xffffffffu) != YOLO_EXT_FILE_TIMES)
				continue;
			uint64_t so = le64(x + EXT(off)), ss = le64(x + EXT(size));
			put64(buf + so + (uint64_t)fid * sizeof(struct yolo_disk_file_times),
			      (uint64_t)(other.st_ctim.tv_sec * 1000000000ll + other.st_ctim.tv_nsec));
			put_hash(x + EXT(checksum), XXH3_64bits(buf + so, ss));
		}
		put_hash(buf + HDR(ext_checksum), XXH3_64bits(buf + xo, (uint64_t)xn * sizeof(struct yolo_disk_ext)));
	}
	XXH3_state_t *s = XXH3_createState();
	XXH3_64bits_reset(s);
	XXH3_64bits_update(s, buf + ft, fts);
	XXH3_64bits_update(s, buf + st, sts);
	XXH3_64bits_update(s, buf + ix, ixs);
	put_hash(buf + HDR(meta_checksum), XXH3_64bits_digest(s));
	XXH3_freeState(s);
	memset(buf + HDR(header_checksum), 0, 8);
	put_hash(buf + HDR(header_checksum), XXH3_64bits(buf, YOLO_HEADER_SIZE));
	rewind(f);
	if (fwrite(buf, 1, (size_t)len, f) != (size_t)len || fclose(f) != 0) {
		perror(argv[1]);
		return 1;
	}
	free(buf);
	return 0;
}
