/* background.c - the background worker (see background.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "background.h"
#include "log.h"

struct node {
	struct node *next;
	struct bg_job job;
};

struct bg {
	pthread_mutex_t lock;            /* protects the rest */
	pthread_cond_t cond;             /* a job was queued, or quit */
	pthread_cond_t done;             /* the running job finished */
	const void *running_owner;       /* owner of the running job (NULL: none or no owner) */
	struct node *head, *tail;
	unsigned pending;                /* queued + running */
	bool quit, running;
	pthread_t thread;
};

int bg_create(struct bg **out)
{
	struct bg *bg = calloc(1, sizeof(*bg));
	if (!bg)
		return -ENOMEM;
	pthread_mutex_init(&bg->lock, NULL);
	pthread_cond_init(&bg->cond, NULL);
	pthread_cond_init(&bg->done, NULL);
	*out = bg;
	return 0;
}

/* Idle I/O class (the disk serves everyone else first, where the I/O
 * scheduler honours it) and the lowest CPU priority, for this thread. */
static void be_idle(void)
{
	enum { IOPRIO_CLASS_IDLE = 3, IOPRIO_CLASS_SHIFT = 13, IOPRIO_WHO_PROCESS = 1 };
	pid_t tid = (pid_t)syscall(SYS_gettid);
	syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
	setpriority(PRIO_PROCESS, (id_t)tid, 19);
}

static void *bg_main(void *arg)
{
	struct bg *bg = arg;
	be_idle();
	pthread_mutex_lock(&bg->lock);
	for (;;) {
		while (!bg->head && !bg->quit)
			pthread_cond_wait(&bg->cond, &bg->lock);
		if (bg->quit)
			break;
		struct node *n = bg->head;
		bg->head = n->next;
		if (!bg->head)
			bg->tail = NULL;
		bg->running_owner = n->job.owner;
		pthread_mutex_unlock(&bg->lock);
		n->job.run(n->job.ctx);
		n->job.release(n->job.ctx, true);
		free(n);
		pthread_mutex_lock(&bg->lock);
		bg->running_owner = NULL;
		bg->pending--;
		pthread_cond_broadcast(&bg->done);
	}
	pthread_mutex_unlock(&bg->lock);
	return NULL;
}

int bg_start(struct bg *bg)
{
	int ret = pthread_create(&bg->thread, NULL, bg_main, bg);
	if (ret)
		return -ret;
	bg->running = true;
	return 0;
}

int bg_queue(struct bg *bg, const struct bg_job *job)
{
	struct node *n = malloc(sizeof(*n));
	if (!n) {
		job->release(job->ctx, false);
		return -ENOMEM;
	}
	n->next = NULL;
	n->job = *job;
	pthread_mutex_lock(&bg->lock);
	if (bg->tail)
		bg->tail->next = n;
	else
		bg->head = n;
	bg->tail = n;
	bg->pending++;
	pthread_cond_signal(&bg->cond);
	pthread_mutex_unlock(&bg->lock);
	return 0;
}

void bg_cancel(struct bg *bg, const void *owner)
{
	if (!bg || !owner)
		return;
	struct node *mine = NULL, **link = &mine;
	pthread_mutex_lock(&bg->lock);
	for (struct node **p = &bg->head, *n; (n = *p);) {
		if (n->job.owner != owner) {
			bg->tail = n;
			p = &n->next;
			continue;
		}
		*p = n->next;
		n->next = NULL;
		*link = n;
		link = &n->next;
		bg->pending--;
	}
	if (!bg->head)
		bg->tail = NULL;
	while (bg->running_owner == owner)
		pthread_cond_wait(&bg->done, &bg->lock);
	pthread_mutex_unlock(&bg->lock);
	for (struct node *n = mine, *next; n; n = next) {   /* outside the lock: releases free */
		next = n->next;
		n->job.release(n->job.ctx, false);
		free(n);
	}
}

unsigned bg_pending(struct bg *bg)
{
	pthread_mutex_lock(&bg->lock);
	unsigned n = bg->pending;
	pthread_mutex_unlock(&bg->lock);
	return n;
}

void bg_destroy(struct bg *bg)
{
	if (!bg)
		return;
	pthread_mutex_lock(&bg->lock);
	bg->quit = true;
	pthread_cond_signal(&bg->cond);
	pthread_mutex_unlock(&bg->lock);
	if (bg->running)
		pthread_join(bg->thread, NULL);
	for (struct node *n = bg->head, *next; n; n = next) {
		next = n->next;
		n->job.release(n->job.ctx, false);
		free(n);
	}
	pthread_cond_destroy(&bg->done);
	pthread_cond_destroy(&bg->cond);
	pthread_mutex_destroy(&bg->lock);
	free(bg);
}
