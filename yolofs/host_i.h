/* host_i.h - the host's private parts (host.h), shared by host.c (the
 * sessions, the control socket, the housekeeping loop) and
 * host_handover.c (the session list, the descriptor store, the upgrade
 * and the taking over at start).  Nothing else includes it. */
#ifndef YOLO_HOST_I_H
#define YOLO_HOST_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "session.h"

/* One mount of the host. */
struct hosted {
	unsigned id;                     /* the host's number for it (descriptor names) */
	char *label, *source, *options;  /* as attached (options may be "") */
	char *argv[6];                   /* yolofs [-o OPTIONS] SOURCE SOURCE: its options */
	struct session s;
	bool parsed;                     /* s was parsed (session_free frees it) */
	pthread_t loop;
	bool loop_running;               /* main thread only */
	atomic_bool ended;               /* its loop returned */
	atomic_bool reload_wanted;
	bool detached;                   /* asked to detach (under host lock) */
	struct host *host;
};

struct host {
	struct session_shared sh;
	const char *socket_path;
	char *table_path;                /* SOCKET.sessions */
	char *metrics;                   /* metrics=FILE or NULL */
	unsigned metrics_interval;
	uint64_t memlimit;
	bool memory, dedup;
	char **argv;                     /* as started: the successor's */
	const char *exe;
	pthread_t main_thread;           /* the housekeeper: woken by SIGUSR1 */

	pthread_mutex_t lock;            /* protects v, n, next_id, the table file */
	struct hosted **v;
	size_t n, cap;
	unsigned next_id;

	int listen_fd;
	pthread_t control;
	bool control_running;
	_Atomic int upgrade_conn;        /* an upgrade asked for (its connection), or -1 */
	struct tko_inherited tko;        /* a predecessor's: present, by_upgrade, status_fd, stopped_ns */
	atomic_bool upgrading;
	bool taking_over;                /* at start, taking a predecessor's sessions */
};

/* Wake the housekeeper (reap, reload, upgrade). */
void host_kick(struct host *h);

/* Start a parsed session's mount (or taking over), threads and loop, and
 * list it (from then on it is the host's).  msg (len bytes) gets the
 * answer to an attach: "ok ID MAJ:MIN LEARN", or "error: why" (then the
 * session is freed).  @return 0 or -1. */
int host_start_session(struct host *h, struct hosted *x, char *msg, size_t len);
/* A hosted session for LABEL SOURCE OPTIONS, parsed (its options checked,
 * those of the process refused).  @return it, or NULL with why. */
struct hosted *host_new_session(struct host *h, const char *label, const char *source,
				const char *options, char *why, size_t len);
void host_free_session(struct hosted *x);
/* Free the sessions whose loop ended (unmounted, or detached and let go). */
void host_reap(struct host *h);
/* Stop the loops of every session (the upgrade, the exit). */
void host_stop_loops(struct host *h);
/* (Re)start a session's loop thread.  @return 0 or -errno. */
int host_start_loop(struct hosted *x);

/* ---- host_handover.c ---- */

/* Rewrite the session list (host lock held). */
void host_save_table(struct host *h);
/* Keep a session's descriptors in systemd's store, or drop them. */
void host_store(struct hosted *x);
void host_store_drop(struct hosted *x);
/* At start: take over the sessions a predecessor left (an upgrade's
 * hand-over or systemd's store), listed in the table.  @return 0, or -1
 * when an upgrade's hand-over cannot be taken (the process must exit: its
 * predecessor serves on). */
int host_take_over(struct host *h);
/* As a successor, once serving: tell the predecessor.  No-op otherwise. */
void host_report_serving(struct host *h);
/* Hand every session to the binary now installed (`conn`: the request's
 * connection, answered).  Returns only if it did not take over. */
void host_upgrade(struct host *h, int conn);

#endif /* YOLO_HOST_I_H */
