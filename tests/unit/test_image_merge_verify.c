/* test_image_merge_verify.c - merging boot images (union of blocks, order
 * kept, mismatches rejected with nothing written) and verifying images on
 * their own and against a source directory (changed block, changed
 * identity, missing file). */
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

static const struct tu_file files[] = {
	{ "a", 4 * 512 + 10 },            /* blocks 0..4, 4 is short */
	{ "d/b", 3 * 512 },
	{ "d/c", 700 },
};
#define NF 3

static struct yolo_image *open_ok(const char *path)
{
	struct yolo_image *img = NULL;
	struct yolo_err err = { "" };
	int ret = yolo_image_open(path, &img, &err);
	if (ret)
		print_error("%s: %s\n", path, err.msg);
	assert_int_equal(ret, 0);
	return img;
}

static void check_block(struct yolo_image *img, uint64_t seq, const char *path, uint64_t blk)
{
	const struct yolo_block *b = yolo_image_block_by_seq(img, seq);
	assert_non_null(b);
	const struct yolo_file *f = yolo_image_file(img, b->file_id);
	assert_non_null(f);
	if (strcmp(f->path, path) || b->block_id != blk)
		print_error("seq %llu: expected %s block %llu, got %s block %llu\n",
			    (unsigned long long)seq, path, (unsigned long long)blk, f->path,
			    (unsigned long long)b->block_id);
	assert_string_equal(f->path, path);
	assert_int_equal(b->block_id, blk);
	assert_ptr_equal(yolo_image_lookup(img, b->file_id, blk), b);
	uint8_t want[512], got[512];
	uint32_t len = b->raw_len;
	tu_block_content(path, blk, want, len);
	assert_int_equal(yolo_image_read_block(img, b, got, sizeof(got), YOLO_READ_VERIFY), (int)len);
	assert_memory_equal(got, want, len);
}

static void test_merge_union_order(void **s)
{
	(void)s;
	/* Image 1 knows a and d/b; image 2 knows d/b, d/c and a (fewer files
	 * in a different order, so file ids differ between the images). */
	static const struct tu_access acc1[] = { { 0, 1 }, { 0, 4 }, { 1, 0 }, { 0, 0 } };
	static const struct tu_file files2[] = { { "d/c", 700 }, { "d/b", 3 * 512 }, { "a", 4 * 512 + 10 } };
	static const struct tu_access acc2[] = { { 1, 2 }, { 2, 4 }, { 0, 1 }, { 2, 2 }, { 1, 0 }, { 0, 0 } };
	struct yolo_file_ident id2[3] = { tu_ident(2, 700), tu_ident(1, 3 * 512), tu_ident(0, 4 * 512 + 10) };
	char *p1 = tu_join(tu_tmpdir, "m1.yolo"), *p2 = tu_join(tu_tmpdir, "m2.yolo");
	char *out = tu_join(tu_tmpdir, "merged.yolo");
	struct yolo_writer_opts o = { .block_size = 512, .zstd_level = 3 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(p1, &o, files, 2, NULL, acc1, 4, &err), 0);
	o.zstd_level = 0;
	assert_int_equal(tu_write_image(p2, &o, files2, 3, id2, acc2, 6, &err), 0);
	struct yolo_image *in[2] = { open_ok(p1), open_ok(p2) };
	struct yolo_writer_opts mo = { .zstd_level = 5 };
	int ret = yolo_image_merge(out, in, 2, &mo, &err);
	if (ret)
		print_error("merge: %s\n", err.msg);
	assert_int_equal(ret, 0);
	struct yolo_image *m = open_ok(out);
	const struct yolo_image_info *mi = yolo_image_info(m);
	assert_int_equal(mi->block_size, 512);
	assert_true(mi->compat & YOLO_COMPAT_MERGED);
	assert_int_equal(mi->file_count, 3);
	/* Image 1's order, then image 2's new blocks in image 2's order. */
	assert_int_equal(mi->block_count, 8);
	check_block(m, 0, "a", 1);
	check_block(m, 1, "a", 4);
	check_block(m, 2, "d/b", 0);
	check_block(m, 3, "a", 0);
	check_block(m, 4, "d/b", 2);
	check_block(m, 5, "d/c", 1);
	check_block(m, 6, "a", 2);
	check_block(m, 7, "d/c", 0);
	assert_null(yolo_image_block_by_seq(m, 8));
	for (uint32_t i = 0; i < NF; i++) {
		uint32_t id;
		assert_int_equal(yolo_image_find_file(m, files[i].path, &id), 0);
		struct yolo_file_ident want = tu_ident(i, files[i].size);
		assert_int_equal(yolo_image_file(m, id)->ident.size, want.size);
		assert_int_equal(yolo_image_file(m, id)->ident.mtime_ns, want.mtime_ns);
	}
	struct yolo_verify_report rep;
	assert_int_equal(yolo_image_verify(m, -1, &rep, NULL, NULL), 0);
	assert_int_equal(rep.blocks_ok, 8);
	/* Merging an image with itself changes nothing. */
	struct yolo_image *same[2] = { in[0], in[0] };
	char *out2 = tu_join(tu_tmpdir, "self.yolo");
	assert_int_equal(yolo_image_merge(out2, same, 2, NULL, &err), 0);
	struct yolo_image *m2 = open_ok(out2);
	assert_int_equal(yolo_image_info(m2)->block_count, 4);
	check_block(m2, 0, "a", 1);
	check_block(m2, 3, "a", 0);
	/* One image alone is a copy; none is an error. */
	assert_int_equal(yolo_image_merge(out2, in + 1, 1, NULL, &err), 0);
	yolo_image_close(m2);
	m2 = open_ok(out2);
	assert_int_equal(yolo_image_info(m2)->block_count, 6);
	check_block(m2, 0, "d/b", 2);
	err.msg[0] = '\0';
	assert_int_equal(yolo_image_merge(out2, in, 0, NULL, &err), -EINVAL);
	assert_true(strlen(err.msg) > 0);
	yolo_image_close(m2);
	yolo_image_close(m);
	yolo_image_close(in[0]);
	yolo_image_close(in[1]);
	unlink(p1);
	unlink(p2);
	unlink(out);
	unlink(out2);
	free(p1);
	free(p2);
	free(out);
	free(out2);
}

/* Each rejection leaves no output file and names the problem. */
static void expect_merge_rejected(struct yolo_image **in, const char *needle)
{
	char *dir = tu_join(tu_tmpdir, "mrej");
	assert_int_equal(mkdir(dir, 0755), 0);
	char *out = tu_join(dir, "out.yolo");
	struct yolo_err err = { "" };
	int ret = yolo_image_merge(out, in, 2, NULL, &err);
	if (ret != -EINVAL)
		print_error("merge: expected -EINVAL (%s), got %d: %s\n", needle, ret, err.msg);
	assert_int_equal(ret, -EINVAL);
	if (!strstr(err.msg, needle))
		print_error("message \"%s\" lacks \"%s\"\n", err.msg, needle);
	assert_non_null(strstr(err.msg, needle));
	assert_int_equal(tu_count_entries(dir), 0);
	free(out);
	tu_rmtree(dir);
	free(dir);
}

static void test_merge_rejects_mismatch(void **s)
{
	(void)s;
	static const struct tu_access acc[] = { { 0, 0 }, { 0, 1 }, { 1, 1 } };
	char *p1 = tu_join(tu_tmpdir, "r1.yolo"), *p2 = tu_join(tu_tmpdir, "r2.yolo");
	struct yolo_err err = { "" };
	struct yolo_writer_opts o512 = { .block_size = 512 }, o1k = { .block_size = 1024 };
	assert_int_equal(tu_write_image(p1, &o512, files, NF, NULL, acc, 3, &err), 0);

	/* Block size differs. */
	assert_int_equal(tu_write_image(p2, &o1k, files, NF, NULL, acc, 3, &err), 0);
	struct yolo_image *in[2] = { open_ok(p1), open_ok(p2) };
	expect_merge_rejected(in, "block size");
	yolo_image_close(in[1]);

	/* Same path, different size. */
	struct tu_file f2[NF] = { files[0], files[1], files[2] };
	f2[1].size += 1;
	assert_int_equal(tu_write_image(p2, &o512, f2, NF, NULL, acc, 3, &err), 0);
	in[1] = open_ok(p2);
	expect_merge_rejected(in, "d/b");
	yolo_image_close(in[1]);

	/* Same path and size, different mtime. */
	struct yolo_file_ident ids[NF];
	for (uint32_t i = 0; i < NF; i++)
		ids[i] = tu_ident(i, files[i].size);
	ids[0].mtime_ns += 1;
	assert_int_equal(tu_write_image(p2, &o512, files, NF, ids, acc, 3, &err), 0);
	in[1] = open_ok(p2);
	expect_merge_rejected(in, "\"a\"");
	yolo_image_close(in[1]);

	/* Same identity, but a shared block's bytes differ: write image 2 by
	 * hand with other contents for a block 0. */
	struct yolo_writer *w;
	assert_int_equal(yolo_writer_create(&w, p2, &o512, &err), 0);
	uint32_t fid;
	struct yolo_file_ident ia = tu_ident(0, files[0].size);
	assert_int_equal(yolo_writer_add_file(w, "a", &ia, &fid, &err), 0);
	uint8_t buf[512];
	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(yolo_writer_add_block(w, fid, 0, buf, 512, &err), 0);
	assert_int_equal(yolo_writer_commit(w, &err), 0);
	in[1] = open_ok(p2);
	expect_merge_rejected(in, "differs");
	yolo_image_close(in[1]);

	/* Only the inode differs (another machine): accepted by design. */
	for (uint32_t i = 0; i < NF; i++)
		ids[i] = tu_ident(i, files[i].size);
	ids[2].ino += 99;
	ids[2].dev += 1;
	assert_int_equal(tu_write_image(p2, &o512, files, NF, ids, acc, 3, &err), 0);
	in[1] = open_ok(p2);
	char *out = tu_join(tu_tmpdir, "inode-ok.yolo");
	assert_int_equal(yolo_image_merge(out, in, 2, NULL, &err), 0);
	unlink(out);
	free(out);
	yolo_image_close(in[1]);
	yolo_image_close(in[0]);
	unlink(p1);
	unlink(p2);
	free(p1);
	free(p2);
}

/* Verify collects problem lines. */
struct lines {
	int n;
	char text[4096];
};

static void collect(void *ctx, const char *problem)
{
	struct lines *l = ctx;
	assert_non_null(problem);
	assert_true(strlen(problem) > 0);
	size_t used = strlen(l->text);
	snprintf(l->text + used, sizeof(l->text) - used, "%s\n", problem);
	l->n++;
}

static void test_verify_against_source(void **s)
{
	(void)s;
	char *src = tu_join(tu_tmpdir, "src");
	assert_int_equal(mkdir(src, 0755), 0);
	struct yolo_file_ident ids[NF];
	assert_int_equal(tu_make_source(src, files, NF, 512, ids), 0);
	static const struct tu_access acc[] = {
		{ 0, 2 }, { 1, 1 }, { 0, 4 }, { 2, 0 }, { 0, 0 }, { 2, 1 }, { 1, 2 },
	};
	char *path = tu_join(tu_tmpdir, "v.yolo");
	struct yolo_writer_opts o = { .block_size = 512, .zstd_level = 2 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &o, files, NF, ids, acc, 7, &err), 0);
	struct yolo_image *img = open_ok(path);
	int dirfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);

	struct yolo_verify_report rep;
	struct lines l = { 0, "" };
	assert_int_equal(yolo_image_verify(img, -1, &rep, collect, &l), 0);
	assert_int_equal(rep.blocks_ok, 7);
	assert_int_equal(rep.blocks_bad + rep.files_missing + rep.files_changed + rep.blocks_stale, 0);
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, collect, &l), 0);
	assert_int_equal(rep.blocks_ok, 7);
	assert_int_equal(rep.blocks_bad + rep.files_missing + rep.files_changed + rep.blocks_stale, 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(yolo_image_verify(img, dirfd, NULL, NULL, NULL), 0);

	/* Change one captured byte of d/b block 1, keeping size and mtime:
	 * only the block is stale. */
	char *pb = tu_join(src, "d/b");
	int fd = open(pb, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, 512 + 100), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 512 + 100), 1);
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	assert_int_equal(futimens(fd, ts), 0);
	/* A byte of an uncaptured block (0) changes nothing the image holds. */
	assert_int_equal(pwrite(fd, "X", 1, 5), 1);
	assert_int_equal(futimens(fd, ts), 0);
	l = (struct lines){ 0, "" };
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, collect, &l), 1);
	assert_int_equal(rep.blocks_stale, 1);
	assert_int_equal(rep.files_changed, 0);
	assert_int_equal(rep.files_missing, 0);
	assert_int_equal(rep.blocks_bad, 0);
	assert_int_equal(l.n, 1);
	assert_non_null(strstr(l.text, "d/b"));
	/* Without the source the image itself is still fine. */
	assert_int_equal(yolo_image_verify(img, -1, &rep, NULL, NULL), 0);

	/* Now let the mtime change too: the identity differs as well. */
	assert_int_equal(futimens(fd, NULL), 0);
	close(fd);
	l = (struct lines){ 0, "" };
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, collect, &l), 1);
	assert_int_equal(rep.files_changed, 1);
	assert_int_equal(rep.blocks_stale, 1);

	/* Restore the byte and mtime: clean again. */
	fd = open(pb, O_RDWR | O_CLOEXEC);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 512 + 100), 1);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, NULL, NULL), 0);

	/* A missing file. */
	char *pc = tu_join(src, "d/c");
	char *pc2 = tu_join(src, "d/c.moved");
	assert_int_equal(rename(pc, pc2), 0);
	l = (struct lines){ 0, "" };
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, collect, &l), 1);
	assert_int_equal(rep.files_missing, 1);
	assert_int_equal(rep.blocks_stale, 0);
	assert_int_equal(rep.blocks_ok, 7);
	assert_non_null(strstr(l.text, "d/c"));
	/* A symlink escaping the source is not followed (treated as missing). */
	assert_int_equal(symlink("/etc/hostname", pc), 0);
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, NULL, NULL), 1);
	assert_int_equal(rep.files_missing, 1);
	unlink(pc);
	assert_int_equal(rename(pc2, pc), 0);
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, NULL, NULL), 0);

	/* A truncated source file: identity changes and its captured blocks
	 * can no longer be read in full. */
	char *pa = tu_join(src, "a");
	assert_int_equal(truncate(pa, 600), 0);
	assert_int_equal(yolo_image_verify(img, dirfd, &rep, NULL, NULL), 1);
	assert_int_equal(rep.files_changed, 1);
	assert_int_equal(rep.blocks_stale, 2);      /* a blocks 2 and 4; block 0 is intact */

	close(dirfd);
	yolo_image_close(img);
	unlink(path);
	free(pa);
	free(pb);
	free(pc);
	free(pc2);
	free(path);
	free(src);
}

/* Rebind: a touched file and a copied tree (new inodes) are served again
 * with their current identity; a file whose captured bytes changed, or
 * that is missing, is left out; with nothing matching nothing is written. */
static void test_rebind(void **s)
{
	(void)s;
	char *src = tu_join(tu_tmpdir, "rb-src");
	assert_int_equal(mkdir(src, 0755), 0);
	struct yolo_file_ident ids[NF];
	assert_int_equal(tu_make_source(src, files, NF, 512, ids), 0);
	static const struct tu_access acc[] = { { 0, 2 }, { 1, 1 }, { 0, 4 }, { 2, 0 }, { 1, 2 } };
	char *path = tu_join(tu_tmpdir, "rb.yolo"), *out = tu_join(tu_tmpdir, "rb-out.yolo");
	struct yolo_writer_opts o = { .block_size = 512, .zstd_level = 3 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &o, files, NF, ids, acc, 5, &err), 0);
	struct yolo_image *img = open_ok(path);

	/* A copy elsewhere: every file has a new inode, "a" also a new mtime,
	 * "d/b" one changed captured byte, "d/c" is missing. */
	char *copy = tu_join(tu_tmpdir, "rb-copy");
	assert_int_equal(mkdir(copy, 0755), 0);
	char *d = tu_join(copy, "d");
	assert_int_equal(mkdir(d, 0755), 0);
	for (int i = 0; i < 2; i++) {
		char *from = tu_join(src, files[i].path), *to = tu_join(copy, files[i].path);
		size_t len;
		uint8_t *bytes = tu_read_file(from, &len);
		assert_non_null(bytes);
		if (i == 1)
			bytes[512 + 7] ^= 0x20;              /* d/b block 1 is captured */
		assert_int_equal(tu_write_file(to, bytes, len), 0);
		free(bytes);
		free(from);
		free(to);
	}
	int dirfd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	struct yolo_verify_report vr;
	assert_int_equal(yolo_image_verify(img, dirfd, &vr, NULL, NULL), 1);
	assert_int_equal(vr.files_changed + vr.files_missing, 3);

	struct yolo_rebind_report rep;
	struct lines l = { 0, "" };
	assert_int_equal(yolo_image_rebind(out, img, dirfd, NULL, &rep, collect, &l, &err), 0);
	assert_int_equal(rep.files_rebound, 1);
	assert_int_equal(rep.files_changed, 1);
	assert_int_equal(rep.files_missing, 1);
	assert_int_equal(rep.blocks, 2);
	assert_int_equal(l.n, 2);
	assert_non_null(strstr(l.text, "d/b: source bytes differ"));
	assert_non_null(strstr(l.text, "d/c: missing"));
	struct yolo_image *r = open_ok(out);
	assert_int_equal(yolo_image_info(r)->file_count, 1);
	assert_int_equal(yolo_image_verify(r, dirfd, &vr, NULL, NULL), 0);    /* serves the copy */
	/* Blocks and their order are those of the original: a's 2 then 4. */
	check_block(r, 0, "a", 2);
	check_block(r, 1, "a", 4);
	yolo_image_close(r);

	/* Nothing matches (every file removed): an error, nothing written. */
	char *a = tu_join(copy, "a"), *b = tu_join(copy, "d/b");
	assert_int_equal(unlink(a), 0);
	assert_int_equal(unlink(b), 0);
	char *none = tu_join(tu_tmpdir, "rb-none.yolo");
	assert_int_equal(yolo_image_rebind(none, img, dirfd, NULL, &rep, NULL, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no file matches"));
	assert_int_equal(access(none, F_OK), -1);
	close(dirfd);
	yolo_image_close(img);
	free(none);
	free(a);
	free(b);
	free(d);
	free(copy);
	free(path);
	free(out);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_union_order),
		cmocka_unit_test(test_merge_rejects_mismatch),
		cmocka_unit_test(test_verify_against_source),
		cmocka_unit_test(test_rebind),
	};
	return cmocka_run_group_tests_name("image_merge_verify", tests, tu_group_setup, tu_group_teardown);
}
