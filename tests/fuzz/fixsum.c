/* fixsum.c - recompute an image's checksums (see fixsum.h). */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "fixsum.h"
#include "yolo_format.h"

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static int in_range(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

void fix_checksums(uint8_t *b, size_t size)
{
#define HOFF(f) offsetof(struct yolo_disk_header, f)
	if (size < YOLO_HEADER_SIZE)
		return;
	uint64_t ft = le64(b + HOFF(file_table_off)), fts = le64(b + HOFF(file_table_size));
	uint64_t st = le64(b + HOFF(strings_off)), sts = le64(b + HOFF(strings_size));
	uint64_t ix = le64(b + HOFF(index_off)), ixs = le64(b + HOFF(index_size));
	XXH64_canonical_t c;
	if (in_range(ft, fts, size) && in_range(st, sts, size) && in_range(ix, ixs, size)) {
		XXH3_state_t *s = XXH3_createState();
		if (s) {
			XXH3_64bits_reset(s);
			XXH3_64bits_update(s, b + ft, fts);
			XXH3_64bits_update(s, b + st, sts);
			XXH3_64bits_update(s, b + ix, ixs);
			XXH64_canonicalFromHash(&c, XXH3_64bits_digest(s));
			XXH3_freeState(s);
			memcpy(b + HOFF(meta_checksum), c.digest, 8);
		}
	}
	uint64_t ext = le64(b + HOFF(ext_off));
	uint32_t next;
	memcpy(&next, b + HOFF(ext_count), 4);
	next = le32toh(next);
	if (next <= YOLO_MAX_EXT && in_range(ext, (uint64_t)next * sizeof(struct yolo_disk_ext), size)) {
		for (uint32_t i = 0; i < next; i++) {
			uint8_t *e = b + ext + i * sizeof(struct yolo_disk_ext);
			uint64_t off = le64(e + offsetof(struct yolo_disk_ext, off));
			uint64_t len = le64(e + offsetof(struct yolo_disk_ext, size));
			if (!in_range(off, len, size))
				continue;
			XXH64_canonicalFromHash(&c, XXH3_64bits(b + off, len));
			memcpy(e + offsetof(struct yolo_disk_ext, checksum), c.digest, 8);
		}
		XXH64_canonicalFromHash(&c, XXH3_64bits(b + ext, next * sizeof(struct yolo_disk_ext)));
		memcpy(b + HOFF(ext_checksum), c.digest, 8);
	}
	memset(b + HOFF(header_checksum), 0, 8);
	XXH64_canonicalFromHash(&c, XXH3_64bits(b, YOLO_HEADER_SIZE));
	memcpy(b + HOFF(header_checksum), c.digest, 8);
#undef HOFF
}
