/* hashmap.c - the one hash table of YOLO (see hashmap.h). */
#include <errno.h>
#include <stdlib.h>

#include "hashmap.h"

#define MIN_SLOTS 64u

bool yhash_find(const struct yhash *h, uint64_t hash, yhash_eq_fn eq, const void *ctx,
		const void *key, uint64_t *item)
{
	if (!h->nslots)
		return false;
	uint32_t mask = h->nslots - 1, tag = (uint32_t)hash;
	for (uint32_t i = tag & mask; h->slots[i].used; i = (i + 1) & mask) {
		const struct yhash_slot *s = &h->slots[i];
		if (s->hash == tag && eq(ctx, s->item, key)) {
			*item = s->item;
			return true;
		}
	}
	return false;
}

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

void yhash_free(struct yhash *h)
{
	free(h->slots);
	*h = (struct yhash){ 0 };
}
