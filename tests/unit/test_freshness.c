/* test_freshness.c - the freshness rule (yolofs/freshness.c), table-driven:
 * every identity field changed alone (and the device number, which is not
 * compared), and the sequences that matter: a touch through the mount, a
 * touch underneath, an edit underneath with the mtime set back, a write
 * through the mount followed by an mtime set back, a restart, comparisons
 * that race a change, an image without change times, and a file disabled
 * by bad blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "freshness.h"

static const struct yolo_file_ident A = { .size = 100, .mtime_ns = 10, .ctime_ns = 20, .ino = 5 };

static struct yolo_file_ident with(struct yolo_file_ident id, int field, int64_t v)
{
	switch (field) {
	case 0: id.size = (uint64_t)v; break;
	case 1: id.mtime_ns = v; break;
	case 2: id.ctime_ns = v; break;
	case 3: id.ino = (uint64_t)v; break;
	}
	return id;
}

static void test_each_field_alone(void **state)
{
	static const struct {
		int field;
		int64_t value;
		enum fr_verdict verdict;
		const char *why;
	} cases[] = {
		{ -1, 0, FR_SERVE, NULL },
		{ 0, 101, FR_CHANGED, "size" },
		{ 0, 99, FR_CHANGED, "size" },
		{ 1, 11, FR_COMPARE, "mtime" },
		{ 1, 9, FR_COMPARE, "mtime" },                   /* set back */
		{ 2, 21, FR_COMPARE, "change time" },            /* a write with the mtime restored */
		{ 3, 6, FR_COMPARE, "inode number" },            /* a copy or a replacement */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct yolo_file_ident now = with(A, cases[i].field, cases[i].value);
		const char *why = "unset";
		assert_int_equal(fr_judge(&A, &now, &why), cases[i].verdict);
		if (cases[i].why)
			assert_string_equal(why, cases[i].why);
		else
			assert_null(why);
	}
	/* No change time recorded (an older image): always compared once. */
	struct yolo_file_ident old = with(A, 2, YOLO_CTIME_UNKNOWN);
	const char *why;
	assert_int_equal(fr_judge(&old, &A, &why), FR_COMPARE);
	assert_string_equal(why, "no change time recorded");
	/* Size beats everything else. */
	struct yolo_file_ident all = { .size = 1, .mtime_ns = 1, .ctime_ns = 1, .ino = 1 };
	assert_int_equal(fr_judge(&A, &all, NULL), FR_CHANGED);
	/* The very identity: each of the four fields counts, the device
	 * number (which may change across reboots) does not. */
	for (int field = 0; field < 4; field++) {
		struct yolo_file_ident other = with(A, field, 1234);
		assert_false(yolo_ident_same(&A, &other));
	}
	struct yolo_file_ident other_dev = A;
	other_dev.dev = 9;
	assert_true(yolo_ident_same(&A, &other_dev));
}

static enum fr_action open_(struct fr_state *s, struct yolo_file_ident now)
{
	bool news;
	return fr_open(s, &now, &news);
}

static void test_touch_through_the_mount(void **state)
{
	struct fr_state s;
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	struct yolo_file_ident touched = with(with(A, 1, 50), 2, 60);
	assert_true(fr_changed_through_mount(&s, &A, &touched, false));
	assert_int_equal(open_(&s, touched), FR_ACT_SERVE);
	assert_true(fr_may_serve(&s, &touched));
	assert_false(fr_may_serve(&s, &A));
	/* chown (libvirt) after it: attributes again. */
	struct yolo_file_ident chowned = with(touched, 2, 70);
	assert_true(fr_changed_through_mount(&s, &touched, &chowned, false));
	assert_int_equal(open_(&s, chowned), FR_ACT_SERVE);
}

static void test_touch_underneath_then_compared(void **state)
{
	struct fr_state s;
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	struct yolo_file_ident touched = with(with(A, 1, 50), 2, 60);
	bool news;
	assert_int_equal(fr_open(&s, &touched, &news), FR_ACT_COMPARE);
	assert_true(news);
	assert_int_equal(fr_open(&s, &touched, &news), FR_ACT_PASS);   /* one comparison */
	assert_false(news);
	assert_false(fr_may_serve(&s, &touched));
	assert_int_equal(fr_compared(&s, &touched, &touched, s.generation, true), FR_OUT_ACCEPTED);
	assert_int_equal(open_(&s, touched), FR_ACT_SERVE);
	assert_true(fr_may_serve(&s, &touched));
}

static void test_edit_underneath_mtime_set_back(void **state)
{
	struct fr_state s;
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	struct yolo_file_ident edited = with(A, 2, 99);          /* same size and mtime */
	assert_int_equal(open_(&s, edited), FR_ACT_COMPARE);
	assert_int_equal(fr_compared(&s, &edited, &edited, s.generation, false), FR_OUT_STALE);
	assert_int_equal(s.status, FR_STALE);
	assert_int_equal(open_(&s, edited), FR_ACT_PASS);        /* not compared again */
	struct yolo_file_ident again = with(edited, 2, 120);     /* changed once more */
	assert_int_equal(open_(&s, again), FR_ACT_COMPARE);
}

static void test_write_then_mtime_set_back(void **state)
{
	struct fr_state s;
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	struct yolo_file_ident written = with(with(A, 1, 30), 2, 30);
	assert_true(fr_changed_through_mount(&s, &A, &written, true));
	struct yolo_file_ident set_back = with(written, 1, A.mtime_ns);     /* touch -r, cp -p */
	set_back.ctime_ns = 31;
	assert_true(fr_changed_through_mount(&s, &written, &set_back, false));
	/* Served (the written blocks were dropped by the caller), and never
	 * as the original identity, which only the mtime resembles. */
	assert_int_equal(open_(&s, set_back), FR_ACT_SERVE);
	assert_false(fr_may_serve(&s, &A));
	assert_int_equal(s.generation, 2);
}

static void test_changed_underneath_before_a_change_through_the_mount(void **state)
{
	struct fr_state s;
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	struct yolo_file_ident under = with(A, 2, 40), after = with(under, 2, 41);
	assert_false(fr_changed_through_mount(&s, &under, &after, true));
	assert_int_equal(s.status, FR_UNJUDGED);
	assert_int_equal(open_(&s, after), FR_ACT_COMPARE);
	/* An attribute change that changed the size is not one. */
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	struct yolo_file_ident bigger = with(A, 0, 200);
	assert_false(fr_changed_through_mount(&s, &A, &bigger, false));
	/* Unknown states around a change: judged again. */
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	assert_false(fr_changed_through_mount(&s, NULL, &A, true));
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	assert_false(fr_changed_through_mount(&s, &A, NULL, true));
}

static void test_restart(void **state)
{
	/* A daemon starts with the identity recorded in the image: a file
	 * touched while it was down is compared, then accepted. */
	struct fr_state s;
	fr_state_init(&s, &A);
	struct yolo_file_ident touched = with(with(A, 1, 77), 2, 78);
	assert_int_equal(open_(&s, touched), FR_ACT_COMPARE);
	assert_int_equal(fr_compared(&s, &touched, &touched, s.generation, true), FR_OUT_ACCEPTED);
	assert_int_equal(open_(&s, touched), FR_ACT_SERVE);
	/* Replaced by a file of another size while down: never served. */
	fr_state_init(&s, &A);
	assert_int_equal(open_(&s, with(A, 0, 5)), FR_ACT_PASS);
	assert_int_equal(s.status, FR_STALE);
}

static void test_comparison_races(void **state)
{
	struct fr_state s;
	fr_state_init(&s, &A);
	struct yolo_file_ident b = with(A, 2, 50), c = with(A, 2, 51);
	assert_int_equal(open_(&s, b), FR_ACT_COMPARE);
	uint64_t gen = s.generation;
	/* The file changed during the comparison. */
	assert_int_equal(fr_compared(&s, &b, &c, gen, true), FR_OUT_RETRY);
	assert_int_equal(s.status, FR_UNJUDGED);
	assert_int_equal(open_(&s, c), FR_ACT_COMPARE);
	/* A change through the mount during the comparison. */
	gen = s.generation;
	fr_changed_through_mount(&s, &c, &c, true);
	assert_int_equal(fr_compared(&s, &c, &c, gen, true), FR_OUT_RETRY);
	/* A result for an identity no longer wanted. */
	assert_int_equal(open_(&s, c), FR_ACT_COMPARE);
	assert_int_equal(fr_compared(&s, &b, &b, s.generation, true), FR_OUT_IGNORED);
	assert_false(fr_may_serve(&s, &c));
}

static void test_older_image(void **state)
{
	struct fr_state s;
	struct yolo_file_ident rec = with(A, 2, YOLO_CTIME_UNKNOWN);
	fr_state_init(&s, &rec);
	assert_int_equal(open_(&s, A), FR_ACT_COMPARE);
	assert_int_equal(fr_compared(&s, &A, &A, s.generation, true), FR_OUT_ACCEPTED);
	assert_int_equal(open_(&s, A), FR_ACT_SERVE);
	assert_int_equal(s.accepted.ctime_ns, A.ctime_ns);
}

static void test_record_disabled_by_bad_blocks(void **state)
{
	struct yolo_file yf = { .path = "f", .ident = { .size = 100, .mtime_ns = 10, .ctime_ns = 20,
							 .ino = 5 }, .block_count = 20 };
	struct fr_file f;
	assert_int_equal(fr_file_init(&f, &yf), 0);
	bool news;
	assert_int_equal(fr_file_open(&f, &A, &news), FR_ACT_SERVE);
	for (int i = 0; i < FR_BAD_BLOCK_LIMIT - 1; i++)
		assert_false(fr_file_bad_block(&f, (uint32_t)i));
	assert_true(fr_file_dropped(&f, 3));
	assert_false(fr_file_dropped(&f, 15));
	assert_true(fr_file_read_begin(&f, &A));
	fr_file_read_end(&f);
	assert_true(fr_file_bad_block(&f, 15));            /* the limit: disabled now */
	assert_false(fr_file_bad_block(&f, 16));           /* said once */
	assert_false(fr_file_read_begin(&f, &A));
	fr_file_read_end(&f);
	assert_int_equal(fr_file_open(&f, &A, &news), FR_ACT_PASS);
	assert_false(news);                                /* told when it happened */
	assert_int_equal(f.st.status, FR_DISABLED);
	/* Drops through the mount, for the daemon's lifetime. */
	fr_file_destroy(&f);
	assert_int_equal(fr_file_init(&f, &yf), 0);
	assert_int_equal(fr_file_open(&f, &A, &news), FR_ACT_SERVE);
	struct yolo_file_ident w = with(A, 2, 30);
	fr_file_change_begin(&f, &A, 4, 7);
	assert_true(fr_file_change_end(&f, &w, true));
	for (uint32_t i = 0; i < 20; i++)
		assert_int_equal(fr_file_dropped(&f, i), i >= 4 && i < 7);
	assert_int_equal(fr_file_open(&f, &w, &news), FR_ACT_SERVE);
	assert_true(fr_file_dropped(&f, 5));
	fr_file_destroy(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_field_alone),
		cmocka_unit_test(test_touch_through_the_mount),
		cmocka_unit_test(test_touch_underneath_then_compared),
		cmocka_unit_test(test_edit_underneath_mtime_set_back),
		cmocka_unit_test(test_write_then_mtime_set_back),
		cmocka_unit_test(test_changed_underneath_before_a_change_through_the_mount),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_comparison_races),
		cmocka_unit_test(test_older_image),
		cmocka_unit_test(test_record_disabled_by_bad_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
