/* replay.c - a main() for a libFuzzer target that needs no clang: feeds
 * every file named on the command line (a directory stands for the regular
 * files in it) once to LLVMFuzzerTestOneInput, the way `fuzzer -runs=0
 * DIR...` replays a corpus.  Linked with the target's own source, so the
 * seed corpus and the saved crash reproducers run in every ordinary (gcc)
 * build, and under ASan/UBSan in a -Db_sanitize build.
 *
 * A crash or a failed CHECK in the target aborts the process (non-zero for
 * meson); a non-zero return from the target, an unreadable input or no
 * input at all fails too, so an emptied or mistyped corpus directory
 * cannot pass unnoticed.  Each input is copied into a buffer of exactly its
 * size, as libFuzzer does, so sanitizers see over-reads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_file(const char *path, uint8_t **out, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;   /* EIO: file shrank under us */
			free(buf);
			close(fd);
			return e;
		}
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*size = len;
	return 0;
}

/* @return 0, or -1 after printing why the input failed. */
static int run_one(const char *path)
{
	uint8_t *data = NULL;
	size_t size = 0;
	int ret = read_file(path, &data, &size);
	if (ret < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(-ret));
		return -1;
	}
	/* Named before the call: if the target crashes, this is the culprit. */
	printf("replay: %s (%zu bytes)\n", path, size);
	fflush(stdout);
	ret = LLVMFuzzerTestOneInput(data, size);
	free(data);
	if (ret != 0) {
		fprintf(stderr, "replay: %s: target returned %d\n", path, ret);
		return -1;
	}
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Feeds the regular files of DIR in name order; *count += files fed.
 * @return the number of failed inputs, or -1 if DIR cannot be listed. */
static int run_dir(const char *dir, unsigned *count)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int failed = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		if (snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) < (int)sizeof(path) &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			failed += run_one(path) < 0;
			(*count)++;
		}
		free(ents[i]);
	}
	free(ents);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	unsigned count = 0;
	int failed = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		unsigned before = count;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			failed++;
		} else if (S_ISDIR(st.st_mode)) {
			int r = run_dir(argv[i], &count);
			failed += r < 0 ? 1 : r;
			if (r >= 0 && count == before) {
				fprintf(stderr, "replay: %s: no inputs in this directory\n", argv[i]);
				failed++;
			}
		} else {
			failed += run_one(argv[i]) < 0;
			count++;
		}
	}
	printf("replay: %u inputs, %d failed\n", count, failed);
	return failed ? 1 : 0;
}
