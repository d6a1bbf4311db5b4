/* test_image_corrupt.c - yolo_image_open() must reject every kind of
 * corrupt image cleanly: a negative errno (-EUCLEAN for corruption,
 * -EOPNOTSUPP for a newer version or unknown incompatible feature) and a
 * message naming the problem, never a crash.  Each case edits one field of
 * a valid image and then recomputes the metadata and header checksums, so
 * the specific validation runs rather than the checksum catching it.  Every
 * case goes through both the file and the in-memory (exactly sized heap
 * buffer, so ASan sees over-reads) entry points. */
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
#include <zstd.h>

#include "testutil.h"

static char *tmpdir;
static char *cpath;                  /* where corrupted images are written */

/* The valid base image and where its sections are. */
static struct {
	uint8_t *buf;
	size_t len;
	uint64_t data_off, data_size, ft_off, ft_size, str_off, str_size, idx_off, idx_size;
	uint64_t ext_off, times_off, times_size;         /* the extension table, file times */
	uint64_t nblocks;
	uint32_t nfiles;
} base;

#define HDR(f) offsetof(struct yolo_disk_header, f)
#define DF(f) offsetof(struct yolo_disk_file, f)
#define DB(f) offsetof(struct yolo_disk_block, f)
#define EXT(f) offsetof(struct yolo_disk_ext, f)

/* 512-byte blocks, zstd.  Index entries (sorted):
 *   0 a/0 zero   1 a/1 zstd   2 a/2 raw   3 a/4 zstd   4 a/5 raw   5 a/6 zero (100 bytes)
 *   6 xx/yy/0 zero   7 xx/yy/1 zstd   8 c/0 zero   9 c/1 zstd (188 bytes)  */
static const struct tu_file files[] = {
	{ "a", 6 * 512 + 100 },
	{ "xx/yy", 1024 },
	{ "c", 700 },
};
static const struct tu_access acc[] = {
	{ 0, 1 }, { 1, 1 }, { 0, 2 }, { 2, 0 }, { 0, 0 }, { 2, 1 }, { 0, 5 }, { 1, 0 }, { 0, 4 }, { 0, 6 },
};
enum { E_ZERO = 0, E_ZSTD = 1, E_RAW = 2, E_ZSTD2 = 3, E_RAW2 = 4, E_SHORT_ZERO = 5, E_LAST = 9 };

static uint8_t *F(uint8_t *b, uint32_t i) { return b + base.ft_off + (uint64_t)i * sizeof(struct yolo_disk_file); }
static uint8_t *B(uint8_t *b, uint32_t i) { return b + base.idx_off + (uint64_t)i * sizeof(struct yolo_disk_block); }
static uint8_t *P(uint8_t *b, uint32_t i) { return b + base.str_off + tu_get64(F(b, i) + DF(path_off)); }

static int group_setup(void **state)
{
	(void)state;
	tmpdir = tu_mkdtemp();
	if (!tmpdir)
		return -1;
	char *path = tu_join(tmpdir, "base.yolo");
	cpath = tu_join(tmpdir, "corrupt.yolo");
	struct yolo_writer_opts o = { .block_size = 512, .zstd_level = 3 };
	struct yolo_err err = { "" };
	if (tu_write_image(path, &o, files, 3, NULL, acc, 10, &err) < 0) {
		fprintf(stderr, "writing base image: %s\n", err.msg);
		return -1;
	}
	base.buf = tu_read_file(path, &base.len);
	free(path);
	if (!base.buf)
		return -1;
	const uint8_t *h = base.buf;
	base.data_off = tu_get64(h + HDR(data_off));
	base.data_size = tu_get64(h + HDR(data_size));
	base.ft_off = tu_get64(h + HDR(file_table_off));
	base.ft_size = tu_get64(h + HDR(file_table_size));
	base.str_off = tu_get64(h + HDR(strings_off));
	base.str_size = tu_get64(h + HDR(strings_size));
	base.idx_off = tu_get64(h + HDR(index_off));
	base.idx_size = tu_get64(h + HDR(index_size));
	base.nblocks = tu_get64(h + HDR(block_count));
	base.nfiles = tu_get32(h + HDR(file_count));
	base.ext_off = tu_get64(h + HDR(ext_off));
	base.times_off = tu_get64(h + base.ext_off + EXT(off));
	base.times_size = tu_get64(h + base.ext_off + EXT(size));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(base.buf);
	free(cpath);
	tu_rmtree(tmpdir);
	free(tmpdir);
	return 0;
}

/* The base image is what the case table assumes. */
static void test_base_layout(void **s)
{
	(void)s;
	assert_int_equal(base.nblocks, 10);
	assert_int_equal(base.nfiles, 3);
	assert_true(base.data_off < base.ft_off && base.ft_off < base.str_off &&
		    base.str_off < base.idx_off && base.idx_off + base.idx_size <= base.times_off &&
		    base.times_off + base.times_size <= base.ext_off);
	assert_int_equal(tu_get32(base.buf + HDR(ext_count)), 1);
	assert_true(tu_get32(base.buf + HDR(compat)) & YOLO_COMPAT_EXT);
	assert_int_equal(tu_get32(base.buf + base.ext_off + EXT(type)), YOLO_EXT_FILE_TIMES);
	assert_int_equal(base.times_size, 3 * sizeof(struct yolo_disk_file_times));
	assert_int_equal(base.ext_off + sizeof(struct yolo_disk_ext), base.len);
	static const uint16_t flags[10] = {
		YOLO_BLOCK_ZERO, YOLO_BLOCK_ZSTD, 0, YOLO_BLOCK_ZSTD, 0, YOLO_BLOCK_ZERO,
		YOLO_BLOCK_ZERO, YOLO_BLOCK_ZSTD, YOLO_BLOCK_ZERO, YOLO_BLOCK_ZSTD,
	};
	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(tu_get16(B(base.buf, i) + DB(flags)), flags[i]);
	assert_int_equal(tu_get32(B(base.buf, E_SHORT_ZERO) + DB(raw_len)), 100);
	assert_memory_equal(P(base.buf, 1), "xx/yy", 5);
	struct yolo_image *img;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_image_open_mem(base.buf, base.len, &img, &err), 0);
	yolo_image_close(img);
}

/* Use an image that opened: every read must succeed or report -EUCLEAN. */
static void exercise(struct yolo_image *img)
{
	const struct yolo_image_info *in = yolo_image_info(img);
	uint8_t *buf = malloc(in->block_size);
	for (uint64_t i = 0; i < in->block_count; i++) {
		const struct yolo_block *b = yolo_image_block_by_seq(img, i);
		assert_non_null(b);
		assert_int_equal(b->seq, i);
		assert_ptr_equal(yolo_image_lookup(img, b->file_id, b->block_id), b);
		int r = yolo_image_read_block(img, b, buf, in->block_size, YOLO_READ_VERIFY);
		assert_true(r == (int)b->raw_len || r == -EUCLEAN);
	}
	for (uint32_t i = 0; i < in->file_count; i++) {
		uint32_t id;
		assert_int_equal(yolo_image_find_file(img, yolo_image_file(img, i)->path, &id), 0);
		assert_int_equal(id, i);
	}
	yolo_image_verify(img, -1, NULL, NULL, NULL);
	free(buf);
}

/* Open `b` from a file and from memory; return the common result, or
 * INT32_MIN (after printing why) when the two disagree or a failure has no
 * message.  The message of the file open goes to `msg`.  With `use`, an
 * image that opens is also exercised. */
static int open_both(const uint8_t *b, size_t len, char *msg, size_t msglen, bool use)
{
	assert_int_equal(tu_write_file(cpath, b, len), 0);
	struct yolo_err e1, e2;
	memset(&e1, 0, sizeof(e1));
	memset(&e2, 0, sizeof(e2));
	struct yolo_image *img = NULL;
	int r1 = yolo_image_open(cpath, &img, &e1);
	if (r1 == 0) {
		if (use)
			exercise(img);
		yolo_image_close(img);
	}
	int r3 = yolo_image_open(cpath, &img, NULL);    /* no message wanted */
	if (r3 == 0)
		yolo_image_close(img);
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, b, len);
	int r2 = yolo_image_open_mem(copy, len, &img, &e2);
	if (r2 == 0) {
		if (use)
			exercise(img);
		yolo_image_close(img);
	}
	free(copy);
	snprintf(msg, msglen, "%s", e1.msg);
	if (r1 != r2 || r1 != r3) {
		print_message("  file and memory opens disagree: %d (%s) vs %d (%s), NULL err %d\n",
			      r1, e1.msg, r2, e2.msg, r3);
		return INT32_MIN;
	}
	if (r1 < 0 && (!e1.msg[0] || !e2.msg[0])) {
		print_message("  failure %d without a message\n", r1);
		return INT32_MIN;
	}
	/* yolo_image.h promises a one-line message; untrusted bytes (paths)
	 * must not smuggle in newlines or terminal escapes. */
	for (const char *p = e1.msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			print_message("  message contains control byte 0x%02x: \"%s\"\n",
				      (unsigned char)*p, e1.msg);
			return INT32_MIN;
		}
	return r1;
}

/* expect value: the image may be accepted or rejected with -EUCLEAN; the
 * case exists for what ASan/UBSan see while it is parsed. */
#define ANY 1

#define FIX_META 1u
#define FIX_HDR 2u
#define FIX_BOTH (FIX_META | FIX_HDR)

enum where { W_HDR, W_FILE, W_BLK, W_FN };

struct ccase {
	const char *name;
	enum where where;
	uint32_t index;                  /* file or block entry */
	size_t field;                    /* byte offset within the header/entry */
	int width;                       /* 1, 2, 4 or 8 */
	uint64_t value;
	void (*fn)(uint8_t *b, size_t *len);
	unsigned fix;
	int expect;
	const char *needle;              /* must occur in the message (case-insensitive) */
};

/* ---- custom edits ---- */
static void m_magic(uint8_t *b, size_t *l) { (void)l; b[0] = 'X'; }
static void m_hdr_flip(uint8_t *b, size_t *l) { (void)l; b[HDR(created_ns)] ^= 1; }
static void m_hdr_csum_flip(uint8_t *b, size_t *l) { (void)l; b[HDR(header_checksum) + 7] ^= 0x80; }
static void m_meta_csum_flip(uint8_t *b, size_t *l) { (void)l; b[HDR(meta_checksum)] ^= 1; }
static void m_incompat_unknown(uint8_t *b, size_t *l) { (void)l; tu_put32(b + HDR(incompat), tu_get32(b + HDR(incompat)) | (1u << 5)); }
static void m_compat_unknown(uint8_t *b, size_t *l) { (void)l; tu_put32(b + HDR(compat), tu_get32(b + HDR(compat)) | (1u << 9)); }
static void m_raw_bytes(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(raw_bytes), tu_get64(b + HDR(raw_bytes)) + 1); }
static void m_data_into_ft(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(data_size), base.ft_off - base.data_off + 1); }
static void m_data_short(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(data_size), base.data_size - 1); }
static void m_ft_past_eof(uint8_t *b, size_t *l) { tu_put64(b + HDR(file_table_off), *l); }
static void m_idx_past_eof(uint8_t *b, size_t *l) { tu_put64(b + HDR(index_off), *l - base.idx_size + 1); }
static void m_data_past_eof(uint8_t *b, size_t *l) { tu_put64(b + HDR(data_off), *l + 4096); }
static void m_str_over_ft(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(strings_off), base.ft_off); }
static void m_idx_over_data(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(index_off), base.data_off); }
static void m_ft_over_idx(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(file_table_off), base.idx_off + 8); }
static void m_ft_size(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(file_table_size), base.ft_size + 64); }
static void m_idx_size(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(index_size), base.idx_size - 48); }
static void set_files(uint8_t *b, uint64_t n) { tu_put32(b + HDR(file_count), (uint32_t)n); tu_put64(b + HDR(file_table_size), n * 64); }
static void set_blocks(uint8_t *b, uint64_t n) { tu_put64(b + HDR(block_count), n); tu_put64(b + HDR(index_size), n * 48); }
static void m_files_u32max(uint8_t *b, size_t *l) { (void)l; set_files(b, UINT32_MAX); }
static void m_files_limit1(uint8_t *b, size_t *l) { (void)l; set_files(b, YOLO_MAX_FILES + 1ull); }
static void m_files_limit(uint8_t *b, size_t *l) { (void)l; set_files(b, YOLO_MAX_FILES); }
static void m_files_minus1(uint8_t *b, size_t *l) { (void)l; set_files(b, base.nfiles - 1); }
static void m_files_2p31(uint8_t *b, size_t *l) { (void)l; set_files(b, 1ull << 31); }
static void m_blocks_u64max(uint8_t *b, size_t *l) { (void)l; set_blocks(b, UINT64_MAX); }   /* size wraps */
static void m_blocks_wrap(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(block_count), base.nblocks + (1ull << 60)); } /* *48 wraps to the real size */
static void m_blocks_2p32(uint8_t *b, size_t *l) { (void)l; set_blocks(b, (1ull << 32) + base.nblocks); }
static void m_blocks_limit(uint8_t *b, size_t *l) { (void)l; set_blocks(b, YOLO_MAX_BLOCKS); }
static void m_blocks_limit1(uint8_t *b, size_t *l) { (void)l; set_blocks(b, YOLO_MAX_BLOCKS + 1ull); }
static void m_blocks_minus1(uint8_t *b, size_t *l) { (void)l; set_blocks(b, base.nblocks - 1); }
static void m_blocks_2p63(uint8_t *b, size_t *l) { (void)l; set_blocks(b, 1ull << 63); }
static void m_meta_ft(uint8_t *b, size_t *l) { (void)l; F(b, 1)[DF(ino)] ^= 1; }
static void m_meta_str(uint8_t *b, size_t *l) { (void)l; b[base.str_off] ^= 0x20; }
static void m_meta_idx(uint8_t *b, size_t *l) { (void)l; B(b, 3)[DB(checksum)] ^= 1; }
static void m_meta_idx_last(uint8_t *b, size_t *l) { (void)l; b[base.idx_off + base.idx_size - 1] ^= 1; }
/* extension table and file times */
static uint8_t *X(uint8_t *b) { return b + base.ext_off; }
static void fix_ext(uint8_t *b, size_t *l) { tu_fix_ext(b, *l, true); tu_fix_header(b); }
static void m_ext_count0(uint8_t *b, size_t *l) { tu_put32(b + HDR(ext_count), 0); fix_ext(b, l); }
static void m_ext_count_max(uint8_t *b, size_t *l) { tu_put32(b + HDR(ext_count), YOLO_MAX_EXT + 1); fix_ext(b, l); }
static void m_ext_no_flag(uint8_t *b, size_t *l) { tu_put32(b + HDR(compat), tu_get32(b + HDR(compat)) & ~YOLO_COMPAT_EXT); fix_ext(b, l); }
static void m_ext_past_eof(uint8_t *b, size_t *l) { tu_put64(b + HDR(ext_off), *l - 16); tu_fix_header(b); }
static void m_ext_over_idx(uint8_t *b, size_t *l) { (void)l; tu_put64(b + HDR(ext_off), base.idx_off); tu_fix_header(b); }
static void m_ext_reserved(uint8_t *b, size_t *l) { tu_put32(b + HDR(ext_reserved), 1); fix_ext(b, l); }
static void m_ext_table_csum(uint8_t *b, size_t *l) { (void)l; X(b)[EXT(type)] ^= 0x40; }
static void m_ext_flags(uint8_t *b, size_t *l) { tu_put32(X(b) + EXT(flags), 2); fix_ext(b, l); }
static void m_ext_required_unknown(uint8_t *b, size_t *l) { tu_put32(X(b) + EXT(type), 99); tu_put32(X(b) + EXT(flags), YOLO_EXTF_REQUIRED); fix_ext(b, l); }
static void m_ext_unknown_skipped(uint8_t *b, size_t *l) { tu_put32(X(b) + EXT(type), 99); fix_ext(b, l); }
static void m_ext_dup(uint8_t *b, size_t *l) { memcpy(b + *l, X(b), sizeof(struct yolo_disk_ext)); *l += sizeof(struct yolo_disk_ext); tu_put32(b + HDR(ext_count), 2); fix_ext(b, l); }
static void m_times_size(uint8_t *b, size_t *l) { tu_put64(X(b) + EXT(size), base.times_size - 16); fix_ext(b, l); }
static void m_times_csum(uint8_t *b, size_t *l) { (void)l; b[base.times_off] ^= 1; }
static void m_times_reserved(uint8_t *b, size_t *l) { b[base.times_off + 8] = 1; fix_ext(b, l); }
static void m_times_over_idx(uint8_t *b, size_t *l) { tu_put64(X(b) + EXT(off), base.idx_off); fix_ext(b, l); }
static void m_times_past_eof(uint8_t *b, size_t *l) { tu_put64(X(b) + EXT(off), *l - 8); fix_ext(b, l); }
static void m_times_over_ext(uint8_t *b, size_t *l) { tu_put64(X(b) + EXT(off), base.ext_off - 16); fix_ext(b, l); }
static void m_path_abs(uint8_t *b, size_t *l) { (void)l; P(b, 0)[0] = '/'; }
static void m_path_dotdot(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "../yy", 5); }
static void m_path_dotdot_mid(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "x/../", 5); }
static void m_path_dotdot_all(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "../..", 5); }
static void m_path_empty_comp(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "xx//y", 5); }
static void m_path_trailing(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "xxyy/", 5); }
static void m_path_dot(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "./xyz", 5); }
static void m_path_nul(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "xx/y\0", 5); }
static void m_path_ctrl(uint8_t *b, size_t *l) { (void)l; memcpy(P(b, 1), "\n\033[2J", 5); P(b, 1)[4] = '\0'; }
static void m_path_dup(uint8_t *b, size_t *l) { (void)l; P(b, 2)[0] = 'a'; }
/* File 0's path becomes "axx/yyc", overlapping the other paths' bytes:
 * the format does not forbid shared string bytes, so the sum of path
 * lengths may exceed the string table. */
static void m_paths_overlap(uint8_t *b, size_t *l) { (void)l; tu_put32(F(b, 0) + DF(path_len), (uint32_t)base.str_size); }
static void m_swap01(uint8_t *b, size_t *l)
{
	(void)l;
	uint8_t t[48];
	memcpy(t, B(b, 0), 48);
	memcpy(B(b, 0), B(b, 1), 48);
	memcpy(B(b, 1), t, 48);
}
static void m_dup_block_id(uint8_t *b, size_t *l) { (void)l; tu_put64(B(b, 1) + DB(block_id), tu_get64(B(b, 0) + DB(block_id))); }
static void m_dup_seq(uint8_t *b, size_t *l) { (void)l; tu_put32(B(b, 1) + DB(seq), tu_get32(B(b, 0) + DB(seq))); }
static void m_swap_seq_raw(uint8_t *b, size_t *l)
{
	(void)l;
	uint32_t s2 = tu_get32(B(b, E_RAW) + DB(seq)), s4 = tu_get32(B(b, E_RAW2) + DB(seq));
	tu_put32(B(b, E_RAW) + DB(seq), s4);
	tu_put32(B(b, E_RAW2) + DB(seq), s2);
}
static void m_raw_overlap(uint8_t *b, size_t *l)
{
	(void)l;
	tu_put64(B(b, E_RAW2) + DB(data_off), tu_get64(B(b, E_RAW) + DB(data_off)) + 1);
}
static void m_raw_at_end(uint8_t *b, size_t *l) { (void)l; tu_put64(B(b, E_RAW2) + DB(data_off), base.data_size); }
static void m_raw_straddle(uint8_t *b, size_t *l) { (void)l; tu_put64(B(b, E_RAW2) + DB(data_off), base.data_size - 511); }
static void m_zstd_straddle(uint8_t *b, size_t *l) { (void)l; tu_put64(B(b, E_ZSTD) + DB(data_off), base.data_size - 1); }
static void m_zstd_no_feature(uint8_t *b, size_t *l) { (void)l; tu_put32(b + HDR(incompat), 0); }
static void m_zstd_big(uint8_t *b, size_t *l) { (void)l; tu_put32(B(b, E_ZSTD) + DB(stored_len), (uint32_t)base.data_size + 1); }

#define H(n, f, w, v, e, nd) { n, W_HDR, 0, HDR(f), w, v, NULL, FIX_HDR, e, nd }
#define FE(n, i, f, w, v, nd) { n, W_FILE, i, DF(f), w, v, NULL, FIX_BOTH, -EUCLEAN, nd }
#define BE(n, i, f, w, v, nd) { n, W_BLK, i, DB(f), w, v, NULL, FIX_BOTH, -EUCLEAN, nd }
#define FN(n, fn, fix, e, nd) { n, W_FN, 0, 0, 0, 0, fn, fix, e, nd }

static const struct ccase cases[] = {
	/* header */
	FN("bad magic", m_magic, FIX_HDR, -EUCLEAN, "magic"),
	FN("bad magic, stale checksum", m_magic, 0, -EUCLEAN, "magic"),
	H("version 2", version, 4, 2, -EOPNOTSUPP, "version"),
	H("version 0", version, 4, 0, -EOPNOTSUPP, "version"),
	H("version 0xffffffff", version, 4, UINT32_MAX, -EOPNOTSUPP, "version"),
	H("header_size 512", header_size, 4, 512, -EUCLEAN, "header size"),
	H("header_size 0", header_size, 4, 0, -EUCLEAN, "header size"),
	FN("unknown incompat feature", m_incompat_unknown, FIX_HDR, -EOPNOTSUPP, "feature"),
	H("incompat 0x80000000", incompat, 4, 0x80000001u, -EOPNOTSUPP, "feature"),
	FN("unknown compat feature is ignored", m_compat_unknown, FIX_HDR, 0, NULL),
	FN("header checksum mismatch (body)", m_hdr_flip, 0, -EUCLEAN, "header checksum"),
	FN("header checksum mismatch (field)", m_hdr_csum_flip, 0, -EUCLEAN, "header checksum"),
	H("block_shift 8", block_shift, 4, 8, -EUCLEAN, "block size"),
	H("block_shift 21", block_shift, 4, 21, -EUCLEAN, "block size"),
	H("block_shift 0", block_shift, 4, 0, -EUCLEAN, "block size"),
	H("block_shift 0xffffffff", block_shift, 4, UINT32_MAX, -EUCLEAN, "block size"),
	H("block_shift 10 (lengths no longer fit)", block_shift, 4, 10, -EUCLEAN, "length"),
	H("reserved[0]", reserved[0], 1, 1, -EUCLEAN, "reserved"),
	H("reserved[95]", reserved[95], 1, 0x80, -EUCLEAN, "reserved"),
	FN("raw_bytes off by one", m_raw_bytes, FIX_HDR, -EUCLEAN, "raw bytes"),
	FN("meta checksum field", m_meta_csum_flip, FIX_HDR, -EUCLEAN, "metadata checksum"),
	/* sections: placement */
	H("data_off 128 (in header)", data_off, 8, 128, -EUCLEAN, "header"),
	H("data_off 0 (in header)", data_off, 8, 0, -EUCLEAN, "header"),
	H("file_table_off 0 (in header)", file_table_off, 8, 0, -EUCLEAN, "header"),
	H("index_off 255 (in header)", index_off, 8, 255, -EUCLEAN, "header"),
	FN("file table past EOF", m_ft_past_eof, FIX_HDR, -EUCLEAN, "past the end"),
	FN("index straddles EOF", m_idx_past_eof, FIX_HDR, -EUCLEAN, "past the end"),
	FN("data section past EOF", m_data_past_eof, FIX_HDR, -EUCLEAN, "past the end"),
	H("data_off 2^64-1", data_off, 8, UINT64_MAX, -EUCLEAN, "past the end"),
	H("data_size 2^64-1", data_size, 8, UINT64_MAX, -EUCLEAN, "past the end"),
	H("file_table_off 2^64-8", file_table_off, 8, UINT64_MAX - 7, -EUCLEAN, "past the end"),
	H("strings_off 2^64-1", strings_off, 8, UINT64_MAX, -EUCLEAN, "past the end"),
	H("index_off 2^63", index_off, 8, 1ull << 63, -EUCLEAN, "past the end"),
	FN("data section runs into the file table", m_data_into_ft, FIX_HDR, -EUCLEAN, "overlap"),
	FN("string table over the file table", m_str_over_ft, FIX_HDR, -EUCLEAN, "overlap"),
	FN("index over the data section", m_idx_over_data, FIX_HDR, -EUCLEAN, "overlap"),
	FN("file table inside the index", m_ft_over_idx, FIX_HDR, -EUCLEAN, "overlap"),
	FN("data_size one short (last block past it)", m_data_short, FIX_HDR, -EUCLEAN, "data section"),
	/* sections: sizes and counts */
	FN("file_table_size inconsistent", m_ft_size, FIX_HDR, -EUCLEAN, "file table size"),
	FN("index_size inconsistent", m_idx_size, FIX_HDR, -EUCLEAN, "index size"),
	H("strings_size 2^64-1", strings_size, 8, UINT64_MAX, -EUCLEAN, "string table"),
	FN("file_count 2^32-1 (size consistent)", m_files_u32max, FIX_HDR, -EUCLEAN, "file count"),
	FN("file_count 2^31 (size consistent)", m_files_2p31, FIX_HDR, -EUCLEAN, "file count"),
	FN("file_count limit+1 (size consistent)", m_files_limit1, FIX_HDR, -EUCLEAN, "file count"),
	FN("file_count at limit (past EOF)", m_files_limit, FIX_HDR, -EUCLEAN, "past the end"),
	FN("file_count one less", m_files_minus1, FIX_BOTH, -EUCLEAN, "string table"),  /* the dropped file's path is left over */
	FN("block_count 2^64-1 (size wraps)", m_blocks_u64max, FIX_HDR, -EUCLEAN, "block count"),
	FN("block_count n+2^60 (size*48 wraps to the real size)", m_blocks_wrap, FIX_HDR, -EUCLEAN, "block count"),
	FN("block_count 2^63 (size consistent mod 2^64)", m_blocks_2p63, FIX_HDR, -EUCLEAN, "block count"),
	FN("block_count 2^32+n (size consistent)", m_blocks_2p32, FIX_HDR, -EUCLEAN, "block count"),
	FN("block_count limit+1 (size consistent)", m_blocks_limit1, FIX_HDR, -EUCLEAN, "block count"),
	FN("block_count at limit (past EOF)", m_blocks_limit, FIX_HDR, -EUCLEAN, "past the end"),
	FN("block_count one less", m_blocks_minus1, FIX_BOTH, -EUCLEAN, "file 2"),
	/* metadata checksum */
	FN("file table byte, meta checksum stale", m_meta_ft, 0, -EUCLEAN, "metadata checksum"),
	FN("string byte, meta checksum stale", m_meta_str, 0, -EUCLEAN, "metadata checksum"),
	FN("index byte, meta checksum stale", m_meta_idx, 0, -EUCLEAN, "metadata checksum"),
	FN("last index byte, meta checksum stale", m_meta_idx_last, 0, -EUCLEAN, "metadata checksum"),
	/* extension table and the file times section */
	FN("extension table with 0 entries", m_ext_count0, 0, -EUCLEAN, "extension table"),
	FN("extension table too long", m_ext_count_max, 0, -EUCLEAN, "extension table"),
	FN("extension table without the feature flag", m_ext_no_flag, 0, -EUCLEAN, "feature flag"),
	FN("extension table past EOF", m_ext_past_eof, 0, -EUCLEAN, "past the end"),
	FN("extension table over the index", m_ext_over_idx, 0, -EUCLEAN, "overlap"),
	FN("extension reserved field", m_ext_reserved, 0, -EUCLEAN, "reserved"),
	FN("extension table byte, its checksum stale", m_ext_table_csum, 0, -EUCLEAN, "extension table checksum"),
	FN("extension flags unknown", m_ext_flags, 0, -EUCLEAN, "flags"),
	FN("required extension unknown", m_ext_required_unknown, 0, -EOPNOTSUPP, "extension type"),
	FN("optional extension unknown is skipped", m_ext_unknown_skipped, 0, 0, NULL),
	FN("extension listed twice", m_ext_dup, 0, -EUCLEAN, "twice"),
	FN("file times section size", m_times_size, 0, -EUCLEAN, "file times section"),
	FN("file times byte, its checksum stale", m_times_csum, 0, -EUCLEAN, "file times section checksum"),
	FN("file times reserved field", m_times_reserved, 0, -EUCLEAN, "reserved"),
	FN("file times over the index", m_times_over_idx, 0, -EUCLEAN, "overlap"),
	FN("file times past EOF", m_times_past_eof, 0, -EUCLEAN, "past the end"),
	FN("file times over the extension table", m_times_over_ext, 0, -EUCLEAN, "overlap"),
	/* paths */
	FN("absolute path", m_path_abs, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("\"..\" leading", m_path_dotdot, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("\"..\" inside", m_path_dotdot_mid, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("\"../..\"", m_path_dotdot_all, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("empty component", m_path_empty_comp, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("trailing slash", m_path_trailing, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("\".\" component", m_path_dot, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("NUL in path", m_path_nul, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("duplicate path", m_path_dup, FIX_BOTH, -EUCLEAN, "twice"),
	FN("newline and escape in a rejected path", m_path_ctrl, FIX_BOTH, -EUCLEAN, "unsafe path"),
	FN("paths sharing string bytes", m_paths_overlap, FIX_BOTH, ANY, NULL),
	FE("empty path", 1, path_len, 4, 0, "unsafe path"),
	FE("path_off past strings", 1, path_off, 8, 1000, "string table"),
	FE("path_off 2^64-1", 1, path_off, 8, UINT64_MAX, "string table"),
	FE("path_len past strings", 2, path_len, 4, 3, "string table"),
	FE("path_len 2^32-1", 0, path_len, 4, UINT32_MAX, "string table"),
	/* per-file block ranges and sizes */
	FE("first_block 1", 0, first_block, 8, 1, "file 0"),
	FE("first_block 2^64-1", 1, first_block, 8, UINT64_MAX, "file 1"),
	FE("block_count one more", 0, block_count, 4, 7, "file 1"),
	FE("block_count 2^32-1", 0, block_count, 4, UINT32_MAX, "file 0"),
	FE("block_count one less", 2, block_count, 4, 1, "cover"),
	FE("file size 0 with blocks", 0, size, 8, 0, "past the end of the file"),
	FE("file size drops its last blocks", 0, size, 8, 5 * 512, "past the end of the file"),
	FE("file size grows (short block now wrong)", 2, size, 8, 1024, "length"),
	FE("file size 2^64-1", 0, size, 8, UINT64_MAX, "length"),
	/* block index */
	FN("unsorted index", m_swap01, FIX_BOTH, -EUCLEAN, "sorted"),
	FN("duplicate block id", m_dup_block_id, FIX_BOTH, -EUCLEAN, "sorted"),
	BE("block_id 2^64-1", E_SHORT_ZERO, block_id, 8, UINT64_MAX, "past the end of the file"),
	BE("block file_id of another file", 0, file_id, 4, 1, "file id"),
	BE("block file_id out of range", E_LAST, file_id, 4, 77, "file id"),
	FN("raw block data_off = data_size", m_raw_at_end, FIX_BOTH, -EUCLEAN, "past the data section"),
	FN("raw block straddles data end", m_raw_straddle, FIX_BOTH, -EUCLEAN, "past the data section"),
	FN("zstd block straddles data end", m_zstd_straddle, FIX_BOTH, -EUCLEAN, "past the data section"),
	BE("raw block data_off 2^64-1", E_RAW, data_off, 8, UINT64_MAX, "past the data section"),
	BE("raw block data_off 2^64-16", E_RAW, data_off, 8, UINT64_MAX - 15, "past the data section"),
	FN("zstd block longer than the data section", m_zstd_big, FIX_BOTH, -EUCLEAN, "compressed"),
	BE("zstd block stored_len 0", E_ZSTD, stored_len, 4, 0, "compressed"),
	BE("zstd block stored_len 2^32-1", E_ZSTD2, stored_len, 4, UINT32_MAX, "compressed"),
	FN("zstd block without the zstd feature", m_zstd_no_feature, FIX_HDR, -EUCLEAN, "compressed"),
	BE("raw block stored_len != raw_len", E_RAW, stored_len, 4, 511, "stored length"),
	BE("raw block raw_len 100", E_RAW, raw_len, 4, 100, "length"),
	BE("raw block raw_len 0", E_RAW, raw_len, 4, 0, "length"),
	BE("raw block raw_len 2^32-1", E_RAW2, raw_len, 4, UINT32_MAX, "length"),
	BE("short zero block raw_len 512", E_SHORT_ZERO, raw_len, 4, 512, "length"),
	BE("zero block with stored_len", E_ZERO, stored_len, 4, 5, "zero block"),
	BE("zero block with data_off", E_SHORT_ZERO, data_off, 8, 8, "zero block"),
	BE("raw block flagged zero", E_RAW, flags, 2, YOLO_BLOCK_ZERO, "zero block"),
	BE("unknown block flag", E_RAW, flags, 2, 1u << 2, "flags"),
	BE("block flag 0x8000", E_ZSTD, flags, 2, 0x8000 | YOLO_BLOCK_ZSTD, "flags"),
	BE("zero and zstd flags", E_ZERO, flags, 2, YOLO_BLOCK_ZERO | YOLO_BLOCK_ZSTD, "flags"),
	BE("reserved16", 4, reserved16, 2, 1, "reserved"),
	BE("reserved32", 7, reserved32, 4, 0x100, "reserved"),
	FN("duplicate seq", m_dup_seq, FIX_BOTH, -EUCLEAN, "rank"),
	BE("seq = block_count", 3, seq, 4, 10, "rank"),
	BE("seq 2^32-1", E_LAST, seq, 4, UINT32_MAX, "rank"),
	FN("data out of access order", m_swap_seq_raw, FIX_BOTH, -EUCLEAN, "access order"),
	FN("overlapping block data", m_raw_overlap, FIX_BOTH, -EUCLEAN, "overlap"),
};

static void apply(const struct ccase *c, uint8_t *b, size_t *len)
{
	uint8_t *p = NULL;
	switch (c->where) {
	case W_HDR: p = b; break;
	case W_FILE: p = F(b, c->index); break;
	case W_BLK: p = B(b, c->index); break;
	case W_FN: c->fn(b, len); break;
	}
	if (p) {
		p += c->field;
		switch (c->width) {
		case 1: p[0] = (uint8_t)c->value; break;
		case 2: tu_put16(p, (uint16_t)c->value); break;
		case 4: tu_put32(p, (uint32_t)c->value); break;
		case 8: tu_put64(p, c->value); break;
		}
	}
	if (c->fix & FIX_META)
		tu_fix_meta(b, *len);
	if (c->fix & FIX_HDR)
		tu_fix_header(b);
}

static void test_corrupt_cases(void **s)
{
	(void)s;
	int failures = 0, run = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ccase *c = &cases[i];
		size_t len = base.len;
		uint8_t *b = malloc(len + 64);     /* room for an appended extension entry */
		memcpy(b, base.buf, len);
		apply(c, b, &len);
		char msg[512];
		int r = open_both(b, len, msg, sizeof(msg), c->expect == 0 || c->expect == ANY);
		run++;
		bool ok = c->expect == ANY ? (r == 0 || r == -EUCLEAN) : r == c->expect;
		if (ok && r && c->needle && !strcasestr(msg, c->needle))
			ok = false;
		if (!ok) {
			failures++;
			print_message("MISMATCH [%s]: expected %d (%s) with \"%s\", got %d: \"%s\"\n",
				      c->name, c->expect, c->expect ? strerror(-c->expect) : "success",
				      c->needle ? c->needle : "", r, msg);
		}
		free(b);
	}
	print_message("%d corruption cases, %d mismatches\n", run, failures);
	assert_int_equal(failures, 0);
}

/* Truncation at every byte: within the header via a file and memory, and
 * everywhere in the image via memory (exact-size buffers). */
static void test_truncated_everywhere(void **s)
{
	(void)s;
	int failures = 0;
	char msg[512];
	for (size_t len = 0; len < YOLO_HEADER_SIZE; len++) {
		int r = open_both(base.buf, len, msg, sizeof(msg), false);
		if (r != -EUCLEAN || !strcasestr(msg, "truncated")) {
			print_message("MISMATCH truncated to %zu: got %d \"%s\"\n", len, r, msg);
			failures++;
		}
	}
	/* Section boundaries (and one past them) via the file. */
	const uint64_t cuts[] = {
		YOLO_HEADER_SIZE, YOLO_HEADER_SIZE + 1, base.data_off - 1, base.data_off,
		base.data_off + 1, base.data_off + base.data_size - 1, base.data_off + base.data_size,
		base.ft_off, base.ft_off + 1, base.ft_off + base.ft_size - 1, base.str_off,
		base.str_off + 1, base.str_off + base.str_size - 1, base.idx_off, base.idx_off + 1,
		base.idx_off + 47, base.idx_off + 48, base.len - 48, base.len - 1,
	};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		int r = open_both(base.buf, cuts[i], msg, sizeof(msg), false);
		if (r != -EUCLEAN || !strcasestr(msg, "truncated")) {
			print_message("MISMATCH truncated to %llu: got %d \"%s\"\n",
				      (unsigned long long)cuts[i], r, msg);
			failures++;
		}
	}
	/* Every length, in memory only (fast). */
	for (size_t len = 0; len < base.len; len++) {
		uint8_t *b = malloc(len ? len : 1);
		memcpy(b, base.buf, len);
		struct yolo_image *img = NULL;
		struct yolo_err err = { "" };
		int r = yolo_image_open_mem(b, len, &img, &err);
		if (r != -EUCLEAN || !err.msg[0]) {
			if (failures < 20)
				print_message("MISMATCH in-memory truncated to %zu: got %d \"%s\"\n", len, r, err.msg);
			failures++;
			if (r == 0)
				yolo_image_close(img);
		}
		free(b);
	}
	/* Trailing garbage after the index is not an error in this format
	 * (sections may sit anywhere), so no case for it. */
	assert_int_equal(failures, 0);
}

/* Random field edits with both checksums recomputed: whatever opens must
 * be usable, whatever fails must say why; nothing may crash (run this
 * under ASan: see the report / meson test setup). */
static void test_random_edits(void **s)
{
	(void)s;
	uint64_t x = 0x9E3779B97F4A7C15ull;
	int opened = 0, rejected = 0;
	const int iterations = 20000;
	uint8_t *b = malloc(base.len);
	for (int it = 0; it < iterations; it++) {
		memcpy(b, base.buf, base.len);
		size_t len = base.len;
		int edits = 1 + (int)(x % 3);
		for (int e = 0; e < edits; e++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			uint64_t off;
			switch (x % 4) {
			case 0: off = (x >> 8) % (YOLO_HEADER_SIZE - 8); break;   /* not the header checksum */
			case 1: off = base.ft_off + (x >> 8) % base.ft_size; break;
			case 2: off = base.str_off + (x >> 8) % base.str_size; break;
			default: off = base.idx_off + (x >> 8) % base.idx_size; break;
			}
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			static const uint8_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff, 0x2f, 0x2e, 9, 48, 64 };
			b[off] = (x & 1) ? interesting[(x >> 1) % sizeof(interesting)] : (uint8_t)(b[off] ^ (1u << ((x >> 4) % 8)));
		}
		tu_fix_meta(b, len);
		tu_fix_header(b);
		uint8_t *copy = malloc(len);
		memcpy(copy, b, len);
		struct yolo_image *img = NULL;
		struct yolo_err err = { "" };
		int r = yolo_image_open_mem(copy, len, &img, &err);
		if (r == 0) {
			opened++;
			exercise(img);
			yolo_image_close(img);
		} else {
			rejected++;
			assert_true(r < 0);
			if (!err.msg[0])
				print_error("iteration %d: %d without a message\n", it, r);
			assert_true(err.msg[0] != '\0');
		}
		free(copy);
	}
	free(b);
	print_message("%d random edits: %d opened, %d rejected\n", iterations, opened, rejected);
}

/* Paths that share string-table bytes, at a size where overflowing a
 * buffer sized by the string table corrupts the heap even without ASan. */
static void test_overlapping_paths(void **s)
{
	(void)s;
	enum { PL = 1000 };
	static char names[3][PL + 1];
	struct tu_file f[3];
	for (int i = 0; i < 3; i++) {
		memset(names[i], 'x', PL);
		names[i][0] = 'd';
		names[i][1] = (char)('0' + i);
		names[i][2] = '/';
		names[i][PL] = '\0';
		f[i] = (struct tu_file){ names[i], 512 };
	}
	static const struct tu_access a[] = { { 0, 0 }, { 1, 0 }, { 2, 0 } };
	char *path = tu_join(tmpdir, "longpaths.yolo");
	struct yolo_writer_opts o = { .block_size = 512 };
	assert_int_equal(tu_write_image(path, &o, f, 3, NULL, a, 3, NULL), 0);
	size_t len;
	uint8_t *b = tu_read_file(path, &len);
	assert_non_null(b);
	free(path);
	uint64_t ft = tu_get64(b + HDR(file_table_off)), ss = tu_get64(b + HDR(strings_size));
	assert_int_equal(ss, 3 * PL);
	/* file 1: the whole table ("d0/x..xd1/x..xd2/x..x"), file 2: all but
	 * its first byte ("0/x..x...").  Distinct, safe, 6999 more bytes. */
	tu_put64(b + ft + 64 + DF(path_off), 0);
	tu_put32(b + ft + 64 + DF(path_len), 3 * PL);
	tu_put64(b + ft + 128 + DF(path_off), 1);
	tu_put32(b + ft + 128 + DF(path_len), 3 * PL - 1);
	tu_fix_meta(b, len);
	tu_fix_header(b);
	char msg[512];
	int r = open_both(b, len, msg, sizeof(msg), true);
	if (r != 0 && r != -EUCLEAN)
		print_error("got %d: %s\n", r, msg);
	assert_true(r == 0 || r == -EUCLEAN);
	free(b);
}

/* Block data is not covered by the metadata checksum, so a bad zstd frame
 * opens fine and must fail when read, with or without YOLO_READ_VERIFY:
 * a frame that decodes to fewer bytes than raw_len (the tail of the
 * caller's buffer would be stale), to more, or that is not a frame. */
static void test_bad_frames(void **s)
{
	(void)s;
	const uint32_t e = E_ZSTD2;               /* a/4, 512 bytes of text */
	uint64_t at = base.data_off + tu_get64(B(base.buf, e) + DB(data_off));
	uint32_t slot = tu_get32(B(base.buf, e) + DB(stored_len));
	uint8_t src[1024], frame[256];
	memset(src, 'x', sizeof(src));
	struct { const char *name; size_t srclen; bool garbage; } fr[] = {
		{ "short frame (1 byte)", 1, false },
		{ "short frame (511 bytes)", 511, false },
		{ "long frame (513 bytes)", 513, false },
		{ "long frame (1024 bytes)", 1024, false },
		{ "empty frame", 0, false },
		{ "not a frame", 0, true },
	};
	for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) {
		uint8_t *b = malloc(base.len);
		memcpy(b, base.buf, base.len);
		size_t n;
		if (fr[i].garbage) {
			n = slot;
			memset(frame, 0x5a, n);
		} else {
			n = ZSTD_compress(frame, sizeof(frame), src, fr[i].srclen, 19);
			assert_false(ZSTD_isError(n));
		}
		assert_true(n <= slot);
		memcpy(b + at, frame, n);
		tu_put32(B(b, e) + DB(stored_len), (uint32_t)n);
		tu_fix_meta(b, base.len);
		tu_fix_header(b);
		struct yolo_image *img = NULL;
		struct yolo_err err = { "" };
		int r = yolo_image_open_mem(b, base.len, &img, &err);
		if (r)
			print_error("%s: open: %s\n", fr[i].name, err.msg);
		assert_int_equal(r, 0);
		const struct yolo_block *blk = yolo_image_block(img, e);
		uint8_t out[600];
		for (unsigned flags = 0; flags <= YOLO_READ_VERIFY; flags += YOLO_READ_VERIFY) {
			r = yolo_image_read_block(img, blk, out, sizeof(out), flags);
			if (r != -EUCLEAN)
				print_error("%s, flags %u: expected -EUCLEAN, got %d\n", fr[i].name, flags, r);
			assert_int_equal(r, -EUCLEAN);
		}
		struct yolo_verify_report rep;
		assert_int_equal(yolo_image_verify(img, -1, &rep, NULL, NULL), 1);
		assert_int_equal(rep.blocks_bad, 1);
		yolo_image_close(img);
		free(b);
	}
}

/* Things that are not images at all. */
static void test_not_images(void **s)
{
	(void)s;
	struct yolo_image *img = NULL;
	struct yolo_err err = { "" };
	char *missing = tu_join(tmpdir, "missing.yolo");
	assert_int_equal(yolo_image_open(missing, &img, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "missing.yolo"));
	free(missing);
	err.msg[0] = '\0';
	assert_int_equal(yolo_image_open(tmpdir, &img, &err), -EINVAL);   /* a directory */
	assert_true(err.msg[0] != '\0');
	int fd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	err.msg[0] = '\0';
	assert_int_equal(yolo_image_open_fd(fd, "dir", &img, &err), -EINVAL);
	close(fd);
	assert_int_equal(yolo_image_open_fd(-1, "bad fd", &img, &err), -EBADF);
	/* 4 KiB of zeros, and a header of 0xff. */
	uint8_t z[4096];
	memset(z, 0, sizeof(z));
	assert_int_equal(yolo_image_open_mem(z, sizeof(z), &img, &err), -EUCLEAN);
	assert_non_null(strcasestr(err.msg, "magic"));
	memset(z, 0xff, sizeof(z));
	assert_int_equal(yolo_image_open_mem(z, sizeof(z), &img, &err), -EUCLEAN);
	/* A correct magic and nothing else. */
	memset(z, 0, sizeof(z));
	memcpy(z, YOLO_MAGIC, YOLO_MAGIC_LEN);
	assert_int_equal(yolo_image_open_mem(z, sizeof(z), &img, NULL), -EOPNOTSUPP);   /* version 0 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_layout),
		cmocka_unit_test(test_corrupt_cases),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_random_edits),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_overlapping_paths),
		cmocka_unit_test(test_not_images),
	};
	return cmocka_run_group_tests_name("image_corrupt", tests, group_setup, group_teardown);
}
