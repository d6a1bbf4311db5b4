/* capture_build.c - `yolo-capture build`: turn a saved boot trace into a
 * boot image, reading block contents from the (unchanged) source tree. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "yolo_trace.h"

int capture_write_image(const struct yolo_trace *t, int source_dirfd, const char *out,
			const struct yolo_writer_opts *wo)
{
	struct yolo_err err = { "" };
	struct yolo_build_stats st;
	if (yolo_image_build_from_trace(t, source_dirfd, out, wo, &st, &err) < 0) {
		fprintf(stderr, "yolo-capture: %s\n", err.msg);
		return -1;
	}
	struct yolo_image *img;
	if (yolo_image_open(out, &img, &err) < 0) {
		fprintf(stderr, "yolo-capture: wrote an unreadable image: %s\n", err.msg);
		return -1;
	}
	const struct yolo_image_info *in = yolo_image_info(img);
	printf("%s: %llu reads -> %u files, %llu blocks, %.2f MiB (stored %.2f MiB)\n", out,
	       (unsigned long long)st.reads, in->file_count, (unsigned long long)in->block_count,
	       in->raw_bytes / 1048576.0, in->data_size / 1048576.0);
	for (uint32_t i = 0; i < in->file_count; i++) {
		const struct yolo_file *f = yolo_image_file(img, i);
		uint64_t bytes = 0;
		for (uint32_t j = 0; j < f->block_count; j++)
			bytes += yolo_image_block(img, f->first_block + j)->raw_len;
		printf("  %6.2f%% of %-40s (%.2f of %.2f MiB)\n",
		       f->ident.size ? 100.0 * (double)bytes / (double)f->ident.size : 0.0, f->path,
		       bytes / 1048576.0, f->ident.size / 1048576.0);
	}
	yolo_image_close(img);
	return 0;
}

int capture_build_main(int argc, char **argv)
{
	const char *trace = NULL, *out = NULL;
	struct yolo_writer_opts wo = { 0 };
	static const struct option longopts[] = {
		{ "trace", required_argument, NULL, 't' }, { "output", required_argument, NULL, 'o' },
		{ "block-size", required_argument, NULL, 'b' }, { "zstd", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "t:o:b:z:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't': trace = optarg; break;
		case 'o': out = optarg; break;
		case 'b': case 'z':
			if (capture_image_opt(c, optarg, &wo) < 0)
				return 2;
			break;
		case 'h': capture_usage(stdout); return 0;
		default: capture_usage(stderr); return 2;
		}
	}
	if (!trace || !out || optind + 1 != argc) {
		fprintf(stderr, "yolo-capture build: needs --trace FILE -o IMAGE SOURCE\n");
		return 2;
	}
	const char *source = argv[optind];
	struct yolo_err err = { "" };
	struct yolo_trace *t;
	if (yolo_trace_load(trace, &t, &err) < 0) {
		fprintf(stderr, "yolo-capture: %s\n", err.msg);
		return 2;
	}
	int dirfd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		fprintf(stderr, "yolo-capture: %s: %s\n", source, strerror(errno));
		yolo_trace_free(t);
		return 2;
	}
	int ret = capture_write_image(t, dirfd, out, &wo);
	close(dirfd);
	yolo_trace_free(t);
	return ret < 0 ? 1 : 0;
}
