/* yolo_readbench.c - `yolo-readbench`: the steady-state reader of the
 * benchmark (bench/bench --steady, thesis Table 5.2).  Reads one file
 * sequentially, or reads a given number of bytes of it at random aligned
 * offsets (fixed seed, so ext4 and yolofs runs read the same blocks), through
 * the page cache, and reports the time.
 *
 * Output is one line of key=value pairs on stdout, for scripts. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* A size of at least one byte (bench/bench passes --bytes 1T). */
static int parse_count(const char *s, uint64_t *out)
{
	uint64_t v;
	if (yolo_parse_size(s, &v) < 0 || !v)
		return -EINVAL;
	*out = v;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: yolo-readbench seq FILE [--bs SIZE]\n"
		"       yolo-readbench rand FILE --bytes SIZE [--bs SIZE] [--seed N]\n"
		"Read FILE sequentially, or SIZE bytes of it at random BS-aligned offsets,\n"
		"and print: seconds=S bytes=B mbps=M errors=E\n"
		"  --bs SIZE    request size (default 1M for seq, 64K for rand)\n"
		"  --bytes SIZE how much to read in rand mode\n"
		"  --seed N     random sequence (default 1)\n"
		"  --direct     O_DIRECT (bypass the page cache; BS must be 4K-aligned)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bs", required_argument, NULL, 'b' }, { "bytes", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "direct", no_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' }, { 0 } };
	uint64_t bs = 0, total = 0, seed = 1;
	int c, direct = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_count(optarg, &bs) < 0) {
				fprintf(stderr, "yolo-readbench: bad --bs '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_count(optarg, &total) < 0) {
				fprintf(stderr, "yolo-readbench: bad --bytes '%s'\n", optarg);
				return 2;
			}
			break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'd': direct = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 2 != argc) {
		usage(stderr);
		return 2;
	}
	const char *mode = argv[optind], *path = argv[optind + 1];
	int rand_mode = !strcmp(mode, "rand");
	if (!rand_mode && strcmp(mode, "seq")) {
		usage(stderr);
		return 2;
	}
	if (!bs)
		bs = rand_mode ? 64 << 10 : 1 << 20;
	int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "yolo-readbench: %s: %s\n", path, strerror(errno));
		return 2;
	}
	uint64_t size = (uint64_t)st.st_size, nblocks = size / bs;
	if (rand_mode && (!total || !nblocks)) {
		fprintf(stderr, "yolo-readbench: rand needs --bytes and a file of at least one block\n");
		return 2;
	}
	char *buf;
	if (posix_memalign((void **)&buf, 4096, bs))
		return 2;
	uint64_t bytes = 0, errors = 0, x = seed ? seed : 1, start = yolo_now_ns();
	if (rand_mode) {
		for (uint64_t done = 0; done < total; done += bs) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			ssize_t n = pread(fd, buf, bs, (off_t)((x % nblocks) * bs));
			if (n < 0)
				errors++;
			else
				bytes += (uint64_t)n;
		}
	} else {
		for (uint64_t off = 0; off < size; off += bs) {
			ssize_t n = pread(fd, buf, bs, (off_t)off);
			if (n < 0)
				errors++;
			else if (n == 0)
				break;
			else
				bytes += (uint64_t)n;
		}
	}
	double secs = (double)(yolo_now_ns() - start) / 1e9;
	printf("seconds=%.6f bytes=%llu mbps=%.1f errors=%llu\n", secs, (unsigned long long)bytes,
	       secs > 0 ? bytes / secs / 1e6 : 0.0, (unsigned long long)errors);
	free(buf);
	close(fd);
	return errors ? 1 : 0;
}
