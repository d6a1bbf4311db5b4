/* stats.h - yolofs serving statistics (prefix stats_): lock-free per-image
 * counters, a log dump on SIGUSR1 and an optional Prometheus text file
 * rewritten atomically every few seconds by one background thread. */
#ifndef YOLO_STATS_H
#define YOLO_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Counters of one image; updated with relaxed atomics from any thread. */
struct stats_image {
	const char *name;                /* image path (owned by the caller) */
	unsigned generation;             /* reload that opened it (0: start): tells a
					  * replaced image from its successor */
	atomic_uint_fast64_t loaded_bytes;   /* bytes its blocks take without dedup (0: served from SSD) */
	atomic_bool pinned;                  /* its blocks are in mlocked memory */
	atomic_uint_fast64_t hits;           /* blocks served from the image */
	atomic_uint_fast64_t misses;         /* blocks of matched files read from the source */
	atomic_uint_fast64_t bytes_memory;   /* bytes served from memory */
	atomic_uint_fast64_t bytes_ssd;      /* bytes served by reading the image file */
	atomic_uint_fast64_t bytes_source;   /* bytes of matched files read from the source */
	atomic_uint_fast64_t invalidations;  /* blocks dropped because they were modified */
	atomic_uint_fast64_t files_matched;  /* opens that matched a file of this image */
	atomic_uint_fast64_t files_stale;    /* opens not served: the source changed or is being compared */
	atomic_uint_fast64_t touches;        /* attribute changes through the mount it serves across */
	atomic_uint_fast64_t comparisons;    /* files whose captured blocks were compared with the source */
	atomic_uint_fast64_t compared_equal; /* ... and found equal: served again */
	atomic_uint_fast64_t compared_stale; /* ... and found different: not served */
	atomic_uint_fast64_t bad_blocks;     /* blocks failing their checksum (served from source) */
	atomic_uint_fast64_t files_disabled; /* files no longer served from it: too many bad blocks */
	atomic_uint_fast64_t bytes_prefilled; /* bytes pushed into the kernel page cache at open */
	atomic_uint_fast64_t loads;          /* times its blocks were loaded into memory */
	atomic_uint_fast64_t unloads;        /* times they were dropped for more recently used images */
};

/* Memory of the block store (gauges set by the block source). */
struct stats_memory {
	atomic_uint_fast64_t limit;      /* memlimit (0: none) */
	atomic_uint_fast64_t resident;   /* bytes holding blocks */
	atomic_uint_fast64_t unique;     /* bytes of distinct blocks */
	atomic_uint_fast64_t logical;    /* bytes the loaded images would take without dedup */
	atomic_uint_fast64_t pinned;     /* bytes locked in memory, as the kernel says (VmLck) */
};

struct stats {
	pthread_mutex_t lock;            /* protects the image list (not the counters) */
	struct stats_image **images;        /* nimages entries, registration order */
	size_t nimages, cap;
	atomic_uint_fast64_t reads_passthrough; /* reads of files no image covers */
	atomic_uint_fast64_t reloads;           /* image reloads (SIGHUP) */
	atomic_uint_fast64_t reload_errors;     /* images a reload could not open */
	atomic_uint_fast64_t images_refused;    /* image files refused: untrusted (trust.h),
						 * unreadable or damaged (imageset.h) */
	atomic_uint_fast64_t ns_answered;       /* namespace questions answered from memory */
	atomic_uint_fast64_t ns_unknown;        /* ... asked of the source instead */
	atomic_uint_fast64_t ns_dropped;        /* answers dropped: a change was reported */
	atomic_uint_fast64_t ns_known;          /* paths with kept answers (gauge) */
	atomic_uint_fast64_t learned_images;    /* images written by learn= */
	atomic_uint_fast64_t background_jobs;   /* queued or running (gauge) */
	struct stats_memory mem;
	/* Called before the statistics are logged or written, to refresh
	 * gauges kept elsewhere (may be NULL). */
	void (*sample)(void *ctx, struct stats *st);
	void *sample_ctx;
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

/* Start the stats thread: it prints the counters to the log when SIGUSR1
 * arrives and rewrites `metrics_path` (if not NULL) every `interval_s`
 * seconds.  SIGUSR1 must already be blocked in every thread (block it
 * before creating any).  @return 0 or -errno. */
int stats_start(struct stats *st, const char *metrics_path, unsigned interval_s);

/* Stop the thread after one final metrics write.  No-op if not started. */
void stats_stop(void);

/* Print the counters to the log now. */
void stats_log(struct stats *st);

/* Write the Prometheus text file (FILE.tmp then rename).  @return 0 or -errno. */
int stats_write_metrics(struct stats *st, const char *path);

#endif /* YOLO_STATS_H */
