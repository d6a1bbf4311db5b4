/* filelist.c - a table of file paths by dense id (see filelist.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "filelist.h"

static uint64_t path_hash(const char *path)
{
	return XXH3_64bits(path, strlen(path));
}

static bool path_is(const void *ctx, uint64_t id, const void *path)
{
	const struct yolo_filelist *l = ctx;
	return !strcmp(l->paths[id], path);
}

int64_t yolo_filelist_find(const struct yolo_filelist *l, const char *path)
{
	uint64_t id;
	return yhash_find(&l->index, path_hash(path), path_is, l, path, &id) ? (int64_t)id : -1;
}

int yolo_filelist_add(struct yolo_filelist *l, const char *path)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->paths, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->paths = v;
		l->cap = cap;
	}
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	if (yhash_add(&l->index, path_hash(copy), l->n) < 0) {
		free(copy);
		return -ENOMEM;
	}
	l->paths[l->n] = copy;
	return (int)l->n++;
}

void yolo_filelist_free(struct yolo_filelist *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	yhash_free(&l->index);
	*l = (struct yolo_filelist){ 0 };
}
