/* seekcopy.c - test helper for the two calls coreutils rarely exercises:
 *
 *   seekcopy map FILE                     print FILE's data extents (SEEK_DATA/SEEK_HOLE)
 *   seekcopy copy SRC SOFF DST DOFF LEN   copy_file_range, all LEN bytes
 *
 * Exit 0 on success, 1 with a message otherwise. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int map(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	off_t end = lseek(fd, 0, SEEK_END), pos = 0;
	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		if (data < 0 || hole < 0) {
			perror("lseek");
			return 1;
		}
		printf("data %lld..%lld\n", (long long)data, (long long)hole);
		pos = hole;
	}
	close(fd);
	return 0;
}

static int copy(char **argv)
{
	int in = open(argv[0], O_RDONLY), out = open(argv[2], O_WRONLY);
	if (in < 0 || out < 0) {
		perror("open");
		return 1;
	}
	off_t soff = atoll(argv[1]), doff = atoll(argv[3]);
	size_t len = (size_t)atoll(argv[4]);
	while (len > 0) {
		ssize_t n = copy_file_range(in, &soff, out, &doff, len, 0);
		if (n <= 0) {
			perror("copy_file_range");
			return 1;
		}
		len -= (size_t)n;
	}
	return close(out) < 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "map"))
		return map(argv[2]);
	if (argc == 7 && !strcmp(argv[1], "copy"))
		return copy(argv + 2);
	fprintf(stderr, "usage: seekcopy map FILE | seekcopy copy SRC SOFF DST DOFF LEN\n");
	return 1;
}
