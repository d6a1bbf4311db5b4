/* capture_main.c - yolo-capture's command line: record a boot (the
 * default) or build an image from a saved trace (`build`). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#include "capture.h"
#include "log.h"
#include "passthrough.h"

void capture_usage(FILE *out)
{
	fprintf(out,
		"usage: yolo-capture [options] -o IMAGE SOURCE -- COMMAND [ARGS...]\n"
		"       yolo-capture build --trace FILE -o IMAGE [--block-size N] [--zstd L] SOURCE\n"
		"\n"
		"Record every read COMMAND makes of the files under SOURCE (through a\n"
		"pass-through FUSE layer mounted over SOURCE, bypassing the page cache) and\n"
		"write a boot image of the blocks read, in first-access order.\n"
		"\n"
		"  -o, --output IMAGE     boot image to write (replaced atomically)\n"
		"  -t, --trace FILE       also keep the raw trace (replay it, or rebuild with `build`)\n"
		"  -m, --mountpoint DIR   mount the recording layer here instead of over SOURCE\n"
		"  -u, --until-file PATH  stop when PATH exists (e.g. a boot-done marker)\n"
		"  -T, --timeout S        stop after S seconds\n"
		"  -b, --block-size N     image block size (power of two, 512..1048576; 4096)\n"
		"  -z, --zstd L           compress blocks with zstd level L (images kept on SSD)\n"
		"  -q, --quiet            no progress on stderr\n"
		"Recording stops when COMMAND exits, the until-file appears, the timeout\n"
		"passes, or on SIGINT/SIGTERM (COMMAND is then stopped first).\n");
}

int capture_parse_uint(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > UINT32_MAX) {
		fprintf(stderr, "yolo-capture: \"%s\" is not a number\n", s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	ylog_init("yolo-capture");
	pt_log_to_ylog();
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("yolo-capture %s\n", YOLO_VERSION);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "build"))
		return capture_build_main(argc - 1, argv + 1);
	return capture_record_main(argc, argv);
}
