/* background.h - yolofs's background worker (prefix bg_): one thread, at
 * idle I/O priority, that runs queued jobs one at a time in order, so work
 * nobody waits for (comparing captured blocks with a changed source file,
 * checking a loaded image's blocks) never delays an open or a read. */
#ifndef YOLO_BACKGROUND_H
#define YOLO_BACKGROUND_H

#include <stdbool.h>

struct bg;

/* A job: run(ctx) on the worker; then release(ctx, ran) always, also for
 * a job that never ran because the worker stopped first, or because its
 * owner cancelled it (ran false). */
struct bg_job {
	void (*run)(void *ctx);
	void (*release)(void *ctx, bool ran);
	void *ctx;
	const void *owner;               /* who may cancel it (bg_cancel); NULL: nobody */
};

/* @return 0 or -ENOMEM. */
int bg_create(struct bg **out);
/* Start the thread (after daemonizing: threads do not survive a fork).
 * Jobs queued before run from then on.  @return 0 or -errno. */
int bg_start(struct bg *bg);
/* Queue a job (copied).  @return 0 or -ENOMEM (then release(ctx, false)
 * has been called). */
int bg_queue(struct bg *bg, const struct bg_job *job);
/* Release every queued job of `owner` without running it, and wait for
 * its running one to finish: afterwards no job of `owner` holds anything.
 * An owner that jobs refer to calls this before it frees itself (the
 * worker may outlive it, and may not have been started yet). */
void bg_cancel(struct bg *bg, const void *owner);
/* Jobs queued or running. */
unsigned bg_pending(struct bg *bg);
/* Stop after the running job; jobs not run are released.  Frees bg. */
void bg_destroy(struct bg *bg);

#endif /* YOLO_BACKGROUND_H */
