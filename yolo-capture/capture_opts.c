/* capture_opts.c - what yolo-capture's two commands share on their command
 * lines: the usage text and the image options (--block-size, --zstd). */
#include <errno.h>
#include <stdlib.h>

#include "capture.h"

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

/* Parse a decimal unsigned 32-bit value; prints an error and returns -1. */
static int parse_uint(const char *s, uint32_t *out)
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

int capture_image_opt(int c, const char *arg, struct yolo_writer_opts *wo)
{
	uint32_t v;
	if (parse_uint(arg, &v) < 0)
		return -1;
	if (c == 'b')
		wo->block_size = v;
	else
		wo->zstd_level = (int)v;
	return 0;
}
