/* image_i.h - private helpers shared by the boot-image library's modules:
 * little-endian codecs, full-length I/O, the namespace builder below the
 * writer, and the reader's in-memory state. */
#ifndef YOLO_IMAGE_I_H
#define YOLO_IMAGE_I_H

#include <endian.h>
#include <stdarg.h>
#include <string.h>
#include <xxhash.h>

#include "filelist.h"
#include "hashmap.h"
#include "util.h"
#include "yolo_image.h"

/* The file table's paths are those yolo_path_is_safe accepts. */
_Static_assert(YOLO_MAX_PATH == YOLO_SAFE_PATH_MAX, "file table paths are safe relative paths");

static inline uint16_t get_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void put_le16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void put_le32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void put_le64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

/* XXH3-64 values are stored in canonical (big-endian) form. */
static inline uint64_t get_hash(const uint8_t p[8])
{
	XXH64_canonical_t c;
	memcpy(c.digest, p, 8);
	return XXH64_hashFromCanonical(&c);
}
static inline void put_hash(uint8_t p[8], uint64_t h)
{
	XXH64_canonical_t c;
	XXH64_canonicalFromHash(&c, h);
	memcpy(p, c.digest, 8);
}

/* pread exactly [off, off+len), retrying on EINTR and short transfers:
 * end of file before len bytes is an error here (-EIO).  @return 0 or
 * -errno.  pwrite the whole range likewise. */
int yolo_pread_exact(int fd, void *buf, size_t len, uint64_t off);
int yolo_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Hash of the header with its checksum field treated as zero. */
uint64_t yolo_header_hash(const struct yolo_disk_header *h);

/* The namespace questions a writer (image or trace) collects (image_ns.c,
 * which knows nothing of the writers). */
struct yolo_ns_bnode {
	uint32_t parent;
	char *name;
	uint16_t flags;
};
struct yolo_ns_bxattr {
	uint32_t node;
	char *name;
};
struct yolo_ns_builder {
	struct yolo_ns_bnode *nodes;
	uint32_t n, cap;
	struct yhash index;              /* (parent, name) -> node index */
	struct yolo_ns_bxattr *xattrs;
	uint32_t nx, xcap;
	uint64_t strings;                /* bytes of all names */
};
int yolo_ns_builder_add(struct yolo_ns_builder *b, const char *relpath, uint16_t flags,
			uint32_t *node);
int yolo_ns_builder_add_xattr(struct yolo_ns_builder *b, uint32_t node, const char *name);
/* The section's bytes.  @return 0 or -ENOMEM. */
int yolo_ns_builder_serialize(const struct yolo_ns_builder *b, uint8_t **out, uint64_t *len);
void yolo_ns_builder_free(struct yolo_ns_builder *b);
/* Node i's path relative to the source root ("" for the root), in buf.
 * @return 0 or -ENAMETOOLONG. */
int yolo_ns_node_path(const struct yolo_ns_table *t, uint32_t i, char *buf, size_t len);
/* Parse and validate a namespace section (`name` for messages) into t.
 * @return 0 or -errno. */
int yolo_ns_parse(struct yolo_ns_table *t, const uint8_t *buf, uint64_t size, const char *name,
		  struct yolo_err *err);
void yolo_ns_table_free(struct yolo_ns_table *t);

/* Add all questions of `t` (from `name`, for messages) to w (merge, rebind,
 * build; image_write.c).  @return 0 or -errno. */
int yolo_writer_add_ns_table(struct yolo_writer *w, const struct yolo_ns_table *t,
			     const char *name, struct yolo_err *err);

struct yolo_image {
	char *name;                      /* path or label, for messages */
	int fd;                          /* image file; -1 for in-memory images */
	const uint8_t *mem;              /* whole image for in-memory images */
	struct yolo_image_info info;
	struct yolo_file *files;         /* file_count, file-table order */
	uint32_t *files_by_path;         /* file ids sorted by path */
	char *paths;                     /* NUL-terminated copies of all paths */
	struct yolo_block *blocks;       /* block_count, (file_id, block_id) order */
	uint32_t *by_seq;                /* block index positions in first-access order */
	uint64_t ext_off;                /* extension table, ext_count entries */
	uint32_t ext_count;
	uint64_t ext_checksum;
	struct yolo_ns_table ns;          /* the namespace section (empty without one) */
	uint8_t *data;                   /* loaded data section, or NULL */
	size_t data_map_len;             /* mapping length of `data` */
	bool data_pinned;
};

#endif /* YOLO_IMAGE_I_H */
