/* test_blockstore.c - yolofs's in-memory block store: every block of a
 * loaded image reads back exactly (plain, zstd and zero blocks); with dedup
 * the content two images share is held once and survives the first image's
 * release; without it nothing is shared; releasing every view returns all
 * memory; a corrupt image is refused and leaves the store unchanged. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "blockstore.h"
#include "testutil.h"

#define BS 4096u

/* Image A: "base" (shared with B) and "a-only"; image B: "base" and "b-only". */
static const struct tu_file files_a[] = { { "base", 30 * BS + 100 }, { "a-only", 9 * BS } };
static const struct tu_file files_b[] = { { "b-only", 6 * BS }, { "base", 30 * BS + 100 } };

/* Every block of both files, in file order. */
static size_t all_blocks(const struct tu_file *f, size_t nf, struct tu_access *acc)
{
	size_t n = 0;
	for (uint32_t i = 0; i < nf; i++)
		for (uint64_t b = 0; b * BS < f[i].size; b++)
			acc[n++] = (struct tu_access){ i, b };
	return n;
}

/* Raw bytes of the non-zero blocks of `f` (what an image of it holds in memory). */
static uint64_t nonzero_bytes(const struct tu_file *f)
{
	uint64_t n = 0;
	for (uint64_t b = 0; b * BS < f->size; b++)
		if (tu_block_kind(b) != TU_ZERO)
			n += tu_block_len(f->size, BS, b);
	return n;
}

static struct yolo_image *make(const char *name, const struct tu_file *f, int level)
{
	struct tu_access acc[64];
	size_t n = all_blocks(f, 2, acc);
	char *path = tu_join(tu_tmpdir, name);
	struct yolo_writer_opts o = { .block_size = BS, .zstd_level = level };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &o, f, 2, NULL, acc, n, &err), 0);
	struct yolo_image *img = NULL;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	free(path);
	return img;
}

static struct bst_view *load_ok(struct bst *s, struct yolo_image *img, struct bst_load_result *r)
{
	struct bst_view *v = NULL;
	struct yolo_err err = { "" };
	int ret = bst_load(s, img, &v, r, &err);
	if (ret)
		print_error("bst_load: %s\n", err.msg);
	assert_int_equal(ret, 0);
	assert_false(yolo_image_is_loaded(img));
	return v;
}

/* Every block the view holds equals the generated content. */
static void check_view(struct yolo_image *img, const struct bst_view *v)
{
	static uint8_t want[BS];
	for (uint64_t i = 0; i < yolo_image_info(img)->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		const char *path = yolo_image_file(img, b->file_id)->path;
		tu_block_content(path, b->block_id, want, b->raw_len);
		const uint8_t *p = bst_block(v, i, b);
		assert_non_null(p);
		assert_memory_equal(p, want, b->raw_len);
	}
}

static void usage_is_zero(struct bst *s)
{
	struct bst_usage u;
	bst_usage(s, &u);
	assert_int_equal(u.resident, 0);
	assert_int_equal(u.unique, 0);
	assert_int_equal(u.logical, 0);
	assert_int_equal(u.pinned, 0);
	assert_int_equal(u.views, 0);
}

static void shared_content(bool dedup, int level)
{
	struct bst *s;
	assert_int_equal(bst_create(&s, dedup), 0);
	struct yolo_image *a = make("a.yolo", files_a, level), *b = make("b.yolo", files_b, level);
	uint64_t base = nonzero_bytes(&files_a[0]), aonly = nonzero_bytes(&files_a[1]),
		 bonly = nonzero_bytes(&files_b[0]);
	struct bst_load_result ra, rb;
	struct bst_view *va = load_ok(s, a, &ra), *vb = load_ok(s, b, &rb);
	assert_int_equal(ra.logical, base + aonly);
	assert_int_equal(rb.logical, base + bonly);
	check_view(a, va);
	check_view(b, vb);

	struct bst_usage u;
	bst_usage(s, &u);
	assert_int_equal(u.views, 2);
	assert_int_equal(u.logical, 2 * base + aonly + bonly);
	if (dedup) {
		/* B only added its own file, in a segment of that size. */
		assert_int_equal(u.unique, base + aonly + bonly);
		assert_int_equal(rb.added, (bonly + 4095) / 4096 * 4096);
	} else {
		assert_int_equal(u.unique, u.logical);
	}
	assert_true(u.resident >= u.unique);
	assert_true(u.resident <= u.unique + 3 * 4096 + 2 * 4096); /* page rounding only */

	/* A goes; B's blocks (shared ones included) still read back. */
	bst_view_put(va);
	check_view(b, vb);
	bst_usage(s, &u);
	assert_int_equal(u.logical, base + bonly);
	assert_int_equal(u.unique, base + bonly);
	bst_view_put(vb);
	usage_is_zero(s);

	/* Loading again after everything was released works the same. */
	va = load_ok(s, a, &ra);
	check_view(a, va);
	bst_view_put(va);
	usage_is_zero(s);
	yolo_image_close(a);
	yolo_image_close(b);
	bst_destroy(s);
}

static void test_dedup_plain(void **st) { (void)st; shared_content(true, 0); }
static void test_dedup_zstd(void **st) { (void)st; shared_content(true, 3); }
static void test_no_dedup(void **st) { (void)st; shared_content(false, 0); }
static void test_no_dedup_zstd(void **st) { (void)st; shared_content(false, 3); }

/* A view reference taken by a reader keeps the blocks after the owner's put. */
static void test_reader_reference(void **st)
{
	(void)st;
	struct bst *s;
	assert_int_equal(bst_create(&s, true), 0);
	struct yolo_image *a = make("r.yolo", files_a, 0);
	struct bst_view *v = load_ok(s, a, NULL);
	bst_view_get(v);                 /* a reply in flight */
	bst_view_put(v);                 /* the image is dropped from memory */
	check_view(a, v);
	bst_view_put(v);
	usage_is_zero(s);
	yolo_image_close(a);
	bst_destroy(s);
}

/* A flipped data byte: the image loads (at disk speed, nothing checked),
 * but that block is refused at its first use and by bst_verify, every other
 * block reads back, and a good image holding the same checksum for the
 * right bytes does not share the bad copy. */
static void test_corrupt_refused(void **st)
{
	(void)st;
	struct bst *s;
	assert_int_equal(bst_create(&s, true), 0);
	yolo_image_close(make("c-bad.yolo", files_b, 0));
	char *path = tu_join(tu_tmpdir, "c-bad.yolo");
	size_t len;
	uint8_t *raw = tu_read_file(path, &len);
	assert_non_null(raw);
	raw[4096 + 10] ^= 0x40;          /* inside the data section, which starts at 4096 */
	assert_int_equal(tu_write_file(path, raw, len), 0);
	struct yolo_image *bad = NULL;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_image_open(path, &bad, &err), 0);
	struct bst_view *vb = load_ok(s, bad, NULL);
	uint64_t first = UINT64_MAX;
	assert_int_equal(bst_verify(vb, bad, &first), 1);
	const struct yolo_block *fb = yolo_image_block(bad, first);
	assert_null(bst_block(vb, first, fb));
	for (uint64_t i = 0; i < yolo_image_info(bad)->block_count; i++)
		if (i != first)
			assert_non_null(bst_block(vb, i, yolo_image_block(bad, i)));
	/* The good image (files_a shares "base" with files_b) loaded after it
	 * gets its own good copy of the damaged block's content. */
	struct yolo_image *a = make("c-ok.yolo", files_a, 0);
	struct bst_view *va = load_ok(s, a, NULL);
	check_view(a, va);
	assert_int_equal(bst_verify(va, a, NULL), 0);
	bst_view_put(vb);
	check_view(a, va);
	bst_view_put(va);
	usage_is_zero(s);
	yolo_image_close(bad);
	yolo_image_close(a);
	free(raw);
	free(path);
	bst_destroy(s);
}

/* Blocks repeated inside one image (e.g. runs of 0xff) are held once: an
 * image of 8 copies of one block, 4 of another, and 2 distinct blocks. */
static void test_duplicates_within_image(void **st)
{
	(void)st;
	static uint8_t blk[14][BS];
	for (int i = 0; i < 14; i++)
		memset(blk[i], i < 8 ? 0xff : i < 12 ? 0x5a : 0x10 + i, BS);
	for (int level = 0; level <= 3; level += 3) {
		for (int dedup = 0; dedup <= 1; dedup++) {
			char *path = tu_join(tu_tmpdir, "dup.yolo");
			struct yolo_writer_opts o = { .block_size = BS, .zstd_level = level };
			struct yolo_err err = { "" };
			struct yolo_writer *w;
			uint32_t id;
			struct yolo_file_ident ident = tu_ident(0, 14 * BS);
			assert_int_equal(yolo_writer_create(&w, path, &o, &err), 0);
			assert_int_equal(yolo_writer_add_file(w, "dup", &ident, &id, &err), 0);
			for (int i = 0; i < 14; i++)  /* interleaved, so copies are not adjacent */
				assert_int_equal(yolo_writer_add_block(w, id, (uint64_t)(i * 5) % 14,
								       blk[i], BS, &err), 0);
			assert_int_equal(yolo_writer_commit(w, &err), 0);
			struct yolo_image *img = NULL;
			assert_int_equal(yolo_image_open(path, &img, &err), 0);
			struct bst *s;
			assert_int_equal(bst_create(&s, dedup), 0);
			struct bst_view *v = load_ok(s, img, NULL);
			for (int i = 0; i < 14; i++) {
				const struct yolo_block *b = yolo_image_lookup(img, id, (uint64_t)(i * 5) % 14);
				assert_non_null(b);
				const uint8_t *p = bst_block(v, (uint64_t)(b - yolo_image_block(img, 0)), b);
				assert_non_null(p);
				assert_memory_equal(p, blk[i], BS);
			}
			struct bst_usage u;
			bst_usage(s, &u);
			assert_int_equal(u.logical, 14 * BS);
			assert_int_equal(u.unique, (dedup ? 4 : 14) * BS);
			assert_int_equal(u.resident, (dedup ? 4 : 14) * BS + (dedup || level ? 0 : 4096));
			bst_view_put(v);
			usage_is_zero(s);
			bst_destroy(s);
			yolo_image_close(img);
			free(path);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedup_plain),
		cmocka_unit_test(test_dedup_zstd),
		cmocka_unit_test(test_no_dedup),
		cmocka_unit_test(test_no_dedup_zstd),
		cmocka_unit_test(test_reader_reference),
		cmocka_unit_test(test_duplicates_within_image),
		cmocka_unit_test(test_corrupt_refused),
	};
	return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
