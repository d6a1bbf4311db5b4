/* blocksrc.h - the block source of yolofs (prefix bs_): serves reads of
 * source files from boot images (memory or the image file on SSD), falls
 * back to the source file for blocks an image does not hold, and drops
 * blocks that are modified through the mount.  Which images exist and
 * where their blocks are is imageset.h's job.  It plugs into the
 * pass-through core as its hooks (bs_hooks). */
#ifndef YOLO_BLOCKSRC_H
#define YOLO_BLOCKSRC_H

#include <stdbool.h>
#include <stdint.h>

#include "imageset.h"
#include "passthrough.h"
#include "stats.h"

struct bs;

/* A block source over the images of `set` (borrowed; outlives bs), counting
 * in `stats`; what it reads from the source is told to `learn` (NULL: not
 * learning).  prefill: push a file's image blocks into the kernel page
 * cache at its first open.  @return 0 or -ENOMEM. */
struct learn;
int bs_create(struct bs **out, struct imageset *set, struct learn *learn, struct stats *stats,
	      bool prefill);
void bs_destroy(struct bs *bs);

/* Hooks for pt_config.hooks, with ctx = bs. */
struct pt_hooks bs_hooks(struct bs *bs);

#endif /* YOLO_BLOCKSRC_H */
