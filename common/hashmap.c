/* hashmap.c - the one hash table of YOLO (see hashmap.h). */
#include <errno.h>
#include <stdlib.h>

#include "hashmap.h"

#define MIN_SLOTS 64u

static void put(struct yhash_slot *slots, uint32_t nslots, uint32_t tag, uint64_t item)
{
	uint32_t i = tag & (nslots - 1);
	while (slots[i].used)
		i = (i + 1) & (nslots - 1);
	slots[i] = (struct yhash_slot){ .item = item, .hash = tag, .used = 1 };
}

int yhash_add(struct yhash *h, uint64_t hash, uint64_t item)
{
	if ((uint64_t)(h->count + 1) * 2 > h->nslots) {
		if (h->nslots > UINT32_MAX / 4)
			return -ENOMEM;
		uint32_t n = h->nslots ? h->nslots * 2 : MIN_SLOTS;
		struct yhash_slot *slots = calloc(n, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (uint32_t i = 0; i < h->nslots; i++)
			if (h->slots[i].used)
				put(slots, n, h->slots[i].hash, h->slots[i].item);
		free(h->slots);
		h->slots = slots;
		h->nslots = n;
	}
	put(h->slots, h->nslots, (uint32_t)hash, item);
	h->count++;
	return 0;
}

bool yhash_remove(struct yhash *h, uint64_t hash, uint64_t item)
{
	if (!h->nslots)
		return false;
	uint32_t mask = h->nslots - 1, tag = (uint32_t)hash, i = tag & mask;
	while (h->slots[i].used && (h->slots[i].hash != tag || h->slots[i].item != item))
		i = (i + 1) & mask;
	if (!h->slots[i].used)
		return false;
	/* No tombstones: move back each later item of the run whose home slot
	 * is not between the gap and itself, so every probe still finds it. */
	for (uint32_t j = (i + 1) & mask; h->slots[j].used; j = (j + 1) & mask) {
		uint32_t home = h->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			h->slots[i] = h->slots[j];
			i = j;
		}
	}
	h->slots[i] = (struct yhash_slot){ 0 };
	h->count--;
	return true;
}

bool yhash_next(const struct yhash *h, uint32_t *pos, uint64_t *item)
{
	for (; *pos < h->nslots; ++*pos) {
		if (h->slots[*pos].used) {
			*item = h->slots[(*pos)++].item;
			return true;
		}
	}
	return false;
}

void yhash_free(struct yhash *h)
{
	free(h->slots);
	*h = (struct yhash){ 0 };
}
