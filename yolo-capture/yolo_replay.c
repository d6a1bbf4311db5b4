/* yolo_replay.c - `yolo-replay`: replays a recorded boot trace against a
 * directory (plain ext4, a yolofs mount, ...) and reports how long the reads
 * took.  This is the benchmark's stand-in for a boot: the same reads, in the
 * same order per reader, with the same concurrency (one thread per recorded
 * reader pid), optionally with the recorded think time between reads,
 * scaled to model a guest that computes faster (or slower) than the recorded
 * one.
 *
 * Output is one line of key=value pairs on stdout, for scripts. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "util.h"
#include "yolo_trace.h"

struct options {
	bool think;                      /* honour recorded inter-read delays */
	double think_scale;              /* ... multiplied by this (> 0 when think) */
	bool direct;                     /* O_DIRECT, like qemu cache=none */
	bool prefetch;                   /* also run an offset-ordered prefetcher */
	bool make_source;                /* create stand-in files instead of replaying */
	uint64_t seed;                   /* make-source: content variant (distinct copies) */
	const char *trace;
	const char *dir;
};

struct replay {
	const struct options *opt;
	const struct yolo_trace *t;
	int *fds;                        /* per trace file, opened before the clock starts */
	uint64_t start_ns;
	size_t max_len;
};

struct reader {
	struct replay *rp;
	uint32_t pid;
	uint64_t bytes, reads, errors;
	pthread_t thread;
};

static void sleep_until(uint64_t deadline)
{
	uint64_t now = yolo_now_ns();
	if (deadline <= now)
		return;
	struct timespec ts = { (time_t)((deadline - now) / 1000000000ull),
			       (long)((deadline - now) % 1000000000ull) };
	nanosleep(&ts, NULL);
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct replay *rp = rd->rp;
	uint8_t *buf;
	/* O_DIRECT needs aligned buffers, offsets and lengths. */
	if (posix_memalign((void **)&buf, 4096, rp->max_len + 8192))
		return NULL;
	/* Think time is closed-loop: a reader's first read starts at its
	 * recorded time, every later one the recorded gap after the reader's
	 * previous read returned.  (Sleeping until the recorded start times
	 * instead lets a slow disk hide in the gaps: a 6 s cold replay then
	 * takes exactly as long as a warm one.)  Every gap is multiplied by
	 * think_scale: a trace recorded under TCG has the think time of a guest
	 * 5-10x slower in CPU than the same guest under KVM. */
	uint64_t ready = rp->start_ns, prev_t = 0;
	for (uint64_t i = 0; i < rp->t->nreads; i++) {
		const struct yolo_trace_read *r = &rp->t->reads[i];
		if (r->pid != rd->pid)
			continue;
		if (rp->opt->think) {
			uint64_t gap = r->t_ns > prev_t ? r->t_ns - prev_t : 0;
			sleep_until(ready + (uint64_t)((double)gap * rp->opt->think_scale));
			prev_t = r->t_ns;
		}
		uint64_t off = r->offset, len = r->length;
		if (rp->opt->direct) {
			uint64_t end = (off + len + 4095) & ~4095ull;
			off &= ~4095ull;
			len = end - off;
		}
		ssize_t n = pread(rp->fds[r->file_id], buf, len, (off_t)off);
		if (n < 0)
			rd->errors++;
		else
			rd->bytes += (uint64_t)n;
		rd->reads++;
		if (rp->opt->think)
			ready = yolo_now_ns();
	}
	free(buf);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* vmtouch-style prefetch: the same 4 KiB pages the boot will read, in file
 * order, through the page cache, racing the boot. */
static void *prefetch_main(void *arg)
{
	struct replay *rp = arg;
	const struct yolo_trace *t = rp->t;
	uint64_t n = 0;
	for (uint64_t i = 0; i < t->nreads; i++)
		n += (t->reads[i].length + 4095) / 4096 + 1;
	uint64_t *keys = malloc((n + 1) * sizeof(*keys));
	uint8_t buf[4096];
	if (!keys)
		return NULL;
	n = 0;
	/* Key: file id in the high bits, page number below. */
	for (uint64_t i = 0; i < t->nreads; i++) {
		const struct yolo_trace_read *r = &t->reads[i];
		if (!r->length)
			continue;
		for (uint64_t p = r->offset / 4096; p <= (r->offset + r->length - 1) / 4096; p++)
			keys[n++] = ((uint64_t)r->file_id << 40) | p;
	}
	qsort(keys, n, sizeof(*keys), cmp_u64);
	for (uint64_t i = 0; i < n; i++) {
		if (i && keys[i] == keys[i - 1])
			continue;
		ssize_t ignored = pread(rp->fds[keys[i] >> 40], buf, sizeof(buf),
					(off_t)((keys[i] & ((1ull << 40) - 1)) * 4096));
		(void)ignored;
	}
	free(keys);
	return NULL;
}

/* Create the trace's files under `dir` with stand-in content (deterministic,
 * incompressible) and the recorded size and mtime, so a committed trace can
 * be replayed, and turned into a boot image, on a machine that lacks the
 * original images. */
static int make_source(const struct yolo_trace *t, const char *dir, uint64_t seed)
{
	enum { CHUNK = 4 << 20 };
	uint64_t *buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	mkdir(dir, 0755);
	for (uint32_t i = 0; i < t->nfiles; i++) {
		const struct yolo_trace_file *f = &t->files[i];
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, f->path);
		for (char *s = strchr(path + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
			*s = '\0';
			mkdir(path, 0755);
			*s = '/';
		}
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "yolo-replay: %s: %s\n", path, strerror(errno));
			free(buf);
			return -errno;
		}
		/* xorshift state must not be 0; seed 0 keeps the historic content. */
		uint64_t x = (0x9e3779b97f4a7c15ull ^ (i + 1)) + seed * 0xbf58476d1ce4e5b9ull;
		if (!x)
			x = 1;
		for (uint64_t off = 0; off < f->ident.size; off += CHUNK) {
			for (size_t k = 0; k < CHUNK / 8; k++) {
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				buf[k] = x;
			}
			uint64_t n = f->ident.size - off < CHUNK ? f->ident.size - off : CHUNK;
			if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
				fprintf(stderr, "yolo-replay: writing %s: %s\n", path, strerror(errno));
				close(fd);
				free(buf);
				return -EIO;
			}
		}
		struct timespec ts[2] = {
			{ .tv_nsec = UTIME_OMIT },
			{ (time_t)(f->ident.mtime_ns / 1000000000), (long)(f->ident.mtime_ns % 1000000000) },
		};
		if (futimens(fd, ts) < 0 || fsync(fd) < 0) {
			fprintf(stderr, "yolo-replay: %s: %s\n", path, strerror(errno));
			close(fd);
			free(buf);
			return -errno;
		}
		close(fd);
		printf("created %s (%.1f MiB)\n", path, f->ident.size / 1048576.0);
	}
	free(buf);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: yolo-replay [--think | --think-scale F] [--direct] [--prefetch] TRACE DIR\n"
		"       yolo-replay --make-source [--seed N] TRACE DIR\n"
		"Replay TRACE's reads against the files under DIR (one thread per recorded\n"
		"reader) and print: seconds=S reads=N bytes=B errors=E readers=R think_scale=F\n"
		"  --think     wait between reads as the recorded boot did (each reader\n"
		"              waits the recorded gap after its previous read returned)\n"
		"  --think-scale F  the same with every gap multiplied by F >= 0 (0.2: a guest\n"
		"              computing 5x faster than the recorded one; 0: no think time,\n"
		"              as without --think; --think is --think-scale 1)\n"
		"  --direct    open files with O_DIRECT (qemu cache=none)\n"
		"  --prefetch  race an offset-ordered prefetcher of the same pages (baseline)\n"
		"  --make-source  create TRACE's files under DIR with stand-in content and the\n"
		"                 recorded sizes and mtimes (to replay a trace without its images)\n"
		"  --seed N    with --make-source: content variant N (distinct copies; default 0)\n");
}

int main(int argc, char **argv)
{
	struct options opt = { 0 };
	static const struct option longopts[] = {
		{ "think", no_argument, NULL, 't' }, { "think-scale", required_argument, NULL, 'S' },
		{ "direct", no_argument, NULL, 'd' },
		{ "prefetch", no_argument, NULL, 'p' }, { "make-source", no_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "tdph", longopts, NULL)) != -1) {
		switch (c) {
		case 't': opt.think_scale = 1; break;
		case 'S': {
			char *end;
			errno = 0;
			double f = strtod(optarg, &end);
			if (errno || !*optarg || *end || !isfinite(f) || f < 0) {
				fprintf(stderr, "yolo-replay: bad --think-scale '%s' (a number >= 0)\n",
					optarg);
				return 2;
			}
			opt.think_scale = f;
			break;
		}
		case 'd': opt.direct = true; break;
		case 'p': opt.prefetch = true; break;
		case 'm': opt.make_source = true; break;
		case 's': {
			char *end;
			errno = 0;
			opt.seed = strtoull(optarg, &end, 0);
			if (errno || !*optarg || *end) {
				fprintf(stderr, "yolo-replay: bad --seed '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 2 != argc) {
		usage(stderr);
		return 2;
	}
	opt.think = opt.think_scale > 0;
	opt.trace = argv[optind];
	opt.dir = argv[optind + 1];

	struct yolo_err err = { "" };
	struct yolo_trace *t;
	if (yolo_trace_load(opt.trace, &t, &err) < 0) {
		fprintf(stderr, "yolo-replay: %s\n", err.msg);
		return 2;
	}
	if (opt.make_source) {
		int ret = make_source(t, opt.dir, opt.seed);
		yolo_trace_free(t);
		return ret < 0 ? 1 : 0;
	}
	int dirfd = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		fprintf(stderr, "yolo-replay: %s: %s\n", opt.dir, strerror(errno));
		return 2;
	}
	struct replay rp = { .opt = &opt, .t = t };
	rp.fds = calloc(t->nfiles + 1, sizeof(int));
	for (uint32_t i = 0; i < t->nfiles; i++) {
		rp.fds[i] = yolo_open_beneath(dirfd, t->files[i].path, O_RDONLY | (opt.direct ? O_DIRECT : 0));
		if (rp.fds[i] < 0) {
			fprintf(stderr, "yolo-replay: %s/%s: %s\n", opt.dir, t->files[i].path,
				strerror(-rp.fds[i]));
			return 2;
		}
	}
	/* One reader per distinct pid, in order of first appearance. */
	struct reader *readers = calloc(t->nreads + 1, sizeof(*readers));
	uint32_t nreaders = 0;
	for (uint64_t i = 0; i < t->nreads; i++) {
		uint32_t k;
		for (k = 0; k < nreaders && readers[k].pid != t->reads[i].pid; k++)
			;
		if (k == nreaders)
			readers[nreaders++] = (struct reader){ .rp = &rp, .pid = t->reads[i].pid };
		if (t->reads[i].length > rp.max_len)
			rp.max_len = t->reads[i].length;
	}
	pthread_t pf;
	rp.start_ns = yolo_now_ns();
	if (opt.prefetch)
		pthread_create(&pf, NULL, prefetch_main, &rp);
	for (uint32_t k = 0; k < nreaders; k++)
		pthread_create(&readers[k].thread, NULL, reader_main, &readers[k]);
	uint64_t bytes = 0, reads = 0, errors = 0;
	for (uint32_t k = 0; k < nreaders; k++) {
		pthread_join(readers[k].thread, NULL);
		bytes += readers[k].bytes;
		reads += readers[k].reads;
		errors += readers[k].errors;
	}
	double secs = (double)(yolo_now_ns() - rp.start_ns) / 1e9;
	if (opt.prefetch)
		pthread_join(pf, NULL);
	printf("seconds=%.6f reads=%llu bytes=%llu errors=%llu readers=%u think_scale=%g\n", secs,
	       (unsigned long long)reads, (unsigned long long)bytes, (unsigned long long)errors,
	       nreaders, opt.think_scale);
	for (uint32_t i = 0; i < t->nfiles; i++)
		close(rp.fds[i]);
	close(dirfd);
	free(rp.fds);
	free(readers);
	yolo_trace_free(t);
	return errors ? 1 : 0;
}
