/* yolo_format.h - the on-disk layout of a YOLO boot image (*.yolo).
 *
 * This header is the single definition of the format; readers and writers
 * include it and nothing else defines on-disk structures.  All integers are
 * little-endian and fixed-width; hashes are stored in XXH canonical
 * (big-endian) form so a hex dump reads like `xxhsum` output.
 *
 * Layout (sections may in principle sit anywhere after the header, but they
 * must not overlap each other or the header and must lie within the file):
 *
 *   +--------------------+ 0
 *   | header (256 bytes) |
 *   +--------------------+ data_off (aligned to 4096 for O_DIRECT serving)
 *   | data section       |  block contents in first-access order; all-zero
 *   |                    |  blocks have no data, compressed blocks are zstd
 *   +--------------------+ file_table_off
 *   | file table         |  file_count x struct yolo_disk_file
 *   +--------------------+ strings_off
 *   | string table       |  file paths, not NUL-terminated
 *   +--------------------+ index_off
 *   | block index        |  block_count x struct yolo_disk_block, sorted by
 *   |                    |  (file_id, block_id) for binary search
 *   +--------------------+
 *   | extension sections |  optional (YOLO_COMPAT_EXT): each listed in the
 *   | extension table    |  extension table with its own checksum
 *   +--------------------+
 *
 * The data section comes first so a writer can stream blocks as a capture
 * produces them and append the tables when it finishes.
 */
#ifndef YOLO_FORMAT_H
#define YOLO_FORMAT_H

#include <stdint.h>

#define YOLO_MAGIC "YOLOBOOT"           /* 8 bytes, no NUL on disk */
#define YOLO_MAGIC_LEN 8
#define YOLO_FORMAT_VERSION 1            /* bumped only for incompatible layout changes */
#define YOLO_HEADER_SIZE 256
#define YOLO_DATA_ALIGN 4096             /* data_off alignment */

#define YOLO_BLOCK_SHIFT_MIN 9           /* 512 bytes */
#define YOLO_BLOCK_SHIFT_MAX 20          /* 1 MiB */
#define YOLO_BLOCK_SHIFT_DEFAULT 12      /* 4096 bytes */

/* Hard limits a reader enforces before allocating anything. */
#define YOLO_MAX_FILES (1u << 20)
#define YOLO_MAX_BLOCKS (1u << 28)       /* 1 TiB of 4 KiB blocks */
#define YOLO_MAX_PATH 4095               /* bytes, like PATH_MAX - 1 */

/* Feature flags.  A reader must refuse an image with an incompat bit it does
 * not know; unknown compat bits are ignored. */
#define YOLO_INCOMPAT_ZSTD (1u << 0)     /* some blocks are zstd frames */
#define YOLO_INCOMPAT_KNOWN (YOLO_INCOMPAT_ZSTD)
#define YOLO_COMPAT_MERGED (1u << 0)     /* produced by merging several images */
#define YOLO_COMPAT_EXT (1u << 1)        /* ext_off/ext_count name an extension table */

struct yolo_disk_header {
	uint8_t magic[YOLO_MAGIC_LEN];   /* "YOLOBOOT" */
	uint32_t version;                /* YOLO_FORMAT_VERSION */
	uint32_t header_size;            /* YOLO_HEADER_SIZE */
	uint32_t compat;                 /* YOLO_COMPAT_* */
	uint32_t incompat;               /* YOLO_INCOMPAT_* */
	uint32_t block_shift;            /* log2(block size), 9..20 */
	uint32_t file_count;             /* entries in the file table */
	uint64_t block_count;            /* entries in the block index */
	uint64_t data_off;               /* data section: byte offset in the image */
	uint64_t data_size;              /*   and length */
	uint64_t file_table_off;         /* file table: file_count * 64 bytes */
	uint64_t file_table_size;
	uint64_t strings_off;            /* string table */
	uint64_t strings_size;
	uint64_t index_off;              /* block index: block_count * 48 bytes */
	uint64_t index_size;
	uint64_t created_ns;             /* CLOCK_REALTIME when written, informational */
	uint64_t raw_bytes;              /* sum of raw_len over all blocks */
	uint8_t meta_checksum[8];        /* XXH3-64 over file table, strings, index (in that order) */
	uint64_t ext_off;                /* extension table (YOLO_COMPAT_EXT), else 0 */
	uint32_t ext_count;              /*   ext_count * 32 bytes, at most YOLO_MAX_EXT */
	uint32_t ext_reserved;           /* zero */
	uint8_t ext_checksum[8];         /* XXH3-64 of the extension table (each section has its own) */
	uint8_t reserved[96];            /* zero */
	uint8_t header_checksum[8];      /* XXH3-64 of this header with this field zeroed */
};
_Static_assert(sizeof(struct yolo_disk_header) == YOLO_HEADER_SIZE, "header size");

/* Identity of a source file at capture time: a server compares it with the
 * live file and disables the file's blocks when anything differs. */
struct yolo_disk_file {
	uint64_t size;                   /* st_size at capture */
	int64_t mtime_ns;                /* st_mtim in ns since the epoch */
	uint64_t ino;                    /* st_ino at capture */
	uint64_t dev;                    /* st_dev at capture */
	uint64_t first_block;            /* index of this file's first entry in the block index */
	uint32_t block_count;            /* number of consecutive index entries for this file */
	uint32_t path_len;               /* bytes of path in the string table */
	uint64_t path_off;               /* offset of path within the string table */
	uint8_t fingerprint[8];          /* XXH3-64 over (block_id, checksum) pairs in block order */
};
_Static_assert(sizeof(struct yolo_disk_file) == 64, "file entry size");

#define YOLO_BLOCK_ZERO (1u << 0)        /* all bytes zero; no data stored */
#define YOLO_BLOCK_ZSTD (1u << 1)        /* stored as one zstd frame */
#define YOLO_BLOCK_FLAGS_KNOWN (YOLO_BLOCK_ZERO | YOLO_BLOCK_ZSTD)

struct yolo_disk_block {
	uint64_t block_id;               /* file offset / block size */
	uint64_t data_off;               /* offset within the data section (0 for zero blocks) */
	uint8_t checksum[8];             /* XXH3-64 of the raw (uncompressed) bytes */
	uint32_t file_id;                /* index into the file table */
	uint32_t seq;                    /* first-access rank: a permutation of 0..block_count-1 */
	uint32_t stored_len;             /* bytes in the data section (0 for zero blocks) */
	uint32_t raw_len;                /* real length: block size, or less for a file's last block */
	uint16_t flags;                  /* YOLO_BLOCK_* */
	uint16_t reserved16;             /* zero */
	uint32_t reserved32;             /* zero */
};
_Static_assert(sizeof(struct yolo_disk_block) == 48, "block entry size");

/* Extension sections: what later versions add, each one described by an
 * entry of the extension table.  A reader skips a type it does not know
 * unless the entry says YOLO_EXTF_REQUIRED. */
#define YOLO_MAX_EXT 16
#define YOLO_EXT_FILE_TIMES 1            /* file_count x struct yolo_disk_file_times */
#define YOLO_EXT_NAMESPACE 2             /* struct yolo_disk_ns_header, nodes, xattrs, strings */
#define YOLO_EXTF_REQUIRED (1u << 0)

struct yolo_disk_ext {
	uint32_t type;                   /* YOLO_EXT_* */
	uint32_t flags;                  /* YOLO_EXTF_* */
	uint64_t off;                    /* byte offset of the section in the image */
	uint64_t size;                   /* its length */
	uint8_t checksum[8];             /* XXH3-64 of the section */
};
_Static_assert(sizeof(struct yolo_disk_ext) == 32, "extension entry size");

/* Change time of each source file at capture, in file-table order: unlike
 * size and mtime, user space cannot set it back, so a server can tell a file
 * that was edited and had its mtime restored from one that was not. */
#define YOLO_CTIME_UNKNOWN INT64_MIN     /* as stored when not recorded */
struct yolo_disk_file_times {
	int64_t ctime_ns;                /* st_ctim in ns since the epoch, or YOLO_CTIME_UNKNOWN */
	uint64_t reserved;               /* zero */
};
_Static_assert(sizeof(struct yolo_disk_file_times) == 16, "file times entry size");

/* What a boot asked of the namespace, in first-access order: which names it
 * looked up (found or not), which directories it listed, which symlinks it
 * read and which extended attributes it asked for.  The questions, not the
 * answers: a server answers them from the source as it is when it loads the
 * image and keeps those answers fresh itself (see yolofs/namespace.c). */
#define YOLO_NS_MAX_NODES (1u << 20)
#define YOLO_NS_MAX_XATTRS (1u << 20)
#define YOLO_NS_MAX_NAME 255             /* a name, as NAME_MAX */

#define YOLO_NS_LOOKUP (1u << 0)         /* looked up (its attributes, or that it is absent) */
#define YOLO_NS_READDIR (1u << 1)        /* listed (a directory) */
#define YOLO_NS_READLINK (1u << 2)       /* read (a symlink) */
#define YOLO_NS_LISTXATTR (1u << 3)      /* its xattr names listed */
#define YOLO_NS_FLAGS_KNOWN (YOLO_NS_LOOKUP | YOLO_NS_READDIR | YOLO_NS_READLINK | YOLO_NS_LISTXATTR)

struct yolo_disk_ns_header {
	uint32_t node_count;             /* nodes; node 0 is the source root */
	uint32_t xattr_count;            /* xattr questions */
	uint64_t strings_size;           /* names, not NUL-terminated */
	uint64_t reserved[2];            /* zero */
};
_Static_assert(sizeof(struct yolo_disk_ns_header) == 32, "namespace header size");

/* One path: a name in the directory of node `parent` (which comes first).
 * Node 0 is the source root: parent 0, no name. */
struct yolo_disk_ns_node {
	uint32_t parent;                 /* node index, < this node's */
	uint32_t name_off;               /* in the section's strings */
	uint16_t name_len;               /* 1..YOLO_NS_MAX_NAME; no '/' or NUL, not "." or ".." */
	uint16_t flags;                  /* YOLO_NS_* questions asked about it */
	uint32_t reserved;               /* zero */
};
_Static_assert(sizeof(struct yolo_disk_ns_node) == 16, "namespace node size");

/* getxattr(node, name) was asked. */
struct yolo_disk_ns_xattr {
	uint32_t node;
	uint32_t name_off;
	uint16_t name_len;               /* 1..YOLO_NS_MAX_NAME; no NUL */
	uint16_t reserved16;             /* zero */
	uint32_t reserved32;             /* zero */
};
_Static_assert(sizeof(struct yolo_disk_ns_xattr) == 16, "namespace xattr size");

#endif /* YOLO_FORMAT_H */
