/* yolo_trace.h - the boot trace: every read a boot made, as recorded by
 * yolo-capture, replayed by the benchmark and turned into a boot image.
 *
 * On disk a trace is a 32-byte header followed by self-checking chunks:
 *
 *   header:  "YOLOTRCE", le32 version, le32 header_size (32), le64 start
 *            time (CLOCK_REALTIME ns), le64 reserved
 *   chunk:   le32 type, le32 payload length, payload, 8-byte XXH3-64
 *            (canonical) of type, length and payload
 *     FILE   le32 file_id, le32 path_len, le64 size, le64 mtime_ns, le64 ino,
 *            le64 dev, path bytes
 *     READS  n x { le64 t_ns, le64 offset, le32 length, le32 file_id,
 *                  le32 pid, le32 reserved }
 *     NS     the namespace questions the boot asked, laid out as an image's
 *            namespace section (yolo_format.h); at most one, before END
 *     END    le64 file count, le64 read count
 *
 * A trace is written as it is recorded, so a crash leaves a prefix: without
 * the END chunk (or with a torn chunk) the trace is reported as partial and
 * not loaded.  All integers little-endian; the content is untrusted.
 */
#ifndef YOLO_TRACE_H
#define YOLO_TRACE_H

#include <stdint.h>

#include "yolo_image.h"

#define YOLO_TRACE_MAGIC "YOLOTRCE"
#define YOLO_TRACE_VERSION 1
#define YOLO_TRACE_MAX_READS (1u << 28)

struct yolo_trace_read {
	uint64_t t_ns;                   /* since the start of the capture */
	uint64_t offset;
	uint32_t length;
	uint32_t file_id;
	uint32_t pid;                    /* reader's pid (a thread id under FUSE) */
};

struct yolo_trace_file {
	char *path;                      /* relative to the source root, validated */
	struct yolo_file_ident ident;
};

struct yolo_trace {
	uint64_t start_ns;
	struct yolo_trace_file *files;
	uint32_t nfiles;
	struct yolo_trace_read *reads;   /* in recording order */
	uint64_t nreads;
	struct yolo_ns_table ns;         /* namespace questions (empty if none) */
};

struct yolo_trace_writer;

/* Create `path` (truncating) and write the header.  @return 0 or -errno. */
int yolo_trace_create(struct yolo_trace_writer **out, const char *path, struct yolo_err *err);

/* Declare a file, or get the id it was declared with; ids are dense from 0
 * in order of first declaration.  @return 0, -EINVAL for an unsafe path,
 * -ESTALE when the path was declared with another identity, or -errno. */
int yolo_trace_add_file(struct yolo_trace_writer *tw, const char *relpath,
			const struct yolo_file_ident *ident, uint32_t *file_id,
			struct yolo_err *err);

/* Record a read (buffered; written in chunks).  Not thread-safe: callers
 * serialise.  @return 0 or -errno. */
int yolo_trace_add_read(struct yolo_trace_writer *tw, const struct yolo_trace_read *r,
			struct yolo_err *err);

/* Record a namespace question about `relpath` ("" for the source root):
 * YOLO_NS_* flags, or with `xattr` set a getxattr of that name.  Kept in
 * memory (each question once) and written at close.  @return 0 or -errno. */
int yolo_trace_add_ns(struct yolo_trace_writer *tw, const char *relpath, uint16_t flags,
		      const char *xattr, struct yolo_err *err);

/* Write buffered reads as a chunk (so a crash loses at most what follows). */
int yolo_trace_flush(struct yolo_trace_writer *tw, struct yolo_err *err);

/* Write the END chunk, fsync and free.  @return 0 or -errno. */
int yolo_trace_close(struct yolo_trace_writer *tw, struct yolo_err *err);

/* Free without writing END (the trace stays partial on disk). */
void yolo_trace_abandon(struct yolo_trace_writer *tw);

/* Read and validate a whole trace.  @return 0, -EUCLEAN for a corrupt or
 * partial trace (message says which), -EOPNOTSUPP for another version. */
int yolo_trace_load(const char *path, struct yolo_trace **out, struct yolo_err *err);

void yolo_trace_free(struct yolo_trace *t);

struct yolo_build_stats {
	uint64_t reads;                  /* trace records used */
	uint64_t blocks;                 /* distinct blocks written */
	uint64_t bytes;                  /* their raw bytes */
	uint32_t files;                  /* files with at least one block */
};

/* Write a boot image of the blocks `t` read (and its namespace questions),
 * in first-access order, taking
 * their bytes from the source directory `source_dirfd` (files opened
 * strictly beneath it).  Each source file must still have the identity the
 * trace recorded, else the image would mix old and new content: -ESTALE.
 * Reads past the end of a file are clipped.  @return 0 or -errno. */
int yolo_image_build_from_trace(const struct yolo_trace *t, int source_dirfd, const char *out,
				const struct yolo_writer_opts *opts, struct yolo_build_stats *stats,
				struct yolo_err *err);

#endif /* YOLO_TRACE_H */
