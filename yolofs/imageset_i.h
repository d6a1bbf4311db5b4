/* imageset_i.h - the image set's private parts, shared by its files: an
 * image, the set and the pool its sets live in; one image's life (image.c:
 * open, take a reference, put it with iset_image_put, its memory), which
 * image_jobs.c (the jobs on an image), imageset.c (the set) and
 * imagepool.c (placement across the pool's sets) use; what the set and the
 * pool give each other.  Nothing else includes it.
 *
 * Lock order: the pool's balance_lock, then its members_lock, then a set's
 * list_lock or an image's mem_lock; list_lock before a record's lock. */
#ifndef YOLO_IMAGESET_I_H
#define YOLO_IMAGESET_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "imageset.h"
#include "yolo_err.h"

/* A set's images, in images= order; each holds a reference. */
struct list {
	size_t n;
	struct image *v[];
};

struct image {
	struct iset_image pub;
	struct imageset *set;
	int fd;                          /* the image file as opened */
	struct stat file_st;             /* of fd: a reload keeps an unchanged file */
	uint64_t logical;                /* bytes its blocks take in memory without dedup */
	atomic_uint refs;
	atomic_uint_fast64_t last_used;  /* pool clock at the last open it served; 0: never */
	atomic_bool load_failed;         /* could not be loaded (not damage): stays on its file */
	atomic_bool refused;             /* damaged data: out of the set, its jobs do nothing */
	bool started;                    /* judged, jobs queued; protected by the pool's balance_lock */
	pthread_mutex_t mem_lock;
	struct bst_view *mem;            /* protected by mem_lock */
};

struct imageset {
	/* Immutable after iset_create. */
	struct iset_pool *pool;
	int source_fd;
	bool check_trust;                /* only trusted image files (trust.h) */
	struct bg *bg;
	struct ns *ns;                   /* NULL: no namespace answers */
	struct stats *stats;

	/* `cur` (pointer and contents) changes under the pool's balance_lock
	 * and list_lock together: either one protects a reader. */
	pthread_mutex_t list_lock;
	struct list *cur;
	unsigned generation;             /* reloads so far; protected by the pool's balance_lock */

	/* The pool's members, linked; changed under the pool's balance_lock
	 * and members_lock together: either one protects a reader. */
	struct imageset *next;
	bool member;
};

struct iset_pool {
	/* Immutable after iset_pool_create. */
	bool memory;
	uint64_t memlimit;
	struct bst *store;               /* memory mode only */

	/* Serialises placement, each set's reload and start of new images,
	 * and joining and leaving. */
	pthread_mutex_t balance_lock;
	pthread_mutex_t members_lock;    /* see struct imageset's next */
	struct imageset *members;
	atomic_uint_fast64_t clock;      /* ranks the opens served by every set */

	pthread_mutex_t pager_lock;      /* protects the pager fields */
	pthread_cond_t pager_cond;
	bool pager_wake, pager_quit, pager_running;
	pthread_t pager;
};

static inline struct image *image_of(struct iset_image *p)
{
	return (struct image *)p;
}

/* Validate the image file opened (trusted) as `fd`, which it takes over.
 * @return the image (one reference) or NULL with err filled. */
struct image *image_open(struct imageset *set, const char *path, int fd, struct yolo_err *err);

static inline void image_get(struct image *im)
{
	atomic_fetch_add_explicit(&im->refs, 1, memory_order_relaxed);
}

/* Is the image's data in the pool's store now? */
bool image_in_memory(struct image *im);

/* ---- imageset.c, for the pool ---- */

/* Take an image whose data is damaged out of its set (the pool's
 * balance_lock held): logged as refused for `why`, counted in
 * images_refused.  Files already open keep reading it from its file. */
void iset_drop_refused(struct imageset *set, struct image *im, const char *why);

/* ---- imagepool.c, for the set ---- */

/* Make `set` a member of its pool (its stats sample the pool's memory
 * gauges) / take it out: afterwards the pool never touches it or its
 * images.  Leaving a set that never joined does nothing. */
void iset_pool_join(struct iset_pool *pool, struct imageset *set);
void iset_pool_leave(struct iset_pool *pool, struct imageset *set);

/* Move the images of every set of the pool in and out of memory as
 * placement.h decides over all of them.  startup: also say which images of
 * `set` do not fit.  @return images of `set` refused (damaged data). */
size_t iset_pool_rebalance(struct iset_pool *pool, const struct imageset *set, bool startup);

/* `im` served an open: rank it first, and have the pager bring it into
 * memory if it is not there. */
void iset_pool_used(struct iset_pool *pool, struct image *im);

#endif /* YOLO_IMAGESET_I_H */
