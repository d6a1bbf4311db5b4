/* xattr.c - test helper: set and dump extended attributes without the attr
 * package (symlinks are not followed).
 *   xattr set PATH NAME VALUE
 *   xattr dump PATH          (sorted "name=hexvalue" lines) */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "set") == 0) {
		if (lsetxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) < 0) {
			perror("lsetxattr");
			return 1;
		}
		return 0;
	}
	if (argc != 3 || strcmp(argv[1], "dump") != 0) {
		fprintf(stderr, "usage: xattr set PATH NAME VALUE | xattr dump PATH\n");
		return 2;
	}
	char list[65536], val[65536];
	ssize_t n = llistxattr(argv[2], list, sizeof(list));
	if (n < 0) {
		if (errno == ENOTSUP)
			return 0;
		perror("llistxattr");
		return 1;
	}
	char *names[4096];
	size_t k = 0;
	for (char *p = list; p < list + n && k < 4096; p += strlen(p) + 1)
		names[k++] = p;
	qsort(names, k, sizeof(char *), cmp);
	for (size_t i = 0; i < k; i++) {
		ssize_t v = lgetxattr(argv[2], names[i], val, sizeof(val));
		if (v < 0) {
			perror("lgetxattr");
			return 1;
		}
		printf("%s=", names[i]);
		for (ssize_t j = 0; j < v; j++)
			printf("%02x", (unsigned char)val[j]);
		printf("\n");
	}
	return 0;
}
