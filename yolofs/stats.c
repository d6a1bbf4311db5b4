/* stats.c - yolofs serving statistics: the log dump (SIGUSR1) and the
 * Prometheus text file, written from one background thread that waits for
 * SIGUSR1 with sigtimedwait so no work happens in a signal handler. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "passthrough.h"
#include "stats.h"

/* Owned by the thread that called st_start/st_stop (main). */
static pthread_t st_thread;
static bool st_running;
static atomic_bool st_quit;

struct st_args {
	struct st_stats *st;
	const char *path;
	unsigned interval;
};
static struct st_args st_args;

static uint64_t ld(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void st_log(const struct st_stats *st)
{
	pt_log(PT_LOG_INFO, "stats: %" PRIu64 " reads of files without an image",
	       ld(&st->reads_passthrough));
	for (size_t i = 0; i < st->nimages; i++) {
		const struct st_image *m = &st->images[i];
		pt_log(PT_LOG_INFO,
		       "stats: %s: hits %" PRIu64 " misses %" PRIu64 " bytes memory %" PRIu64
		       " ssd %" PRIu64 " source %" PRIu64 " invalidations %" PRIu64
		       " files matched %" PRIu64 " stale %" PRIu64 " bad blocks %" PRIu64
		       " prefilled %" PRIu64 " (loaded %" PRIu64 " bytes%s)",
		       m->name, ld(&m->hits), ld(&m->misses), ld(&m->bytes_memory),
		       ld(&m->bytes_ssd), ld(&m->bytes_source), ld(&m->invalidations),
		       ld(&m->files_matched), ld(&m->files_stale), ld(&m->bad_blocks),
		       ld(&m->bytes_prefilled),
		       m->loaded_bytes, m->pinned ? ", pinned" : "");
	}
}

/* Prometheus label values escape backslash, quote and newline. */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

int st_write_metrics(const struct st_stats *st, const char *path)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
#define C(field, help) { #field, help, offsetof(struct st_image, field) }
		C(hits, "Blocks served from the boot image."),
		C(misses, "Blocks of matched files read from the source."),
		C(bytes_memory, "Bytes served from the pinned image buffer."),
		C(bytes_ssd, "Bytes served by reading the image file."),
		C(bytes_source, "Bytes of matched files read from the source."),
		C(invalidations, "Image blocks dropped because the file was modified."),
		C(bytes_prefilled, "Image bytes pushed into the kernel page cache when a file was opened."),
		C(files_matched, "Opens that matched a file of the image."),
		C(files_stale, "Opens whose source changed since capture (not served)."),
		C(bad_blocks, "Image blocks failing their checksum (served from the source)."),
#undef C
	};
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "# HELP yolofs_reads_passthrough_total Reads of files no image covers.\n"
		   "# TYPE yolofs_reads_passthrough_total counter\n"
		   "yolofs_reads_passthrough_total %" PRIu64 "\n", ld(&st->reads_passthrough));
	for (size_t c = 0; c < sizeof(ctr) / sizeof(ctr[0]); c++) {
		fprintf(f, "# HELP yolofs_%s_total %s\n# TYPE yolofs_%s_total counter\n",
			ctr[c].name, ctr[c].help, ctr[c].name);
		for (size_t i = 0; i < st->nimages; i++) {
			const struct st_image *m = &st->images[i];
			fprintf(f, "yolofs_%s_total{image=\"", ctr[c].name);
			put_label(f, m->name);
			fprintf(f, "\"} %" PRIu64 "\n",
				ld((const atomic_uint_fast64_t *)((const char *)m + ctr[c].off)));
		}
	}
	fprintf(f, "# HELP yolofs_image_loaded_bytes Bytes of the image held in memory.\n"
		   "# TYPE yolofs_image_loaded_bytes gauge\n");
	for (size_t i = 0; i < st->nimages; i++) {
		fputs("yolofs_image_loaded_bytes{image=\"", f);
		put_label(f, st->images[i].name);
		fprintf(f, "\"} %" PRIu64 "\n", st->images[i].loaded_bytes);
	}
	int ret = 0;
	if (fflush(f) != 0 || ferror(f))
		ret = errno ? -errno : -EIO;
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
	return ret;
}

static void *st_main(void *arg)
{
	struct st_args *a = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	bool warned = false;
	for (;;) {
		struct timespec ts = { .tv_sec = a->interval };
		int sig = sigtimedwait(&set, NULL, &ts);
		bool quit = atomic_load(&st_quit);
		if (sig == SIGUSR1 && !quit)
			st_log(a->st);
		if (a->path) {
			int ret = st_write_metrics(a->st, a->path);
			if (ret < 0 && !warned) {
				pt_log(PT_LOG_WARN, "cannot write metrics to %s: %s", a->path,
				       strerror(-ret));
				warned = true;
			}
		}
		if (quit)
			return NULL;
	}
}

int st_start(struct st_stats *st, const char *metrics_path, unsigned interval_s)
{
	st_args = (struct st_args){ .st = st, .path = metrics_path,
				    .interval = interval_s ? interval_s : 2 };
	atomic_store(&st_quit, false);
	int ret = pthread_create(&st_thread, NULL, st_main, &st_args);
	if (ret)
		return -ret;
	st_running = true;
	return 0;
}

void st_stop(void)
{
	if (!st_running)
		return;
	atomic_store(&st_quit, true);
	pthread_kill(st_thread, SIGUSR1);
	pthread_join(st_thread, NULL);
	st_running = false;
}
