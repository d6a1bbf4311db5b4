/* craftimage.c - test helper: turn a valid boot image into a hostile one
 * whose tables still check out, to prove that yolofs checks blocks, not
 * just tables.
 *
 *   craftimage IMAGE FILE BLOCK zero-flag
 *       flag the image's block BLOCK of FILE as all zeros (no data), keeping
 *       its recorded checksum, which is that of the real, non-zero bytes;
 *       the metadata and header checksums are recomputed, so the image
 *       opens and only checking the block against its checksum tells.
 * Exit 0 done, 1 with a message otherwise. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

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

int main(int argc, char **argv)
{
	if (argc != 5 || strcmp(argv[4], "zero-flag") != 0) {
		fprintf(stderr, "usage: craftimage IMAGE FILE BLOCK zero-flag\n");
		return 1;
	}
	struct yolo_err err = { { 0 } };
	struct yolo_image *img;
	if (yolo_image_open(argv[1], &img, &err) < 0) {
		fprintf(stderr, "craftimage: %s\n", err.msg);
		return 1;
	}
	uint32_t fid;
	const struct yolo_block *b = NULL;
	if (yolo_image_find_file(img, argv[2], &fid) == 0)
		b = yolo_image_lookup(img, fid, strtoull(argv[3], NULL, 0));
	uint64_t entry = b ? (uint64_t)(b - yolo_image_block(img, 0)) : 0;
	yolo_image_close(img);
	if (!b) {
		fprintf(stderr, "craftimage: no block %s of %s in the image\n", argv[3], argv[2]);
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
	uint8_t *e = buf + ix + entry * sizeof(struct yolo_disk_block);
	put16(e + DB(flags), YOLO_BLOCK_ZERO);
	put32(e + DB(stored_len), 0);
	put64(e + DB(data_off), 0);
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
