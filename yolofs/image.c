/* image.c - one image of the set (see imageset_i.h): opening and
 * validating its file, the per-file freshness records made with it, its
 * references, its blocks in memory, and freeing it with the last one (its
 * view in the block store is put, so memory shared with other images
 * stays). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imageset_i.h"
#include "util.h"

static void free_records(struct image *im)
{
	for (uint32_t i = 0; im->pub.fresh && i < im->pub.info->file_count; i++)
		fr_file_destroy(&im->pub.fresh[i]);
	free(im->pub.fresh);
	im->pub.fresh = NULL;
}

/* What an image holds from its open on: its file, its lock, its name. */
static void image_release(struct image *im)
{
	yolo_image_close(im->pub.img);
	if (im->fd >= 0)
		close(im->fd);
	pthread_mutex_destroy(&im->mem_lock);
	free(im->pub.path);
	free(im);
}

static void image_free(struct image *im)
{
	bst_view_put(im->mem);
	stats_unregister(im->set->stats, &im->pub.st);
	free_records(im);
	image_release(im);
}

struct image *image_open(struct imageset *set, const char *path, int fd, struct yolo_err *err)
{
	struct image *im = calloc(1, sizeof(*im));
	if (!im || !(im->pub.path = strdup(path))) {
		free(im);
		close(fd);
		yolo_fail(err, -ENOMEM, "out of memory");
		return NULL;
	}
	im->set = set;
	atomic_init(&im->refs, 1);
	pthread_mutex_init(&im->mem_lock, NULL);
	im->fd = fd;
	if (fstat(im->fd, &im->file_st) < 0) {
		yolo_fail(err, -errno, "image %s: %s", path, strerror(errno));
		goto fail;
	}
	if (yolo_image_open_fd(im->fd, path, &im->pub.img, err) < 0)
		goto fail;
	im->pub.info = yolo_image_info(im->pub.img);
	for (uint64_t i = 0; i < im->pub.info->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(im->pub.img, i);
		if (!(b->flags & YOLO_BLOCK_ZERO))
			im->logical += b->raw_len;
	}
	im->pub.st.name = im->pub.path;
	im->pub.st.generation = set->generation;
	uint32_t nf = im->pub.info->file_count, made = 0;
	im->pub.fresh = calloc(nf + 1, sizeof(*im->pub.fresh));
	while (im->pub.fresh && made < nf &&
	       fr_file_init(&im->pub.fresh[made], yolo_image_file(im->pub.img, made)) == 0)
		made++;
	if (made < nf || stats_register(set->stats, &im->pub.st) < 0) {
		yolo_fail(err, -ENOMEM, "out of memory");
		for (uint32_t i = 0; i < made; i++)
			fr_file_destroy(&im->pub.fresh[i]);
		free(im->pub.fresh);
		im->pub.fresh = NULL;
		goto fail;
	}
	return im;
fail:
	image_release(im);
	return NULL;
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

bool image_in_memory(struct image *im)
{
	pthread_mutex_lock(&im->mem_lock);
	bool yes = im->mem != NULL;
	pthread_mutex_unlock(&im->mem_lock);
	return yes;
}

void iset_image_put(struct iset_image *p)
{
	struct image *im = image_of(p);
	if (im && atomic_fetch_sub_explicit(&im->refs, 1, memory_order_acq_rel) == 1)
		image_free(im);
}

