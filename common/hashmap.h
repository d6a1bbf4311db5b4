/* hashmap.h - the one hash table of YOLO (prefix yhash_): finds an item by
 * key in O(1), for tables whose entries the caller keeps itself (an index
 * into its array, or a pointer).
 *
 * The table stores 64-bit items (an array index, a pointer cast to
 * uintptr_t, or a small key itself) with their keys' hashes; keys stay with
 * the caller, who supplies each key's hash and a test that an item has a
 * given key.  Open addressing with linear probing, at most half full, so a
 * lookup reads a slot or two.  A key may be added more than once (the caller
 * decides whether that is an error, or keeps several items per key and
 * walks them with yhash_find_next).  An item is removed by its value.
 *
 * Not thread-safe; zero-initialised is empty. */
#ifndef YOLO_HASHMAP_H
#define YOLO_HASHMAP_H

#include <stdbool.h>
#include <stdint.h>

struct yhash_slot {
	uint64_t item;
	uint32_t hash;                   /* low bits of the key's hash */
	uint32_t used;
};

struct yhash {
	struct yhash_slot *slots;
	uint32_t nslots;                 /* 0 or a power of two, at least twice count */
	uint32_t count;
};

/* Does `item` have the key `key`?  `ctx` is the caller's table. */
typedef bool (*yhash_eq_fn)(const void *ctx, uint64_t item, const void *key);

/* Lookups are inline so that the compiler can inline the caller's `eq`
 * too: they are on hot paths (every FUSE LOOKUP finds an inode). */

/* Walk the items added under `hash` for which eq(ctx, item, key) holds:
 * start with *pos 0; each call moves it on.
 * Adding or removing an item ends a walk.
 * @return true with *item set, or false when there are no more. */
static inline bool yhash_find_next(const struct yhash *h, uint64_t hash, yhash_eq_fn eq,
				   const void *ctx, const void *key, uint32_t *pos, uint64_t *item)
{
	if (!h->nslots)
		return false;
	/* *pos counts the slots probed so far from the key's home slot. */
	uint32_t mask = h->nslots - 1, tag = (uint32_t)hash;
	for (uint32_t i = (tag + *pos) & mask; h->slots[i].used; i = (i + 1) & mask) {
		const struct yhash_slot *s = &h->slots[i];
		++*pos;
		if (s->hash == tag && eq(ctx, s->item, key)) {
			*item = s->item;
			return true;
		}
	}
	return false;
}

/* Find an item added with `hash` for which eq(ctx, item, key) holds.
 * @return true with *item set, or false. */
static inline bool yhash_find(const struct yhash *h, uint64_t hash, yhash_eq_fn eq,
			      const void *ctx, const void *key, uint64_t *item)
{
	uint32_t pos = 0;
	return yhash_find_next(h, hash, eq, ctx, key, &pos, item);
}

/* An equality test for tables whose items are their own keys (a set of
 * 64-bit numbers): `key` points to a uint64_t. */
static inline bool yhash_item_is(const void *ctx, uint64_t item, const void *key)
{
	(void)ctx;
	return item == *(const uint64_t *)key;
}

/* Add `item` under `hash`.  @return 0, or -ENOMEM (the table is unchanged). */
int yhash_add(struct yhash *h, uint64_t hash, uint64_t item);

/* Remove the item equal to `item` that was added under `hash` (one of
 * them, if it was added twice).  @return true, or false when absent. */
bool yhash_remove(struct yhash *h, uint64_t hash, uint64_t item);

/* Walk every item, in no particular order: start with *pos 0; each call
 * moves it on.  Adding or removing an item ends a walk.
 * @return true with *item set, or false when there are no more. */
bool yhash_next(const struct yhash *h, uint32_t *pos, uint64_t *item);

void yhash_free(struct yhash *h);

#endif /* YOLO_HASHMAP_H */
