/* log.c - the project's logger (see log.h). */
#include <stdio.h>
#include <syslog.h>

#include "log.h"
#include "util.h"

_Atomic int ylog_threshold = YLOG_INFO;
static const char *prog = "yolo";
static atomic_bool use_syslog;

void ylog_init(const char *progname)
{
	prog = progname;
}

void ylog_set_level(enum ylog_level lvl)
{
	atomic_store(&ylog_threshold, (int)lvl);
}

void ylog_to_syslog(void)
{
	openlog(prog, LOG_PID, LOG_DAEMON);
	atomic_store(&use_syslog, true);
}

void ylog_v(enum ylog_level lvl, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	if ((int)lvl > atomic_load_explicit(&ylog_threshold, memory_order_relaxed))
		return;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (atomic_load_explicit(&use_syslog, memory_order_relaxed))
		syslog(prio[lvl], "%s", msg);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, names[lvl], msg);
}

void ylog(enum ylog_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ylog_v(lvl, fmt, ap);
	va_end(ap);
}

bool ylog_limited(struct ylog_limit *lim, enum ylog_level lvl, const char *fmt, ...)
{
	if ((int)lvl > atomic_load_explicit(&ylog_threshold, memory_order_relaxed))
		return false;
	uint64_t now = yolo_now_ns();
	uint64_t interval = (uint64_t)(lim->interval_s ? lim->interval_s : 60) * 1000000000u;
	uint32_t burst = lim->burst ? lim->burst : 1;
	uint64_t start = atomic_load(&lim->window_start_ns);
	/* One thread opens a new window; racing threads count in either. */
	if ((start == 0 || yolo_ns_since(now, start) >= interval) &&
	    atomic_compare_exchange_strong(&lim->window_start_ns, &start, now))
		atomic_store(&lim->in_window, 0);
	if (atomic_fetch_add(&lim->in_window, 1) >= burst) {
		atomic_fetch_add(&lim->suppressed, 1);
		return false;
	}
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t dropped = atomic_exchange(&lim->suppressed, 0);
	if (dropped)
		ylog(lvl, "%s (%llu similar messages suppressed)", msg, (unsigned long long)dropped);
	else
		ylog(lvl, "%s", msg);
	return true;
}
