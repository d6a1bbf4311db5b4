/* yolo_image.h - public API of the boot-image library (libyoloimage).
 *
 * A boot image holds the blocks a boot read from a source directory, keyed
 * by (file, block_id), stored in first-access order.  This library writes,
 * validates, looks up, loads, verifies and merges images.  It has no FUSE
 * dependency; yolofs, yolo-capture and yolo-image link it.
 *
 * Conventions: functions return 0 (or a non-negative count) on success and a
 * negative errno on failure; a corrupt image is -EUCLEAN.  Functions taking a
 * `struct yolo_err *` (which may be NULL) fill it with a one-line message
 * naming what is wrong.  Everything read from an image file is untrusted
 * until yolo_image_open() has validated it; after that the returned
 * structures may be relied on (offsets, lengths and paths are bounds-checked
 * and paths are relative with no "." or ".." components).
 *
 * Thread safety: an opened (and optionally loaded) image is read-only and all
 * lookup/read functions may be called concurrently.  A writer is not
 * thread-safe.
 */
#ifndef YOLO_IMAGE_H
#define YOLO_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yolo_err.h"
#include "yolo_format.h"

/* Identity of a source file as recorded in an image.  yolofs's freshness
 * rule (yolofs/freshness.h) decides from it whether the image may serve. */
struct yolo_file_ident {
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;                /* YOLO_CTIME_UNKNOWN in images without it */
	uint64_t ino;
	uint64_t dev;
};

struct stat;

/* The identity of a file from its fstat. */
struct yolo_file_ident yolo_ident_from_stat(const struct stat *st);

/* Has the file changed since it was traced or captured, as the capture
 * tools and `yolo-image verify` report it?  Size, mtime and inode number
 * count (the device number may change across reboots; the change time
 * moves with any chmod or chown, which capture tolerates).  @return NULL
 * when unchanged, else the first field that differs ("size", "mtime",
 * "inode number"). */
const char *yolo_ident_change(const struct yolo_file_ident *recorded,
			      const struct yolo_file_ident *now);

/* Is `a` the very identity `b`: size, mtime, change time and inode number
 * all equal (the device number is not compared)?  yolofs's freshness rule
 * serves a file only while this holds for the identity it accepted. */
bool yolo_ident_same(const struct yolo_file_ident *a, const struct yolo_file_ident *b);

/* A validated file-table entry (native byte order). */
struct yolo_file {
	const char *path;                /* NUL-terminated, relative, owned by the image */
	struct yolo_file_ident ident;
	uint64_t fingerprint;            /* XXH3-64 over (block_id, checksum) pairs */
	uint64_t first_block;            /* index of the first block-index entry */
	uint32_t block_count;
};

/* A validated block-index entry (native byte order). */
struct yolo_block {
	uint64_t block_id;
	uint64_t data_off;               /* within the data section */
	uint64_t checksum;               /* XXH3-64 of the raw bytes */
	uint32_t file_id;
	uint32_t seq;                    /* first-access rank */
	uint32_t stored_len;
	uint32_t raw_len;
	uint16_t flags;                  /* YOLO_BLOCK_* */
};

struct yolo_image_info {
	uint32_t block_size;
	uint32_t block_shift;
	uint32_t compat;
	uint32_t incompat;
	uint32_t file_count;
	uint64_t block_count;
	uint64_t data_off;
	uint64_t data_size;              /* bytes stored (after compression, zero blocks elided) */
	uint64_t raw_bytes;              /* bytes the blocks represent */
	uint64_t created_ns;
	uint64_t image_size;             /* size of the image file */
};

/* ---- File names ---- */

/* Is `name` a boot image's file name: something, then ".yolo" (how an
 * images= directory's, and a learn= directory's, images are found)? */
bool yolo_is_image_file_name(const char *name);

/* ---- Writer: build an image incrementally ---- */

struct yolo_writer;

struct yolo_writer_opts {
	uint32_t block_size;             /* power of two 512..1 MiB; 0 means 4096 */
	int zstd_level;                  /* 0: store raw; 1..19: compress blocks that shrink */
	uint32_t compat;                 /* extra YOLO_COMPAT_* bits to record */
};

/* Start writing an image to `path`.  Data goes to a temporary file next to
 * it that is renamed over `path` by yolo_writer_commit(); nothing is left
 * behind on failure.  @return 0 or -errno. */
int yolo_writer_create(struct yolo_writer **out, const char *path,
		       const struct yolo_writer_opts *opts, struct yolo_err *err);

/* Add a source file (path relative to the source root).  @return 0 with
 * *file_id set, -EINVAL for an unsafe path, -EEXIST if already added. */
int yolo_writer_add_file(struct yolo_writer *w, const char *relpath,
			 const struct yolo_file_ident *ident, uint32_t *file_id,
			 struct yolo_err *err);

/* Look up a file already added by path.  @return 0 with *file_id set, or -ENOENT. */
int yolo_writer_find_file(const struct yolo_writer *w, const char *relpath, uint32_t *file_id);

/* Has (file_id, block_id) been added already? */
bool yolo_writer_has_block(const struct yolo_writer *w, uint32_t file_id, uint64_t block_id);

/* Append one block; calls must come in first-access order.  `len` must be
 * the block size, or for the file's last block the remaining bytes of the
 * file (per its identity size).  @return 0, -EEXIST for a duplicate,
 * -EINVAL for a bad length or id, or -errno from writing. */
int yolo_writer_add_block(struct yolo_writer *w, uint32_t file_id, uint64_t block_id,
			  const void *data, uint32_t len, struct yolo_err *err);

/* Write the tables and header, fsync and rename into place; frees `w`.
 * @return 0 or -errno (then nothing is left at the destination path). */
int yolo_writer_commit(struct yolo_writer *w, struct yolo_err *err);

/* Abandon the image, remove the temporary file, free `w`.  NULL is a no-op. */
void yolo_writer_discard(struct yolo_writer *w);

/* Block size a writer was created with. */
uint32_t yolo_writer_block_size(const struct yolo_writer *w);

/* ---- Reader ---- */

struct yolo_image;

/* Open and validate an image: header checksum, version and features,
 * every section, offset, length and count against the file size, the
 * metadata checksum, paths, sort order and the per-file block ranges.  Block
 * data checksums are checked when blocks are read (YOLO_READ_VERIFY) or by
 * yolo_image_verify().  @return 0 or -errno (-EUCLEAN for corruption). */
int yolo_image_open(const char *path, struct yolo_image **out, struct yolo_err *err);

/* Same, for an already open descriptor (duplicated; the caller keeps `fd`). */
int yolo_image_open_fd(int fd, const char *name, struct yolo_image **out, struct yolo_err *err);

/* Parse an image held in memory (used by the fuzzer).  The buffer must stay
 * valid until yolo_image_close(). */
int yolo_image_open_mem(const void *buf, size_t len, struct yolo_image **out,
			struct yolo_err *err);

/* Free an image; NULL is a no-op. */
void yolo_image_close(struct yolo_image *img);

const struct yolo_image_info *yolo_image_info(const struct yolo_image *img);
const char *yolo_image_name(const struct yolo_image *img);

/* File `id` (< file_count), or NULL. */
const struct yolo_file *yolo_image_file(const struct yolo_image *img, uint32_t id);

/* Find a file by relative path.  @return 0 with *id set, or -ENOENT.  O(log n). */
int yolo_image_find_file(const struct yolo_image *img, const char *relpath, uint32_t *id);

/* Look up a block.  O(log n), no allocation.  @return the entry or NULL. */
const struct yolo_block *yolo_image_lookup(const struct yolo_image *img, uint32_t file_id,
					   uint64_t block_id);

/* Entry `i` in index order ((file_id, block_id) ascending), or NULL. */
const struct yolo_block *yolo_image_block(const struct yolo_image *img, uint64_t i);

/* Entry with first-access rank `seq`, or NULL. */
const struct yolo_block *yolo_image_block_by_seq(const struct yolo_image *img, uint64_t seq);

#define YOLO_READ_VERIFY (1u << 0)       /* check the block's XXH3-64 */

/* Do `raw` (b->raw_len bytes) hold the block's contents, i.e. does their
 * XXH3-64 equal the recorded checksum?  The one check every reader makes
 * before a block's bytes are used (zero blocks included). */
bool yolo_block_check(const struct yolo_block *b, const void *raw);

/* Compare the blocks of file `file_id` with the open source file `fd`,
 * reading the source in runs of consecutive blocks (and the image blocks
 * with yolo_block_check).  @return 1 when every block is equal and the
 * source is as long as recorded, 0 when one differs, -EUCLEAN for a bad
 * image block, or -errno. */
int yolo_image_compare_file(const struct yolo_image *img, uint32_t file_id, int fd);

/* Read a block's raw bytes into `buf` (at least raw_len bytes): from the
 * loaded buffer if yolo_image_load() succeeded, else from the image file;
 * zero blocks are memset, zstd blocks decompressed.
 * @return raw_len, or -errno (-EUCLEAN on a bad frame or checksum). */
int yolo_image_read_block(const struct yolo_image *img, const struct yolo_block *b,
			  void *buf, size_t buflen, unsigned flags);

/* Read `len` stored bytes at `data_off` of the data section from the image
 * file, as they are (unchecked: check each block with yolo_block_check).
 * For reading a run of uncompressed blocks stored one after the other in
 * one request.  @return 0, or -errno (-EIO when the file ends first). */
int yolo_image_read_data(const struct yolo_image *img, uint64_t data_off, size_t len, void *buf);

/* Pointer to a block's raw bytes inside the loaded buffer, or NULL when not
 * loaded, compressed or a zero block (use yolo_image_read_block then). */
const void *yolo_image_block_mem(const struct yolo_image *img, const struct yolo_block *b);

#define YOLO_LOAD_MLOCK (1u << 0)        /* pin the buffer with mlock */

struct yolo_load_result {
	uint64_t bytes;                  /* bytes read into memory */
	uint64_t ns;                     /* wall time of the load */
	bool pinned;                     /* mlock succeeded */
	int mlock_errno;                 /* why not, when requested and failed */
	bool direct;                     /* read with O_DIRECT (no page-cache copy) */
};

/* Read the whole data section into one buffer with large sequential reads
 * (O_DIRECT when possible, so the image does not also sit in the page cache),
 * optionally mlock it.  A failing mlock is not an error: see `res`.
 * Not thread-safe against concurrent reads of the same image.
 * @return 0 or -errno. */
int yolo_image_load(struct yolo_image *img, unsigned flags, struct yolo_load_result *res,
		    struct yolo_err *err);

/* Read the whole data section into a new private mapping, as
 * yolo_image_load does, but leaving `img` as it is (so readers of `img` may
 * go on meanwhile).  Block b's stored bytes are at ret + b->data_off (see
 * yolo_block_decode).  @return the mapping (the caller munmaps *map_len
 * bytes), or NULL with err filled. */
void *yolo_image_read_data_section(const struct yolo_image *img, size_t *map_len,
				   struct yolo_load_result *res, struct yolo_err *err);

/* A block's raw bytes from its `stored` bytes (zero blocks: zeros; zstd:
 * decompressed), unchecked.  @return raw_len, or -EUCLEAN for a frame that
 * does not decode to raw_len bytes, -EINVAL when buflen is too small. */
int yolo_block_decode(const struct yolo_block *b, const void *stored, void *buf, size_t buflen);

/* Drop the loaded buffer (reads fall back to the image file). */
void yolo_image_unload(struct yolo_image *img);

/* Take the loaded buffer over: the caller owns the mapping (munmap(ret,
 * *map_len) when done; block b's stored bytes are at ret + b->data_off) and
 * the image reads from its file again.  @return NULL when not loaded. */
void *yolo_image_take_data(struct yolo_image *img, size_t *map_len);

bool yolo_image_is_loaded(const struct yolo_image *img);

/* ---- Namespace questions (YOLO_EXT_NAMESPACE) ---- */

struct yolo_ns_node {
	uint32_t parent;                 /* node index; node 0 is the source root */
	const char *name;                /* NUL-terminated ("" for node 0), validated */
	uint16_t flags;                  /* YOLO_NS_* */
};

struct yolo_ns_xattr {
	uint32_t node;
	const char *name;                /* NUL-terminated, validated */
};

/* The namespace questions of an image or a trace, validated. */
struct yolo_ns_table {
	struct yolo_ns_node *nodes;      /* nnodes; parents first, node 0 the root */
	uint32_t nnodes;
	struct yolo_ns_xattr *xattrs;
	uint32_t nxattrs;
	char *names;                     /* storage of the names */
};

/* Nodes and xattr questions of the image's namespace section (0 when it has
 * none); parents come before their children. */
uint32_t yolo_image_ns_node_count(const struct yolo_image *img);
const struct yolo_ns_node *yolo_image_ns_node(const struct yolo_image *img, uint32_t i);
uint32_t yolo_image_ns_xattr_count(const struct yolo_image *img);
const struct yolo_ns_xattr *yolo_image_ns_xattr(const struct yolo_image *img, uint32_t i);
/* Node i's path relative to the source root ("" for the root), in buf.
 * @return 0, -ENAMETOOLONG when it does not fit in `len` bytes, or -EINVAL
 * when there is no node i. */
int yolo_image_ns_path(const struct yolo_image *img, uint32_t i, char *buf, size_t len);

/* Writer: record that `flags` were asked about the object at `relpath`
 * ("" for the source root), adding its ancestors as needed.  @return 0 with
 * *node set, -EINVAL for an unsafe path, -EFBIG past the limits. */
int yolo_writer_add_ns(struct yolo_writer *w, const char *relpath, uint16_t flags,
		       uint32_t *node, struct yolo_err *err);
/* Record that xattr `name` of `node` was asked for (once per pair). */
int yolo_writer_add_ns_xattr(struct yolo_writer *w, uint32_t node, const char *name,
			     struct yolo_err *err);

/* ---- Verify ---- */

struct yolo_verify_report {
	uint64_t blocks_ok;
	uint64_t blocks_bad;             /* stored data does not match its checksum */
	uint64_t files_missing;          /* with a source: file absent */
	uint64_t files_changed;          /* with a source: identity differs */
	uint64_t blocks_stale;           /* with a source: source bytes differ from the image */
};

/* Called once per problem with a one-line description. */
typedef void (*yolo_verify_cb)(void *ctx, const char *problem);

/* Check every block's checksum; with `source_dirfd` >= 0 also compare each
 * file's identity and each block with the source file's current bytes.
 * @return 0 when everything matched, 1 when problems were reported, or -errno. */
int yolo_image_verify(const struct yolo_image *img, int source_dirfd,
		      struct yolo_verify_report *rep, yolo_verify_cb cb, void *ctx);

/* ---- Rebind ---- */

struct yolo_rebind_report {
	uint32_t files_rebound;          /* every block matched: written with its current identity */
	uint32_t files_changed;          /* some block differs (or the size): left out */
	uint32_t files_missing;          /* not in the source: left out */
	uint64_t blocks;                 /* blocks written */
};

/* Write to `out` a copy of `img` for the source directory `source_dirfd`
 * as it is now: each file whose captured blocks all equal the source
 * file's current bytes is kept, with its current identity (so an image
 * captured on one machine serves an identical copy of the source on
 * another, and a file whose timestamps changed is served again); other
 * files are left out and reported through `cb`.  Block order and contents
 * are kept.  `out` may be the path `img` was opened from.
 * @return 0, or -errno with err filled (-ENOENT: no file matched, nothing
 * written; -EUCLEAN: a corrupt image block). */
int yolo_image_rebind(const char *out, const struct yolo_image *img, int source_dirfd,
		      const struct yolo_writer_opts *opts, struct yolo_rebind_report *rep,
		      yolo_verify_cb cb, void *ctx, struct yolo_err *err);

/* ---- Merge ---- */

/* Write the union of the blocks of `n` images of the same source to `out`:
 * the first image's blocks in its first-access order, then each further
 * image's new blocks in its order, and the union of their namespace
 * questions.  All images must have the same block size, and a file present
 * in several must have the same identity in each.
 * @return 0 or -errno. */
int yolo_image_merge(const char *out, struct yolo_image *const *in, size_t n,
		     const struct yolo_writer_opts *opts, struct yolo_err *err);

/* ---- Small helpers ---- */

/* XXH3-64 fingerprint of a file's blocks, as stored in the file table. */
uint64_t yolo_fingerprint(const struct yolo_block *blocks, uint32_t count);

#endif /* YOLO_IMAGE_H */
