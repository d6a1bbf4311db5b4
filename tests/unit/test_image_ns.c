/* test_image_ns.c - the namespace section of boot images: the questions a
 * boot asked (lookups found or not, listings, symlinks read, xattr names)
 * written and read back in first-access order with their ancestors, flags
 * merged, unsafe paths refused, carried over by merge and rebind (deep
 * paths too), and every damage to the section refused with -EUCLEAN and a
 * one-line reason, the section's and table's checksums recomputed so the
 * check itself is hit. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

#define EXT(f) offsetof(struct yolo_disk_ext, f)
#define HDR(f) offsetof(struct yolo_disk_header, f)
#define NSH(f) offsetof(struct yolo_disk_ns_header, f)
#define NSN(f) offsetof(struct yolo_disk_ns_node, f)
#define NSX(f) offsetof(struct yolo_disk_ns_xattr, f)

static void check_questions(struct yolo_image *img)
{
	static const struct {
		const char *path;
		uint16_t flags;
	} want[] = {
		{ "", YOLO_NS_LISTXATTR }, { "usr", 0 }, { "usr/bin", 0 },
		{ "usr/bin/python3", YOLO_NS_LOOKUP }, { "usr/lib", YOLO_NS_READDIR | YOLO_NS_LOOKUP },
		{ "usr/bin/python", YOLO_NS_LOOKUP | YOLO_NS_READLINK }, { "etc", 0 },
		{ "etc/missing.conf", YOLO_NS_LOOKUP },
	};
	char buf[512];
	assert_int_equal(yolo_image_ns_node_count(img), 8);
	for (uint32_t i = 0; i < 8; i++) {
		const struct yolo_ns_node *n = yolo_image_ns_node(img, i);
		assert_int_equal(yolo_image_ns_path(img, i, buf, sizeof(buf)), 0);
		assert_string_equal(buf, want[i].path);
		assert_int_equal(n->flags, want[i].flags);
		if (i)
			assert_true(n->parent < i);
	}
	assert_null(yolo_image_ns_node(img, 8));
	assert_int_equal(yolo_image_ns_path(img, 8, buf, sizeof(buf)), -EINVAL);
	/* "usr/bin/python3" needs 16 bytes. */
	assert_int_equal(yolo_image_ns_path(img, 3, buf, 16), 0);
	assert_int_equal(yolo_image_ns_path(img, 3, buf, 15), -ENAMETOOLONG);
	assert_int_equal(yolo_image_ns_xattr_count(img), 2);
	assert_int_equal(yolo_image_ns_xattr(img, 0)->node, 3);
	assert_string_equal(yolo_image_ns_xattr(img, 0)->name, "security.capability");
	assert_string_equal(yolo_image_ns_xattr(img, 1)->name, "trusted.overlay.origin");
}

static void test_round_trip(void **state)
{
	char *path = tu_join(tu_tmpdir, "ns.yolo");
	assert_int_equal(tu_write_ns_image(path), 0);
	struct yolo_image *img;
	struct yolo_err err = { "" };
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	check_questions(img);
	/* Merged with an image without questions, and rebound: kept. */
	char *plain = tu_join(tu_tmpdir, "plain.yolo"), *merged = tu_join(tu_tmpdir, "merged.yolo");
	struct yolo_writer *w;
	assert_int_equal(yolo_writer_create(&w, plain, NULL, &err), 0);
	assert_int_equal(yolo_writer_commit(w, &err), 0);
	struct yolo_image *p;
	assert_int_equal(yolo_image_open(plain, &p, &err), 0);
	assert_int_equal(yolo_image_ns_node_count(p), 0);
	struct yolo_image *both[2] = { p, img };
	assert_int_equal(yolo_image_merge(merged, both, 2, NULL, &err), 0);
	struct yolo_image *m;
	assert_int_equal(yolo_image_open(merged, &m, &err), 0);
	check_questions(m);
	yolo_image_close(m);
	yolo_image_close(p);
	yolo_image_close(img);
	free(path);
	free(plain);
	free(merged);
}

/* A path of more components than any fixed table would hold is read back
 * whole and carried over by merge. */
static void test_deep_path(void **state)
{
	char *path = tu_join(tu_tmpdir, "deep.yolo");
	char *merged = tu_join(tu_tmpdir, "deep-merged.yolo");
	char deep[400] = "d", buf[512];
	for (int i = 1; i < 150; i++)
		strcat(deep, "/d");
	struct yolo_writer *w;
	struct yolo_err err = { "" };
	uint32_t node;
	assert_int_equal(yolo_writer_create(&w, path, NULL, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, deep, YOLO_NS_LOOKUP, &node, &err), 0);
	assert_int_equal(yolo_writer_commit(w, &err), 0);
	struct yolo_image *img, *m;
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	assert_int_equal(yolo_image_ns_node_count(img), 151);
	assert_int_equal(yolo_image_ns_path(img, 150, buf, sizeof(buf)), 0);
	assert_string_equal(buf, deep);
	assert_int_equal(yolo_image_merge(merged, &img, 1, NULL, &err), 0);
	assert_int_equal(yolo_image_open(merged, &m, &err), 0);
	assert_int_equal(yolo_image_ns_path(m, 150, buf, sizeof(buf)), 0);
	assert_string_equal(buf, deep);
	yolo_image_close(m);
	yolo_image_close(img);
	free(path);
	free(merged);
}

static void test_unsafe_refused(void **state)
{
	char *path = tu_join(tu_tmpdir, "unsafe.yolo");
	struct yolo_writer *w;
	struct yolo_err err = { "" };
	uint32_t n;
	assert_int_equal(yolo_writer_create(&w, path, NULL, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "../etc", YOLO_NS_LOOKUP, &n, &err), -EINVAL);
	assert_int_equal(yolo_writer_add_ns(w, "/etc", YOLO_NS_LOOKUP, &n, &err), -EINVAL);
	assert_int_equal(yolo_writer_add_ns(w, "a//b", YOLO_NS_LOOKUP, &n, &err), -EINVAL);
	assert_int_equal(yolo_writer_add_ns(w, "a", 0x100, &n, &err), -EINVAL);
	assert_int_equal(yolo_writer_add_ns(w, "a", YOLO_NS_LOOKUP, &n, &err), 0);
	assert_int_equal(yolo_writer_add_ns_xattr(w, n, "", &err), -EINVAL);
	assert_int_equal(yolo_writer_add_ns_xattr(w, 99, "user.x", &err), -EINVAL);
	yolo_writer_discard(w);
	free(path);
}

/* ---- damage ---- */

static struct {
	uint8_t *buf;
	size_t len;
	uint64_t ext_off, ns_off;
	uint32_t next;
} base;

static int setup(void **state)
{
	if (tu_group_setup(state))
		return -1;
	char *path = tu_join(tu_tmpdir, "base.yolo");
	if (tu_write_ns_image(path) < 0)
		return -1;
	base.buf = tu_read_file(path, &base.len);
	free(path);
	base.ext_off = tu_get64(base.buf + HDR(ext_off));
	base.next = tu_get32(base.buf + HDR(ext_count));
	for (uint32_t i = 0; i < base.next; i++) {
		const uint8_t *e = base.buf + base.ext_off + i * sizeof(struct yolo_disk_ext);
		if (tu_get32(e + EXT(type)) == YOLO_EXT_NAMESPACE)
			base.ns_off = tu_get64(e + EXT(off));
	}
	return base.ns_off ? 0 : -1;
}

static int teardown(void **state)
{
	free(base.buf);
	return tu_group_teardown(state);
}

static uint8_t *N(uint8_t *b, uint32_t i)
{
	return b + base.ns_off + sizeof(struct yolo_disk_ns_header) + i * sizeof(struct yolo_disk_ns_node);
}

static uint8_t *X(uint8_t *b, uint32_t i)
{
	return N(b, 8) + i * sizeof(struct yolo_disk_ns_xattr);
}

static uint8_t *S(uint8_t *b)
{
	return X(b, 2);
}

static void m_reserved(uint8_t *b) { tu_put64(b + base.ns_off + NSH(reserved), 1); }
static void m_no_nodes(uint8_t *b) { tu_put32(b + base.ns_off + NSH(node_count), 0); }
static void m_count(uint8_t *b) { tu_put32(b + base.ns_off + NSH(node_count), 9); }
static void m_strings(uint8_t *b) { tu_put64(b + base.ns_off + NSH(strings_size), tu_get64(b + base.ns_off + NSH(strings_size)) + 1); }
static void m_node_reserved(uint8_t *b) { tu_put32(N(b, 3) + NSN(reserved), 7); }
static void m_flags(uint8_t *b) { tu_put16(N(b, 3) + NSN(flags), 0x8000); }
static void m_root_named(uint8_t *b) { tu_put16(N(b, 0) + NSN(name_len), 1); }
static void m_parent_later(uint8_t *b) { tu_put32(N(b, 2) + NSN(parent), 5); }
static void m_parent_self(uint8_t *b) { tu_put32(N(b, 2) + NSN(parent), 2); }
static void m_name_off(uint8_t *b) { tu_put32(N(b, 2) + NSN(name_off), 0); }
static void m_name_long(uint8_t *b) { tu_put16(N(b, 7) + NSN(name_len), 0xffff); }
static void m_name_empty(uint8_t *b) { tu_put16(N(b, 1) + NSN(name_len), 0); }
static void m_name_slash(uint8_t *b) { S(b)[0] = '/'; }                       /* "usr" -> "/sr" */
static void m_name_dot(uint8_t *b) { memcpy(S(b), "..u", 3); tu_put16(N(b, 1) + NSN(name_len), 2); tu_put16(N(b, 2) + NSN(name_len), 4); }
static void m_name_nul(uint8_t *b) { S(b)[1] = '\0'; }
static void m_dup_name(uint8_t *b) { memcpy(S(b) + 3, "usr", 3); tu_put32(N(b, 2) + NSN(parent), 0); }  /* "bin" -> "usr" in the root */
static void m_xattr_node(uint8_t *b) { tu_put32(X(b, 1) + NSX(node), 8); }
static void m_xattr_reserved(uint8_t *b) { tu_put16(X(b, 0) + NSX(reserved16), 1); }
static void m_xattr_empty(uint8_t *b) { tu_put16(X(b, 1) + NSX(name_len), 0); }

static const struct {
	const char *name;
	void (*fn)(uint8_t *b);
	const char *needle;
} cases[] = {
	{ "reserved header field", m_reserved, "reserved" },
	{ "no nodes", m_no_nodes, "nodes" },
	{ "node count past the section", m_count, "counts say" },
	{ "strings size past the section", m_strings, "counts say" },
	{ "node reserved field", m_node_reserved, "reserved" },
	{ "unknown node flags", m_flags, "flags" },
	{ "root with a name", m_root_named, "node 0" },
	{ "parent after its child", m_parent_later, "must come first" },
	{ "its own parent", m_parent_self, "must come first" },
	{ "name offset out of order", m_name_off, "bad name" },
	{ "name past the strings", m_name_long, "bad name" },
	{ "empty name", m_name_empty, "bad name" },
	{ "name with a slash", m_name_slash, "bad name" },
	{ "name \"..\"", m_name_dot, "bad name" },
	{ "name with a NUL", m_name_nul, "bad name" },
	{ "name twice in a directory", m_dup_name, "repeats a name" },
	{ "xattr of no node", m_xattr_node, "out of range" },
	{ "xattr reserved field", m_xattr_reserved, "reserved" },
	{ "empty xattr name", m_xattr_empty, "bad name" },
};

static void test_damage_refused(void **state)
{
	int failures = 0;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint8_t *b = malloc(base.len);
		memcpy(b, base.buf, base.len);
		cases[c].fn(b);
		tu_fix_ext(b, base.len, true);
		tu_fix_header(b);
		struct yolo_image *img = NULL;
		struct yolo_err err = { "" };
		int r = yolo_image_open_mem(b, base.len, &img, &err);
		if (r != -EUCLEAN || !strcasestr(err.msg, cases[c].needle) || strchr(err.msg, '\n')) {
			print_message("MISMATCH [%s]: got %d \"%s\"\n", cases[c].name, r, err.msg);
			failures++;
		}
		if (r == 0)
			yolo_image_close(img);
		free(b);
	}
	/* The section's own checksum, left stale. */
	uint8_t *b = malloc(base.len);
	memcpy(b, base.buf, base.len);
	S(b)[0] ^= 1;
	struct yolo_image *img = NULL;
	struct yolo_err err = { "" };
	if (yolo_image_open_mem(b, base.len, &img, &err) != -EUCLEAN ||
	    !strstr(err.msg, "namespace section checksum")) {
		print_message("MISMATCH [stale checksum]: \"%s\"\n", err.msg);
		failures++;
	}
	free(b);
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_unsafe_refused),
		cmocka_unit_test(test_deep_path),
		cmocka_unit_test(test_damage_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
