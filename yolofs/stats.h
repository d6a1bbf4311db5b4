/* stats.h - yolofs serving statistics (prefix stats_): lock-free global and
 * per-image metrics (the list is metrics.def), a log dump on SIGUSR1 and an
 * optional Prometheus text file rewritten atomically every few seconds by
 * one background thread. */
#ifndef YOLO_STATS_H
#define YOLO_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Expanding metrics.def: STATS_PICK_<scope>(global, memory, image) keeps the
 * argument of that scope, STATS_KIND_<kind>(counter, gauge) the one of that
 * kind. */
#define STATS_PICK_global(global, memory, image) global
#define STATS_PICK_memory(global, memory, image) memory
#define STATS_PICK_image(global, memory, image) image
#define STATS_KIND_counter(counter, gauge) counter
#define STATS_KIND_gauge(counter, gauge) gauge

/* A metric's series name after "yolofs_" (a counter's then ends in "_total"),
 * as a string literal: the naming rule of metrics.def. */
#define STATS_SERIES(scope, kind, name) \
	STATS_PICK_##scope(#name, "memory_" #name "_bytes", STATS_KIND_##kind(#name, "image_" #name))

#define STATS_FIELD(name) atomic_uint_fast64_t name;

/* One image: its identity and its metrics (metrics.def, scope image),
 * updated with relaxed atomics from any thread. */
struct stats_image {
	const char *name;                /* image path (owned by the caller) */
	unsigned generation;             /* reload that opened it (0: start): tells a
					  * replaced image from its successor */
	atomic_bool pinned;              /* its blocks are in mlocked memory */
#define X(scope, kind, name, help) STATS_PICK_##scope(, , STATS_FIELD(name))
#include "metrics.def"
#undef X
};

/* Memory of the block store (metrics.def, scope memory): gauges set by the
 * sampler (struct stats's sample, the image set's) before each log or write. */
struct stats_memory {
#define X(scope, kind, name, help) STATS_PICK_##scope(, STATS_FIELD(name), )
#include "metrics.def"
#undef X
};

struct stats {
	pthread_mutex_t lock;            /* protects the image list (not the metrics) */
	struct stats_image **registered; /* nregistered entries, registration order */
	size_t nregistered, cap;
	/* The metrics of scope global (metrics.def). */
#define X(scope, kind, name, help) STATS_PICK_##scope(STATS_FIELD(name), , )
#include "metrics.def"
#undef X
	struct stats_memory mem;
	/* Called before the statistics are logged or written, to refresh
	 * gauges kept elsewhere (may be NULL). */
	void (*sample)(void *ctx, struct stats *st);
	void *sample_ctx;
	/* Where the stats thread keeps the counters at each write for a
	 * successor daemon (stats_save), or NULL. */
	char *keep;
	size_t keep_size;
};

/* Initialise an empty struct stats.  stats_destroy frees the list (not the images). */
void stats_init(struct stats *st);
void stats_destroy(struct stats *st);
/* Add/remove an image to/from what is logged and exported.  @return 0 or -ENOMEM. */
int stats_register(struct stats *st, struct stats_image *im);
void stats_unregister(struct stats *st, struct stats_image *im);

static inline void stats_add(atomic_uint_fast64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* The global counters as text into buf (size bytes, NUL-terminated), and
 * added back from such a text (a successor's counters continue).  A line
 * cut short or naming an unknown metric is skipped. */
void stats_save(struct stats *st, char *buf, size_t size);
void stats_restore(struct stats *st, const char *buf, size_t size);

/* Start the stats thread: it prints the counters to the log when SIGUSR1
 * arrives and rewrites `metrics_path` (if not NULL) every `interval_s`
 * seconds.  SIGUSR1 must already be blocked in every thread (block it
 * before creating any).  @return 0 or -errno. */
int stats_start(struct stats *st, const char *metrics_path, unsigned interval_s);

/* Stop the thread after one final metrics write.  No-op if not started. */
void stats_stop(void);

/* Print the metrics to the log now: one line of the global ones, one per image. */
void stats_log(struct stats *st);

/* The lines stats_log prints (without the newline), each handed to `emit`. */
void stats_log_lines(struct stats *st, void (*emit)(void *ctx, const char *line), void *ctx);

/* Write the Prometheus text file (FILE.tmp then rename).  @return 0 or -errno. */
int stats_write_metrics(struct stats *st, const char *path);

/* The Prometheus text that file holds, written to `f`. */
void stats_print_metrics(struct stats *st, FILE *f);

/* The same for the n sessions of one process (yolofs --host): each series
 * labelled mount="mounts[i]"; the memory series, the process's, once with
 * mount=STATS_PROCESS_MOUNT.  Each name has one HELP and one TYPE line. */
#define STATS_PROCESS_MOUNT "host"
void stats_print_metrics_many(struct stats *const *v, const char *const *mounts, size_t n,
			      FILE *f);
int stats_write_metrics_many(struct stats *const *v, const char *const *mounts, size_t n,
			     const char *path);

#endif /* YOLO_STATS_H */
