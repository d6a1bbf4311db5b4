/* filelist.h - a table of file paths (prefix yolo_filelist_): ids dense
 * from 0 in order of addition, each path found in O(1).  What a boot-image
 * or trace writer has declared, or what yolofs's learning has seen read;
 * the caller keeps anything else about a file in its own arrays, by id.
 *
 * Not thread-safe; zero-initialised is empty. */
#ifndef YOLO_FILELIST_H
#define YOLO_FILELIST_H

#include <stdint.h>

#include "hashmap.h"

struct yolo_filelist {
	char **paths;                    /* n copies, by id */
	uint32_t n, cap;
	struct yhash index;              /* path -> id */
};

/* @return the id of `path`, or -1. */
int64_t yolo_filelist_find(const struct yolo_filelist *l, const char *path);

/* Add `path` (not present; the caller checks).  @return its id or -ENOMEM. */
int yolo_filelist_add(struct yolo_filelist *l, const char *path);

void yolo_filelist_free(struct yolo_filelist *l);

#endif /* YOLO_FILELIST_H */
