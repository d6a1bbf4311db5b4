/* rwstress.c - test helper for the mount suite's concurrency test: several
 * reader processes and one writer hammer the same file through the mount.
 * Every 512-byte sector is self-describing (sector number, generation and a
 * fill derived from both), and the writer publishes, per sector, the
 * generation being written and the last one completed, so each reader can
 * check every sector it reads: it must be intact (never a mix of two
 * writes; see reader() for the one exception the kernel imposes) and no
 * older than what was complete when the read began (never stale).  The writer mirrors every write into a shadow file on the plain
 * file system, compared byte for byte at the end.
 *
 *   rwstress init FILE SHADOW SECTORS
 *   rwstress run FILE SHADOW READERS SECONDS
 * Exit 0 when no mismatch was seen, 1 otherwise. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECT 512
#define MAGIC 0x594f4c4fu

static void fill(uint8_t *p, uint32_t sector, uint32_t gen)
{
	uint32_t h[3] = { MAGIC, sector, gen };
	memcpy(p, h, sizeof(h));
	uint64_t x = ((uint64_t)sector << 32 | gen) * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = sizeof(h); i < SECT; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* @return the generation in the sector, or -1 if it is not intact. */
static int64_t check(const uint8_t *p, uint32_t sector)
{
	uint32_t h[3];
	uint8_t want[SECT];
	memcpy(h, p, sizeof(h));
	if (h[0] != MAGIC || h[1] != sector)
		return -1;
	fill(want, sector, h[2]);
	return memcmp(want, p, SECT) == 0 ? (int64_t)h[2] : -1;
}

struct shared {
	uint32_t nsect;
	volatile int stop;
	uint64_t reads, writes, mismatches;
	uint32_t gen[];          /* [0, nsect): completed; [nsect, 2 nsect): being written */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static void writer(struct shared *sh, const char *file, const char *shadow, double secs)
{
	int fd = open(file, O_WRONLY), sfd = open(shadow, O_WRONLY);
	uint8_t *buf = malloc(64 * SECT);
	unsigned seed = (unsigned)getpid();
	double end = now() + secs;
	if (fd < 0 || sfd < 0) {
		perror("writer open");
		__atomic_add_fetch(&sh->mismatches, 1, __ATOMIC_SEQ_CST);
		return;
	}
	while (now() < end) {
		uint32_t n = 1 + (uint32_t)rand_r(&seed) % 24;
		uint32_t s = (uint32_t)rand_r(&seed) % (sh->nsect - n);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t g = sh->gen[s + i] + 1;
			__atomic_store_n(&sh->gen[sh->nsect + s + i], g, __ATOMIC_SEQ_CST);
			fill(buf + i * SECT, s + i, g);
		}
		if (write_all(fd, buf, n * SECT, (off_t)s * SECT) < 0 ||
		    write_all(sfd, buf, n * SECT, (off_t)s * SECT) < 0) {
			perror("writer pwrite");
			__atomic_add_fetch(&sh->mismatches, 1, __ATOMIC_SEQ_CST);
			break;
		}
		for (uint32_t i = 0; i < n; i++)
			__atomic_store_n(&sh->gen[s + i], sh->gen[sh->nsect + s + i], __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&sh->writes, 1, __ATOMIC_SEQ_CST);
		if (rand_r(&seed) % 8 == 0)
			usleep(200);
	}
	close(fd);
	close(sfd);
	free(buf);
}

static void reader(struct shared *sh, const char *file, int idx)
{
	bool direct = idx % 2 == 0;
	int fd = open(file, O_RDONLY | (direct ? O_DIRECT : 0));
	uint8_t *buf;
	uint32_t *g0 = malloc(256 * sizeof(uint32_t));
	unsigned seed = (unsigned)getpid() * 7 + 1;
	if (fd < 0 || posix_memalign((void **)&buf, 4096, 256 * SECT)) {
		perror("reader open");
		__atomic_add_fetch(&sh->mismatches, 1, __ATOMIC_SEQ_CST);
		return;
	}
	while (!sh->stop) {
		uint32_t n = 1 + (uint32_t)rand_r(&seed) % 256;
		if (direct)
			n = (n + 7) & ~7u;
		if (n > sh->nsect)
			n = sh->nsect;
		uint32_t s = (uint32_t)rand_r(&seed) % (sh->nsect - n + 1);
		if (direct)
			s &= ~7u;
		for (uint32_t i = 0; i < n; i++)
			g0[i] = __atomic_load_n(&sh->gen[s + i], __ATOMIC_SEQ_CST);
		if (!direct)
			posix_fadvise(fd, (off_t)s * SECT, (off_t)n * SECT, POSIX_FADV_DONTNEED);
		ssize_t got = pread(fd, buf, (size_t)n * SECT, (off_t)s * SECT);
		if (got != (ssize_t)(n * SECT)) {
			fprintf(stderr, "reader %d: pread %u sectors at %u: %zd (%s)\n", idx, n, s,
				got, got < 0 ? strerror(errno) : "short");
			__atomic_add_fetch(&sh->mismatches, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		for (uint32_t i = 0; i < n; i++) {
			uint32_t hi = __atomic_load_n(&sh->gen[sh->nsect + s + i], __ATOMIC_SEQ_CST);
			int64_t g = check(buf + (size_t)i * SECT, s + i);
			/* Buffered read(2) racing a write(2) of the same page may
			 * see a mix on any Linux file system (ext4 too: reads do
			 * not lock the page), so a torn sector is accepted from a
			 * cached reader only while that sector was being written.
			 * O_DIRECT reads each go to the daemon as one request and
			 * must never be torn. */
			bool racing = !direct && hi != g0[i];
			if ((g < 0 && !racing) || (g >= 0 && (g < g0[i] || g > hi))) {
				uint64_t m = __atomic_add_fetch(&sh->mismatches, 1, __ATOMIC_SEQ_CST);
				if (m <= 10)
					fprintf(stderr, "reader %d (%s): sector %u: got %s%lld, "
						"expected %u..%u\n", idx, direct ? "O_DIRECT" : "cached",
						s + i, g < 0 ? "torn/garbage " : "generation ",
						(long long)g, g0[i], hi);
			}
		}
		__atomic_add_fetch(&sh->reads, 1, __ATOMIC_SEQ_CST);
	}
	close(fd);
	free(buf);
	free(g0);
}

static int compare(const char *a, const char *b, int flags)
{
	int fa = open(a, O_RDONLY | flags), fb = open(b, O_RDONLY);
	uint8_t *ba, *bb;
	if (fa < 0 || fb < 0 || posix_memalign((void **)&ba, 4096, 1 << 20) ||
	    posix_memalign((void **)&bb, 4096, 1 << 20))
		return -1;
	int ret = 0;
	for (off_t off = 0;; off += 1 << 20) {
		ssize_t na = pread(fa, ba, 1 << 20, off), nb = pread(fb, bb, 1 << 20, off);
		if (na != nb || (na > 0 && memcmp(ba, bb, (size_t)na) != 0)) {
			fprintf(stderr, "final content differs from the shadow near offset %lld%s\n",
				(long long)off, flags ? " (O_DIRECT)" : "");
			ret = -1;
			break;
		}
		if (na <= 0)
			break;
	}
	close(fa);
	close(fb);
	free(ba);
	free(bb);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "init") == 0) {
		uint32_t n = (uint32_t)strtoul(argv[4], NULL, 0);
		uint8_t sec[SECT];
		FILE *f = fopen(argv[2], "w"), *s = fopen(argv[3], "w");
		if (!f || !s)
			return 1;
		for (uint32_t i = 0; i < n; i++) {
			fill(sec, i, 0);
			fwrite(sec, 1, SECT, f);
			fwrite(sec, 1, SECT, s);
		}
		return fclose(f) || fclose(s) ? 1 : 0;
	}
	if (argc != 6 || strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "usage: rwstress init FILE SHADOW SECTORS | "
				"run FILE SHADOW READERS SECONDS\n");
		return 1;
	}
	const char *file = argv[2], *shadow = argv[3];
	int nreaders = atoi(argv[4]);
	double secs = atof(argv[5]);
	struct stat st;
	if (stat(shadow, &st) < 0) {
		perror(shadow);
		return 1;
	}
	uint32_t nsect = (uint32_t)(st.st_size / SECT);
	size_t shsize = sizeof(struct shared) + 2 * nsect * sizeof(uint32_t);
	struct shared *sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				 -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	sh->nsect = nsect;
	pid_t *pids = calloc((size_t)nreaders + 1, sizeof(pid_t));
	for (int i = 0; i < nreaders; i++) {
		if ((pids[i] = fork()) == 0) {
			reader(sh, file, i);
			_exit(0);
		}
	}
	if ((pids[nreaders] = fork()) == 0) {
		writer(sh, file, shadow, secs);
		_exit(0);
	}
	waitpid(pids[nreaders], NULL, 0);
	sh->stop = 1;
	for (int i = 0; i < nreaders; i++)
		waitpid(pids[i], NULL, 0);
	int bad = compare(file, shadow, 0) < 0 || compare(file, shadow, O_DIRECT) < 0;
	free(pids);
	printf("rwstress: %d readers, %llu reads, %llu writes, %llu mismatches%s\n", nreaders,
	       (unsigned long long)sh->reads, (unsigned long long)sh->writes,
	       (unsigned long long)sh->mismatches, bad ? ", final content differs" : "");
	return sh->mismatches || bad || sh->reads == 0 || sh->writes == 0 ? 1 : 0;
}
