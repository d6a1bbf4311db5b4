/* imageset.c - the images of one session (see imageset.h): the set of
 * them, finding the image for an open, the reload swap, and refusing an
 * image.  The pool the set lives in places its images in memory with every
 * other set's (imagepool.c); one image's life (open, references, memory,
 * free) is image.c's, the background jobs on an image image_jobs.c's.
 *
 * Lifetime: an image is referenced by the current set, by every open file
 * served from it and briefly by snapshots; the last reference frees it
 * (its view in the pool's block store is put, so memory shared with other
 * images stays).  A reload builds a new set, swaps it in and puts the old
 * one.
 *
 * Freshness: each image keeps one record per file (freshness.h), created
 * with the image and judged at load, at every open and by changes through
 * the mount; comparisons it asks for run as background jobs (image_jobs.h),
 * each holding a reference to its image.  Those jobs belong to the set
 * (their owner): an image uses its set (statistics, source) until it is
 * freed, so iset_destroy cancels them, and waits for a running one, before
 * it puts its images; whichever of the set and the worker goes first.
 *
 * Hostile images: an image that cannot be opened (unreadable, untrusted,
 * damaged header or tables, unsafe or duplicate paths) or, in memory mode,
 * cannot be loaded because its data is damaged (a zstd frame that does not
 * decode) is refused alone, at start as at a reload: one log line naming
 * the file and why, counted in images_refused; the other images serve.
 * After a load, another background job checks every block of the image
 * once, so damage is reported even for files nobody opens.
 *
 * Lock order: imageset_i.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_jobs.h"
#include "imageset_i.h"
#include "log.h"
#include "trust.h"
#include "util.h"

/* ---- refusing an image ---- */

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

void iset_drop_refused(struct imageset *set, struct image *im, const char *why)
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

/* ---- images new in the set ---- */

/* Judge the files of the images new in the set and queue their namespace
 * priming, once the memory placement has refused those whose data is
 * damaged (so nothing is queued for them).  Opens before this judge each
 * file anyway (iset_find). */
static void start_new(struct imageset *set)
{
	pthread_mutex_lock(&set->pool->balance_lock);
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
	pthread_mutex_unlock(&set->pool->balance_lock);
	for (size_t i = 0; i < k; i++) {
		ijob_judge_files(v[i]);
		ijob_queue_prime(v[i]);
		iset_image_put(&v[i]->pub);
	}
	free(v);
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
	iset_pool_used(set->pool, found);
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

/* Build the list for `paths` from the old list (the pool's balance_lock
 * held, or the set not in the pool yet).  An image that cannot be opened
 * is refused alone (logged, counted in images_refused and in *errors); at
 * a reload the version loaded before from that path, if any, keeps
 * serving.  @return the new list (one
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
				im = image_open(set, paths[i], fd, &e);
			if (!im) {
				++*errors;
				refuse(set, paths[i], e.msg, prev ? "; keeping the version loaded "
				       "before" : "");
				if ((im = prev))
					image_get(im);
			}
		}
		if (im)
			l->v[l->n++] = im;
	}
	return l;
}

size_t iset_reload(struct imageset *set, const char *const *paths, size_t npaths)
{
	size_t errors = 0, kept = 0;
	struct yolo_err err = { { 0 } };
	pthread_mutex_lock(&set->pool->balance_lock);
	set->generation++;
	struct list *old = set->cur;     /* only changed under balance_lock */
	struct list *l = build(set, old, paths, npaths, &errors, &err);
	if (!l) {
		pthread_mutex_unlock(&set->pool->balance_lock);
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
	pthread_mutex_unlock(&set->pool->balance_lock);
	errors += iset_pool_rebalance(set->pool, set, false);
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
	set->pool = cfg->pool;
	set->source_fd = cfg->source_fd;
	set->check_trust = !cfg->trust_all;
	set->bg = cfg->bg;
	set->ns = cfg->ns;
	set->stats = stats;
	pthread_mutex_init(&set->list_lock, NULL);
	size_t errors = 0;
	set->cur = build(set, NULL, cfg->paths, cfg->npaths, &errors, err);
	if (!set->cur) {
		iset_destroy(set);
		return -ENOMEM;
	}
	iset_pool_join(set->pool, set);
	iset_pool_rebalance(set->pool, set, true);
	start_new(set);
	*out = set;
	return 0;
}

size_t iset_count(struct imageset *set)
{
	pthread_mutex_lock(&set->list_lock);
	size_t n = set->cur->n;
	pthread_mutex_unlock(&set->list_lock);
	return n;
}

void iset_destroy(struct imageset *set)
{
	if (!set)
		return;
	/* First: the pool's placement (which may queue jobs) no longer
	 * touches the set or its images. */
	iset_pool_leave(set->pool, set);
	/* Before the images go: a queued or running job holds one, and an
	 * image uses the set until it is freed. */
	bg_cancel(set->bg, set);
	list_put(set->cur);
	pthread_mutex_destroy(&set->list_lock);
	free(set);
}
