/* test_image_rw.c - round trip of the boot-image writer and reader at every
 * supported block-size extreme, with and without zstd: contents of zero,
 * compressible and incompressible blocks, lookups (present, absent, first,
 * last, short last), find_file, first-access order, verified reads, the
 * loaded buffer and in-memory images. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <xxhash.h>

#include "testutil.h"

/* Three files: "a" has a short last block, "dir/b" is a whole number of
 * blocks, "dir/sub/c" is shorter than one block. */
#define NFILES 3
static void make_files(struct tu_file *f, uint32_t bs)
{
	f[0] = (struct tu_file){ "a", 5ull * bs + bs / 2 + 3 };
	f[1] = (struct tu_file){ "dir/b", 4ull * bs };
	f[2] = (struct tu_file){ "dir/sub/c", 100 };
}

/* Access order; a3, a4 and b2 are never read. */
static const struct tu_access order[] = {
	{ 0, 2 }, { 1, 0 }, { 0, 0 }, { 2, 0 }, { 0, 5 }, { 1, 3 }, { 0, 1 }, { 1, 1 },
};
#define NACC (sizeof(order) / sizeof(order[0]))

/* Check every property of an opened image built from make_files/order. */
static void check_image(struct yolo_image *img, uint32_t bs, int level, bool mem_backed)
{
	struct tu_file files[NFILES];
	make_files(files, bs);
	const struct yolo_image_info *in = yolo_image_info(img);
	assert_int_equal(in->block_size, bs);
	assert_int_equal(1u << in->block_shift, bs);
	assert_int_equal(in->file_count, NFILES);
	assert_int_equal(in->block_count, NACC);
	assert_int_equal(in->data_off % YOLO_DATA_ALIGN, 0);
	uint64_t raw = 0, stored = 0;
	for (size_t i = 0; i < NACC; i++)
		raw += tu_block_len(files[order[i].file].size, bs, order[i].block);
	assert_int_equal(in->raw_bytes, raw);
	assert_true(in->data_size < raw);                /* zero blocks are elided */
	if (level > 0)
		assert_true(in->incompat & YOLO_INCOMPAT_ZSTD);
	else
		assert_int_equal(in->incompat, 0);

	/* Files: find_file by path, identity, fingerprint. */
	for (uint32_t i = 0; i < NFILES; i++) {
		uint32_t id = UINT32_MAX;
		assert_int_equal(yolo_image_find_file(img, files[i].path, &id), 0);
		assert_int_equal(id, i);
		const struct yolo_file *f = yolo_image_file(img, id);
		assert_non_null(f);
		assert_string_equal(f->path, files[i].path);
		struct yolo_file_ident want = tu_ident(i, files[i].size);
		assert_int_equal(f->ident.size, want.size);
		assert_int_equal(f->ident.mtime_ns, want.mtime_ns);
		assert_int_equal(f->ident.ino, want.ino);
		assert_int_equal(f->ident.dev, want.dev);
		assert_int_equal(f->fingerprint,
				 yolo_fingerprint(yolo_image_block(img, f->first_block), f->block_count));
	}
	assert_null(yolo_image_file(img, NFILES));
	assert_null(yolo_image_file(img, UINT32_MAX));
	static const char *absent[] = { "nope", "a/", "dir", "dir/sub", "dir/b/", "A", "", "dir/sub/c/x" };
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		uint32_t id = 77;
		assert_int_equal(yolo_image_find_file(img, absent[i], &id), -ENOENT);
	}
	assert_int_equal(yolo_image_file(img, 0)->block_count, 4);
	assert_int_equal(yolo_image_file(img, 1)->block_count, 3);
	assert_int_equal(yolo_image_file(img, 2)->block_count, 1);

	/* Index order is (file_id, block_id) ascending. */
	for (uint64_t i = 1; i < NACC; i++) {
		const struct yolo_block *p = yolo_image_block(img, i - 1), *b = yolo_image_block(img, i);
		assert_true(p->file_id < b->file_id ||
			    (p->file_id == b->file_id && p->block_id < b->block_id));
	}
	assert_null(yolo_image_block(img, NACC));

	uint8_t *want = malloc(bs), *got = malloc(bs + 16);
	assert_non_null(want);
	assert_non_null(got);
	for (size_t s = 0; s < NACC; s++) {
		const struct tu_file *tf = &files[order[s].file];
		uint32_t len = tu_block_len(tf->size, bs, order[s].block);
		const struct yolo_block *b = yolo_image_lookup(img, order[s].file, order[s].block);
		assert_non_null(b);
		/* First-access order. */
		assert_ptr_equal(yolo_image_block_by_seq(img, s), b);
		assert_int_equal(b->seq, s);
		assert_int_equal(b->file_id, order[s].file);
		assert_int_equal(b->block_id, order[s].block);
		assert_int_equal(b->raw_len, len);
		tu_block_content(tf->path, order[s].block, want, len);
		assert_int_equal(b->checksum, XXH3_64bits(want, len));
		switch (tu_block_kind(order[s].block)) {
		case TU_ZERO:
			assert_int_equal(b->flags, YOLO_BLOCK_ZERO);
			assert_int_equal(b->stored_len, 0);
			break;
		case TU_TEXT:
			if (level > 0) {
				assert_int_equal(b->flags, YOLO_BLOCK_ZSTD);
				assert_true(b->stored_len < len);
			} else {
				assert_int_equal(b->flags, 0);
				assert_int_equal(b->stored_len, len);
			}
			break;
		case TU_RANDOM:              /* incompressible: stored raw even with zstd */
			assert_int_equal(b->flags, 0);
			assert_int_equal(b->stored_len, len);
			break;
		}
		stored += b->stored_len;
		for (unsigned flags = 0; flags <= YOLO_READ_VERIFY; flags += YOLO_READ_VERIFY) {
			memset(got, 0xa5, bs + 16);
			assert_int_equal(yolo_image_read_block(img, b, got, bs + 16, flags), (int)len);
			assert_memory_equal(got, want, len);
			assert_int_equal(got[len], 0xa5);   /* nothing written past raw_len */
		}
		/* A buffer of exactly raw_len is enough; one byte less is not. */
		assert_int_equal(yolo_image_read_block(img, b, got, len, YOLO_READ_VERIFY), (int)len);
		assert_int_equal(yolo_image_read_block(img, b, got, len - 1, 0), -EINVAL);
		const void *m = yolo_image_block_mem(img, b);
		if (b->flags || !(mem_backed || yolo_image_is_loaded(img))) {
			assert_null(m);
		} else {
			assert_non_null(m);
			assert_memory_equal(m, want, len);
		}
	}
	assert_int_equal(stored, in->data_size);
	assert_null(yolo_image_block_by_seq(img, NACC));
	assert_null(yolo_image_block_by_seq(img, UINT64_MAX));

	/* First, last and short-last blocks. */
	assert_ptr_equal(yolo_image_lookup(img, 0, 0), yolo_image_block(img, 0));
	assert_ptr_equal(yolo_image_lookup(img, 2, 0), yolo_image_block(img, NACC - 1));
	const struct yolo_block *last = yolo_image_lookup(img, 0, 5);
	assert_non_null(last);
	assert_int_equal(last->raw_len, bs / 2 + 3);
	assert_non_null(yolo_image_lookup(img, 1, 3));
	assert_int_equal(yolo_image_lookup(img, 1, 3)->raw_len, bs);
	assert_int_equal(yolo_image_lookup(img, 2, 0)->raw_len, 100);
	/* Absent: holes, past EOF, other files' ids, bad file ids. */
	assert_null(yolo_image_lookup(img, 0, 3));
	assert_null(yolo_image_lookup(img, 0, 4));
	assert_null(yolo_image_lookup(img, 0, 6));
	assert_null(yolo_image_lookup(img, 1, 2));
	assert_null(yolo_image_lookup(img, 1, 4));
	assert_null(yolo_image_lookup(img, 2, 1));
	assert_null(yolo_image_lookup(img, 0, UINT64_MAX));
	assert_null(yolo_image_lookup(img, NFILES, 0));
	assert_null(yolo_image_lookup(img, UINT32_MAX, 0));
	free(want);
	free(got);
}

static void roundtrip(uint32_t bs, int level)
{
	struct tu_file files[NFILES];
	make_files(files, bs);
	char name[64];
	snprintf(name, sizeof(name), "rt-%u-%d.yolo", bs, level);
	char *path = tu_join(tu_tmpdir, name);
	struct yolo_writer_opts opts = { .block_size = bs, .zstd_level = level };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &opts, files, NFILES, NULL, order, NACC, &err), 0);

	/* From a path. */
	struct yolo_image *img = NULL;
	int ret = yolo_image_open(path, &img, &err);
	if (ret)
		print_error("open: %s\n", err.msg);
	assert_int_equal(ret, 0);
	assert_string_equal(yolo_image_name(img), path);
	check_image(img, bs, level, false);
	assert_false(yolo_image_is_loaded(img));

	/* Loaded into memory: read_block and block_mem agree. */
	struct yolo_load_result res;
	memset(&res, 0xff, sizeof(res));
	assert_int_equal(yolo_image_load(img, 0, &res, &err), 0);
	assert_true(yolo_image_is_loaded(img));
	assert_int_equal(res.bytes, yolo_image_info(img)->data_size);
	assert_false(res.pinned);
	check_image(img, bs, level, false);
	assert_int_equal(yolo_image_load(img, 0, NULL, &err), 0);   /* idempotent */
	yolo_image_unload(img);
	assert_false(yolo_image_is_loaded(img));
	check_image(img, bs, level, false);
	/* With mlock requested: either pinned or the reason is reported. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(yolo_image_load(img, YOLO_LOAD_MLOCK, &res, &err), 0);
	assert_true(res.pinned || res.mlock_errno != 0);
	check_image(img, bs, level, false);
	/* Taken over: the caller's mapping holds the stored bytes and the
	 * image reads its file again. */
	size_t map_len = 0;
	uint8_t *data = yolo_image_take_data(img, &map_len);
	assert_non_null(data);
	assert_true(map_len >= yolo_image_info(img)->data_size);
	assert_false(yolo_image_is_loaded(img));
	for (uint64_t i = 0; i < yolo_image_info(img)->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		if (b->flags & (YOLO_BLOCK_ZERO | YOLO_BLOCK_ZSTD))
			continue;
		static uint8_t buf[1 << 20];
		assert_int_equal(yolo_image_read_block(img, b, buf, b->raw_len, YOLO_READ_VERIFY),
				 (int)b->raw_len);
		assert_memory_equal(data + b->data_off, buf, b->raw_len);
	}
	munmap(data, map_len);
	assert_null(yolo_image_take_data(img, &map_len));
	check_image(img, bs, level, false);
	yolo_image_close(img);

	/* From a descriptor the caller keeps. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	img = NULL;
	assert_int_equal(yolo_image_open_fd(fd, "label", &img, &err), 0);
	assert_string_equal(yolo_image_name(img), "label");
	check_image(img, bs, level, false);
	yolo_image_close(img);
	assert_true(fcntl(fd, F_GETFD) >= 0);               /* still ours */
	close(fd);

	/* From memory: block_mem points into the buffer without loading. */
	size_t len;
	uint8_t *buf = tu_read_file(path, &len);
	assert_non_null(buf);
	img = NULL;
	assert_int_equal(yolo_image_open_mem(buf, len, &img, &err), 0);
	check_image(img, bs, level, true);
	assert_int_equal(yolo_image_load(img, 0, NULL, &err), 0);
	check_image(img, bs, level, true);
	yolo_image_close(img);
	free(buf);
	unlink(path);
	free(path);
}

static void test_roundtrip_512(void **s) { (void)s; roundtrip(512, 0); }
static void test_roundtrip_512_zstd(void **s) { (void)s; roundtrip(512, 3); }
static void test_roundtrip_4096(void **s) { (void)s; roundtrip(4096, 0); }
static void test_roundtrip_4096_zstd(void **s) { (void)s; roundtrip(4096, 3); }
static void test_roundtrip_65536(void **s) { (void)s; roundtrip(65536, 0); }
static void test_roundtrip_65536_zstd(void **s) { (void)s; roundtrip(65536, 19); }
static void test_roundtrip_1m(void **s) { (void)s; roundtrip(1u << 20, 0); }
static void test_roundtrip_1m_zstd(void **s) { (void)s; roundtrip(1u << 20, 1); }

/* Default options (NULL) give 4096-byte blocks and no compression. */
static void test_default_opts(void **s)
{
	(void)s;
	char *path = tu_join(tu_tmpdir, "default.yolo");
	struct yolo_writer *w;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_writer_create(&w, path, NULL, &err), 0);
	assert_int_equal(yolo_writer_block_size(w), 4096);
	struct yolo_file_ident id = tu_ident(0, 5000);
	uint32_t fid;
	assert_int_equal(yolo_writer_add_file(w, "f", &id, &fid, &err), 0);
	uint8_t buf[4096];
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(yolo_writer_add_block(w, fid, 1, buf, 904, &err), 0);
	assert_int_equal(yolo_writer_commit(w, &err), 0);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	assert_int_equal(yolo_image_info(img)->block_size, 4096);
	assert_int_equal(yolo_image_info(img)->incompat, 0);
	const struct yolo_block *b = yolo_image_lookup(img, 0, 1);
	assert_non_null(b);
	assert_int_equal(b->flags, 0);
	assert_int_equal(b->raw_len, 904);
	assert_null(yolo_image_lookup(img, 0, 0));
	yolo_image_close(img);
	unlink(path);
	free(path);
}

/* An image with no files and no blocks is valid and empty. */
static void test_empty_image(void **s)
{
	(void)s;
	char *path = tu_join(tu_tmpdir, "empty.yolo");
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, NULL, NULL, 0, NULL, NULL, 0, &err), 0);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	assert_int_equal(yolo_image_info(img)->file_count, 0);
	assert_int_equal(yolo_image_info(img)->block_count, 0);
	uint32_t id;
	assert_int_equal(yolo_image_find_file(img, "a", &id), -ENOENT);
	assert_null(yolo_image_lookup(img, 0, 0));
	assert_null(yolo_image_block(img, 0));
	assert_null(yolo_image_block_by_seq(img, 0));
	assert_int_equal(yolo_image_load(img, 0, NULL, &err), 0);
	struct yolo_verify_report rep;
	assert_int_equal(yolo_image_verify(img, -1, &rep, NULL, NULL), 0);
	assert_int_equal(rep.blocks_ok, 0);
	yolo_image_close(img);
	yolo_image_close(NULL);
	unlink(path);
	free(path);
}

/* Many files and blocks: hash tables grow, binary searches span levels. */
static void test_many_files(void **s)
{
	(void)s;
	enum { N = 700 };
	static struct tu_file files[N];
	static char names[N][32];
	static struct tu_access acc[3 * N];
	size_t nacc = 0;
	for (uint32_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "d%u/f%05u", i % 7, (i * 7919) % N);
		files[i] = (struct tu_file){ names[i], 512ull * (i % 5 + 1) - (i % 3) };
	}
	/* Reverse-ish access order, every file's last block, some first blocks. */
	for (uint32_t i = N; i-- > 0;) {
		uint64_t nb = (files[i].size + 511) / 512;
		acc[nacc++] = (struct tu_access){ i, nb - 1 };
		if (nb > 1 && i % 2)
			acc[nacc++] = (struct tu_access){ i, 0 };
	}
	char *path = tu_join(tu_tmpdir, "many.yolo");
	struct yolo_writer_opts opts = { .block_size = 512, .zstd_level = 1 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &opts, files, N, NULL, acc, nacc, &err), 0);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	assert_int_equal(yolo_image_info(img)->file_count, N);
	assert_int_equal(yolo_image_info(img)->block_count, nacc);
	uint8_t want[512], got[512];
	for (size_t k = 0; k < nacc; k++) {
		uint32_t id;
		assert_int_equal(yolo_image_find_file(img, files[acc[k].file].path, &id), 0);
		assert_int_equal(id, acc[k].file);
		const struct yolo_block *b = yolo_image_lookup(img, id, acc[k].block);
		assert_non_null(b);
		assert_ptr_equal(yolo_image_block_by_seq(img, k), b);
		uint32_t len = tu_block_len(files[id].size, 512, acc[k].block);
		tu_block_content(files[id].path, acc[k].block, want, len);
		assert_int_equal(yolo_image_read_block(img, b, got, sizeof(got), YOLO_READ_VERIFY), (int)len);
		assert_memory_equal(got, want, len);
	}
	yolo_image_close(img);
	unlink(path);
	free(path);
}

/* YOLO_READ_VERIFY catches stored data that no longer matches its checksum
 * (the data section is not covered by the metadata checksum, so open
 * succeeds); without the flag the bytes are returned as stored. */
static void test_read_verify_detects_bad_data(void **s)
{
	(void)s;
	const uint32_t bs = 4096;
	struct tu_file files[NFILES];
	make_files(files, bs);
	char *path = tu_join(tu_tmpdir, "badata.yolo");
	struct yolo_writer_opts opts = { .block_size = bs, .zstd_level = 3 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &opts, files, NFILES, NULL, order, NACC, &err), 0);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	const struct yolo_block *raw = yolo_image_lookup(img, 0, 2);   /* random: raw */
	const struct yolo_block *z = yolo_image_lookup(img, 1, 1);     /* text: zstd */
	assert_int_equal(raw->flags, 0);
	assert_int_equal(z->flags, YOLO_BLOCK_ZSTD);
	uint64_t raw_at = yolo_image_info(img)->data_off + raw->data_off + 17;
	uint64_t z_at = yolo_image_info(img)->data_off + z->data_off + z->stored_len / 2;
	yolo_image_close(img);

	size_t len;
	uint8_t *buf = tu_read_file(path, &len);
	buf[raw_at] ^= 0x40;
	buf[z_at] ^= 0xff;
	assert_int_equal(tu_write_file(path, buf, len), 0);
	uint8_t got[4096];
	for (int mode = 0; mode < 3; mode++) {
		img = NULL;
		if (mode == 2)
			assert_int_equal(yolo_image_open_mem(buf, len, &img, &err), 0);
		else
			assert_int_equal(yolo_image_open(path, &img, &err), 0);
		if (mode == 1)
			assert_int_equal(yolo_image_load(img, 0, NULL, &err), 0);
		raw = yolo_image_lookup(img, 0, 2);
		z = yolo_image_lookup(img, 1, 1);
		assert_int_equal(yolo_image_read_block(img, raw, got, sizeof(got), YOLO_READ_VERIFY), -EUCLEAN);
		assert_int_equal(yolo_image_read_block(img, raw, got, sizeof(got), 0), (int)raw->raw_len);
		assert_int_equal(yolo_image_read_block(img, z, got, sizeof(got), YOLO_READ_VERIFY), -EUCLEAN);
		/* Untouched blocks still verify. */
		const struct yolo_block *ok = yolo_image_lookup(img, 0, 5);
		assert_int_equal(yolo_image_read_block(img, ok, got, sizeof(got), YOLO_READ_VERIFY), (int)ok->raw_len);
		struct yolo_verify_report rep;
		assert_int_equal(yolo_image_verify(img, -1, &rep, NULL, NULL), 1);
		assert_int_equal(rep.blocks_bad, 2);
		assert_int_equal(rep.blocks_ok, NACC - 2);
		yolo_image_close(img);
	}
	free(buf);
	unlink(path);
	free(path);
}

/* The image file shrinking after open makes reads fail cleanly. */
static void test_read_after_truncate(void **s)
{
	(void)s;
	struct tu_file files[NFILES];
	make_files(files, 4096);
	char *path = tu_join(tu_tmpdir, "shrink.yolo");
	struct yolo_writer_opts opts = { .block_size = 4096 };
	struct yolo_err err = { "" };
	assert_int_equal(tu_write_image(path, &opts, files, NFILES, NULL, order, NACC, &err), 0);
	struct yolo_image *img;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	assert_int_equal(truncate(path, (off_t)yolo_image_info(img)->data_off), 0);
	const struct yolo_block *b = yolo_image_lookup(img, 0, 2);
	uint8_t got[4096];
	int ret = yolo_image_read_block(img, b, got, sizeof(got), YOLO_READ_VERIFY);
	assert_true(ret < 0);
	yolo_image_close(img);
	unlink(path);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_512),
		cmocka_unit_test(test_roundtrip_512_zstd),
		cmocka_unit_test(test_roundtrip_4096),
		cmocka_unit_test(test_roundtrip_4096_zstd),
		cmocka_unit_test(test_roundtrip_65536),
		cmocka_unit_test(test_roundtrip_65536_zstd),
		cmocka_unit_test(test_roundtrip_1m),
		cmocka_unit_test(test_roundtrip_1m_zstd),
		cmocka_unit_test(test_default_opts),
		cmocka_unit_test(test_empty_image),
		cmocka_unit_test(test_many_files),
		cmocka_unit_test(test_read_verify_detects_bad_data),
		cmocka_unit_test(test_read_after_truncate),
	};
	return cmocka_run_group_tests_name("image_rw", tests, tu_group_setup, tu_group_teardown);
}
