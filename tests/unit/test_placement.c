/* test_placement.c - the memlimit placement policy (yolofs/placement.c):
 * all images fit, none fit, an image that does not fit is passed over and
 * a smaller one after it is still kept (first fit, not a prefix), an exact
 * fit is kept, images never used come last in images= order, memlimit 0
 * means no limit, an image that could not be loaded takes no room, and the
 * action follows from the decision and whether the image is in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "placement.h"

#define MIB (1024 * 1024ull)

/* Images i = 0..n-1 of `size` MiB, last used at `used` (0: never), in
 * images= order i, with id i; none in memory. */
static void make(struct place_image *v, size_t n, const uint64_t *size, const uint64_t *used)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (struct place_image){ .size = size[i] * MIB, .last_used = used ? used[i] : 0,
					     .order = i, .id = i };
}

/* The ids in ranking order and their actions are `ids` and `act`. */
static void expect(const struct place_image *v, size_t n, const size_t *ids,
		   const enum place_action *act)
{
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].id, ids[i]);
		assert_int_equal(v[i].action, act[i]);
	}
}

static void test_all_fit(void **state)
{
	struct place_image v[3];
	make(v, 3, (uint64_t[]){ 4, 4, 4 }, (uint64_t[]){ 1, 3, 2 });
	place_decide(v, 3, 12 * MIB);
	expect(v, 3, (size_t[]){ 1, 2, 0 },
	       (enum place_action[]){ PLACE_LOAD, PLACE_LOAD, PLACE_LOAD });
}

static void test_none_fit(void **state)
{
	struct place_image v[3];
	make(v, 3, (uint64_t[]){ 4, 5, 6 }, (uint64_t[]){ 3, 2, 1 });
	v[0].in_memory = true;           /* held before a smaller memlimit: dropped */
	place_decide(v, 3, 3 * MIB);
	expect(v, 3, (size_t[]){ 0, 1, 2 },
	       (enum place_action[]){ PLACE_DROP, PLACE_ON_FILE, PLACE_ON_FILE });
}

/* Not a prefix: image 1 does not fit after image 0, the walk goes on and
 * image 2, less recently used but small, is kept. */
static void test_misfit_passed_over(void **state)
{
	struct place_image v[3];
	make(v, 3, (uint64_t[]){ 5, 8, 3 }, (uint64_t[]){ 30, 20, 10 });
	place_decide(v, 3, 10 * MIB);
	expect(v, 3, (size_t[]){ 0, 1, 2 },
	       (enum place_action[]){ PLACE_LOAD, PLACE_ON_FILE, PLACE_LOAD });
}

/* Sizes add up to memlimit exactly: all kept; one byte less: the last not. */
static void test_exact_fit(void **state)
{
	struct place_image v[2];
	make(v, 2, (uint64_t[]){ 4, 5 }, NULL);
	place_decide(v, 2, 9 * MIB);
	expect(v, 2, (size_t[]){ 0, 1 }, (enum place_action[]){ PLACE_LOAD, PLACE_LOAD });
	make(v, 2, (uint64_t[]){ 4, 5 }, NULL);
	place_decide(v, 2, 9 * MIB - 1);
	expect(v, 2, (size_t[]){ 0, 1 }, (enum place_action[]){ PLACE_LOAD, PLACE_ON_FILE });
}

/* Images never used rank after the used ones, among themselves in images=
 * order, whatever order they are given in; used ones most recent first. */
static void test_never_used_in_images_order(void **state)
{
	struct place_image v[5];
	make(v, 5, (uint64_t[]){ 2, 2, 2, 2, 2 }, (uint64_t[]){ 0, 7, 0, 9, 0 });
	struct place_image shuffled[5] = { v[4], v[2], v[1], v[0], v[3] };
	place_decide(shuffled, 5, 6 * MIB);
	expect(shuffled, 5, (size_t[]){ 3, 1, 0, 2, 4 },
	       (enum place_action[]){ PLACE_LOAD, PLACE_LOAD, PLACE_LOAD, PLACE_ON_FILE,
				      PLACE_ON_FILE });
	/* None used at all (a fresh start): the first listed fill memlimit. */
	make(v, 5, (uint64_t[]){ 2, 2, 2, 2, 2 }, NULL);
	struct place_image again[5] = { v[3], v[0], v[4], v[2], v[1] };
	place_decide(again, 5, 4 * MIB);
	expect(again, 5, (size_t[]){ 0, 1, 2, 3, 4 },
	       (enum place_action[]){ PLACE_LOAD, PLACE_LOAD, PLACE_ON_FILE, PLACE_ON_FILE,
				      PLACE_ON_FILE });
}

static void test_memlimit_0_is_no_limit(void **state)
{
	struct place_image v[3];
	make(v, 3, (uint64_t[]){ 1ull << 20, 1ull << 21, 1ull << 22 }, (uint64_t[]){ 0, 5, 0 });
	v[1].in_memory = true;
	place_decide(v, 3, 0);
	expect(v, 3, (size_t[]){ 1, 0, 2 },
	       (enum place_action[]){ PLACE_KEEP, PLACE_LOAD, PLACE_LOAD });
}

/* An image that could not be loaded is never placed and takes no room:
 * the next one gets it. */
static void test_load_failed_takes_no_room(void **state)
{
	struct place_image v[3];
	make(v, 3, (uint64_t[]){ 4, 4, 4 }, (uint64_t[]){ 3, 2, 1 });
	v[0].load_failed = true;
	place_decide(v, 3, 8 * MIB);
	expect(v, 3, (size_t[]){ 0, 1, 2 },
	       (enum place_action[]){ PLACE_ON_FILE, PLACE_LOAD, PLACE_LOAD });
	make(v, 3, (uint64_t[]){ 4, 4, 4 }, (uint64_t[]){ 3, 2, 1 });
	v[0].load_failed = true;
	place_decide(v, 3, 0);           /* not even without a limit */
	assert_int_equal(v[0].action, PLACE_ON_FILE);
}

/* An open moves an image up: it is loaded, the least recently used one
 * dropped, the one in between kept. */
static void test_actions_follow_memory(void **state)
{
	struct place_image v[3];
	make(v, 3, (uint64_t[]){ 4, 4, 4 }, (uint64_t[]){ 1, 2, 3 });
	v[0].in_memory = v[1].in_memory = true;
	place_decide(v, 3, 9 * MIB);
	expect(v, 3, (size_t[]){ 2, 1, 0 },
	       (enum place_action[]){ PLACE_LOAD, PLACE_KEEP, PLACE_DROP });
	assert_true(place_in_memory(PLACE_KEEP) && place_in_memory(PLACE_LOAD));
	assert_false(place_in_memory(PLACE_DROP) || place_in_memory(PLACE_ON_FILE));
}

static void test_no_images(void **state)
{
	struct place_image v[1];
	place_decide(v, 0, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_fit),
		cmocka_unit_test(test_none_fit),
		cmocka_unit_test(test_misfit_passed_over),
		cmocka_unit_test(test_exact_fit),
		cmocka_unit_test(test_never_used_in_images_order),
		cmocka_unit_test(test_memlimit_0_is_no_limit),
		cmocka_unit_test(test_load_failed_takes_no_room),
		cmocka_unit_test(test_actions_follow_memory),
		cmocka_unit_test(test_no_images),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
