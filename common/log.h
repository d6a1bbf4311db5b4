/* log.h - the one logger of every YOLO program (prefix ylog_): levels, a
 * printf-checked message function, stderr with the program's name or syslog
 * once a daemon runs in the background, and a cheap debug trace.
 *
 * Rate limiting: messages on a path that can repeat per request (a read,
 * an open) go through ylog_limited() with a struct ylog_limit of their own,
 * so a damaged image or a failing disk costs a few lines, not a full disk. */
#ifndef YOLO_LOG_H
#define YOLO_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum ylog_level { YLOG_ERR, YLOG_WARN, YLOG_INFO, YLOG_DEBUG };

/* Name shown in front of messages (default "yolo"); not copied. */
void ylog_init(const char *progname);
/* Messages above `lvl` are dropped (default YLOG_INFO). */
void ylog_set_level(enum ylog_level lvl);
/* From now on write to syslog (daemon in the background) instead of stderr. */
void ylog_to_syslog(void);

extern _Atomic int ylog_threshold;       /* read by YLOG_TRACE without a call */

void ylog(enum ylog_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ylog_v(enum ylog_level lvl, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* A per-operation debug trace that costs one load when debugging is off. */
#define YLOG_TRACE(...) \
	do { if (atomic_load_explicit(&ylog_threshold, memory_order_relaxed) >= YLOG_DEBUG) \
		ylog(YLOG_DEBUG, __VA_ARGS__); } while (0)

/* State of one rate-limited message: at most `burst` lines per `interval_s`
 * seconds; the lines dropped are counted and reported with the next line
 * that gets through.  Zero-initialised means 1 line per 60 s. */
struct ylog_limit {
	_Atomic uint64_t window_start_ns;
	_Atomic uint32_t in_window;
	_Atomic uint64_t suppressed;
	uint32_t burst;                  /* 0: 1 */
	uint32_t interval_s;             /* 0: 60 */
};

/* Log through `lim`.  @return true when the line was written. */
bool ylog_limited(struct ylog_limit *lim, enum ylog_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* YOLO_LOG_H */
