/* imageset.h - the boot images a yolofs daemon serves (prefix is_): opening
 * and validating them, finding the image that holds an opened source file
 * (refusing files changed since capture), replacing the set while serving
 * (reload: new opens use the new set, open files keep their image, memory
 * is released when unused), and, in memory mode, keeping the most recently
 * used images that fit in memlimit in the block store while the rest are
 * read from their files. */
#ifndef YOLO_IMAGESET_H
#define YOLO_IMAGESET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "blockstore.h"
#include "stats.h"
#include "yolo_image.h"

/* One image.  The fields below are immutable while a reference is held. */
struct iset_image {
	char *path;                      /* as given in images= */
	struct yolo_image *img;          /* file-backed: metadata, and reads when not in memory */
	const struct yolo_image_info *info;
	struct stats_image st;              /* its counters */
};

struct iset_config {
	const char *const *paths;        /* image files, searched in this order */
	size_t npaths;
	bool memory;                     /* hold images in memory (else always read the files) */
	uint64_t memlimit;               /* bytes; 0 = unlimited */
	bool dedup;                      /* hold identical blocks once */
	int source_fd;                   /* for the staleness report; borrowed */
};

struct imageset;

/* Open every image and, in memory mode, load (and verify) those that fit.
 * Any failure fills `err` with one line.  @return 0 or -errno. */
int iset_create(struct imageset **out, const struct iset_config *cfg, struct stats *stats,
	      struct yolo_err *err);
/* Start the pager thread (memory mode with a memlimit); after daemonizing.
 * @return 0 or -errno. */
int iset_start(struct imageset *set);
/* All images must have been put. */
void iset_destroy(struct imageset *set);

/* Replace the set (see blocksrc.h bs_reload).  @return paths that failed. */
size_t iset_reload(struct imageset *set, const char *const *paths, size_t npaths);

/* The first image in the current set holding `relpath` whose recorded
 * identity matches `st`, with a reference taken and marked as used; or
 * NULL.  Stale matches are counted and logged once per image file. */
struct iset_image *iset_find(struct imageset *set, const char *relpath, const struct stat *st,
			 uint32_t *file_id);
void iset_image_put(struct iset_image *im);

/* The timestamps of `relpath` were set through the mount (before/after:
 * its stat around the change).  Images that matched it before keep
 * serving it with the new mtime (size and inode must not have changed). */
void iset_attr_set(struct imageset *set, const char *relpath, const struct stat *before,
		  const struct stat *after);

/* The image's blocks in memory, with a view reference taken, or NULL when
 * it is read from its file. */
struct bst_view *iset_memory(struct iset_image *im);

#endif /* YOLO_IMAGESET_H */
