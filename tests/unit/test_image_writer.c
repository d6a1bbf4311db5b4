/* test_image_writer.c - what the boot-image writer refuses (bad options,
 * unsafe paths, duplicate files and blocks, bad lengths and ids) and that it
 * never leaves anything behind: discard removes the temporary file, a failed
 * create leaves nothing, and commit leaves exactly the destination. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"
#include "util.h"

/* A fresh empty directory per test, so "nothing left behind" is checkable. */
static char *fresh_dir(const char *name)
{
	char *d = tu_join(tu_tmpdir, name);
	assert_non_null(d);
	assert_int_equal(mkdir(d, 0755), 0);
	return d;
}

static void test_create_rejects_bad_opts(void **s)
{
	(void)s;
	char *dir = fresh_dir("opts");
	char *path = tu_join(dir, "x.yolo");
	static const uint32_t bad_bs[] = { 1, 256, 511, 1000, 4095, 4097, 3u << 12, 2u << 20, 1u << 31 };
	for (size_t i = 0; i < sizeof(bad_bs) / sizeof(bad_bs[0]); i++) {
		struct yolo_writer *w = NULL;
		struct yolo_err err = { "" };
		struct yolo_writer_opts o = { .block_size = bad_bs[i] };
		assert_int_equal(yolo_writer_create(&w, path, &o, &err), -EINVAL);
		assert_true(strlen(err.msg) > 0);
		assert_non_null(strstr(err.msg, "block size"));
	}
	static const int bad_level[] = { -1, 23, 100 };
	for (size_t i = 0; i < sizeof(bad_level) / sizeof(bad_level[0]); i++) {
		struct yolo_writer *w = NULL;
		struct yolo_err err = { "" };
		struct yolo_writer_opts o = { .block_size = 4096, .zstd_level = bad_level[i] };
		assert_int_equal(yolo_writer_create(&w, path, &o, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "zstd"));
	}
	/* Every power of two in range is accepted. */
	for (uint32_t sh = YOLO_BLOCK_SHIFT_MIN; sh <= YOLO_BLOCK_SHIFT_MAX; sh++) {
		struct yolo_writer *w = NULL;
		struct yolo_writer_opts o = { .block_size = 1u << sh };
		assert_int_equal(yolo_writer_create(&w, path, &o, NULL), 0);
		assert_int_equal(yolo_writer_block_size(w), 1u << sh);
		yolo_writer_discard(w);
	}
	assert_int_equal(tu_count_entries(dir), 0);
	/* A destination in a missing directory fails up front. */
	char *nodir = tu_join(dir, "missing/x.yolo");
	struct yolo_writer *w = NULL;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_writer_create(&w, nodir, NULL, &err), -ENOENT);
	assert_true(strlen(err.msg) > 0);
	assert_int_equal(tu_count_entries(dir), 0);
	free(nodir);
	free(path);
	free(dir);
}

static void test_add_file_rejects_unsafe_paths(void **s)
{
	(void)s;
	char *dir = fresh_dir("paths");
	char *path = tu_join(dir, "x.yolo");
	struct yolo_writer *w;
	assert_int_equal(yolo_writer_create(&w, path, NULL, NULL), 0);
	static const char *bad[] = {
		"/etc/passwd", "/", "..", "../x", "a/..", "a/../b", "a//b", "", "a/", "/a",
		"./a", "a/.", ".", "a/./b", "//a",
	};
	struct yolo_file_ident id = tu_ident(0, 100);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct yolo_err err = { "" };
		uint32_t fid = 12345;
		int ret = yolo_writer_add_file(w, bad[i], &id, &fid, &err);
		if (ret != -EINVAL)
			print_error("path \"%s\": got %d\n", bad[i], ret);
		assert_int_equal(ret, -EINVAL);
		assert_true(strlen(err.msg) > 0);
		assert_int_equal(fid, 12345);
		assert_int_equal(yolo_writer_find_file(w, bad[i], &fid), -ENOENT);
	}
	/* Too long, and the longest acceptable. */
	char *longp = malloc(YOLO_MAX_PATH + 2);
	memset(longp, 'x', YOLO_MAX_PATH + 1);
	longp[YOLO_MAX_PATH + 1] = '\0';
	uint32_t fid;
	assert_int_equal(yolo_writer_add_file(w, longp, &id, &fid, NULL), -EINVAL);
	longp[YOLO_MAX_PATH] = '\0';
	assert_false(yolo_path_is_safe(longp, YOLO_MAX_PATH + 1));
	longp[200] = '\0';           /* components may be at most NAME_MAX on disk, but the format only caps the path */
	assert_int_equal(yolo_writer_add_file(w, longp, &id, &fid, NULL), 0);
	free(longp);
	/* Names that merely look odd are fine. */
	static const char *good[] = { "...", "..a", "a..", ".a", "a/.b/..c", "a b/\xc3\xa9", "-" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct yolo_err err = { "" };
		int ret = yolo_writer_add_file(w, good[i], &id, &fid, &err);
		if (ret)
			print_error("path \"%s\": %s\n", good[i], err.msg);
		assert_int_equal(ret, 0);
	}
	/* yolo_path_is_safe also checks the length it is given (NUL inside). */
	assert_false(yolo_path_is_safe("a\0b", 3));
	assert_true(yolo_path_is_safe("a/b", 3));
	assert_false(yolo_path_is_safe("a/b", 0));
	assert_false(yolo_path_is_safe("a/", 2));
	yolo_writer_discard(w);
	assert_int_equal(tu_count_entries(dir), 0);
	free(path);
	free(dir);
}

static void test_duplicates_and_lengths(void **s)
{
	(void)s;
	char *dir = fresh_dir("dups");
	char *path = tu_join(dir, "x.yolo");
	struct yolo_writer *w;
	struct yolo_writer_opts o = { .block_size = 512, .zstd_level = 1 };
	assert_int_equal(yolo_writer_create(&w, path, &o, NULL), 0);
	struct yolo_file_ident ia = tu_ident(0, 1300), ib = tu_ident(1, 1024), iz = tu_ident(2, 0);
	uint32_t a, b, z, id;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_writer_add_file(w, "a", &ia, &a, &err), 0);
	assert_int_equal(yolo_writer_add_file(w, "sub/b", &ib, &b, &err), 0);
	assert_int_equal(yolo_writer_add_file(w, "empty", &iz, &z, &err), 0);
	assert_int_not_equal(a, b);
	err.msg[0] = '\0';
	assert_int_equal(yolo_writer_add_file(w, "a", &ib, &id, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "\"a\""));
	assert_int_equal(yolo_writer_add_file(w, "sub/b", &ib, &id, NULL), -EEXIST);
	assert_int_equal(yolo_writer_find_file(w, "a", &id), 0);
	assert_int_equal(id, a);
	assert_int_equal(yolo_writer_find_file(w, "sub/b", &id), 0);
	assert_int_equal(id, b);
	assert_int_equal(yolo_writer_find_file(w, "b", &id), -ENOENT);

	uint8_t buf[600];
	memset(buf, 'q', sizeof(buf));
	struct { uint32_t f; uint64_t blk; uint32_t len; int expect; } cases[] = {
		{ 0, 0, 512, 0 },             /* a: 512 + 512 + 276 */
		{ 0, 0, 512, -EEXIST },       /* duplicate block */
		{ 0, 1, 511, -EINVAL },       /* short non-last block */
		{ 0, 1, 513, -EINVAL },       /* longer than a block */
		{ 0, 1, 0, -EINVAL },
		{ 0, 2, 512, -EINVAL },       /* last block must be the remainder */
		{ 0, 2, 275, -EINVAL },
		{ 0, 2, 277, -EINVAL },
		{ 0, 3, 512, -EINVAL },       /* past the end of the file */
		{ 0, 3, 0, -EINVAL },
		{ 0, UINT64_MAX, 512, -EINVAL },
		{ 0, UINT64_MAX >> 9, 512, -EINVAL },
		{ 0, 2, 276, 0 },
		{ 0, 2, 276, -EEXIST },
		{ 1, 1, 512, 0 },             /* b: exactly two blocks */
		{ 1, 2, 0, -EINVAL },
		{ 1, 2, 512, -EINVAL },
		{ 2, 0, 0, -EINVAL },         /* empty file has no blocks */
		{ 2, 0, 512, -EINVAL },
		{ 3, 0, 512, -EINVAL },       /* unknown file id */
		{ UINT32_MAX, 0, 512, -EINVAL },
		{ 1, 1, 512, -EEXIST },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err.msg[0] = '\0';
		int ret = yolo_writer_add_block(w, cases[i].f, cases[i].blk, buf, cases[i].len, &err);
		if (ret != cases[i].expect)
			print_error("case %zu (file %u block %llu len %u): expected %d, got %d (%s)\n", i,
				    cases[i].f, (unsigned long long)cases[i].blk, cases[i].len,
				    cases[i].expect, ret, err.msg);
		assert_int_equal(ret, cases[i].expect);
		if (ret)
			assert_true(strlen(err.msg) > 0);
	}
	assert_true(yolo_writer_has_block(w, a, 0));
	assert_true(yolo_writer_has_block(w, a, 2));
	assert_false(yolo_writer_has_block(w, a, 1));
	assert_true(yolo_writer_has_block(w, b, 1));
	assert_false(yolo_writer_has_block(w, b, 0));
	assert_false(yolo_writer_has_block(w, z, 0));
	/* The rejected calls left no trace: the image holds exactly 3 blocks. */
	assert_int_equal(yolo_writer_commit(w, &err), 0);
	assert_int_equal(tu_count_entries(dir), 1);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	assert_int_equal(yolo_image_info(img)->block_count, 3);
	assert_int_equal(yolo_image_info(img)->file_count, 3);
	assert_int_equal(yolo_image_info(img)->raw_bytes, 512 + 276 + 512);
	assert_int_equal(yolo_image_find_file(img, "empty", &id), 0);
	assert_int_equal(yolo_image_file(img, id)->block_count, 0);
	uint8_t got[512];
	for (uint64_t i = 0; i < 3; i++) {
		const struct yolo_block *blk = yolo_image_block_by_seq(img, i);
		assert_int_equal(yolo_image_read_block(img, blk, got, sizeof(got), YOLO_READ_VERIFY),
				 (int)blk->raw_len);
		assert_memory_equal(got, buf, blk->raw_len);
	}
	yolo_image_close(img);
	free(path);
	free(dir);
}

/* Discard after writing data leaves the directory empty, also with more
 * data than the writer buffers in memory. */
static void test_discard_leaves_nothing(void **s)
{
	(void)s;
	char *dir = fresh_dir("discard");
	char *path = tu_join(dir, "x.yolo");
	struct yolo_writer *w;
	struct yolo_writer_opts o = { .block_size = 1u << 20, .zstd_level = 0 };
	assert_int_equal(yolo_writer_create(&w, path, &o, NULL), 0);
	assert_int_equal(tu_count_entries(dir), 1);   /* the temporary file */
	struct yolo_file_ident id = tu_ident(0, 12u << 20);
	uint32_t fid;
	assert_int_equal(yolo_writer_add_file(w, "big", &id, &fid, NULL), 0);
	uint8_t *buf = malloc(1u << 20);
	for (uint64_t b = 0; b < 12; b++) {
		tu_block_content("big", 3 * b + 2, buf, 1u << 20);   /* random kind */
		assert_int_equal(yolo_writer_add_block(w, fid, b, buf, 1u << 20, NULL), 0);
	}
	free(buf);
	yolo_writer_discard(w);
	assert_int_equal(tu_count_entries(dir), 0);
	yolo_writer_discard(NULL);

	/* An existing destination survives a discarded rewrite untouched. */
	assert_int_equal(tu_write_file(path, "old", 3), 0);
	assert_int_equal(yolo_writer_create(&w, path, NULL, NULL), 0);
	assert_int_equal(yolo_writer_add_file(w, "f", &id, &fid, NULL), 0);
	yolo_writer_discard(w);
	assert_int_equal(tu_count_entries(dir), 1);
	size_t len;
	uint8_t *old = tu_read_file(path, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(old, "old", 3);
	free(old);
	/* ... and is replaced atomically by a commit. */
	assert_int_equal(yolo_writer_create(&w, path, NULL, NULL), 0);
	assert_int_equal(yolo_writer_commit(w, NULL), 0);
	assert_int_equal(tu_count_entries(dir), 1);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, NULL), 0);
	yolo_image_close(img);
	free(path);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_opts),
		cmocka_unit_test(test_add_file_rejects_unsafe_paths),
		cmocka_unit_test(test_duplicates_and_lengths),
		cmocka_unit_test(test_discard_leaves_nothing),
	};
	return cmocka_run_group_tests_name("image_writer", tests, tu_group_setup, tu_group_teardown);
}
