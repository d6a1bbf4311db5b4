/* blocksrc.h - the block source of yolofs (prefix bs_): serves reads of
 * source files from boot images (memory or the image file on SSD), falls
 * back to the source file for blocks an image does not hold, and drops
 * blocks that are modified through the mount.  The set of images can be
 * replaced while serving (bs_reload); in memory mode the most recently used
 * images that fit in memlimit are held in memory (deduplicated across
 * images) and the rest are read from their files.  It plugs into the
 * pass-through core as its hooks (bs_hooks). */
#ifndef YOLO_BLOCKSRC_H
#define YOLO_BLOCKSRC_H

#include <stdbool.h>
#include <stdint.h>

#include "passthrough.h"
#include "stats.h"
#include "yolo_image.h"

enum bs_serve { BS_SERVE_MEMORY, BS_SERVE_SSD };

struct bs_config {
	const char *const *images;       /* image file paths, searched in this order */
	size_t nimages;
	enum bs_serve serve;
	uint64_t memlimit;               /* bytes to hold in memory in memory mode; 0 = unlimited */
	bool dedup;                      /* hold identical blocks once across images */
	int source_fd;                   /* for the staleness report (borrowed; must outlive bs) */
	bool prefill;                    /* push a file's image blocks into the kernel page cache at first open */
};

struct bs;

/* Open and validate every image and (memory mode) load and verify those
 * that fit.  On failure prints nothing and fills `err` with one line.
 * @return 0 or -errno. */
int bs_create(struct bs **out, const struct bs_config *cfg, struct yolo_err *err);
/* Start the thread that moves images in and out of memory as they are used
 * (memory mode with a memlimit).  Call after daemonizing.  @return 0 or -errno. */
int bs_start(struct bs *bs);
void bs_destroy(struct bs *bs);

/* Replace the image set with `paths` (same order rules as bs_config):
 * images whose file is unchanged are kept as they are, new or replaced
 * files are opened (and loaded), missing ones are dropped.  Files already
 * open keep the image they were opened with until closed; an image's
 * memory is released when nothing uses it.  A path that cannot be opened
 * is logged and skipped (its previous version is kept if there was one).
 * @return the number of paths that could not be opened. */
size_t bs_reload(struct bs *bs, const char *const *paths, size_t npaths);

/* The statistics the block source updates (owned by it). */
struct st_stats *bs_stats(struct bs *bs);

/* Hooks for pt_config.hooks, with ctx = bs. */
struct pt_hooks bs_hooks(struct bs *bs);

#endif /* YOLO_BLOCKSRC_H */
