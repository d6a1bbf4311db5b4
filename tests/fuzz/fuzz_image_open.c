/* fuzz_image_open.c - libFuzzer target for the boot-image reader: feeds the
 * input to yolo_image_open_mem() and, when it validates, uses everything an
 * opened image offers (files, lookups, first-access order, verified reads of
 * every block, verify) and checks the invariants yolo_image.h promises, so
 * a validation gap shows up as an abort rather than passing silently.
 *
 * Each input is parsed twice: as given (so checksum rejection is covered),
 * and as a copy with the metadata and header checksums recomputed (so
 * mutations get past the checksums to the field-by-field validation;
 * otherwise almost every mutated input dies at the header checksum). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <stddef.h>
#include <xxhash.h>

#include "fixsum.h"
#include "util.h"
#include "yolo_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static uint8_t buf[(1u << YOLO_BLOCK_SHIFT_MAX) + 64];

/* The namespace questions: what namespace.c relies on to build paths. */
static void exercise_namespace(struct yolo_image *img)
{
	uint32_t nn = yolo_image_ns_node_count(img), nx = yolo_image_ns_xattr_count(img);
	CHECK(nn <= YOLO_NS_MAX_NODES && nx <= YOLO_NS_MAX_XATTRS);
	CHECK(nx == 0 || nn > 0);
	for (uint32_t i = 0; i < nn; i++) {
		const struct yolo_ns_node *n = yolo_image_ns_node(img, i);
		CHECK(n && n->name && !(n->flags & ~YOLO_NS_FLAGS_KNOWN));
		size_t len = strlen(n->name);
		if (i == 0) {
			CHECK(n->parent == 0 && len == 0);
			continue;
		}
		CHECK(n->parent < i && len >= 1 && len <= YOLO_NS_MAX_NAME);
		CHECK(!strchr(n->name, '/') && strcmp(n->name, ".") && strcmp(n->name, ".."));
	}
	CHECK(yolo_image_ns_node(img, nn) == NULL);
	for (uint32_t i = 0; i < nx; i++) {
		const struct yolo_ns_xattr *x = yolo_image_ns_xattr(img, i);
		CHECK(x && x->name && x->node < nn);
		size_t len = strlen(x->name);
		CHECK(len >= 1 && len <= YOLO_NS_MAX_NAME);
	}
	CHECK(yolo_image_ns_xattr(img, nx) == NULL);
}

static void exercise(struct yolo_image *img)
{
	const struct yolo_image_info *in = yolo_image_info(img);
	CHECK(in->block_shift >= YOLO_BLOCK_SHIFT_MIN && in->block_shift <= YOLO_BLOCK_SHIFT_MAX);
	CHECK(in->block_size == 1u << in->block_shift);
	CHECK(in->file_count <= YOLO_MAX_FILES && in->block_count <= YOLO_MAX_BLOCKS);
	CHECK(!(in->incompat & ~YOLO_INCOMPAT_KNOWN));

	uint64_t covered = 0;
	for (uint32_t i = 0; i < in->file_count; i++) {
		const struct yolo_file *f = yolo_image_file(img, i);
		CHECK(f && f->path);
		size_t len = strlen(f->path);
		CHECK(yolo_path_is_safe(f->path, len));
		uint32_t id = UINT32_MAX;
		CHECK(yolo_image_find_file(img, f->path, &id) == 0 && id == i);
		CHECK(f->first_block == covered);
		covered += f->block_count;
		CHECK(covered <= in->block_count);
		(void)yolo_fingerprint(yolo_image_block(img, f->first_block), f->block_count);
	}
	CHECK(covered == in->block_count);
	CHECK(yolo_image_file(img, in->file_count) == NULL);
	uint32_t id;
	/* Absolute: never the path of a file (all are safe, checked above). */
	CHECK(yolo_image_find_file(img, "/no such file", &id) == -ENOENT);

	uint64_t raw = 0;
	for (uint64_t i = 0; i < in->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		CHECK(b);
		CHECK(b->file_id < in->file_count);
		CHECK(yolo_image_lookup(img, b->file_id, b->block_id) == b);
		CHECK(b->seq < in->block_count && yolo_image_block_by_seq(img, b->seq) == b);
		CHECK(b->raw_len > 0 && b->raw_len <= in->block_size);
		CHECK(!(b->flags & ~YOLO_BLOCK_FLAGS_KNOWN));
		raw += b->raw_len;
		int n = yolo_image_read_block(img, b, buf, sizeof(buf), 0);
		CHECK(n == (int)b->raw_len || n == -EUCLEAN);
		const void *m = yolo_image_block_mem(img, b);
		if (m && n > 0)
			CHECK(memcmp(m, buf, (size_t)n) == 0);
		n = yolo_image_read_block(img, b, buf, sizeof(buf), YOLO_READ_VERIFY);
		CHECK(n == (int)b->raw_len || n == -EUCLEAN);
		CHECK(yolo_image_read_block(img, b, buf, b->raw_len - 1, 0) == -EINVAL);
		/* A neighbouring id is absent or another valid entry. */
		const struct yolo_block *nb = yolo_image_lookup(img, b->file_id, b->block_id + 1);
		CHECK(!nb || nb == b + 1);
	}
	CHECK(raw == in->raw_bytes);
	for (uint64_t s = 0; s < in->block_count; s++) {
		const struct yolo_block *b = yolo_image_block_by_seq(img, s);
		CHECK(b && b->seq == s);
	}
	CHECK(yolo_image_block(img, in->block_count) == NULL);
	CHECK(yolo_image_block_by_seq(img, in->block_count) == NULL);
	CHECK(yolo_image_lookup(img, in->file_count, 0) == NULL);
	CHECK(yolo_image_lookup(img, UINT32_MAX, UINT64_MAX) == NULL);

	/* Whole-image verify re-reads every block; skip it when zero blocks of
	 * huge files would make one input take seconds. */
	if (in->raw_bytes <= (8u << 20)) {
		struct yolo_verify_report rep;
		int r = yolo_image_verify(img, -1, &rep, NULL, NULL);
		CHECK(r == 0 || r == 1);
		CHECK(rep.blocks_ok + rep.blocks_bad == in->block_count);
		CHECK((r == 1) == (rep.blocks_bad != 0));
	}
	CHECK(yolo_image_load(img, 0, NULL, NULL) == 0);   /* no-op for memory images */
	exercise_namespace(img);
}

static void one(const uint8_t *data, size_t size)
{
	struct yolo_image *img = NULL;
	struct yolo_err err;
	err.msg[0] = '\0';
	int ret = yolo_image_open_mem(data, size, &img, &err);
	if (ret < 0) {
		/* Every rejection says why, as one line. */
		CHECK(err.msg[0] != '\0');
		CHECK(!strpbrk(err.msg, "\n\r"));   /* untrusted bytes must not break the line */
		CHECK(ret == -EUCLEAN || ret == -EOPNOTSUPP || ret == -ENOMEM);
		return;
	}
	CHECK(ret == 0 && img);
	exercise(img);
	yolo_image_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size);
	if (size >= YOLO_HEADER_SIZE) {
		/* Exactly sized, so ASan sees over-reads of the copy too. */
		uint8_t *copy = malloc(size);
		if (!copy)
			return 0;
		memcpy(copy, data, size);
		fix_checksums(copy, size);
		if (memcmp(copy, data, size))
			one(copy, size);
		free(copy);
	}
	return 0;
}
