/* imageset.h - the boot images a yolofs daemon serves (prefix iset_):
 * opening and validating them, keeping each image's freshness record of
 * each of its files (freshness.h) and running the comparisons those ask
 * for in the background, finding the image that may serve an opened source
 * file, replacing the set while serving (reload: new opens use the new set,
 * open files keep their image, memory is released when unused), and, in
 * memory mode, keeping the most recently used images that fit in memlimit
 * in the block store while the rest are read from their files.
 *
 * Sets live in a pool (one a process): each session's set holds its own
 * images (they match files by path under that session's source), while
 * the pool holds one block store (identical blocks of every set held once)
 * and one memlimit for every image of every set, with one pager thread. */
#ifndef YOLO_IMAGESET_H
#define YOLO_IMAGESET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "background.h"
#include "blockstore.h"
#include "freshness.h"
#include "stats.h"
#include "yolo_image.h"

struct ns;

/* One image.  The fields below are immutable while a reference is held. */
struct iset_image {
	char *path;                      /* as given in images= */
	struct yolo_image *img;          /* file-backed: metadata, and reads when not in memory */
	const struct yolo_image_info *info;
	struct fr_file *fresh;           /* per file: may it be served (freshness.h) */
	struct stats_image st;           /* its counters */
};

struct iset_pool;

struct iset_pool_config {
	bool memory;                     /* hold images in memory (else always read the files) */
	uint64_t memlimit;               /* bytes for every set of the pool together; 0 = unlimited */
	bool dedup;                      /* hold identical blocks once, across every set of the pool */
};

/* @return 0 or -ENOMEM. */
int iset_pool_create(struct iset_pool **out, const struct iset_pool_config *cfg);
/* In the process that serves (after daemonizing): pin the store and start
 * the pool's pager thread (memory mode with a memlimit).  @return 0 or
 * -errno (pinning failures are logged, not returned). */
int iset_pool_start(struct iset_pool *pool);
/* Every set of the pool must have been destroyed first. */
void iset_pool_destroy(struct iset_pool *pool);

struct iset_config {
	struct iset_pool *pool;          /* borrowed */
	const char *const *paths;        /* image files, searched in this order */
	size_t npaths;
	int source_fd;                   /* the source directory; borrowed */
	struct bg *bg;                   /* runs comparisons and checks; borrowed */
	struct ns *ns;                   /* primes each image's namespace answers (or NULL); borrowed */
	bool trust_all;                  /* insecure_images: skip trust.h's checks (tests) */
};

struct imageset;

/* Open every image into a new set of cfg->pool and, in memory mode, load
 * (and verify) those that fit with the pool's other images.  An image that cannot be opened or loaded (unreadable, untrusted, damaged:
 * hostile) is refused alone, with one log line and stats images_refused;
 * the set holds the others.  @return 0, or -ENOMEM with `err` filled. */
int iset_create(struct imageset **out, const struct iset_config *cfg, struct stats *stats,
	      struct yolo_err *err);
/* Takes the set out of its pool (which no longer touches it or its
 * images), cancels the set's background jobs (bg_cancel; the worker may
 * live on), then puts the images: all other references must have been put. */
void iset_destroy(struct imageset *set);

/* Images in the current set (those refused are not). */
size_t iset_count(struct imageset *set);

/* Replace the set (new opens use the new one, open files keep their
 * image); a bad image is refused alone
 * as by iset_create.  @return paths that failed. */
size_t iset_reload(struct imageset *set, const char *const *paths, size_t npaths);

/* The first image in the current set that may serve `relpath`, now in
 * state `st` (freshness.h decides, and may queue a comparison), with a
 * reference taken and marked as used; or NULL.  What is found is logged
 * once per image file and counted. */
struct iset_image *iset_find(struct imageset *set, const char *relpath, const struct stat *st,
			     uint32_t *file_id);
void iset_image_put(struct iset_image *im);

/* The attributes of `relpath` were changed through the mount (before/after:
 * its stat around the change): images that served it keep serving it. */
void iset_attr_set(struct imageset *set, const char *relpath, const struct stat *before,
		   const struct stat *after);

/* The image's blocks in memory, with a view reference taken, or NULL when
 * it is read from its file. */
struct bst_view *iset_memory(struct iset_image *im);

#endif /* YOLO_IMAGESET_H */
