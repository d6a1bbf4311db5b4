/* read_plan.c - splitting a read into image pieces and source runs (see
 * read_plan.h).  The last block is the one holding byte end-1, not end
 * (the thesis's Algorithm 1 is off by one there). */
#include "read_plan.h"

int rp_plan(struct rp_piece *out, size_t max, uint64_t off, size_t size, uint64_t fsize,
	    unsigned shift, rp_lookup_fn lookup, void *ctx)
{
	if (off >= fsize || size == 0)
		return 0;
	uint64_t end = off + (size < fsize - off ? size : fsize - off);
	uint64_t bsz = 1ull << shift;
	size_t n = 0;
	for (uint64_t b = off >> shift; (b << shift) < end; b++) {
		uint64_t bstart = b << shift;
		uint64_t s = bstart > off ? bstart : off;
		uint64_t e = bstart + bsz < end ? bstart + bsz : end;
		int32_t entry = lookup(ctx, b, (uint32_t)(e - bstart));
		if (entry < 0 && n && out[n - 1].entry == RP_SOURCE) {
			out[n - 1].len += (uint32_t)(e - s);     /* extend the source run */
			continue;
		}
		if (n == max)
			return -1;
		out[n++] = (struct rp_piece){
			.off = s, .len = (uint32_t)(e - s),
			.entry = entry < 0 ? RP_SOURCE : entry,
			.in_block = entry < 0 ? 0 : (uint32_t)(s - bstart),
		};
	}
	return (int)n;
}
