/* testutil.h - helpers shared by the boot-image unit tests: temporary
 * directories, deterministic block contents (zero, compressible text and
 * incompressible random blocks), building images and source trees from a
 * small spec, and editing raw image bytes with the header and metadata
 * checksums recomputed so a test reaches the validation it targets. */
#ifndef YOLO_TESTUTIL_H
#define YOLO_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yolo_image.h"

/* One source file of a test image: path and size in bytes. */
struct tu_file {
	const char *path;
	uint64_t size;
};

/* One block access: index into the tu_file array and block id. */
struct tu_access {
	uint32_t file;
	uint64_t block;
};

enum tu_kind { TU_ZERO, TU_TEXT, TU_RANDOM };

/* A test group's scratch directory: tu_group_setup creates it (cmocka
 * group setup), tu_group_teardown removes it. */
extern char *tu_tmpdir;
int tu_group_setup(void **state);
int tu_group_teardown(void **state);

/* Create a fresh directory under $TMPDIR (or /tmp); malloc'd path. */
char *tu_mkdtemp(void);
/* Remove a directory tree (best effort). */
void tu_rmtree(const char *path);
/* dir + "/" + name, malloc'd. */
char *tu_join(const char *dir, const char *name);
/* Number of entries in a directory other than "." and "..", or -1. */
int tu_count_entries(const char *dir);

/* Kind of block `block` of any file: block % 3 (zero, text, random). */
enum tu_kind tu_block_kind(uint64_t block);
/* Deterministic contents of block `block` of `path` (len bytes). */
void tu_block_content(const char *path, uint64_t block, uint8_t *buf, uint32_t len);
/* Raw length of block `block` of a file of `size` bytes (0 if past EOF). */
uint32_t tu_block_len(uint64_t size, uint32_t bs, uint64_t block);
/* Synthetic identity for test file number `i` of `size` bytes. */
struct yolo_file_ident tu_ident(uint32_t i, uint64_t size);

/* Write an image of `files` with blocks added in `acc` order.  `idents`
 * may be NULL for synthetic identities.  @return 0 or -errno. */
int tu_write_image(const char *path, const struct yolo_writer_opts *opts,
		   const struct tu_file *files, size_t nfiles,
		   const struct yolo_file_ident *idents,
		   const struct tu_access *acc, size_t nacc, struct yolo_err *err);
/* Write an image of one file (usr/bin/python3) with namespace questions:
 * lookups, a listing, a symlink read, an absent name, the root's xattr
 * list and two xattrs.  @return 0, or -1. */
int tu_write_ns_image(const char *path);

/* Create the files under `dir` (creating parent directories) with the
 * contents tu_block_content() gives for block size `bs`, and return their
 * identities in `idents`.  @return 0 or -errno. */
int tu_make_source(const char *dir, const struct tu_file *files, size_t n, uint32_t bs,
		   struct yolo_file_ident *idents);

/* Whole file into a malloc'd buffer (NULL on error). */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Replace a file's contents.  @return 0 or -errno. */
int tu_write_file(const char *path, const void *buf, size_t len);

/* Little-endian field access in raw image bytes. */
uint16_t tu_get16(const uint8_t *p);
uint32_t tu_get32(const uint8_t *p);
uint64_t tu_get64(const uint8_t *p);
void tu_put16(uint8_t *p, uint16_t v);
void tu_put32(uint8_t *p, uint32_t v);
void tu_put64(uint8_t *p, uint64_t v);

/* Recompute meta_checksum from the sections the header names (skipped when
 * they do not lie within `len` bytes). */
void tu_fix_meta(uint8_t *img, size_t len);
/* Recompute the extension table's checksum and (sections) each
 * extension section's checksum in its entry. */
void tu_fix_ext(uint8_t *img, size_t len, bool sections);
/* Recompute header_checksum. */
void tu_fix_header(uint8_t *img);

#endif /* YOLO_TESTUTIL_H */
