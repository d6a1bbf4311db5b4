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

#include "log.h"
#include "stats.h"

/* Owned by the thread that called st_start/st_stop (main). */
static pthread_t stats_thread;
static bool stats_running;
static atomic_bool stats_quit;

struct stats_args {
	struct stats *st;
	const char *path;
	unsigned interval;
};
static struct stats_args stats_args;

static uint64_t ld(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
}

void stats_destroy(struct stats *st)
{
	pthread_mutex_destroy(&st->lock);
	free(st->images);
	st->images = NULL;
	st->nimages = st->cap = 0;
}

int stats_register(struct stats *st, struct stats_image *im)
{
	int ret = 0;
	pthread_mutex_lock(&st->lock);
	if (st->nimages == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 8;
		struct stats_image **v = realloc(st->images, cap * sizeof(*v));
		if (!v)
			ret = -ENOMEM;
		else {
			st->images = v;
			st->cap = cap;
		}
	}
	if (ret == 0)
		st->images[st->nimages++] = im;
	pthread_mutex_unlock(&st->lock);
	return ret;
}

void stats_unregister(struct stats *st, struct stats_image *im)
{
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->nimages; i++) {
		if (st->images[i] == im) {
			memmove(&st->images[i], &st->images[i + 1],
				(st->nimages - i - 1) * sizeof(*st->images));
			st->nimages--;
			break;
		}
	}
	pthread_mutex_unlock(&st->lock);
}

void stats_log(struct stats *st)
{
	if (st->sample)
		st->sample(st->sample_ctx, st);
	ylog(YLOG_INFO, "stats: %" PRIu64 " reads of files without an image, %" PRIu64
	       " reloads, %" PRIu64 " image files rejected; memory: %" PRIu64 " bytes resident (%"
	       PRIu64 " pinned) for %" PRIu64 " bytes of loaded images, limit %" PRIu64,
	       ld(&st->reads_passthrough), ld(&st->reloads), ld(&st->images_refused),
	       ld(&st->mem.resident),
	       ld(&st->mem.pinned), ld(&st->mem.logical), ld(&st->mem.limit));
	ylog(YLOG_INFO, "stats: namespace: %" PRIu64 " questions answered from memory, %" PRIu64
	     " asked of the source, %" PRIu64 " answers dropped by changes, %" PRIu64 " paths known",
	     ld(&st->ns_answered), ld(&st->ns_unknown), ld(&st->ns_dropped), ld(&st->ns_known));
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->nimages; i++) {
		struct stats_image *m = st->images[i];
		ylog(YLOG_INFO,
		       "stats: %s (generation %u): hits %" PRIu64 " misses %" PRIu64 " bytes memory %" PRIu64
		       " ssd %" PRIu64 " source %" PRIu64 " invalidations %" PRIu64
		       " files matched %" PRIu64 " stale %" PRIu64 " bad blocks %" PRIu64
		       " prefilled %" PRIu64 " (loaded %" PRIu64 " bytes%s)",
		       m->name, m->generation, ld(&m->hits), ld(&m->misses), ld(&m->bytes_memory),
		       ld(&m->bytes_ssd), ld(&m->bytes_source), ld(&m->invalidations),
		       ld(&m->files_matched), ld(&m->files_stale), ld(&m->bad_blocks),
		       ld(&m->bytes_prefilled), ld(&m->loaded_bytes),
		       atomic_load(&m->pinned) ? ", pinned" : "");
	}
	pthread_mutex_unlock(&st->lock);
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

static void gauge(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP yolofs_%s %s\n# TYPE yolofs_%s gauge\nyolofs_%s %" PRIu64 "\n",
		name, help, name, name, v);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP yolofs_%s_total %s\n# TYPE yolofs_%s_total counter\n"
		"yolofs_%s_total %" PRIu64 "\n", name, help, name, name, v);
}

/* {image="...",generation="N"} */
static void put_labels(FILE *f, const struct stats_image *m)
{
	fputs("{image=\"", f);
	put_label(f, m->name);
	fprintf(f, "\",generation=\"%u\"}", m->generation);
}

/* Writes the per-image series; st->lock held. */
static void write_images(FILE *f, const struct stats *st)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
#define C(field, help) { #field, help, offsetof(struct stats_image, field) }
		C(hits, "Blocks served from the boot image."),
		C(misses, "Blocks of matched files read from the source."),
		C(bytes_memory, "Bytes served from memory."),
		C(bytes_ssd, "Bytes served by reading the image file."),
		C(bytes_source, "Bytes of matched files read from the source."),
		C(invalidations, "Image blocks dropped because the file was modified."),
		C(bytes_prefilled, "Image bytes pushed into the kernel page cache when a file was opened."),
		C(files_matched, "Opens that matched a file of the image."),
		C(files_stale, "Opens whose source changed since capture (not served)."),
		C(touches, "Attribute changes (touch, chmod, chown, xattrs) made through the mount to files it serves."),
		C(comparisons, "Files whose metadata changed, compared block by block with the source."),
		C(compared_equal, "Compared files found equal to the image: served again."),
		C(compared_stale, "Compared files found different: not served."),
		C(bad_blocks, "Image blocks failing their checksum (served from the source)."),
		C(files_disabled, "Files no longer served from the image: too many bad blocks."),
		C(loads, "Times the image was loaded into memory."),
		C(unloads, "Times the image was dropped from memory for more recently used ones."),
#undef C
	};
	for (size_t c = 0; c < sizeof(ctr) / sizeof(ctr[0]); c++) {
		fprintf(f, "# HELP yolofs_%s_total %s\n# TYPE yolofs_%s_total counter\n",
			ctr[c].name, ctr[c].help, ctr[c].name);
		for (size_t i = 0; i < st->nimages; i++) {
			const struct stats_image *m = st->images[i];
			fprintf(f, "yolofs_%s_total", ctr[c].name);
			put_labels(f, m);
			fprintf(f, " %" PRIu64 "\n",
				ld((const atomic_uint_fast64_t *)((const char *)m + ctr[c].off)));
		}
	}
	fprintf(f, "# HELP yolofs_image_loaded_bytes Bytes the image's blocks take in memory "
		   "before dedup (0: served from the image file).\n"
		   "# TYPE yolofs_image_loaded_bytes gauge\n");
	for (size_t i = 0; i < st->nimages; i++) {
		fputs("yolofs_image_loaded_bytes", f);
		put_labels(f, st->images[i]);
		fprintf(f, " %" PRIu64 "\n", ld(&st->images[i]->loaded_bytes));
	}
	fprintf(f, "# HELP yolofs_image_in_memory 1 when the image is served from memory.\n"
		   "# TYPE yolofs_image_in_memory gauge\n");
	for (size_t i = 0; i < st->nimages; i++) {
		fputs("yolofs_image_in_memory", f);
		put_labels(f, st->images[i]);
		fprintf(f, " %d\n", ld(&st->images[i]->loaded_bytes) ? 1 : 0);
	}
}

int stats_write_metrics(struct stats *st, const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	if (st->sample)
		st->sample(st->sample_ctx, st);
	counter(f, "reads_passthrough", "Reads of files no image covers.",
		ld(&st->reads_passthrough));
	counter(f, "reloads", "Image reloads (SIGHUP), failed ones included.", ld(&st->reloads));
	counter(f, "reload_errors", "Images a reload could not open.", ld(&st->reload_errors));
	counter(f, "images_refused", "Image files refused (at start or reload): untrusted, unreadable "
		"or damaged; the other images serve.",
		ld(&st->images_refused));
	counter(f, "ns_answered", "Namespace questions (lookup, getattr, xattr, readlink, "
		"listing) of root callers answered from memory.", ld(&st->ns_answered));
	counter(f, "ns_unknown", "Namespace questions of root callers asked of the source.",
		ld(&st->ns_unknown));
	counter(f, "ns_dropped", "Namespace answers dropped because a change was reported.",
		ld(&st->ns_dropped));
	counter(f, "learned_images", "Boot images written (or extended) by learn=.",
		ld(&st->learned_images));
	gauge(f, "background_jobs", "Background jobs queued or running: comparisons with the "
	      "source, block checks, learning namespace answers (0: settled after a load).",
	      ld(&st->background_jobs));
	gauge(f, "ns_known_paths", "Paths whose namespace answers are kept in memory.",
	      ld(&st->ns_known));
	gauge(f, "memory_limit_bytes", "memlimit (0: none).", ld(&st->mem.limit));
	gauge(f, "memory_resident_bytes", "Memory holding image blocks.", ld(&st->mem.resident));
	gauge(f, "memory_unique_bytes", "Bytes of distinct image blocks in memory.",
	      ld(&st->mem.unique));
	gauge(f, "memory_logical_bytes", "Bytes the images in memory would take without dedup.",
	      ld(&st->mem.logical));
	gauge(f, "memory_pinned_bytes", "Bytes locked in memory, as the kernel reports them (VmLck).",
	      ld(&st->mem.pinned));
	pthread_mutex_lock(&st->lock);
	gauge(f, "images", "Images registered (current and still in use by open files).",
	      st->nimages);
	write_images(f, st);
	pthread_mutex_unlock(&st->lock);
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

static void *stats_main(void *arg)
{
	struct stats_args *a = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	bool warned = false;
	for (;;) {
		struct timespec ts = { .tv_sec = a->interval };
		int sig = sigtimedwait(&set, NULL, &ts);
		bool quit = atomic_load(&stats_quit);
		if (sig == SIGUSR1 && !quit)
			stats_log(a->st);
		if (a->path) {
			int ret = stats_write_metrics(a->st, a->path);
			if (ret < 0 && !warned) {
				ylog(YLOG_WARN, "cannot write metrics to %s: %s", a->path,
				       strerror(-ret));
				warned = true;
			}
		}
		if (quit)
			return NULL;
	}
}

int stats_start(struct stats *st, const char *metrics_path, unsigned interval_s)
{
	stats_args = (struct stats_args){ .st = st, .path = metrics_path,
				    .interval = interval_s ? interval_s : 2 };
	atomic_store(&stats_quit, false);
	int ret = pthread_create(&stats_thread, NULL, stats_main, &stats_args);
	if (ret)
		return -ret;
	stats_running = true;
	return 0;
}

void stats_stop(void)
{
	if (!stats_running)
		return;
	atomic_store(&stats_quit, true);
	pthread_kill(stats_thread, SIGUSR1);
	pthread_join(stats_thread, NULL);
	stats_running = false;
}
