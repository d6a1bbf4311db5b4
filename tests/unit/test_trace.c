/* test_trace.c - unit tests of boot traces (write, load, partial and
 * corrupt traces) and of building a boot image from a trace and a source
 * tree (first-access order, block boundaries, EOF clipping, staleness). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "yolo_trace.h"

struct fixture {
	char *dir;
	char *trace;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp();
	f->trace = tu_join(f->dir, "boot.trace");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->trace);
	free(f);
	return 0;
}

/* Write a trace with two files and `n` reads alternating between them. */
static void write_trace(const char *path, uint32_t n, bool close_it)
{
	struct yolo_err err = { "" };
	struct yolo_trace_writer *tw;
	assert_int_equal(yolo_trace_create(&tw, path, &err), 0);
	struct yolo_file_ident a = tu_ident(0, 1 << 20), b = tu_ident(1, 5000);
	uint32_t ia, ib, again;
	assert_int_equal(yolo_trace_add_file(tw, "base/a.qcow2", &a, &ia, &err), 0);
	assert_int_equal(yolo_trace_add_file(tw, "b", &b, &ib, &err), 0);
	assert_int_equal(yolo_trace_add_file(tw, "base/a.qcow2", &a, &again, &err), 0);
	assert_int_equal(again, ia);
	for (uint32_t i = 0; i < n; i++) {
		struct yolo_trace_read r = { .t_ns = i * 1000ull, .offset = i * 512ull,
					     .length = 100 + i, .file_id = i % 2 ? ib : ia,
					     .pid = 10 + i % 3 };
		assert_int_equal(yolo_trace_add_read(tw, &r, &err), 0);
	}
	if (close_it)
		assert_int_equal(yolo_trace_close(tw, &err), 0);
	else {
		assert_int_equal(yolo_trace_flush(tw, &err), 0);
		yolo_trace_abandon(tw);
	}
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	/* More reads than one chunk holds, so several READS chunks are parsed. */
	write_trace(f->trace, 10000, true);
	struct yolo_trace *t;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_trace_load(f->trace, &t, &err), 0);
	assert_int_equal(t->nfiles, 2);
	assert_string_equal(t->files[0].path, "base/a.qcow2");
	assert_string_equal(t->files[1].path, "b");
	assert_int_equal(t->files[1].ident.size, 5000);
	assert_int_equal(t->nreads, 10000);
	for (uint32_t i = 0; i < 10000; i++) {
		assert_int_equal(t->reads[i].offset, i * 512ull);
		assert_int_equal(t->reads[i].length, 100 + i);
		assert_int_equal(t->reads[i].file_id, i % 2);
		assert_int_equal(t->reads[i].pid, 10 + i % 3);
		assert_int_equal(t->reads[i].t_ns, i * 1000ull);
	}
	yolo_trace_free(t);
}

static void test_writer_rejects(void **state)
{
	struct fixture *f = *state;
	struct yolo_err err = { "" };
	struct yolo_trace_writer *tw;
	assert_int_equal(yolo_trace_create(&tw, f->trace, &err), 0);
	struct yolo_file_ident a = tu_ident(0, 100), changed = tu_ident(0, 200);
	uint32_t id;
	assert_int_equal(yolo_trace_add_file(tw, "/etc/passwd", &a, &id, &err), -EINVAL);
	assert_int_equal(yolo_trace_add_file(tw, "x/../y", &a, &id, &err), -EINVAL);
	assert_int_equal(yolo_trace_add_file(tw, "ok", &a, &id, &err), 0);
	assert_int_equal(yolo_trace_add_file(tw, "ok", &changed, &id, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "changed"));
	struct yolo_trace_read r = { .file_id = 7, .length = 1 };
	assert_int_equal(yolo_trace_add_read(tw, &r, &err), -EINVAL);
	yolo_trace_abandon(tw);
	struct yolo_err err2 = { "" };
	assert_int_equal(yolo_trace_create(&tw, "/nonexistent-dir/x.trace", &err2), -ENOENT);
	assert_true(err2.msg[0]);
}

static void test_partial_trace(void **state)
{
	struct fixture *f = *state;
	write_trace(f->trace, 5000, false);      /* "crashed": no END chunk */
	struct yolo_trace *t = NULL;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_trace_load(f->trace, &t, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "partial"));
	assert_null(t);
}

/* Every truncation of a complete trace is detected; none crashes. */
static void test_truncated_everywhere(void **state)
{
	struct fixture *f = *state;
	write_trace(f->trace, 40, true);
	size_t len;
	uint8_t *buf = tu_read_file(f->trace, &len);
	assert_non_null(buf);
	char *cut = tu_join(f->dir, "cut.trace");
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(tu_write_file(cut, buf, n), 0);
		struct yolo_trace *t = NULL;
		struct yolo_err err = { "" };
		assert_int_equal(yolo_trace_load(cut, &t, &err), -EUCLEAN);
		assert_true(err.msg[0]);
	}
	free(cut);
	free(buf);
}

/* Every single-byte corruption after the header is detected. */
static void test_corrupt_everywhere(void **state)
{
	struct fixture *f = *state;
	write_trace(f->trace, 40, true);
	size_t len;
	uint8_t *buf = tu_read_file(f->trace, &len);
	char *bad = tu_join(f->dir, "bad.trace");
	for (size_t i = 0; i < len; i++) {
		if (i >= 16 && i < 32)
			continue;        /* start time and reserved: informational */
		buf[i] ^= 0x5a;
		assert_int_equal(tu_write_file(bad, buf, len), 0);
		struct yolo_trace *t = NULL;
		struct yolo_err err = { "" };
		int ret = yolo_trace_load(bad, &t, &err);
		assert_true(ret == -EUCLEAN || ret == -EOPNOTSUPP);
		buf[i] ^= 0x5a;
	}
	free(bad);
	free(buf);
}

static void add_read(struct yolo_trace_writer *tw, uint32_t file, uint64_t off, uint32_t len)
{
	struct yolo_err err = { "" };
	struct yolo_trace_read r = { .offset = off, .length = len, .file_id = file, .pid = 1 };
	assert_int_equal(yolo_trace_add_read(tw, &r, &err), 0);
}

static void test_build_from_trace(void **state)
{
	struct fixture *f = *state;
	const uint32_t bs = 4096;
	struct tu_file files[] = { { "img/base.qcow2", 10 * 4096 + 100 }, { "kernel", 3000 } };
	struct yolo_file_ident id[2];
	char *src = tu_join(f->dir, "src");
	assert_int_equal(tu_make_source(src, files, 2, bs, id), 0);

	struct yolo_err err = { "" };
	struct yolo_trace_writer *tw;
	uint32_t fa, fk;
	assert_int_equal(yolo_trace_create(&tw, f->trace, &err), 0);
	assert_int_equal(yolo_trace_add_file(tw, files[0].path, &id[0], &fa, &err), 0);
	assert_int_equal(yolo_trace_add_file(tw, files[1].path, &id[1], &fk, &err), 0);
	add_read(tw, fa, 5 * 4096 + 10, 4096);   /* blocks 5 and 6 */
	add_read(tw, fk, 0, 1 << 20);            /* clipped at EOF: block 0 (3000 bytes) */
	add_read(tw, fa, 6 * 4096, 4096);        /* block 6 again: no new block */
	add_read(tw, fa, 10 * 4096, 8192);       /* short last block 10 (100 bytes) */
	add_read(tw, fa, 8 * 4096, 4096);        /* ends exactly at a boundary: block 8 only */
	add_read(tw, fa, 1 << 30, 4096);         /* past EOF: nothing */
	add_read(tw, fa, 0, 0);                  /* empty: nothing */
	assert_int_equal(yolo_trace_close(tw, &err), 0);

	struct yolo_trace *t;
	assert_int_equal(yolo_trace_load(f->trace, &t, &err), 0);
	int dirfd = open(src, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	char *out = tu_join(f->dir, "boot.yolo");
	struct yolo_build_stats st;
	struct yolo_writer_opts wo = { .block_size = bs };
	assert_int_equal(yolo_image_build_from_trace(t, dirfd, out, &wo, &st, &err), 0);
	assert_int_equal(st.blocks, 5);
	assert_int_equal(st.files, 2);

	struct yolo_image *img;
	assert_int_equal(yolo_image_open(out, &img, &err), 0);
	/* First-access order: a/5, a/6, kernel/0, a/10, a/8. */
	const uint64_t want_block[] = { 5, 6, 0, 10, 8 };
	const char *want_path[] = { "img/base.qcow2", "img/base.qcow2", "kernel",
				    "img/base.qcow2", "img/base.qcow2" };
	uint8_t buf[4096], expect[4096];
	for (uint64_t s = 0; s < 5; s++) {
		const struct yolo_block *b = yolo_image_block_by_seq(img, s);
		assert_non_null(b);
		const struct yolo_file *yf = yolo_image_file(img, b->file_id);
		assert_int_equal(b->block_id, want_block[s]);
		assert_string_equal(yf->path, want_path[s]);
		uint32_t len = tu_block_len(yf->ident.size, bs, b->block_id);
		assert_int_equal(b->raw_len, len);
		assert_int_equal(yolo_image_read_block(img, b, buf, sizeof(buf), YOLO_READ_VERIFY), len);
		tu_block_content(yf->path, b->block_id, expect, len);
		assert_memory_equal(buf, expect, len);
		/* The image records the file's identity as it is now. */
		assert_int_equal(yf->ident.ino, id[strcmp(yf->path, "kernel") == 0].ino);
	}
	assert_null(yolo_image_block_by_seq(img, 5));
	yolo_image_close(img);

	/* A source changed since the trace refuses to build (would mix contents). */
	char *kpath = tu_join(src, "kernel");
	assert_int_equal(tu_write_file(kpath, "changed", 7), 0);
	char *out2 = tu_join(f->dir, "stale.yolo");
	assert_int_equal(yolo_image_build_from_trace(t, dirfd, out2, &wo, &st, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "kernel"));
	assert_int_equal(access(out2, F_OK), -1);

	/* A missing source file is a clear error too. */
	unlink(kpath);
	assert_int_equal(yolo_image_build_from_trace(t, dirfd, out2, &wo, &st, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "kernel"));

	close(dirfd);
	yolo_trace_free(t);
	free(kpath);
	free(out);
	free(out2);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_trace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_from_trace, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
