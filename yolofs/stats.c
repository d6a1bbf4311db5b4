/* stats.c - yolofs serving statistics: the image list, the log dump (SIGUSR1)
 * and the Prometheus text file, both rendered from the list of metrics.def
 * and written from one background thread that waits for SIGUSR1 with
 * sigtimedwait so no work happens in a signal handler. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"

/* Owned by the thread that called stats_start/stats_stop (main). */
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

/* The global counters as "name value" lines (a gauge says what is now,
 * so only counters carry over). */
void stats_save(struct stats *st, char *buf, size_t size)
{
	size_t len = 0;
	if (!size)
		return;
	buf[0] = '\0';
#define X(scope, kind, name, help) STATS_PICK_##scope(STATS_KIND_##kind(SAVE_ONE(name), ), , )
#define SAVE_ONE(name) \
	if (len < size) { \
		int n = snprintf(buf + len, size - len, #name " %" PRIu64 "\n", \
				 (uint64_t)atomic_load(&st->name)); \
		len = n > 0 && (size_t)n < size - len ? len + (size_t)n : size; \
	}
#include "metrics.def"
#undef SAVE_ONE
#undef X
	if (len >= size)
		buf[size - 1] = '\0';   /* cut: the last line is dropped when read */
}

void stats_restore(struct stats *st, const char *buf, size_t size)
{
	const char *end = memchr(buf, '\0', size);
	if (!end)
		return;
	for (const char *line = buf; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			break;           /* a line cut short */
		char name[64];
		uint64_t v;
		if (sscanf(line, "%63s %" SCNu64, name, &v) == 2) {
#define X(scope, kind, name_, help) \
	STATS_PICK_##scope(STATS_KIND_##kind(RESTORE_ONE(name_), ), , )
#define RESTORE_ONE(name_) if (strcmp(name, #name_) == 0) stats_add(&st->name_, v);
#include "metrics.def"
#undef RESTORE_ONE
#undef X
		}
		line = nl + 1;
	}
}

void stats_destroy(struct stats *st)
{
	pthread_mutex_destroy(&st->lock);
	free(st->registered);
	st->registered = NULL;
	st->nregistered = st->cap = 0;
}

int stats_register(struct stats *st, struct stats_image *im)
{
	int ret = 0;
	pthread_mutex_lock(&st->lock);
	if (st->nregistered == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 8;
		struct stats_image **v = realloc(st->registered, cap * sizeof(*v));
		if (!v)
			ret = -ENOMEM;
		else {
			st->registered = v;
			st->cap = cap;
		}
	}
	if (ret == 0)
		st->registered[st->nregistered++] = im;
	pthread_mutex_unlock(&st->lock);
	return ret;
}

void stats_unregister(struct stats *st, struct stats_image *im)
{
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->nregistered; i++) {
		if (st->registered[i] == im) {
			memmove(&st->registered[i], &st->registered[i + 1],
				(st->nregistered - i - 1) * sizeof(*st->registered));
			st->nregistered--;
			break;
		}
	}
	pthread_mutex_unlock(&st->lock);
}

/* The list (metrics.def), for the renderings: where each value is and what
 * it is called. */
struct metric {
	bool per_image;           /* a field of struct stats_image, else of struct stats */
	bool memory;              /* scope memory: the process's, whatever its sessions */
	bool counter;             /* else a gauge */
	const char *series;       /* after "yolofs_"; a counter's then ends in "_total" */
	const char *help;
	size_t offset;            /* of its value in struct stats_image or struct stats */
};

static const struct metric metrics[] = {
#define X(scope, kind, name, help) { \
	STATS_PICK_##scope(false, false, true), STATS_PICK_##scope(false, true, false), \
	STATS_KIND_##kind(true, false), \
	STATS_SERIES(scope, kind, name), help, \
	STATS_PICK_##scope(offsetof(struct stats, name), offsetof(struct stats, mem.name), \
			   offsetof(struct stats_image, name)) },
#include "metrics.def"
#undef X
};
#define NMETRICS (sizeof(metrics) / sizeof(metrics[0]))

static uint64_t value(const struct metric *m, const struct stats *st, const struct stats_image *im)
{
	const void *base = m->per_image ? (const void *)im : (const void *)st;
	return ld((const atomic_uint_fast64_t *)((const char *)base + m->offset));
}

/* Before a rendering, st->lock held: the gauges computed from the image list
 * (the sampler's are refreshed before the lock is taken). */
static void derive_gauges(struct stats *st)
{
	atomic_store(&st->images, st->nregistered);
	for (size_t i = 0; i < st->nregistered; i++) {
		struct stats_image *im = st->registered[i];
		atomic_store(&im->in_memory, ld(&im->loaded_bytes) != 0);
	}
}

/* One log line being built (the logger itself cuts lines at 1 KiB). */
struct line {
	char text[4096];
	size_t len;
};

static void __attribute__((format(printf, 2, 3))) put(struct line *l, const char *fmt, ...)
{
	size_t room = sizeof(l->text) - l->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->text + l->len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n < room ? (size_t)n : room - 1;   /* cut: the buffer is full */
}

/* " NAME VALUE" for each metric of the scope (per image or global). */
static void put_values(struct line *l, const struct stats *st, const struct stats_image *im)
{
	for (size_t i = 0; i < NMETRICS; i++)
		if (metrics[i].per_image == (im != NULL))
			put(l, " %s %" PRIu64, metrics[i].series, value(&metrics[i], st, im));
}

void stats_log_lines(struct stats *st, void (*emit)(void *ctx, const char *line), void *ctx)
{
	if (st->sample)
		st->sample(st->sample_ctx, st);
	pthread_mutex_lock(&st->lock);
	derive_gauges(st);
	struct line l = { .len = 0 };
	put(&l, "stats:");
	put_values(&l, st, NULL);
	emit(ctx, l.text);
	for (size_t i = 0; i < st->nregistered; i++) {
		const struct stats_image *im = st->registered[i];
		l.len = 0;
		put(&l, "stats: %s (generation %u%s):", im->name, im->generation,
		    atomic_load(&im->pinned) ? ", pinned" : "");
		put_values(&l, st, im);
		emit(ctx, l.text);
	}
	pthread_mutex_unlock(&st->lock);
}

static void log_line(void *ctx, const char *line)
{
	(void)ctx;
	ylog(YLOG_INFO, "%s", line);
}

void stats_log(struct stats *st)
{
	stats_log_lines(st, log_line, NULL);
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

/* yolofs_NAME or yolofs_NAME_total */
static void put_series(FILE *f, const struct metric *m)
{
	fprintf(f, "yolofs_%s%s", m->series, m->counter ? "_total" : "");
}

/* The label set of one series: mount="..." (many sessions), then an
 * image's labels, or nothing. */
static void put_labels(FILE *f, const char *mount, const struct stats_image *im)
{
	if (!mount && !im) {
		fputc(' ', f);
		return;
	}
	fputc('{', f);
	if (mount) {
		fputs("mount=\"", f);
		put_label(f, mount);
		fputs(im ? "\"," : "\"", f);
	}
	if (im) {
		fputs("image=\"", f);
		put_label(f, im->name);
		fprintf(f, "\",generation=\"%u\"", im->generation);
	}
	fputs("} ", f);
}

void stats_print_metrics_many(struct stats *const *v, const char *const *mounts, size_t n,
			      FILE *f)
{
	for (size_t k = 0; k < n; k++)
		if (v[k]->sample)
			v[k]->sample(v[k]->sample_ctx, v[k]);
	for (size_t i = 0; i < NMETRICS; i++) {
		const struct metric *m = &metrics[i];
		fputs("# HELP ", f);
		put_series(f, m);
		fprintf(f, " %s\n# TYPE ", m->help);
		put_series(f, m);
		fputs(m->counter ? " counter\n" : " gauge\n", f);
		/* The memory is the process's, whatever the sessions: once. */
		for (size_t k = 0; k < (m->memory && n ? 1 : n); k++) {
			struct stats *st = v[k];
			const char *mount = !mounts ? NULL : m->memory ? STATS_PROCESS_MOUNT : mounts[k];
			pthread_mutex_lock(&st->lock);
			derive_gauges(st);
			if (!m->per_image) {
				put_series(f, m);
				put_labels(f, mount, NULL);
				fprintf(f, "%" PRIu64 "\n", value(m, st, NULL));
			}
			for (size_t j = 0; m->per_image && j < st->nregistered; j++) {
				const struct stats_image *im = st->registered[j];
				put_series(f, m);
				put_labels(f, mount, im);
				fprintf(f, "%" PRIu64 "\n", value(m, st, im));
			}
			pthread_mutex_unlock(&st->lock);
		}
	}
}

void stats_print_metrics(struct stats *st, FILE *f)
{
	stats_print_metrics_many(&st, NULL, 1, f);
}

int stats_write_metrics_many(struct stats *const *v, const char *const *mounts, size_t n,
			     const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	stats_print_metrics_many(v, mounts, n, f);
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

int stats_write_metrics(struct stats *st, const char *path)
{
	return stats_write_metrics_many(&st, NULL, 1, path);
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
		if (a->st->keep)
			stats_save(a->st, a->st->keep, a->st->keep_size);
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
