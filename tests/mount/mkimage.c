/* mkimage.c - test helper: build a boot image from chosen ranges of files
 * under a source directory, with the library's writer (stands in for
 * yolo-capture in the mount tests).
 *
 *   mkimage [-b BLOCKSIZE] [-z LEVEL] OUT SOURCE SPEC...
 *
 * SPEC is FILE (every block), FILE:OFF:LEN (the blocks covering that byte
 * range) or FILE:every:N (every Nth block); blocks are added in SPEC order,
 * each once.  Exit 0 on success, 1 with a message otherwise. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "yolo_image.h"

static int add_range(struct yolo_writer *w, int src, const char *rel, uint64_t off,
		     uint64_t len, uint64_t step, struct yolo_err *err)
{
	int fd = yolo_open_beneath(src, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mkimage: %s: %s\n", rel, strerror(-fd));
		return -1;
	}
	struct stat st;
	fstat(fd, &st);
	struct yolo_file_ident id = yolo_ident_from_stat(&st);
	uint32_t fid;
	if (yolo_writer_find_file(w, rel, &fid) < 0 &&
	    yolo_writer_add_file(w, rel, &id, &fid, err) < 0) {
		fprintf(stderr, "mkimage: %s\n", err->msg);
		close(fd);
		return -1;
	}
	uint32_t bs = yolo_writer_block_size(w);
	if (len == UINT64_MAX || off + len > (uint64_t)st.st_size)
		len = off < (uint64_t)st.st_size ? (uint64_t)st.st_size - off : 0;
	char *buf = malloc(bs);
	int ret = 0;
	for (uint64_t b = off / bs; len && b <= (off + len - 1) / bs; b += step) {
		if (yolo_writer_has_block(w, fid, b))
			continue;
		ssize_t n = pread(fd, buf, bs, (off_t)(b * bs));
		if (n <= 0)
			break;
		if (yolo_writer_add_block(w, fid, b, buf, (uint32_t)n, err) < 0) {
			fprintf(stderr, "mkimage: %s block %llu: %s\n", rel,
				(unsigned long long)b, err->msg);
			ret = -1;
			break;
		}
	}
	free(buf);
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	struct yolo_writer_opts wo = { .block_size = 4096 };
	int c;
	while ((c = getopt(argc, argv, "b:z:")) != -1) {
		if (c == 'b')
			wo.block_size = (uint32_t)strtoul(optarg, NULL, 0);
		else if (c == 'z')
			wo.zstd_level = atoi(optarg);
		else
			return 1;
	}
	if (argc - optind < 3) {
		fprintf(stderr, "usage: mkimage [-b BS] [-z LEVEL] OUT SOURCE SPEC...\n");
		return 1;
	}
	const char *out = argv[optind], *source = argv[optind + 1];
	int src = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (src < 0) {
		perror(source);
		return 1;
	}
	struct yolo_err err = { { 0 } };
	struct yolo_writer *w;
	if (yolo_writer_create(&w, out, &wo, &err) < 0) {
		fprintf(stderr, "mkimage: %s\n", err.msg);
		return 1;
	}
	for (int i = optind + 2; i < argc; i++) {
		char *spec = strdup(argv[i]);
		char *a = strchr(spec, ':');
		uint64_t off = 0, len = UINT64_MAX, step = 1;
		if (a) {
			*a++ = '\0';
			char *b = strchr(a, ':');
			if (!b) {
				fprintf(stderr, "mkimage: bad spec %s\n", argv[i]);
				goto fail;
			}
			*b++ = '\0';
			if (strcmp(a, "every") == 0) {
				step = strtoull(b, NULL, 0);
				if (!step)
					step = 1;
			} else {
				off = strtoull(a, NULL, 0);
				len = strtoull(b, NULL, 0);
			}
		}
		int r = add_range(&*w, src, spec, off, len, step, &err);
		free(spec);
		if (r < 0)
			goto fail;
	}
	if (yolo_writer_commit(w, &err) < 0) {
		fprintf(stderr, "mkimage: %s\n", err.msg);
		return 1;
	}
	return 0;
fail:
	yolo_writer_discard(w);
	return 1;
}
