/* test_hashmap.c - common/'s one hash table and the path table built on it:
 * every item added is found by its key and nothing else is, across growth,
 * with keys whose hashes all collide, with a key added twice, with pointers
 * as items; several items per key are all walked; removal (runs that wrap
 * around the table's end included) leaves every other item findable; a
 * walk of the table visits each item once; a set of numbers; the path
 * table gives dense ids in order of addition. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "filelist.h"
#include "hashmap.h"

#define N 20000

/* Keys are numbers; item i has key keys[i]. */
struct table {
	uint64_t keys[N];
};

static bool key_is(const void *ctx, uint64_t item, const void *key)
{
	const struct table *t = ctx;
	return t->keys[item] == *(const uint64_t *)key;
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	return k ^ (k >> 33);
}

static void test_empty(void **state)
{
	(void)state;
	struct yhash h = { 0 };
	struct table t = { { 0 } };
	uint64_t k = 0, item = 99;
	assert_false(yhash_find(&h, 0, key_is, &t, &k, &item));
	assert_int_equal(item, 99);
	yhash_free(&h);
}

/* Every item is found after every growth; keys never added are not. */
static void test_many(void **state)
{
	(void)state;
	static struct table t;
	struct yhash h = { 0 };
	for (uint64_t i = 0; i < N; i++) {
		t.keys[i] = i * 7919 + 1;
		assert_int_equal(yhash_add(&h, mix(t.keys[i]), i), 0);
		assert_int_equal(h.count, i + 1);
		assert_true(h.nslots >= 2 * h.count);
		assert_int_equal(h.nslots & (h.nslots - 1), 0);
		if (i % 997 == 0) {
			for (uint64_t j = 0; j <= i; j++) {
				uint64_t item;
				assert_true(yhash_find(&h, mix(t.keys[j]), key_is, &t, &t.keys[j], &item));
				assert_int_equal(item, j);
			}
		}
	}
	for (uint64_t i = 0; i < N; i++) {
		uint64_t absent = i * 7919 + 2, item;
		assert_false(yhash_find(&h, mix(absent), key_is, &t, &absent, &item));
	}
	yhash_free(&h);
	assert_null(h.slots);
	assert_int_equal(h.nslots, 0);
	assert_int_equal(h.count, 0);
}

/* Equal hashes: the equality test tells the items apart. */
static void test_collisions(void **state)
{
	(void)state;
	static struct table t;
	struct yhash h = { 0 };
	for (uint64_t i = 0; i < 500; i++) {
		t.keys[i] = i;
		assert_int_equal(yhash_add(&h, 42, i), 0);
	}
	for (uint64_t i = 0; i < 500; i++) {
		uint64_t item;
		assert_true(yhash_find(&h, 42, key_is, &t, &t.keys[i], &item));
		assert_int_equal(item, i);
	}
	uint64_t absent = 500, item;
	assert_false(yhash_find(&h, 42, key_is, &t, &absent, &item));
	/* The same keys under another hash are not found. */
	assert_false(yhash_find(&h, 43, key_is, &t, &t.keys[0], &item));
	yhash_free(&h);
}

/* A key added twice: the table keeps both, a lookup finds the first. */
static void test_twice(void **state)
{
	(void)state;
	struct table t = { { 5, 5 } };
	struct yhash h = { 0 };
	assert_int_equal(yhash_add(&h, mix(5), 0), 0);
	assert_int_equal(yhash_add(&h, mix(5), 1), 0);
	assert_int_equal(h.count, 2);
	uint64_t k = 5, item;
	assert_true(yhash_find(&h, mix(5), key_is, &t, &k, &item));
	assert_int_equal(item, 0);
	yhash_free(&h);
}

/* Items may be pointers to the caller's objects. */
struct object {
	const char *name;
};

static bool name_is(const void *ctx, uint64_t item, const void *key)
{
	(void)ctx;
	return !strcmp(((const struct object *)(uintptr_t)item)->name, key);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void test_pointers(void **state)
{
	(void)state;
	static const struct object objs[] = { { "etc" }, { "usr" }, { "lib" }, { "bin" } };
	struct yhash h = { 0 };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(yhash_add(&h, name_hash(objs[i].name), (uintptr_t)&objs[i]), 0);
	for (size_t i = 0; i < 4; i++) {
		uint64_t item;
		assert_true(yhash_find(&h, name_hash(objs[i].name), name_is, NULL, objs[i].name, &item));
		assert_ptr_equal((const void *)(uintptr_t)item, &objs[i]);
	}
	uint64_t item;
	assert_false(yhash_find(&h, name_hash("var"), name_is, NULL, "var", &item));
	yhash_free(&h);
}

/* Several items per key: a walk of one key gives each of its items once
 * and none of another key's, though all share one hash. */
static void test_several_per_key(void **state)
{
	(void)state;
	static struct table t;
	struct yhash h = { 0 };
	for (uint64_t i = 0; i < 300; i++) {
		t.keys[i] = i % 3;
		assert_int_equal(yhash_add(&h, 7, i), 0);
	}
	for (uint64_t k = 0; k < 3; k++) {
		bool seen[300] = { false };
		uint32_t pos = 0, n = 0;
		uint64_t item;
		while (yhash_find_next(&h, 7, key_is, &t, &k, &pos, &item)) {
			assert_int_equal(t.keys[item], k);
			assert_false(seen[item]);
			seen[item] = true;
			n++;
		}
		assert_int_equal(n, 100);
	}
	uint64_t absent = 3, item;
	uint32_t pos = 0;
	assert_false(yhash_find_next(&h, 7, key_is, &t, &absent, &pos, &item));
	yhash_free(&h);
}

/* The hash of key k in test_remove: few distinct values, so items pile up
 * in runs, and values whose home is the table's last slots at any size, so
 * runs wrap around its end. */
static uint64_t crowded_hash(uint64_t k)
{
	return k % 5 == 0 ? UINT32_MAX : k % 5 == 1 ? UINT32_MAX - 1 : k % 29;
}

/* Random adds and removes against a plain array: after each, every item
 * present is found, every item removed is not, and the count agrees. */
static void test_remove(void **state)
{
	(void)state;
	enum { KEYS = 400, OPS = 20000 };
	static struct table t;
	static bool present[KEYS];
	struct yhash h = { 0 };
	uint64_t rnd = 12345, count = 0, item;
	for (uint64_t i = 0; i < KEYS; i++)
		t.keys[i] = i;
	for (int op = 0; op < OPS; op++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t k = (rnd >> 33) % KEYS;
		if (present[k]) {
			assert_true(yhash_remove(&h, crowded_hash(k), k));
			present[k] = false;
			count--;
			assert_false(yhash_remove(&h, crowded_hash(k), k));
		} else {
			assert_int_equal(yhash_add(&h, crowded_hash(k), k), 0);
			present[k] = true;
			count++;
		}
		assert_int_equal(h.count, count);
		if (op % 97 == 0 || op == OPS - 1) {
			for (uint64_t j = 0; j < KEYS; j++)
				assert_int_equal(yhash_find(&h, crowded_hash(j), key_is, &t,
							    &t.keys[j], &item), present[j]);
		}
	}
	/* Remove all: the table is empty and stays usable. */
	for (uint64_t k = 0; k < KEYS; k++)
		if (present[k])
			assert_true(yhash_remove(&h, crowded_hash(k), k));
	assert_int_equal(h.count, 0);
	for (uint32_t i = 0; i < h.nslots; i++)
		assert_false(h.slots[i].used);
	assert_false(yhash_remove(&h, 1, 1));
	assert_int_equal(yhash_add(&h, 1, 1), 0);
	assert_true(yhash_find(&h, 1, key_is, &t, &t.keys[1], &item));
	yhash_free(&h);
	struct yhash empty = { 0 };
	assert_false(yhash_remove(&empty, 1, 1));
}

/* A walk of the whole table visits each item once. */
static void test_walk(void **state)
{
	(void)state;
	static bool seen[N];
	struct yhash h = { 0 };
	uint32_t pos = 0, n = 0;
	uint64_t item;
	assert_false(yhash_next(&h, &pos, &item));
	for (uint64_t i = 0; i < 5000; i++)
		assert_int_equal(yhash_add(&h, mix(i / 2), i), 0);
	while (yhash_next(&h, &pos, &item)) {
		assert_true(item < 5000);
		assert_false(seen[item]);
		seen[item] = true;
		n++;
	}
	assert_int_equal(n, 5000);
	yhash_free(&h);
}

/* Items that are their own keys: a set of numbers. */
static void test_set(void **state)
{
	(void)state;
	struct yhash h = { 0 };
	uint64_t item;
	for (uint64_t k = 0; k < 1000; k += 2)
		assert_int_equal(yhash_add(&h, mix(k), k), 0);
	for (uint64_t k = 0; k < 1000; k++) {
		bool in = yhash_find(&h, mix(k), yhash_item_is, NULL, &k, &item);
		assert_int_equal(in, k % 2 == 0);
		if (in)
			assert_int_equal(item, k);
	}
	yhash_free(&h);
}

static void test_filelist(void **state)
{
	(void)state;
	struct yolo_filelist l = { 0 };
	char path[64];
	assert_int_equal(yolo_filelist_find(&l, "a"), -1);
	for (int i = 0; i < 1000; i++) {
		snprintf(path, sizeof(path), "dir%d/file%d", i % 7, i);
		assert_int_equal(yolo_filelist_add(&l, path), i);
	}
	assert_int_equal(l.n, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(path, sizeof(path), "dir%d/file%d", i % 7, i);
		assert_int_equal(yolo_filelist_find(&l, path), i);
		assert_string_equal(l.paths[i], path);
	}
	assert_int_equal(yolo_filelist_find(&l, "dir0/file1"), -1);
	yolo_filelist_free(&l);
	assert_int_equal(l.n, 0);
	assert_int_equal(yolo_filelist_find(&l, "dir0/file0"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_twice),
		cmocka_unit_test(test_pointers),
		cmocka_unit_test(test_several_per_key),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_filelist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
