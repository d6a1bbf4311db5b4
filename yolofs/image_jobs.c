/* image_jobs.c - the background jobs on an image of the set (see
 * image_jobs.h): comparing a file's captured blocks with the source,
 * checking every block of a loaded image once, priming the image's
 * namespace answers; and judging an image's files, which queues the
 * comparisons.  Each job holds a reference to its image and does nothing
 * once the image is refused. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_jobs.h"
#include "imageset_i.h"
#include "log.h"
#include "namespace.h"
#include "util.h"

static const char *shown_path(const char *path, char *buf, size_t len)
{
	return yolo_printable(path, strlen(path), buf, len);
}

/* ---- comparing a file with the source ---- */

struct compare_job {
	struct image *im;                /* one reference */
	uint32_t file_id;
};

/* Compare file `file_id`'s captured blocks with the source as it is now;
 * the record decides what the result means. */
static void compare_run(void *ctx)
{
	struct compare_job *j = ctx;
	struct image *im = j->im;
	if (atomic_load(&im->refused))
		return;
	const struct yolo_file *yf = yolo_image_file(im->pub.img, j->file_id);
	struct fr_file *rec = &im->pub.fresh[j->file_id];
	char shown[256];
	shown_path(yf->path, shown, sizeof(shown));
	int fd = yolo_open_beneath(im->set->source_fd, yf->path, O_RDONLY | O_NOFOLLOW);
	struct stat st;
	uint64_t gen;
	if (fd < 0 || fstat(fd, &st) < 0) {
		struct yolo_file_ident gone = { .size = UINT64_MAX };
		if (fr_file_compare_begin(rec, &gone, &gen))
			fr_file_compared(rec, &gone, &gone, gen, false);
		if (fd >= 0)
			close(fd);
		return;
	}
	struct yolo_file_ident start = yolo_ident_from_stat(&st), end;
	if (!fr_file_compare_begin(rec, &start, &gen)) {
		close(fd);
		return;
	}
	stats_add(&im->pub.st.comparisons, 1);
	int r = yolo_image_compare_file(im->pub.img, j->file_id, fd);
	end = fstat(fd, &st) == 0 ? yolo_ident_from_stat(&st) :
	      (struct yolo_file_ident){ .size = UINT64_MAX };
	close(fd);
	if (r < 0)
		ylog(YLOG_WARN, "%s: cannot compare with image %s: %s; not served from it", shown,
		     im->pub.path, r == -EUCLEAN ? "a bad image block" : strerror(-r));
	switch (fr_file_compared(rec, &start, &end, gen, r == 1)) {
	case FR_OUT_ACCEPTED:
		stats_add(&im->pub.st.compared_equal, 1);
		ylog(YLOG_INFO, "%s: captured blocks equal the source; image %s serves it again",
		     shown, im->pub.path);
		break;
	case FR_OUT_STALE:
		stats_add(&im->pub.st.compared_stale, 1);
		ylog(YLOG_WARN, "%s: changed since capture (captured blocks differ); image %s does "
		     "not serve it", shown, im->pub.path);
		break;
	case FR_OUT_RETRY:
		ylog(YLOG_INFO, "%s: changed while it was compared with image %s; judged again at "
		     "the next open", shown, im->pub.path);
		break;
	case FR_OUT_IGNORED:
		break;
	}
}

static void compare_release(void *ctx, bool ran)
{
	struct compare_job *j = ctx;
	iset_image_put(&j->im->pub);
	free(j);
}

void ijob_queue_compare(struct image *im, uint32_t id)
{
	struct compare_job *j = malloc(sizeof(*j));
	if (!j)
		return;                  /* not compared now: judged again at the next open */
	image_get(im);
	*j = (struct compare_job){ .im = im, .file_id = id };
	bg_queue(im->set->bg, &(struct bg_job){ .run = compare_run, .release = compare_release,
						.ctx = j, .owner = im->set });
}

void ijob_report_judgement(struct image *im, uint32_t id, enum fr_action act)
{
	struct fr_file *rec = &im->pub.fresh[id];
	char shown[256];
	shown_path(yolo_image_file(im->pub.img, id)->path, shown, sizeof(shown));
	pthread_rwlock_rdlock(&rec->lock);
	enum fr_status status = rec->st.status;
	const char *why = rec->st.why;
	pthread_rwlock_unlock(&rec->lock);
	if (act == FR_ACT_COMPARE)
		ylog(YLOG_INFO, "%s: %s differs from image %s; comparing its captured blocks with "
		     "the source in the background (read from the source meanwhile)", shown,
		     why ? why : "identity", im->pub.path);
	else if (status == FR_STALE)
		ylog(YLOG_WARN, "%s: %s differs from image %s (changed since capture); not serving "
		     "its blocks", shown, why ? why : "identity", im->pub.path);
	else if (status == FR_DISABLED)
		ylog(YLOG_WARN, "%s: image %s has too many bad blocks for it; read from the source "
		     "from now on", shown, im->pub.path);
}

void ijob_judge_files(struct image *im)
{
	const struct yolo_image_info *info = im->pub.info;
	uint32_t fresh = 0, compare = 0, changed = 0, missing = 0;
	for (uint32_t id = 0; id < info->file_count; id++) {
		const struct yolo_file *yf = yolo_image_file(im->pub.img, id);
		int fd = yolo_open_beneath(im->set->source_fd, yf->path, O_PATH | O_NOFOLLOW);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			missing++;
			if (fd >= 0)
				close(fd);
			continue;
		}
		close(fd);
		bool news;
		struct yolo_file_ident now = yolo_ident_from_stat(&st);
		enum fr_action act = fr_file_open(&im->pub.fresh[id], &now, &news);
		if (act == FR_ACT_SERVE) {
			fresh++;
			continue;
		}
		if (act == FR_ACT_COMPARE) {
			compare++;
			ijob_queue_compare(im, id);
		} else {
			changed++;
		}
		if (ylog_threshold >= YLOG_DEBUG)
			ijob_report_judgement(im, id, act);
	}
	if (compare || changed || missing)
		ylog(YLOG_WARN, "image %s: of %u files %u are as captured, %u are compared with "
		     "the source in the background (their metadata changed), %u changed and %u "
		     "are missing since capture (not served)", im->pub.path, info->file_count,
		     fresh, compare, changed, missing);
}

/* ---- checking every block of a loaded image ---- */

struct verify_job {
	struct image *im;
	struct bst_view *mem;            /* one view reference */
};

/* Check every block of a loaded image once, so damage is reported even in
 * files nobody opens (serving checks each block at first use anyway). */
static void verify_run(void *ctx)
{
	struct verify_job *j = ctx;
	if (atomic_load(&j->im->refused))
		return;
	uint64_t first = 0, bad = bst_verify(j->mem, j->im->pub.img, &first);
	if (!bad)
		return;
	const struct yolo_block *b = yolo_image_block(j->im->pub.img, first);
	char shown[256];
	ylog(YLOG_WARN, "image %s: %" PRIu64 " blocks do not match their checksums (first: block "
	     "%" PRIu64 " of %s); they are read from the source", j->im->pub.path, bad,
	     b->block_id, shown_path(yolo_image_file(j->im->pub.img, b->file_id)->path, shown,
				     sizeof(shown)));
}

static void verify_release(void *ctx, bool ran)
{
	struct verify_job *j = ctx;
	bst_view_put(j->mem);
	iset_image_put(&j->im->pub);
	free(j);
}

void ijob_queue_verify(struct image *im, struct bst_view *mem)
{
	struct verify_job *j = malloc(sizeof(*j));
	if (!j)
		return;                  /* not checked ahead: each block still is at first use */
	image_get(im);
	bst_view_get(mem);
	*j = (struct verify_job){ .im = im, .mem = mem };
	bg_queue(im->set->bg, &(struct bg_job){ .run = verify_run, .release = verify_release,
						.ctx = j, .owner = im->set });
}

/* ---- priming the image's namespace answers ---- */

/* Read the image's namespace answers from the source (namespace.h): until
 * then its questions are asked of the source. */
static void prime_run(void *ctx)
{
	struct image *im = ctx;
	if (atomic_load(&im->refused))
		return;
	uint32_t n = ns_prime(im->set->ns, im->pub.img);
	if (yolo_image_ns_node_count(im->pub.img))
		ylog(YLOG_INFO, "image %s: %u of %u namespace paths answered from memory", im->pub.path,
		     n, yolo_image_ns_node_count(im->pub.img));
}

static void prime_release(void *ctx, bool ran)
{
	(void)ran;
	iset_image_put(&((struct image *)ctx)->pub);
}

void ijob_queue_prime(struct image *im)
{
	if (!im->set->ns || !yolo_image_ns_node_count(im->pub.img))
		return;
	image_get(im);
	bg_queue(im->set->bg, &(struct bg_job){ .run = prime_run, .release = prime_release,
						.ctx = im, .owner = im->set });
}
