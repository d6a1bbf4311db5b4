/* xattr.c - test helper: set and dump extended attributes without the attr
 * package (symlinks are not followed).
 *   xattr set PATH NAME VALUE
 *   xattr dump PATH          (sorted "name=hexvalue" lines)
 *   xattr dump-lines <PATHS  (the same, "PATH xattr name=hexvalue", for
 *                             each path read from stdin) */
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

/* Print "PREFIXname=hexvalue" lines for `path`, sorted by name.
 * @return 0 or 1 (error printed). */
static int dump(const char *path, const char *prefix)
{
	static char list[65536], val[65536];
	ssize_t n = llistxattr(path, list, sizeof(list));
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
		ssize_t v = lgetxattr(path, names[i], val, sizeof(val));
		if (v < 0) {
			perror("lgetxattr");
			return 1;
		}
		printf("%s%s=", prefix, names[i]);
		for (ssize_t j = 0; j < v; j++)
			printf("%02x", (unsigned char)val[j]);
		printf("\n");
	}
	return 0;
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
	if (argc == 3 && strcmp(argv[1], "dump") == 0)
		return dump(argv[2], "");
	if (argc == 2 && strcmp(argv[1], "dump-lines") == 0) {
		/* One process for a whole tree: paths on stdin, one per line. */
		char path[8192], prefix[8300];
		while (fgets(path, sizeof(path), stdin)) {
			path[strcspn(path, "\n")] = '\0';
			snprintf(prefix, sizeof(prefix), "%s xattr ", path);
			if (dump(path, prefix))
				return 1;
		}
		return 0;
	}
	fprintf(stderr, "usage: xattr set PATH NAME VALUE | xattr dump PATH | "
		"xattr dump-lines <PATHS\n");
	return 2;
}
