/* imageset_i.h - the image set's private parts, shared by its files: an
 * image and the set itself, and one image's life (image.c: open, take a
 * reference, put it with iset_image_put), which image_jobs.c (the jobs on
 * an image) and imageset.c (the set) both use.  Nothing else includes it. */
#ifndef YOLO_IMAGESET_I_H
#define YOLO_IMAGESET_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "imageset.h"
#include "yolo_err.h"

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

static inline struct image *image_of(struct iset_image *p)
{
	return (struct image *)p;
}

/* Validate the image file opened (trusted) as `fd`, which it takes over,
 * as the `order`th of images=.  @return the image (one reference) or NULL
 * with err filled. */
struct image *image_open(struct imageset *set, const char *path, int fd, size_t order,
			 struct yolo_err *err);

static inline void image_get(struct image *im)
{
	atomic_fetch_add_explicit(&im->refs, 1, memory_order_relaxed);
}

#endif /* YOLO_IMAGESET_I_H */
