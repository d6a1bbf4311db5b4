/* placement.h - which images memory mode holds in memory under memlimit
 * (prefix place_).  Pure (no I/O, no locks): imageset.c gathers the facts
 * and carries out the decision; tests/unit/test_placement.c.
 *
 * The policy: the images are ranked by last use, most recent first, the
 * images never used after them in images= order.  Walking that ranking,
 * an image is kept in memory when its size, counted without dedup, fits in
 * what memlimit leaves after the images kept before it.  An image that
 * does not fit is passed over and the walk goes on: a smaller, less
 * recently used image after it may still be kept (first fit in ranking
 * order, not the longest prefix that fits).  An image that could not be
 * loaded is passed over and takes no room.  memlimit 0: no limit. */
#ifndef YOLO_PLACEMENT_H
#define YOLO_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum place_action {
	PLACE_KEEP,                      /* in memory, stays */
	PLACE_LOAD,                      /* to be loaded */
	PLACE_DROP,                      /* in memory, to be dropped */
	PLACE_ON_FILE,                   /* not in memory, stays out */
};

struct place_image {
	/* Facts, from the caller. */
	uint64_t size;                   /* bytes its blocks take in memory without dedup */
	uint64_t last_used;              /* a clock at its last use (larger: later); 0: never */
	size_t order;                    /* its position in images= */
	bool in_memory;
	bool load_failed;                /* could not be loaded (not damage): stays on its file */
	size_t id;                       /* the caller's, carried along */
	/* The decision, from place_decide. */
	enum place_action action;
};

/* Sort `v` (n images) into ranking order and set each one's action for a
 * limit of `memlimit` bytes (0: none). */
void place_decide(struct place_image *v, size_t n, uint64_t memlimit);

/* Is the image in memory once `a` is carried out? */
static inline bool place_in_memory(enum place_action a)
{
	return a == PLACE_KEEP || a == PLACE_LOAD;
}

#endif /* YOLO_PLACEMENT_H */
