/* imageset.c - the images yolofs serves (see imageset.h): the set of them,
 * finding the image for an open, the reload swap, and carrying out the
 * memory placement (placement.h decides) with its pager thread.  One
 * image's life (open, references, free) is image.c's, the background jobs
 * on an image image_jobs.c's.
 *
 * Lifetime: an image is referenced by the current set, by every open file
 * served from it and briefly by snapshots; the last reference frees it
 * (its view in the block store is put, so memory shared with other images
 * stays).  A reload builds a new set, swaps it in and puts the old one.
 *
 * Memory placement (memory mode): rebalance() asks placement.h which images
 * to hold: walking them by last use (never used: images= order), each one
 * whose size, counted without dedup, fits in what memlimit leaves after
 * those kept before it (one that does not fit is passed over, and a smaller
 * one after it may still be kept).  It drops the others first and then
 * loads the newcomers.  It runs at start, after a reload and, with a
 * memlimit, on the pager thread when an open is served from an image that
 * is not in memory.  Readers never wait for it: an image is read from its
 * file until its load completes, and a dropped image's blocks stay valid
 * for replies in flight (view references).
 *
 * Freshness: each image keeps one record per file (freshness.h), created
 * with the image and judged at load, at every open and by changes through
 * the mount; comparisons it asks for run as background jobs (image_jobs.h),
 * each holding a reference to its image.  Those jobs belong to the set
 * (their owner): an image uses its set (statistics, store, source) until
 * it is freed, so iset_destroy cancels them, and waits for a running one,
 * before it puts its images; whichever of the set and the worker goes
 * first.
 *
 * Hostile images: an image that cannot be opened (unreadable, untrusted,
 * damaged header or tables, unsafe or duplicate paths) or, in memory mode,
 * cannot be loaded because its data is damaged (a zstd frame that does not
 * decode) is refused alone, at start as at a reload: one log line naming
 * the file and why, counted in images_refused; the other images serve.
 * After a load, another background job checks every block of the image
 * once, so damage is reported even for files nobody opens.
 *
 * Lock order: balance_lock, then list_lock or an image's mem_lock; list_lock
 * before a record's lock. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_jobs.h"
#include "imageset_i.h"
#include "log.h"
#include "placement.h"
#include "trust.h"
#include "util.h"

struct list {
	size_t n;
	struct image *v[];
};

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

/* The memory gauges, read from the store when statistics are written. */
static void sample_memory(void *ctx, struct stats *st)
{
	struct imageset *set = ctx;
	struct bst_usage u = { 0 };
	if (set->store)
		bst_usage(set->store, &u);
	atomic_store(&st->mem.limit, set->memlimit);
	atomic_store(&st->mem.resident, u.resident);
	atomic_store(&st->mem.unique, u.unique);
	atomic_store(&st->mem.logical, u.logical);
	atomic_store(&st->mem.pinned, locked_bytes());
	atomic_store(&st->background_jobs, set->bg ? bg_pending(set->bg) : 0);
}

/* ---- one image ---- */

/* Refuse image file `path` because of `why` (a library message starting
 * with the path: it is not repeated): one line, and images_refused. */
static void refuse(struct imageset *set, const char *path, const char *why, const char *then)
{
	size_t n = strlen(path);
	if (strncmp(why, path, n) == 0 && why[n] == ':' && why[n + 1] == ' ')
		why += n + 2;
	stats_add(&set->stats->images_refused, 1);
	ylog(YLOG_ERR, "image %s refused: %s%s", path, why, then);
}

struct bst_view *iset_memory(struct iset_image *p)
{
	struct image *im = image_of(p);
	pthread_mutex_lock(&im->mem_lock);
	struct bst_view *v = im->mem;
	if (v)
		bst_view_get(v);
	pthread_mutex_unlock(&im->mem_lock);
	return v;
}

static bool in_memory(struct image *im)
{
	pthread_mutex_lock(&im->mem_lock);
	bool yes = im->mem != NULL;
	pthread_mutex_unlock(&im->mem_lock);
	return yes;
}

/* Load one image into the store (balance_lock held).  bst_load leaves the
 * image handle as it is, so readers of it are never disturbed.
 * @return 0 or -errno with err filled. */
static int load(struct imageset *set, struct image *im, struct yolo_err *err)
{
	struct bst_view *v;
	struct bst_load_result r;
	int ret = bst_load(set->store, im->pub.img, &v, &r, err);
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

/* ---- placement: carrying out placement.h's decisions ---- */

/* Take a refused image out of the current set (balance_lock held).  Files
 * already open keep reading it from its file, block by checked block. */
static void drop_refused(struct imageset *set, struct image *im, const char *why)
{
	bool found = false;
	atomic_store(&im->refused, true);
	pthread_mutex_lock(&set->list_lock);
	struct list *l = set->cur;
	for (size_t i = 0; i < l->n && !found; i++) {
		if (l->v[i] != im)
			continue;
		memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
		l->n--;
		found = true;
	}
	pthread_mutex_unlock(&set->list_lock);
	if (!found)
		return;                  /* a reload took it out meanwhile */
	refuse(set, im->pub.path, why, "; not served");
	iset_image_put(&im->pub);        /* the set's reference (the caller holds one) */
}

/* Move images in and out of memory as placement.h decides.  An image
 * whose data turns out damaged is refused (taken out of the set); one that
 * cannot be loaded for another reason (memory) stays on its file.  startup:
 * also say which images do not fit.  @return images refused. */
static size_t rebalance(struct imageset *set, bool startup)
{
	if (!set->memory)
		return 0;
	pthread_mutex_lock(&set->balance_lock);
	pthread_mutex_lock(&set->list_lock);
	size_t n = set->cur->n;
	struct image **v = malloc((n ? n : 1) * sizeof(*v));
	struct place_image *pv = malloc((n ? n : 1) * sizeof(*pv));
	if (v && pv) {
		memcpy(v, set->cur->v, n * sizeof(*v));
		for (size_t i = 0; i < n; i++)
			image_get(v[i]);
	}
	pthread_mutex_unlock(&set->list_lock);
	size_t refused = 0;
	if (!v || !pv) {
		pthread_mutex_unlock(&set->balance_lock);
		free(v);
		free(pv);
		ylog(YLOG_WARN, "placing images in memory: out of memory; placement unchanged");
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		pv[i] = (struct place_image){
			.size = v[i]->logical, .last_used = atomic_load(&v[i]->last_used),
			.order = v[i]->order, .in_memory = in_memory(v[i]),
			.load_failed = atomic_load(&v[i]->load_failed), .id = i,
		};
	place_decide(pv, n, set->memlimit);
	for (size_t i = 0; i < n; i++)   /* drop first: the newcomers need the room */
		if (pv[i].action == PLACE_DROP)
			unload(v[pv[i].id], "less recently used than the images that fill memlimit");
	for (size_t i = 0; i < n; i++) {
		struct image *im = v[pv[i].id];
		if (pv[i].action != PLACE_LOAD)
			continue;
		struct yolo_err e = { { 0 } };
		int r = load(set, im, &e);
		if (r == -EUCLEAN) {
			drop_refused(set, im, e.msg);
			refused++;
		} else if (r < 0) {
			atomic_store(&im->load_failed, true);
			ylog(YLOG_WARN, "%s; serving image %s from its file", e.msg, im->pub.path);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (startup && !place_in_memory(pv[i].action) && !pv[i].load_failed)
			ylog(YLOG_WARN, "image %s: over memlimit, serving it from the image file",
			       v[pv[i].id]->pub.path);
	for (size_t i = 0; i < n; i++)
		iset_image_put(&v[i]->pub);
	pthread_mutex_unlock(&set->balance_lock);
	free(v);
	free(pv);
	return refused;
}

/* ---- images new in the set ---- */

/* Judge the files of the images new in the set and queue their namespace
 * priming, once the memory placement has refused those whose data is
 * damaged (so nothing is queued for them).  Opens before this judge each
 * file anyway (iset_find). */
static void start_new(struct imageset *set)
{
	pthread_mutex_lock(&set->balance_lock);
	pthread_mutex_lock(&set->list_lock);
	size_t n = set->cur->n, k = 0;
	struct image **v = malloc((n ? n : 1) * sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		struct image *im = set->cur->v[i];
		if (im->started)
			continue;
		im->started = true;
		image_get(im);
		v[k++] = im;
	}
	pthread_mutex_unlock(&set->list_lock);
	pthread_mutex_unlock(&set->balance_lock);
	for (size_t i = 0; i < k; i++) {
		ijob_judge_files(v[i]);
		ijob_queue_prime(v[i]);
		iset_image_put(&v[i]->pub);
	}
	free(v);
}

/* ---- the pager thread: rebalances when an open is served from an image
 * not in memory (memlimit set) ---- */

static void *pager_main(void *arg)
{
	struct imageset *set = arg;
	for (;;) {
		pthread_mutex_lock(&set->pager_lock);
		while (!set->pager_wake && !set->pager_quit)
			pthread_cond_wait(&set->pager_cond, &set->pager_lock);
		bool quit = set->pager_quit;
		set->pager_wake = false;
		pthread_mutex_unlock(&set->pager_lock);
		if (quit)
			return NULL;
		rebalance(set, false);
	}
}

static void pager_kick(struct imageset *set)
{
	pthread_mutex_lock(&set->pager_lock);
	set->pager_wake = true;
	pthread_cond_signal(&set->pager_cond);
	pthread_mutex_unlock(&set->pager_lock);
}

/* ---- the set ---- */

void iset_attr_set(struct imageset *set, const char *relpath, const struct stat *before,
		   const struct stat *after)
{
	struct yolo_file_ident b = yolo_ident_from_stat(before), a = yolo_ident_from_stat(after);
	pthread_mutex_lock(&set->list_lock);
	for (size_t i = 0; i < set->cur->n; i++) {
		struct image *im = set->cur->v[i];
		uint32_t id;
		if (yolo_image_find_file(im->pub.img, relpath, &id) < 0)
			continue;
		struct fr_file *rec = &im->pub.fresh[id];
		pthread_rwlock_rdlock(&rec->lock);
		bool served = rec->st.status == FR_FRESH;
		pthread_rwlock_unlock(&rec->lock);
		fr_file_change_begin(rec, &b, 0, 0);
		bool kept = fr_file_change_end(rec, &a, false);
		if (kept) {
			stats_add(&im->pub.st.touches, 1);
			ylog(YLOG_INFO, "%s: attributes changed through the mount; image %s keeps "
			     "serving it", relpath, im->pub.path);
		} else if (served) {
			ylog(YLOG_INFO, "%s: had changed underneath the mount before an attribute change "
			     "through it; image %s serves it again only after a comparison", relpath,
			     im->pub.path);
		}
	}
	pthread_mutex_unlock(&set->list_lock);
}

struct iset_image *iset_find(struct imageset *set, const char *relpath, const struct stat *st,
			     uint32_t *file_id)
{
	struct image *found = NULL;
	struct yolo_file_ident now = yolo_ident_from_stat(st);
	pthread_mutex_lock(&set->list_lock);
	for (size_t i = 0; i < set->cur->n && !found; i++) {
		struct image *im = set->cur->v[i];
		uint32_t id;
		if (yolo_image_find_file(im->pub.img, relpath, &id) < 0)
			continue;
		bool news;
		enum fr_action act = fr_file_open(&im->pub.fresh[id], &now, &news);
		if (act == FR_ACT_COMPARE)
			ijob_queue_compare(im, id);
		if (news)
			ijob_report_judgement(im, id, act);
		if (act != FR_ACT_SERVE) {
			stats_add(&im->pub.st.files_stale, 1);
			continue;
		}
		image_get(im);
		found = im;
		*file_id = id;
	}
	pthread_mutex_unlock(&set->list_lock);
	if (!found)
		return NULL;
	atomic_store(&found->last_used, atomic_fetch_add(&set->clock, 1) + 1);
	if (set->memory && set->memlimit && !in_memory(found) && !atomic_load(&found->load_failed))
		pager_kick(set);
	return &found->pub;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static struct image *find_path(const struct list *l, const char *path)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (strcmp(l->v[i]->pub.path, path) == 0)
			return l->v[i];
	return NULL;
}

static void list_put(struct list *l)
{
	for (size_t i = 0; l && i < l->n; i++)
		iset_image_put(&l->v[i]->pub);
	free(l);
}

/* Build the list for `paths` from the old list (balance_lock held).  An
 * image that cannot be opened is refused alone (logged, counted in
 * images_refused and in *errors); at a reload the version loaded before
 * from that path, if any, keeps serving.  @return the new list (one
 * reference per image) or NULL (out of memory). */
static struct list *build(struct imageset *set, const struct list *old, const char *const *paths,
			  size_t npaths, size_t *errors, struct yolo_err *err)
{
	struct list *l = malloc(sizeof(*l) + (npaths ? npaths : 1) * sizeof(l->v[0]));
	if (!l) {
		yolo_fail(err, -ENOMEM, "out of memory");
		return NULL;
	}
	l->n = 0;
	for (size_t i = 0; i < npaths; i++) {
		if (find_path(l, paths[i]))
			continue;                /* listed twice */
		struct image *prev = find_path(old, paths[i]), *im = NULL;
		struct stat st;
		struct yolo_err e = { { 0 } };
		/* Checked every time, kept or not: a directory on its way may
		 * have become writable by others since. */
		int fd = trust_open_image(paths[i], set->check_trust, &e);
		if (fd == -EPERM) {
			++*errors;
			refuse(set, paths[i], e.msg, "; only images nobody but root can change are "
			       "served");
			continue;
		}
		if (fd >= 0 && prev && fstat(fd, &st) == 0 && same_file(&st, &prev->file_st)) {
			close(fd);
			im = prev;
			image_get(im);
		} else {
			if (fd >= 0)
				im = image_open(set, paths[i], fd, i, &e);
			if (!im) {
				++*errors;
				refuse(set, paths[i], e.msg, prev ? "; keeping the version loaded "
				       "before" : "");
				if ((im = prev))
					image_get(im);
			}
		}
		if (im) {
			im->order = i;
			l->v[l->n++] = im;
		}
	}
	return l;
}

size_t iset_reload(struct imageset *set, const char *const *paths, size_t npaths)
{
	size_t errors = 0, kept = 0;
	struct yolo_err err = { { 0 } };
	pthread_mutex_lock(&set->balance_lock);
	set->generation++;
	struct list *old = set->cur;     /* only changed under balance_lock */
	struct list *l = build(set, old, paths, npaths, &errors, &err);
	if (!l) {
		pthread_mutex_unlock(&set->balance_lock);
		ylog(YLOG_ERR, "reload: %s; keeping the current images", err.msg);
		stats_add(&set->stats->reload_errors, 1);
		return 1;
	}
	for (size_t i = 0; i < l->n; i++)
		kept += find_path(old, l->v[i]->pub.path) == l->v[i];
	pthread_mutex_lock(&set->list_lock);
	set->cur = l;
	pthread_mutex_unlock(&set->list_lock);
	size_t dropped = old->n - kept;
	list_put(old);                   /* open files keep theirs */
	pthread_mutex_unlock(&set->balance_lock);
	errors += rebalance(set, false);
	start_new(set);
	size_t now = iset_count(set);
	ylog(YLOG_INFO, "reload: %zu images (%zu kept, %zu new or replaced, %zu no longer "
	       "listed), %zu errors", now, kept, now > kept ? now - kept : 0, dropped, errors);
	stats_add(&set->stats->reloads, 1);
	stats_add(&set->stats->reload_errors, errors);
	return errors;
}

int iset_create(struct imageset **out, const struct iset_config *cfg, struct stats *stats,
	      struct yolo_err *err)
{
	struct imageset *set = calloc(1, sizeof(*set));
	if (!set)
		return yolo_fail(err, -ENOMEM, "out of memory");
	set->memory = cfg->memory;
	set->memlimit = cfg->memlimit;
	set->source_fd = cfg->source_fd;
	set->check_trust = !cfg->trust_all;
	set->bg = cfg->bg;
	set->ns = cfg->ns;
	set->stats = stats;
	pthread_mutex_init(&set->list_lock, NULL);
	pthread_mutex_init(&set->balance_lock, NULL);
	pthread_mutex_init(&set->pager_lock, NULL);
	pthread_cond_init(&set->pager_cond, NULL);
	int ret = 0;
	if (set->memory && (ret = bst_create(&set->store, cfg->dedup)) < 0) {
		yolo_fail(err, ret, "out of memory");
		goto fail;
	}
	size_t errors = 0;
	set->cur = build(set, NULL, cfg->paths, cfg->npaths, &errors, err);
	if (!set->cur) {
		ret = -ENOMEM;
		goto fail;
	}
	stats->sample = sample_memory;
	stats->sample_ctx = set;
	rebalance(set, true);
	start_new(set);
	*out = set;
	return 0;
fail:
	iset_destroy(set);
	return ret;
}

size_t iset_count(struct imageset *set)
{
	pthread_mutex_lock(&set->list_lock);
	size_t n = set->cur->n;
	pthread_mutex_unlock(&set->list_lock);
	return n;
}

int iset_start(struct imageset *set)
{
	int ret = set->store ? bst_pin(set->store) : 0;
	if (ret < 0)
		ylog(YLOG_WARN, "cannot pin the images in memory (%s); serving from unpinned memory "
		     "(raise LimitMEMLOCK / ulimit -l)", strerror(-ret));
	if (!set->memory || !set->memlimit)
		return 0;
	ret = pthread_create(&set->pager, NULL, pager_main, set);
	if (ret)
		return -ret;
	set->pager_running = true;
	return 0;
}

void iset_destroy(struct imageset *set)
{
	if (!set)
		return;
	if (set->pager_running) {
		pthread_mutex_lock(&set->pager_lock);
		set->pager_quit = true;
		pthread_cond_signal(&set->pager_cond);
		pthread_mutex_unlock(&set->pager_lock);
		pthread_join(set->pager, NULL);
	}
	/* Before the images go: a queued or running job holds one, and an
	 * image uses the set until it is freed. */
	bg_cancel(set->bg, set);
	if (set->stats && set->stats->sample_ctx == set)
		set->stats->sample = NULL;
	list_put(set->cur);
	bst_destroy(set->store);
	pthread_cond_destroy(&set->pager_cond);
	pthread_mutex_destroy(&set->pager_lock);
	pthread_mutex_destroy(&set->balance_lock);
	pthread_mutex_destroy(&set->list_lock);
	free(set);
}
