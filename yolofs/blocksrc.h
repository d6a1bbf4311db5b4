/* blocksrc.h - the block source of yolofs (prefix bs_): serves reads of
 * source files from boot images (pinned memory or the image file on SSD),
 * falls back to the source file for blocks an image does not hold, and
 * drops blocks that are modified through the mount.  It plugs into the
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
	uint64_t memlimit;               /* bytes to load in memory mode; 0 = unlimited */
	int source_fd;                   /* for the startup staleness report */
	bool prefill;                    /* push a file's image blocks into the kernel page cache at first open */
};

struct bs;

/* Open, validate and (memory mode) load and verify every image.  On
 * failure prints nothing and fills `err` with one line.  @return 0 or -errno. */
int bs_create(struct bs **out, const struct bs_config *cfg, struct yolo_err *err);
void bs_destroy(struct bs *bs);

/* The statistics the block source updates (owned by it). */
struct st_stats *bs_stats(struct bs *bs);

/* Hooks for pt_config.hooks, with ctx = bs. */
struct pt_hooks bs_hooks(struct bs *bs);

#endif /* YOLO_BLOCKSRC_H */
