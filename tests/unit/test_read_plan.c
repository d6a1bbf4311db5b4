/* test_read_plan.c - splitting a read into image pieces and merged source
 * runs (yolofs/read_plan.c): pieces cover the read exactly, first and last
 * blocks trimmed, cut short at the end of the file, the last block being
 * the one holding byte end-1, misses merged, blocks too short for the part
 * wanted treated as misses, and the worst case (every other 512-byte block
 * of a 1 MiB read) fitting rp_max_pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "read_plan.h"

/* Held blocks: bit b of `held`, each of raw length `raw` (0: full). */
struct held {
	uint64_t held;
	uint32_t raw[64];
	int lookups;
};

static int32_t lookup(void *ctx, uint64_t b, uint32_t need)
{
	struct held *h = ctx;
	h->lookups++;
	if (b >= 64 || !((h->held >> b) & 1))
		return -1;
	if (h->raw[b] && need > h->raw[b])
		return -1;
	return (int32_t)b * 10;          /* an entry number unlike the block id */
}

#define SRC RP_SOURCE
struct want {
	uint64_t off;
	uint32_t len;
	int32_t entry;
	uint32_t in_block;
};

static void check(uint64_t off, size_t size, uint64_t fsize, unsigned shift, struct held *h,
		  const struct want *w, int nw)
{
	struct rp_piece p[64];
	int n = rp_plan(p, 64, off, size, fsize, shift, lookup, h);
	assert_int_equal(n, nw);
	uint64_t pos = off;
	for (int i = 0; i < n; i++) {
		assert_int_equal(p[i].off, w[i].off);
		assert_int_equal(p[i].len, w[i].len);
		assert_int_equal(p[i].entry, w[i].entry);
		assert_int_equal(p[i].in_block, w[i].in_block);
		assert_int_equal(p[i].off, pos);             /* contiguous, in order */
		pos += p[i].len;
	}
}

static void test_mixed(void **state)
{
	struct held h = { .held = 0xb };         /* blocks 0, 1, 3 */
	const struct want w[] = {
		{ 0, 4096, 0, 0 }, { 4096, 4096, 10, 0 }, { 8192, 4096, SRC, 0 },
		{ 12288, 4096, 30, 0 }, { 16384, 3616, SRC, 0 },     /* cut at EOF */
	};
	check(0, 1 << 20, 20000, 12, &h, w, 5);
}

static void test_trimmed(void **state)
{
	struct held h = { .held = 0x3 };
	const struct want w[] = { { 100, 3996, 0, 100 }, { 4096, 904, 10, 0 } };
	check(100, 4900, 1 << 20, 12, &h, w, 2);
	/* Inside one block. */
	const struct want w1[] = { { 5000, 10, 10, 904 } };
	check(5000, 10, 1 << 20, 12, &h, w1, 1);
}

static void test_eof(void **state)
{
	struct held h = { .held = 0x4 };
	check(10000, 4096, 10000, 12, &h, NULL, 0);          /* at EOF */
	check(20000, 4096, 10000, 12, &h, NULL, 0);          /* past it */
	check(0, 0, 10000, 12, &h, NULL, 0);                 /* nothing asked */
	/* The last block is short: the part before EOF is served. */
	h.raw[2] = 10000 - 8192;
	const struct want w[] = { { 9000, 1000, 20, 808 } };
	check(9000, 20000, 10000, 12, &h, w, 1);
	/* A block shorter than the part wanted (the file grew) is a miss. */
	const struct want w2[] = { { 8192, 4096, SRC, 0 } };
	check(8192, 4096, 20000, 12, &h, w2, 1);
}

static void test_last_block_off_by_one(void **state)
{
	struct held h = { .held = ~0ull };
	const struct want w[] = { { 4096, 4096, 10, 0 } };
	check(4096, 4096, 1 << 20, 12, &h, w, 1);
	assert_int_equal(h.lookups, 1);                      /* block 2 never looked at */
}

static void test_misses_merged(void **state)
{
	struct held h = { .held = 0 };
	const struct want w[] = { { 123, 1000000, SRC, 0 } };
	check(123, 1000000, 1 << 30, 12, &h, w, 1);
	struct held h2 = { .held = 1ull << 5 };
	const struct want w2[] = { { 0, 20480, SRC, 0 }, { 20480, 4096, 50, 0 }, { 24576, 40960, SRC, 0 } };
	check(0, 65536, 1 << 30, 12, &h2, w2, 3);
}

static int32_t every_other(void *ctx, uint64_t b, uint32_t need)
{
	return (b & 1) ? -1 : (int32_t)b;
}

static void test_worst_case(void **state)
{
	size_t max = rp_max_pieces(1 << 20, 9);
	struct rp_piece *p = malloc(max * sizeof(*p));
	int n = rp_plan(p, max, 256, 1 << 20, 1ull << 40, 9, every_other, NULL);
	assert_int_equal(n, 2049);
	assert_true((size_t)n <= max);
	uint64_t total = 0;
	for (int i = 0; i < n; i++)
		total += p[i].len;
	assert_int_equal(total, 1 << 20);
	assert_int_equal(rp_plan(p, 100, 256, 1 << 20, 1ull << 40, 9, every_other, NULL), -1);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_trimmed),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_last_block_off_by_one),
		cmocka_unit_test(test_misses_merged),
		cmocka_unit_test(test_worst_case),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
