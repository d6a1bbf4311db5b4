/* test_imagepool.c - image sets sharing one pool (yolofs/imagepool.c):
 * two sets over two source directories (two layers) whose images hold the
 * same blocks.  Their shared blocks are held once with dedup (and twice
 * without); a memlimit that fits one image keeps the most recently used
 * one in memory, and the pager moves it when the other set's image serves
 * an open; destroying one set leaves the other serving from memory; an
 * image whose data is damaged is refused from its own set while the other
 * serves. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "background.h"
#include "imageset.h"
#include "stats.h"
#include "testutil.h"

#define BS 4096u
#define SHARED "usr/lib/libshared.so"

/* Every layer holds the same files: tu_block_content gives them the same
 * blocks, so the two layers' images hold the same blocks. */
static const struct tu_file files[] = { { SHARED, 24 * BS + 100 }, { "bin/tool", 9 * BS } };
#define NFILES (sizeof(files) / sizeof(files[0]))

/* One layer: a source directory, its image, and the set serving it. */
struct layer {
	char *src, *image;
	int src_fd;
	struct stats stats;
	struct imageset *set;
};

/* Layer `name`: its source files and an image of all their blocks (zstd,
 * so a frame can be damaged). */
static void layer_make(struct layer *l, const char *name)
{
	char img_name[64];
	struct yolo_file_ident ids[NFILES];
	struct tu_access acc[64];
	size_t n = 0;
	for (uint32_t i = 0; i < NFILES; i++)
		for (uint64_t b = 0; b * BS < files[i].size; b++)
			acc[n++] = (struct tu_access){ i, b };
	*l = (struct layer){ .src = tu_join(tu_tmpdir, name), .src_fd = -1 };
	snprintf(img_name, sizeof(img_name), "%s.yolo", name);
	l->image = tu_join(tu_tmpdir, img_name);
	assert_int_equal(mkdir(l->src, 0755), 0);
	assert_int_equal(tu_make_source(l->src, files, NFILES, BS, ids), 0);
	struct yolo_writer_opts o = { .block_size = BS, .zstd_level = 3 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(l->image, &o, files, NFILES, ids, acc, n, &err), 0);
	l->src_fd = open(l->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(l->src_fd >= 0);
}

static void layer_serve(struct layer *l, struct iset_pool *pool, struct bg *bg)
{
	const char *paths[] = { l->image };
	struct iset_config cfg = {
		.pool = pool, .paths = paths, .npaths = 1, .source_fd = l->src_fd, .bg = bg,
		.trust_all = true,
	};
	struct yolo_err err = { "" };
	stats_init(&l->stats);
	assert_int_equal(iset_create(&l->set, &cfg, &l->stats, &err), 0);
}

static void layer_stop(struct layer *l)
{
	iset_destroy(l->set);
	l->set = NULL;
	stats_destroy(&l->stats);
}

static void layer_free(struct layer *l)
{
	close(l->src_fd);
	tu_rmtree(l->src);
	unlink(l->image);
	free(l->src);
	free(l->image);
}

/* The image serving SHARED's open in the layer (a reference), or NULL. */
static struct iset_image *layer_open(struct layer *l)
{
	struct stat st;
	uint32_t id;
	assert_int_equal(fstatat(l->src_fd, SHARED, &st, 0), 0);
	return iset_find(l->set, SHARED, &st, &id);
}

static bool in_memory(struct iset_image *im)
{
	struct bst_view *v = iset_memory(im);
	bst_view_put(v);
	return v != NULL;
}

/* Is the layer's image in memory (it serves SHARED)? */
static bool layer_in_memory(struct layer *l)
{
	struct iset_image *im = layer_open(l);
	assert_non_null(im);
	bool yes = in_memory(im);
	iset_image_put(im);
	return yes;
}

/* The pool's memory gauges, as the layer's statistics sample them. */
static struct stats_memory gauges(struct layer *l)
{
	assert_non_null(l->stats.sample);
	l->stats.sample(l->stats.sample_ctx, &l->stats);
	return l->stats.mem;
}

/* Bytes of the image's non-zero blocks: what it takes in memory without
 * dedup. */
static uint64_t logical_bytes(const char *image)
{
	struct yolo_image *img;
	struct yolo_err err = { "" };
	uint64_t n = 0;
	assert_int_equal(yolo_image_open(image, &img, &err), 0);
	for (uint64_t i = 0; i < yolo_image_info(img)->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		if (!(b->flags & YOLO_BLOCK_ZERO))
			n += b->raw_len;
	}
	yolo_image_close(img);
	return n;
}

static struct iset_pool *pool_make(uint64_t memlimit, bool dedup)
{
	struct iset_pool *pool = NULL;
	struct iset_pool_config cfg = { .memory = true, .memlimit = memlimit, .dedup = dedup };
	assert_int_equal(iset_pool_create(&pool, &cfg), 0);
	return pool;
}

/* What every case serves: two layers whose images hold the same blocks
 * (NAME-a, NAME-b), a background worker and, made by the case, a pool. */
struct node {
	struct bg *bg;
	struct layer a, b;
	uint64_t size;                   /* logical bytes of one layer's image */
	struct iset_pool *pool;
};

static void node_make(struct node *n, const char *name)
{
	char na[64], nb[64];
	snprintf(na, sizeof(na), "%s-a", name);
	snprintf(nb, sizeof(nb), "%s-b", name);
	*n = (struct node){ 0 };
	assert_int_equal(bg_create(&n->bg), 0);
	layer_make(&n->a, na);
	layer_make(&n->b, nb);
	n->size = logical_bytes(n->a.image);
}

/* After the case stopped its layers (layer_stop). */
static void node_free(struct node *n)
{
	iset_pool_destroy(n->pool);
	bg_destroy(n->bg);
	layer_free(&n->a);
	layer_free(&n->b);
}

/* Both layers' images in memory: with dedup their blocks are held once,
 * without twice; the gauges are the pool's, whichever set's stats. */
static void test_shared_blocks(void **state)
{
	(void)state;
	for (int dedup = 0; dedup <= 1; dedup++) {
		struct node n;
		node_make(&n, "shared");
		n.pool = pool_make(0, dedup);
		layer_serve(&n.a, n.pool, n.bg);
		struct stats_memory one = gauges(&n.a);
		assert_int_equal(one.logical, n.size);
		layer_serve(&n.b, n.pool, n.bg);
		assert_true(layer_in_memory(&n.a));
		assert_true(layer_in_memory(&n.b));
		struct stats_memory two = gauges(&n.b);
		assert_int_equal(two.logical, 2 * n.size);
		assert_int_equal(two.unique, dedup ? one.unique : 2 * one.unique);
		assert_int_equal(gauges(&n.a).unique, two.unique);
		layer_stop(&n.b);
		layer_stop(&n.a);
		node_free(&n);
	}
}

/* Wait (up to 20 s) for the pager to hold `in` and not `out` in memory. */
static void wait_moved(struct iset_image *in, struct iset_image *out)
{
	for (int i = 0; i < 2000; i++) {
		if (in_memory(in) && !in_memory(out))
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	fail_msg("the pager did not move %s into memory", in->path);
}

/* Wait (up to 20 s) for the background jobs to finish: a dropped image's
 * blocks stay live until its check job lets go of them. */
static void wait_jobs(struct bg *bg)
{
	for (int i = 0; i < 2000 && bg_pending(bg); i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	assert_int_equal(bg_pending(bg), 0);
}

/* memlimit fits one image: the first set's is held at start; an open in
 * the second set has the pager hold its image instead, and an open in
 * the first moves it back; what is in memory stays within memlimit. */
static void test_memlimit_across_sets(void **state)
{
	(void)state;
	struct node n;
	node_make(&n, "limit");
	n.pool = pool_make(n.size + n.size / 2, true);
	assert_int_equal(iset_pool_start(n.pool), 0);
	assert_int_equal(bg_start(n.bg), 0);
	layer_serve(&n.a, n.pool, n.bg);
	layer_serve(&n.b, n.pool, n.bg);
	/* Nothing used yet: the set that joined first comes first (and an
	 * open of its image, in memory already, moves nothing). */
	struct iset_image *im_a = layer_open(&n.a);
	assert_non_null(im_a);
	assert_true(in_memory(im_a));
	assert_int_equal(gauges(&n.a).logical, n.size);
	struct iset_image *im_b = layer_open(&n.b);  /* used last: the pager swaps them */
	assert_non_null(im_b);
	wait_moved(im_b, im_a);
	wait_jobs(n.bg);
	assert_int_equal(gauges(&n.a).logical, n.size);
	iset_image_put(layer_open(&n.a));            /* and back */
	wait_moved(im_a, im_b);
	wait_jobs(n.bg);
	assert_int_equal(gauges(&n.b).logical, n.size);
	iset_image_put(im_a);
	iset_image_put(im_b);
	layer_stop(&n.a);
	layer_stop(&n.b);
	node_free(&n);
}

/* Destroying one set: the other serves on, its image in memory with the
 * blocks both shared intact, and the pool forgets the first set's image. */
static void test_destroy_one_set(void **state)
{
	(void)state;
	struct node n;
	node_make(&n, "gone");
	n.pool = pool_make(0, true);
	layer_serve(&n.a, n.pool, n.bg);
	layer_serve(&n.b, n.pool, n.bg);
	uint64_t unique = gauges(&n.b).unique;
	layer_stop(&n.a);
	struct iset_image *im = layer_open(&n.b);
	assert_non_null(im);
	struct bst_view *v = iset_memory(im);
	assert_non_null(v);
	static uint8_t want[BS];
	for (uint64_t i = 0; i < im->info->block_count; i++) {
		const struct yolo_block *blk = yolo_image_block(im->img, i);
		tu_block_content(yolo_image_file(im->img, blk->file_id)->path, blk->block_id, want,
				 blk->raw_len);
		const uint8_t *p = bst_block(v, i, blk);
		assert_non_null(p);
		assert_memory_equal(p, want, blk->raw_len);
	}
	bst_view_put(v);
	iset_image_put(im);
	struct stats_memory g = gauges(&n.b);
	assert_int_equal(g.logical, n.size);
	assert_int_equal(g.unique, unique);
	/* A reload places the pool's images again: only b's are left. */
	const char *paths[] = { n.b.image };
	assert_int_equal(iset_reload(n.b.set, paths, 1), 0);
	assert_true(layer_in_memory(&n.b));
	layer_stop(&n.b);
	node_free(&n);
}

/* Garble the first zstd frame of the image's data: it no longer decodes
 * (its header and tables stay valid, so it opens). */
static void damage_frame(const char *image)
{
	struct yolo_image *img;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_image_open(image, &img, &err), 0);
	const struct yolo_block *zb = NULL;
	for (uint64_t i = 0; !zb && i < yolo_image_info(img)->block_count; i++)
		if (yolo_image_block(img, i)->flags & YOLO_BLOCK_ZSTD)
			zb = yolo_image_block(img, i);
	assert_non_null(zb);
	uint64_t at = yolo_image_info(img)->data_off + zb->data_off;
	uint32_t len = zb->stored_len;
	yolo_image_close(img);
	size_t size;
	uint8_t *raw = tu_read_file(image, &size);
	assert_non_null(raw);
	assert_true(at + len <= size);
	for (uint32_t i = 4; i < len; i++)   /* after the frame's magic */
		raw[at + i] = (uint8_t)(0xa5 ^ i);
	assert_int_equal(tu_write_file(image, raw, size), 0);
	free(raw);
}

/* The second layer's image is damaged: it is refused from its set alone,
 * counted in that set's statistics, and the first set serves from memory. */
static void test_damaged_refused_alone(void **state)
{
	(void)state;
	struct node n;
	node_make(&n, "bad");
	damage_frame(n.b.image);
	n.pool = pool_make(0, true);
	layer_serve(&n.a, n.pool, n.bg);
	layer_serve(&n.b, n.pool, n.bg);
	assert_int_equal(iset_count(n.b.set), 0);
	assert_int_equal(atomic_load(&n.b.stats.images_refused), 1);
	assert_null(layer_open(&n.b));
	assert_int_equal(iset_count(n.a.set), 1);
	assert_int_equal(atomic_load(&n.a.stats.images_refused), 0);
	assert_true(layer_in_memory(&n.a));
	assert_int_equal(gauges(&n.a).logical, n.size);
	layer_stop(&n.b);
	layer_stop(&n.a);
	node_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_blocks),
		cmocka_unit_test(test_memlimit_across_sets),
		cmocka_unit_test(test_destroy_one_set),
		cmocka_unit_test(test_damaged_refused_alone),
	};
	return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
