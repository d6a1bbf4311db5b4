/* blockstore.h - yolofs's in-memory block store (prefix bst_): the blocks of
 * the boot images held in memory, read-only and (once bst_pin is called by
 * the process that serves) pinned with mlock.  With dedup on, a block whose
 * recorded checksum and bytes equal a block already held for another image,
 * or earlier in the same image, is stored once and shared: related VM
 * images share most of their boot blocks.  An image's blocks are reached
 * through a view, refcounted so an image can be dropped from memory while
 * replies that point into its blocks are still being sent.
 *
 * Verification: loading reads at disk speed and checks nothing; a block's
 * bytes are checked against its checksum (yolo_block_check) the first time
 * they are asked for (bst_block) and the result is kept, which is safe
 * because held blocks never change.  bst_verify checks a whole view, for
 * a background pass after loading. */
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
	uint64_t ns;                     /* wall time */
	bool pinned;                     /* every segment it added is mlocked */
	int mlock_errno;                 /* why not (pinning on) */
};

/* Read all of img's blocks (one read of its data section) and hold them
 * in the store; img itself is not changed, so it may serve reads
 * meanwhile.  On failure fills `err` with one line (a zstd frame that does
 * not decode gives -EUCLEAN).  @return 0 with *out holding one reference,
 * or -errno. */
int bst_load(struct bst *s, struct yolo_image *img, struct bst_view **out,
	     struct bst_load_result *res, struct yolo_err *err);

/* The raw bytes of block-index entry `index` of the view's image, `b` being
 * that entry (raw_len bytes; zero blocks point at zeros), once they have
 * passed yolo_block_check; NULL when they do not.  Valid while the caller
 * holds a reference. */
const uint8_t *bst_block(const struct bst_view *v, uint64_t index, const struct yolo_block *b);

/* Check every block of the view (as bst_block would).  @return the number
 * of bad blocks; *first_bad is the first one's index. */
uint64_t bst_verify(const struct bst_view *v, struct yolo_image *img, uint64_t *first_bad);

/* From now on keep every segment locked in memory (mlock): call in the
 * process that serves, since a fork (daemonizing) drops memory locks.
 * @return 0, or the -errno of the first segment that could not be locked. */
int bst_pin(struct bst *s);

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
