/* blockstore.h - yolofs's in-memory block store (prefix bst_): the blocks of
 * the boot images held in memory, pinned with mlock.  With dedup on, a block
 * whose content (XXH3-128 and bytes) is already held for another image, or
 * earlier in the same image, is stored once and shared: related VM images
 * share most of their boot blocks.  An image's blocks are reached through a
 * view, refcounted so an image can be dropped from memory while replies that
 * point into its blocks are still being sent. */
#ifndef YOLO_BLOCKSTORE_H
#define YOLO_BLOCKSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "yolo_image.h"

struct bst;
struct bst_view;

/* @return 0 or -ENOMEM. */
int bst_create(struct bst **out, bool dedup);
/* All views must have been put. */
void bst_destroy(struct bst *s);

struct bst_load_result {
	uint64_t logical;                /* raw bytes of the image's non-zero blocks */
	uint64_t added;                  /* bytes the store grew by (new content) */
	uint64_t ns;                     /* wall time, including verification */
	bool pinned;                     /* every segment it added is mlocked */
	int mlock_errno;                 /* why not */
};

/* Read all of img's blocks, verify their checksums and hold them in the
 * store.  img must not be loaded (yolo_image_load) by anyone else; it is
 * left unloaded.  On failure fills `err` with one line (a corrupt block
 * gives -EUCLEAN).  @return 0 with *out holding one reference, or -errno. */
int bst_load(struct bst *s, struct yolo_image *img, struct bst_view **out,
	     struct bst_load_result *res, struct yolo_err *err);

/* Raw bytes of block-index entry `index` of the view's image (raw_len bytes;
 * zero blocks point at zeros).  Valid while the caller holds a reference. */
const uint8_t *bst_block(const struct bst_view *v, uint64_t index);

void bst_view_get(struct bst_view *v);
/* Drop a reference; the last one releases the view's blocks (content still
 * used by other views stays).  Any thread. */
void bst_view_put(struct bst_view *v);

struct bst_usage {
	uint64_t resident;               /* bytes of memory holding blocks (mapped segments) */
	uint64_t unique;                 /* bytes of distinct live blocks */
	uint64_t logical;                /* sum of the live views' logical bytes */
	uint64_t pinned;                 /* bytes of mlocked segments */
	uint64_t views;                  /* live views */
};
void bst_usage(struct bst *s, struct bst_usage *u);

#endif /* YOLO_BLOCKSTORE_H */
