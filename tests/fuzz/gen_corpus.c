/* gen_corpus.c - writes a handful of small valid boot images (the fuzzer's
 * seeds) into a directory: every block size extreme, raw, zstd, zero and
 * short blocks, an empty image, one with namespace questions and a merged
 * one.  Usage: gen_corpus DIR */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

static int write_one(const char *dir, const char *name, uint32_t bs, int level,
		     const struct tu_file *f, size_t nf, const struct tu_access *a, size_t na)
{
	char *path = tu_join(dir, name);
	struct yolo_writer_opts o = { .block_size = bs, .zstd_level = level };
	struct yolo_err err = { "" };
	int ret = tu_write_image(path, &o, f, nf, NULL, a, na, &err);
	if (ret < 0)
		fprintf(stderr, "%s: %s\n", path, err.msg);
	free(path);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	static const struct tu_file f3[] = { { "a", 6 * 512 + 100 }, { "xx/yy", 1024 }, { "c", 700 } };
	static const struct tu_access a3[] = {
		{ 0, 1 }, { 1, 1 }, { 0, 2 }, { 2, 0 }, { 0, 0 }, { 2, 1 }, { 0, 5 }, { 1, 0 }, { 0, 4 }, { 0, 6 },
	};
	static const struct tu_file fbig[] = { { "disk.qcow2", 5ull << 30 }, { "etc/hostname", 7 } };
	static const struct tu_access abig[] = { { 0, 4 }, { 0, 0 }, { 1, 0 }, { 0, 5119 } };
	static const struct tu_file f64k[] = { { "bin/sh", 100 }, { "lib/libc.so.6", 3 * 65536 + 1 } };
	static const struct tu_access a64k[] = { { 0, 0 }, { 1, 3 }, { 1, 0 } };
	static const struct tu_file f4k[] = { { "boot/vmlinuz", 3 * 4096 + 5 }, { "boot/initrd.img", 8192 } };
	static const struct tu_access a4k[] = { { 1, 1 }, { 0, 3 }, { 0, 2 }, { 1, 0 } };
	int bad = 0;
	bad |= write_one(dir, "seed-512-zstd.yolo", 512, 3, f3, 3, a3, 10) < 0;
	bad |= write_one(dir, "seed-512-raw.yolo", 512, 0, f3, 3, a3, 6) < 0;
	bad |= write_one(dir, "seed-4k.yolo", 4096, 1, f4k, 2, a4k, 4) < 0;
	bad |= write_one(dir, "seed-64k.yolo", 65536, 0, f64k, 2, a64k, 3) < 0;
	bad |= write_one(dir, "seed-1m-zero.yolo", 1u << 20, 5, fbig, 2, abig, 4) < 0;
	bad |= write_one(dir, "seed-empty.yolo", 4096, 0, NULL, 0, NULL, 0) < 0;
	char *pns = tu_join(dir, "seed-namespace.yolo");
	if (tu_write_ns_image(pns) < 0) {
		fprintf(stderr, "%s: cannot write\n", pns);
		bad = 1;
	}
	free(pns);
	/* A merged image: the first two seeds' union. */
	char *p1 = tu_join(dir, "seed-512-raw.yolo"), *p2 = tu_join(dir, "seed-512-zstd.yolo");
	char *out = tu_join(dir, "seed-merged.yolo");
	struct yolo_image *in[2] = { NULL, NULL };
	struct yolo_err err = { "" };
	if (yolo_image_open(p1, &in[0], &err) < 0 || yolo_image_open(p2, &in[1], &err) < 0 ||
	    yolo_image_merge(out, in, 2, NULL, &err) < 0) {
		fprintf(stderr, "merge: %s\n", err.msg);
		bad = 1;
	}
	yolo_image_close(in[0]);
	yolo_image_close(in[1]);
	free(p1);
	free(p2);
	free(out);
	return bad;
}
