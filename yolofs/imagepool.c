/* imagepool.c - the pool the image sets live in (see imageset.h): one
 * block store, one memlimit and one pager thread for every image of every
 * member set, so a process serving many sessions (one set each) holds
 * identical blocks once and stays within one budget.
 *
 * Memory placement (memory mode): rebalance asks placement.h which images
 * to hold, over the images of every member set together, ranked by last
 * use on the pool's one clock (never used: sets in the order they joined,
 * each set's images in images= order): walking them, each one whose size,
 * counted without dedup, fits in what memlimit leaves after those kept
 * before it (one that does not fit is passed over, and a smaller one after
 * it may still be kept).  It drops the others first and then loads the
 * newcomers.  It runs when a set is created or reloaded and, with a
 * memlimit, on the pager thread when an open of any set is served from an
 * image that is not in memory.  Readers never wait for it: an image is
 * read from its file until its load completes, and a dropped image's
 * blocks stay valid for replies in flight (view references).  An image
 * whose data turns out damaged while loading is refused from its own set
 * (iset_drop_refused); the other sets never notice.
 *
 * Membership: a set joins at iset_create and leaves at iset_destroy, both
 * under balance_lock, so a set that left is no longer in any placement
 * running or to come.  Lock order: imageset_i.h. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_jobs.h"
#include "imageset_i.h"
#include "log.h"
#include "placement.h"

/* ---- the memory gauges ---- */

/* Bytes this process has locked in memory, as the kernel counts them. */
static uint64_t locked_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long kib = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib << 10;
}

/* The pool's memory gauges, read from its store when statistics are
 * written; background_jobs counts the jobs of each worker the members use
 * once. */
static void sample_memory(void *ctx, struct stats *st)
{
	struct iset_pool *pool = ctx;
	struct bst_usage u = { 0 };
	if (pool->store)
		bst_usage(pool->store, &u);
	atomic_store(&st->mem.limit, pool->memlimit);
	atomic_store(&st->mem.resident, u.resident);
	atomic_store(&st->mem.unique, u.unique);
	atomic_store(&st->mem.logical, u.logical);
	atomic_store(&st->mem.pinned, locked_bytes());
	unsigned jobs = 0;
	pthread_mutex_lock(&pool->members_lock);
	for (struct imageset *s = pool->members; s; s = s->next) {
		struct imageset *earlier = pool->members;
		while (earlier != s && earlier->bg != s->bg)
			earlier = earlier->next;
		if (earlier == s && s->bg)
			jobs += bg_pending(s->bg);
	}
	pthread_mutex_unlock(&pool->members_lock);
	atomic_store(&st->background_jobs, jobs);
}

/* ---- membership ---- */

void iset_pool_join(struct iset_pool *pool, struct imageset *set)
{
	pthread_mutex_lock(&pool->balance_lock);
	pthread_mutex_lock(&pool->members_lock);
	struct imageset **at = &pool->members;
	while (*at)
		at = &(*at)->next;
	*at = set;
	set->next = NULL;
	set->member = true;
	set->stats->sample = sample_memory;
	set->stats->sample_ctx = pool;
	pthread_mutex_unlock(&pool->members_lock);
	pthread_mutex_unlock(&pool->balance_lock);
}

void iset_pool_leave(struct iset_pool *pool, struct imageset *set)
{
	if (!set->member)
		return;
	pthread_mutex_lock(&pool->balance_lock);
	pthread_mutex_lock(&pool->members_lock);
	struct imageset **at = &pool->members;
	while (*at != set)
		at = &(*at)->next;
	*at = set->next;
	set->member = false;
	bool stats_shared = false;       /* by another member: it still samples the pool */
	for (struct imageset *s = pool->members; s && !stats_shared; s = s->next)
		stats_shared = s->stats == set->stats;
	if (!stats_shared && set->stats->sample_ctx == pool)
		set->stats->sample = NULL;
	pthread_mutex_unlock(&pool->members_lock);
	pthread_mutex_unlock(&pool->balance_lock);
}

/* ---- carrying out placement.h's decisions ---- */

/* Load one image into the store (balance_lock held).  bst_load leaves the
 * image handle as it is, so readers of it are never disturbed.
 * @return 0 or -errno with err filled. */
static int load(struct iset_pool *pool, struct image *im, struct yolo_err *err)
{
	struct bst_view *v;
	struct bst_load_result r;
	int ret = bst_load(pool->store, im->pub.img, &v, &r, err);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&im->mem_lock);
	im->mem = v;
	pthread_mutex_unlock(&im->mem_lock);
	ijob_queue_verify(im, v);
	atomic_store(&im->pub.st.loaded_bytes, r.logical);
	atomic_store(&im->pub.st.pinned, r.pinned);
	stats_add(&im->pub.st.loads, 1);
	ylog(YLOG_INFO, "image %s: %u files, %" PRIu64 " blocks, %" PRIu64 " bytes loaded in "
	     "%.1f ms, %" PRIu64 " bytes of new content in memory%s", im->pub.path,
	     im->pub.info->file_count, im->pub.info->block_count, im->pub.info->data_size,
	     r.ns / 1e6, r.added, r.pinned ? ", pinned" : "");
	if (r.mlock_errno)
		ylog(YLOG_WARN, "image %s: cannot pin its memory (%s); serving from unpinned "
		     "memory", im->pub.path, strerror(r.mlock_errno));
	return 0;
}

static void unload(struct image *im, const char *why)
{
	pthread_mutex_lock(&im->mem_lock);
	struct bst_view *v = im->mem;
	im->mem = NULL;
	pthread_mutex_unlock(&im->mem_lock);
	if (!v)
		return;
	bst_view_put(v);                 /* replies in flight keep their own references */
	atomic_store(&im->pub.st.loaded_bytes, 0);
	atomic_store(&im->pub.st.pinned, false);
	stats_add(&im->pub.st.unloads, 1);
	ylog(YLOG_INFO, "image %s: dropped from memory (%s); served from the image file",
	       im->pub.path, why);
}

/* The images of every member set, in ranking order for images never used,
 * each with a reference taken (balance_lock held: the lists stay as they
 * are).  @return how many, or SIZE_MAX when out of memory. */
static size_t gather(struct iset_pool *pool, struct image ***out)
{
	size_t n = 0, k = 0;
	for (struct imageset *s = pool->members; s; s = s->next)
		n += s->cur->n;
	struct image **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return SIZE_MAX;
	for (struct imageset *s = pool->members; s; s = s->next) {
		pthread_mutex_lock(&s->list_lock);
		for (size_t i = 0; i < s->cur->n; i++) {
			v[k] = s->cur->v[i];
			image_get(v[k++]);
		}
		pthread_mutex_unlock(&s->list_lock);
	}
	*out = v;
	return n;
}

size_t iset_pool_rebalance(struct iset_pool *pool, const struct imageset *set, bool startup)
{
	if (!pool->memory)
		return 0;
	pthread_mutex_lock(&pool->balance_lock);
	struct image **v = NULL;
	size_t n = gather(pool, &v), refused = 0;
	struct place_image *pv = n == SIZE_MAX ? NULL : malloc((n ? n : 1) * sizeof(*pv));
	if (!pv) {
		for (size_t i = 0; v && i < n; i++)
			iset_image_put(&v[i]->pub);
		pthread_mutex_unlock(&pool->balance_lock);
		free(v);
		ylog(YLOG_WARN, "placing images in memory: out of memory; placement unchanged");
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		pv[i] = (struct place_image){
			.size = v[i]->logical, .last_used = atomic_load(&v[i]->last_used),
			.order = i, .in_memory = image_in_memory(v[i]),
			.load_failed = atomic_load(&v[i]->load_failed), .id = i,
		};
	place_decide(pv, n, pool->memlimit);
	for (size_t i = 0; i < n; i++)   /* drop first: the newcomers need the room */
		if (pv[i].action == PLACE_DROP)
			unload(v[pv[i].id], "less recently used than the images that fill memlimit");
	for (size_t i = 0; i < n; i++) {
		struct image *im = v[pv[i].id];
		if (pv[i].action != PLACE_LOAD)
			continue;
		struct yolo_err e = { { 0 } };
		int r = load(pool, im, &e);
		if (r == -EUCLEAN) {
			iset_drop_refused(im->set, im, e.msg);
			refused += im->set == set;
		} else if (r < 0) {
			atomic_store(&im->load_failed, true);
			ylog(YLOG_WARN, "%s; serving image %s from its file", e.msg, im->pub.path);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct image *im = v[pv[i].id];
		if (startup && im->set == set && !place_in_memory(pv[i].action) &&
		    !pv[i].load_failed)
			ylog(YLOG_WARN, "image %s: over memlimit, serving it from the image file",
			       im->pub.path);
	}
	for (size_t i = 0; i < n; i++)
		iset_image_put(&v[i]->pub);
	pthread_mutex_unlock(&pool->balance_lock);
	free(v);
	free(pv);
	return refused;
}

/* ---- the pager thread: rebalances when an open is served from an image
 * not in memory (memlimit set) ---- */

static void *pager_main(void *arg)
{
	struct iset_pool *pool = arg;
	for (;;) {
		pthread_mutex_lock(&pool->pager_lock);
		while (!pool->pager_wake && !pool->pager_quit)
			pthread_cond_wait(&pool->pager_cond, &pool->pager_lock);
		bool quit = pool->pager_quit;
		pool->pager_wake = false;
		pthread_mutex_unlock(&pool->pager_lock);
		if (quit)
			return NULL;
		iset_pool_rebalance(pool, NULL, false);
	}
}

void iset_pool_used(struct iset_pool *pool, struct image *im)
{
	atomic_store(&im->last_used, atomic_fetch_add(&pool->clock, 1) + 1);
	if (!pool->memory || !pool->memlimit || image_in_memory(im) ||
	    atomic_load(&im->load_failed))
		return;
	pthread_mutex_lock(&pool->pager_lock);
	pool->pager_wake = true;
	pthread_cond_signal(&pool->pager_cond);
	pthread_mutex_unlock(&pool->pager_lock);
}

/* ---- the pool ---- */

int iset_pool_create(struct iset_pool **out, const struct iset_pool_config *cfg)
{
	struct iset_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->memory = cfg->memory;
	pool->memlimit = cfg->memlimit;
	if (pool->memory && bst_create(&pool->store, cfg->dedup) < 0) {
		free(pool);
		return -ENOMEM;
	}
	pthread_mutex_init(&pool->balance_lock, NULL);
	pthread_mutex_init(&pool->members_lock, NULL);
	pthread_mutex_init(&pool->pager_lock, NULL);
	pthread_cond_init(&pool->pager_cond, NULL);
	*out = pool;
	return 0;
}

int iset_pool_start(struct iset_pool *pool)
{
	int ret = pool->store ? bst_pin(pool->store) : 0;
	if (ret < 0)
		ylog(YLOG_WARN, "cannot pin the images in memory (%s); serving from unpinned memory "
		     "(raise LimitMEMLOCK / ulimit -l)", strerror(-ret));
	if (!pool->memory || !pool->memlimit)
		return 0;
	ret = pthread_create(&pool->pager, NULL, pager_main, pool);
	if (ret)
		return -ret;
	pool->pager_running = true;
	return 0;
}

void iset_pool_destroy(struct iset_pool *pool)
{
	if (!pool)
		return;
	if (pool->pager_running) {
		pthread_mutex_lock(&pool->pager_lock);
		pool->pager_quit = true;
		pthread_cond_signal(&pool->pager_cond);
		pthread_mutex_unlock(&pool->pager_lock);
		pthread_join(pool->pager, NULL);
	}
	bst_destroy(pool->store);
	pthread_cond_destroy(&pool->pager_cond);
	pthread_mutex_destroy(&pool->pager_lock);
	pthread_mutex_destroy(&pool->members_lock);
	pthread_mutex_destroy(&pool->balance_lock);
	free(pool);
}
