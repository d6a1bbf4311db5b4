/* read_plan.h - how one read of a source file is answered (prefix rp_):
 * which bytes come from which boot-image block and which from the source,
 * the source bytes merged into runs so each run is one read.  Pure (no
 * I/O, no locks): tests/unit/test_read_plan.c. */
#ifndef YOLO_READ_PLAN_H
#define YOLO_READ_PLAN_H

#include <stddef.h>
#include <stdint.h>

#define RP_SOURCE (-1)

struct rp_piece {
	uint64_t off;                    /* offset in the file */
	uint32_t len;
	int32_t entry;                   /* the file's block-index entry, or RP_SOURCE */
	uint32_t in_block;               /* offset of the piece within that block */
};

/* The entry holding block `block_id` if the image may serve its bytes up
 * to `need` (the end of the wanted part within the block), else -1. */
typedef int32_t (*rp_lookup_fn)(void *ctx, uint64_t block_id, uint32_t need);

/* The most pieces a read of `size` bytes over blocks of 2^shift bytes can
 * need: every block a piece of its own, plus one. */
static inline size_t rp_max_pieces(size_t size, unsigned shift)
{
	return (size >> shift) + 2;
}

/* Plan [off, off+size) of a file of `fsize` bytes in blocks of 2^shift
 * bytes: the read is cut at the end of the file (a short read; nothing at
 * or past it), each held block gives a piece of exactly the part of it
 * inside the read (the first and last trimmed), and consecutive bytes not
 * held form one source piece.  Pieces are in file order and cover the
 * (cut) read exactly.  @return the number of pieces written to out (at
 * most `max`), or -1 when `max` is too small. */
int rp_plan(struct rp_piece *out, size_t max, uint64_t off, size_t size, uint64_t fsize,
	    unsigned shift, rp_lookup_fn lookup, void *ctx);

#endif /* YOLO_READ_PLAN_H */
