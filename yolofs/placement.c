/* placement.c - the memlimit placement policy: ranking the images and
 * choosing those kept in memory (see placement.h). */
#include <stdlib.h>

#include "placement.h"

/* Most recently used first; never used (0) last; then images= order. */
static int by_recent_use(const void *a, const void *b)
{
	const struct place_image *x = a, *y = b;
	if (x->last_used != y->last_used)
		return x->last_used > y->last_used ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

void place_decide(struct place_image *v, size_t n, uint64_t memlimit)
{
	qsort(v, n, sizeof(*v), by_recent_use);
	uint64_t used = 0;
	for (size_t i = 0; i < n; i++) {
		bool keep = !v[i].load_failed && (!memlimit || used + v[i].size <= memlimit);
		if (keep) {
			used += v[i].size;
			v[i].action = v[i].in_memory ? PLACE_KEEP : PLACE_LOAD;
		} else {
			v[i].action = v[i].in_memory ? PLACE_DROP : PLACE_ON_FILE;
		}
	}
}
