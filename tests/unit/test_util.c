/* test_util.c - common/util's parsing of sizes given by an operator
 * (yolofs's memlimit=, readahead=, learn_max=; yolo-readbench's --bs and
 * --bytes): each suffix, both cases, "iB" and "B" after it, and what is
 * refused (signs, other suffixes, trailing bytes, overflow); and the time
 * between two clock readings when the later one was stamped first. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util.h"

static void test_parse_size(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "1k", 1024 }, { "64K", 65536 },
		{ "512M", 512ull << 20 }, { "512m", 512ull << 20 }, { "2G", 2ull << 30 },
		{ "2GiB", 2ull << 30 }, { "2GB", 2ull << 30 }, { "1T", 1ull << 40 },
		{ "1t", 1ull << 40 }, { "16777215T", 16777215ull << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 1234;
		assert_int_equal(yolo_parse_size(good[i].s, &v), 0);
		assert_true(v == good[i].v);
	}
	static const char *const bad[] = {
		"", "M", "-1", "-1M", "1X", "1Mi", "1MiBs", "1MBB", "1 M", "1B", "1.5G",
		"16777216T",                     /* 2^64 */
		"18446744073709551616",          /* 2^64 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 1234;
		assert_int_equal(yolo_parse_size(bad[i], &v), -EINVAL);
		assert_true(v == 1234);
	}
}

static void test_ns_since(void **state)
{
	(void)state;
	assert_true(yolo_ns_since(10, 3) == 7);
	assert_true(yolo_ns_since(10, 10) == 0);
	assert_true(yolo_ns_since(10, 11) == 0);         /* stamped after `now` was read */
	assert_true(yolo_ns_since(UINT64_MAX, 0) == UINT64_MAX);
	assert_true(yolo_ns_since(0, UINT64_MAX) == 0);
	uint64_t a = yolo_now_ns(), b = yolo_now_ns();
	assert_true(yolo_ns_since(b, a) == b - a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_ns_since),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
