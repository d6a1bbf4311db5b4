/* stats.h - yolofs serving statistics (prefix st_): lock-free per-image
 * counters, a log dump on SIGUSR1 and an optional Prometheus text file
 * rewritten atomically every few seconds by one background thread. */
#ifndef YOLO_STATS_H
#define YOLO_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Counters of one image; updated with relaxed atomics from any thread. */
struct st_image {
	const char *name;                /* image path (owned by the caller) */
	uint64_t loaded_bytes;           /* bytes held in memory (0: served from SSD) */
	bool pinned;                     /* loaded buffer is mlocked */
	atomic_uint_fast64_t hits;           /* blocks served from the image */
	atomic_uint_fast64_t misses;         /* blocks of matched files read from the source */
	atomic_uint_fast64_t bytes_memory;   /* bytes served from the loaded buffer */
	atomic_uint_fast64_t bytes_ssd;      /* bytes served by reading the image file */
	atomic_uint_fast64_t bytes_source;   /* bytes of matched files read from the source */
	atomic_uint_fast64_t invalidations;  /* blocks dropped because they were modified */
	atomic_uint_fast64_t files_matched;  /* opens that matched a file of this image */
	atomic_uint_fast64_t files_stale;    /* opens refused because the source changed */
	atomic_uint_fast64_t bad_blocks;     /* blocks failing their checksum (served from source) */
	atomic_uint_fast64_t bytes_prefilled; /* bytes pushed into the kernel page cache at open */
};

struct st_stats {
	struct st_image *images;         /* nimages entries */
	size_t nimages;
	atomic_uint_fast64_t reads_passthrough; /* reads of files no image covers */
};

static inline void st_add(atomic_uint_fast64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* Start the stats thread: it prints the counters to the log when SIGUSR1
 * arrives and rewrites `metrics_path` (if not NULL) every `interval_s`
 * seconds.  SIGUSR1 must already be blocked in every thread (block it
 * before creating any).  @return 0 or -errno. */
int st_start(struct st_stats *st, const char *metrics_path, unsigned interval_s);

/* Stop the thread after one final metrics write.  No-op if not started. */
void st_stop(void);

/* Print the counters to the log now. */
void st_log(const struct st_stats *st);

/* Write the Prometheus text file (FILE.tmp then rename).  @return 0 or -errno. */
int st_write_metrics(const struct st_stats *st, const char *path);

#endif /* YOLO_STATS_H */
