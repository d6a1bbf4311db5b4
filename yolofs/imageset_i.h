/* imageset_i.h - what imageset.c gives its sibling image_jobs.c: an image
 * of the set and the set itself, and taking a reference to an image (put
 * it with iset_image_put).  Private to the image set: nothing else
 * includes it. */
#ifndef YOLO_IMAGESET_I_H
#define YOLO_IMAGESET_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "imageset.h"

struct list;

struct image {
	struct iset_image pub;
	struct imageset *set;
	int fd;                          /* the image file as opened */
	struct stat file_st;             /* of fd: a reload keeps an unchanged file */
	uint64_t logical;                /* bytes its blocks take in memory without dedup */
	atomic_uint refs;
	atomic_uint_fast64_t last_used;  /* set->clock at the last open it served; 0: never */
	atomic_bool load_failed;         /* could not be loaded (not damage): stays on its file */
	atomic_bool refused;             /* damaged data: out of the set, its jobs do nothing */
	bool started;                    /* judged, jobs queued; protected by balance_lock */
	size_t order;                    /* position in images=; protected by balance_lock */
	pthread_mutex_t mem_lock;
	struct bst_view *mem;            /* protected by mem_lock */
};

struct imageset {
	/* Immutable after iset_create. */
	bool memory;
	uint64_t memlimit;
	int source_fd;
	bool check_trust;                /* only trusted image files (trust.h) */
	struct bg *bg;
	struct ns *ns;                   /* NULL: no namespace answers */
	struct bst *store;               /* memory mode only */
	struct stats *stats;

	pthread_mutex_t list_lock;       /* protects `cur` (pointer and contents) */
	struct list *cur;
	atomic_uint_fast64_t clock;

	pthread_mutex_t balance_lock;    /* serialises rebalance and reload */
	unsigned generation;             /* reloads so far; protected by balance_lock */

	pthread_mutex_t pager_lock;      /* protects the pager fields */
	pthread_cond_t pager_cond;
	bool pager_wake, pager_quit, pager_running;
	pthread_t pager;
};

static inline void image_get(struct image *im)
{
	atomic_fetch_add_explicit(&im->refs, 1, memory_order_relaxed);
}

#endif /* YOLO_IMAGESET_I_H */
