/* filelist.c - the files a writer (boot image or trace) has declared: dense
 * ids in order of addition, each with its path and identity, found by path
 * through an open-addressing index in O(1). */
#include <errno.h>
#include <stdlib.h>

#include "image_i.h"

/* Index slot of `path`: holding its id + 1, or 0 where it would go. */
static uint32_t *slot_of(const struct yolo_filelist *l, const char *path)
{
	uint32_t mask = l->nslots - 1;
	uint32_t h = (uint32_t)XXH3_64bits(path, strlen(path)) & mask;
	while (l->slots[h] && strcmp(l->v[l->slots[h] - 1].path, path))
		h = (h + 1) & mask;
	return &l->slots[h];
}

int64_t yolo_filelist_find(const struct yolo_filelist *l, const char *path)
{
	uint32_t s = l->nslots ? *slot_of(l, path) : 0;
	return s ? (int64_t)s - 1 : -1;
}

int yolo_filelist_add(struct yolo_filelist *l, const char *path,
		      const struct yolo_file_ident *ident)
{
	if ((uint64_t)(l->n + 1) * 2 > l->nslots) {
		uint32_t n = l->nslots ? l->nslots * 2 : 64, *old = l->slots, oldn = l->nslots;
		if (!(l->slots = calloc(n, sizeof(*l->slots)))) {
			l->slots = old;
			return -ENOMEM;
		}
		l->nslots = n;
		for (uint32_t i = 0; i < oldn; i++)
			if (old[i])
				*slot_of(l, l->v[old[i] - 1].path) = old[i];
		free(old);
	}
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 64;
		struct yolo_named_file *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	l->v[l->n] = (struct yolo_named_file){ .path = copy, .ident = *ident };
	*slot_of(l, copy) = l->n + 1;
	return (int)l->n++;
}

void yolo_filelist_free(struct yolo_filelist *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	free(l->slots);
	*l = (struct yolo_filelist){ 0 };
}
