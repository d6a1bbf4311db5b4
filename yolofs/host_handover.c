/* host_handover.c - the host's sessions outliving its process (see
 * host.h): the session list file, each session's descriptors in systemd's
 * store, the upgrade that hands every session to the binary now installed
 * at once, and the taking over at start, after an upgrade or a crash.
 *
 * The list (SOCKET.sessions): TABLE_HEADER, then one line a session, "ID\tLABEL\tSOURCE\t
 * MAJ:MIN\tMNTID\tOPTIONS" (its mount's device and id: a successor need
 * not read the mount table once a session), rewritten (atomically) at
 * every change.  The descriptors of
 * session ID are named "yhIDr" (its record), "yhIDf" (/dev/fuse) and
 * "yhIDs" (its source) in the store; an upgrade passes the same in
 * YOLOFS_HOST_TAKEOVER="sessions=ID:R:F:S;...,status=FD,stopped=NS". */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "host_i.h"
#include "learn.h"
#include "log.h"
#include "mount.h"
#include "passthrough.h"
#include "sdnotify.h"
#include "util.h"

#define ENV_HOST "YOLOFS_HOST_TAKEOVER"
/* The list's first line: a successor that reads another refuses (an
 * upgrade then leaves the predecessor serving). */
#define TABLE_HEADER "yolofs host sessions 1"

/* ---- the session list ---- */

void host_save_table(struct host *h)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", h->table_path);
	FILE *f = fopen(tmp, "we");
	if (!f) {
		ylog(YLOG_WARN, "cannot write %s (a restart would not find the sessions): %s", tmp,
		     strerror(errno));
		return;
	}
	fprintf(f, "%s\n", TABLE_HEADER);
	for (size_t i = 0; i < h->n; i++) {
		const struct hosted *x = h->v[i];
		fprintf(f, "%u\t%s\t%s\t%u:%u\t%ld\t%s\n", x->id, x->label, x->source,
			major(x->s.mount_dev), minor(x->s.mount_dev), x->s.mnt_id, x->options);
	}
	if (fclose(f) != 0 || rename(tmp, h->table_path) < 0) {
		ylog(YLOG_WARN, "cannot write %s (a restart would not find the sessions): %s",
		     h->table_path, strerror(errno));
		unlink(tmp);
	}
}

/* ---- systemd's descriptor store ---- */

static void store_name(char *buf, size_t len, unsigned id, char kind)
{
	snprintf(buf, len, "yh%u%c", id, kind);
}

void host_store(struct hosted *x)
{
	const struct { int fd; char kind; } v[] = {
		{ pt_record_fd(x->s.fs), 'r' }, { fuse_session_fd(x->s.se), 'f' },
		{ pt_source_fd(x->s.fs), 's' },
	};
	char name[32];
	for (size_t i = 0; i < 3; i++) {
		store_name(name, sizeof(name), x->id, v[i].kind);
		int r = sdn_store_fd(v[i].fd, name);
		if (r < 0) {
			ylog(YLOG_WARN, "%s: cannot keep the session in systemd's descriptor store "
			     "(a crash fails its I/O): %s", x->source, strerror(-r));
			return;
		}
	}
}

void host_store_drop(struct hosted *x)
{
	char name[32];
	for (const char *k = "rfs"; *k; k++) {
		store_name(name, sizeof(name), x->id, *k);
		sdn_store_remove(name);
	}
}

/* ---- what a predecessor left ---- */

struct left {
	unsigned id;
	int fd[3];                       /* record, fuse, source; -1: not left */
};

static struct left *left_for(struct left **v, size_t *n, unsigned id)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].id == id)
			return &(*v)[i];
	struct left *w = realloc(*v, (*n + 1) * sizeof(**v));
	if (!w)
		return NULL;
	*v = w;
	w[*n] = (struct left){ .id = id, .fd = { -1, -1, -1 } };
	return &w[(*n)++];
}

static void keep_fd(struct left **v, size_t *n, unsigned id, int slot, int fd)
{
	struct left *l = left_for(v, n, id);
	if (!l || l->fd[slot] >= 0 || fcntl(fd, F_GETFD) < 0) {
		close(fd);
		return;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	l->fd[slot] = fd;
}

/* "sessions=ID:R:F:S;...,status=FD,stopped=NS" */
static int parse_handover(struct host *h, const char *value, struct left **v, size_t *n)
{
	const char *tail = strstr(value, ",status=");
	unsigned long long stopped = 0;
	int status = -1;
	if (strncmp(value, "sessions=", 9) != 0 || !tail ||
	    sscanf(tail, ",status=%d,stopped=%llu", &status, &stopped) != 2)
		return -EINVAL;
	h->tko.status_fd = fcntl(status, F_GETFD) >= 0 ? status : -1;
	if (h->tko.status_fd >= 0)
		fcntl(status, F_SETFD, FD_CLOEXEC);
	h->tko.stopped_ns = stopped;
	for (const char *p = value + 9; p < tail;) {
		unsigned id;
		int fd[3], used = 0;
		if (sscanf(p, "%u:%d:%d:%d%n", &id, &fd[0], &fd[1], &fd[2], &used) != 4)
			return -EINVAL;
		for (int k = 0; k < 3; k++)
			keep_fd(v, n, id, k, fd[k]);
		p += used;
		if (*p == ';')
			p++;
	}
	return 0;
}

/* systemd's $LISTEN_FDS (from 3) named by $LISTEN_FDNAMES "yhIDk". */
static void parse_listen_fds(struct left **v, size_t *n)
{
	const char *pid = getenv("LISTEN_PID"), *cnt = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	if (!pid || !cnt || !names || strtol(pid, NULL, 10) != (long)getpid())
		return;
	int count = atoi(cnt);
	const char *p = names;
	for (int i = 0; i < count; i++) {
		size_t len = strcspn(p, ":");
		unsigned id;
		char kind = 0;
		int used = 0;
		int fd = 3 + i;
		const char *slots = "rfs";
		if (sscanf(p, "yh%u%c%n", &id, &kind, &used) == 2 && (size_t)used == len &&
		    strchr(slots, kind))
			keep_fd(v, n, id, (int)(strchr(slots, kind) - slots), fd);
		else
			close(fd);       /* not ours */
		p += len + (p[len] == ':');
	}
}

/* The fields of a session-list line (host_save_table's): ID LABEL SOURCE
 * MAJ:MIN MNTID OPTIONS. */
enum { TABLE_FIELDS = 6 };

/* Take over session `l` listed with fields `f`.
 * @return 0 or -1 (logged). */
static int take_one(struct host *h, struct left *l, char *f[TABLE_FIELDS])
{
	char why[600];
	unsigned maj, min;
	if (!f[4] || sscanf(f[3], "%u:%u", &maj, &min) != 2) {
		ylog(YLOG_ERR, "session %u: its line in the session list is damaged", l->id);
		return -1;
	}
	struct hosted *x = host_new_session(h, f[1], f[2], f[5] ? f[5] : "", why, sizeof(why));
	if (!x) {
		ylog(YLOG_ERR, "session %u (%s): %s", l->id, f[2], why);
		return -1;
	}
	x->id = l->id;
	x->s.tko = (struct tko_inherited){
		.present = true, .by_upgrade = h->tko.by_upgrade, .record_fd = l->fd[0],
		.fuse_fd = l->fd[1], .source_fd = l->fd[2], .status_fd = -1,
		.stopped_ns = h->tko.stopped_ns,
	};
	for (int k = 0; k < 3; k++)
		l->fd[k] = -1;                   /* the session's now */
	x->s.mount_dev = makedev(maj, min);
	x->s.mnt_id = strtol(f[4], NULL, 10);
	if (host_start_session(h, x, why, sizeof(why)) < 0) {
		ylog(YLOG_ERR, "session %u: %s; not taken over", l->id, why + strlen("error: "));
		return -1;
	}
	return 0;
}

int host_take_over(struct host *h)
{
	struct left *v = NULL;
	size_t n = 0;
	const char *value = getenv(ENV_HOST);
	h->tko = (struct tko_inherited){
		.record_fd = -1, .fuse_fd = -1, .source_fd = -1, .status_fd = -1,
	};
	if (value) {
		h->tko.by_upgrade = true;
		if (parse_handover(h, value, &v, &n) < 0) {
			ylog(YLOG_ERR, "a host hand-over that names no usable descriptors: %s", value);
			free(v);
			return -1;
		}
	} else {
		parse_listen_fds(&v, &n);
	}
	unsetenv(ENV_HOST);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	h->tko.present = value || n;
	h->taking_over = true;
	FILE *f = h->tko.present ? fopen(h->table_path, "re") : NULL;
	char line[8192];
	size_t taken = 0, lost = 0;
	if (f && (!fgets(line, sizeof(line), f) || strcmp(line, TABLE_HEADER "\n") != 0)) {
		ylog(YLOG_ERR, "%s: not a session list this yolofs reads (first line: %.60s)",
		     h->table_path, line);
		if (h->tko.by_upgrade) {
			tko_report_refused(&h->tko, "the session list is of another version");
			_exit(1);
		}
		fclose(f);
		f = NULL;                /* nothing taken over: the mounts are cleared at attach */
	}
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *fields[TABLE_FIELDS] = { 0 }, *save = NULL;
		for (int k = 0; k < TABLE_FIELDS; k++)
			fields[k] = strtok_r(k ? NULL : line, "\t", &save);
		unsigned id = fields[0] ? (unsigned)strtoul(fields[0], NULL, 10) : 0;
		if (id > h->next_id)
			h->next_id = id;
		struct left *l = NULL;
		for (size_t i = 0; i < n && !l; i++)
			if (v[i].id == id && v[i].fd[0] >= 0 && v[i].fd[1] >= 0 && v[i].fd[2] >= 0)
				l = &v[i];
		if (l && take_one(h, l, fields) == 0) {
			taken++;
			continue;
		}
		if (h->tko.by_upgrade) {
			/* All or nothing: the predecessor serves on. */
			tko_report_refused(&h->tko, "a session could not be taken over (see the log)");
			_exit(1);
		}
		lost++;
		/* Its mount is dead: its control socket name must not lead here,
		 * so the next attach of its source clears it. */
		const char *src = fields[2];
		dev_t dev;
		if (src && mount_top_id(src, true, &dev) >= 0)
			tko_alias_remove(dev);
		ylog(YLOG_ERR, "session %u (%s) was not taken over: its mount must be attached again",
		     id, src ? src : "?");
	}
	if (f)
		fclose(f);
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 3; k++)
			if (v[i].fd[k] >= 0)
				close(v[i].fd[k]);  /* listed nowhere: nothing to take over */
	free(v);
	pthread_mutex_lock(&h->lock);
	h->taking_over = false;
	host_save_table(h);
	for (size_t i = 0; i < h->n; i++)
		session_took_over(&h->v[i]->s);
	pthread_mutex_unlock(&h->lock);
	if (h->tko.present)
		ylog(YLOG_INFO, "took %zu sessions over %s%s", taken,
		     h->tko.by_upgrade ? "from the previous yolofs" : "after a restart",
		     lost ? "; some were lost (logged)" : "");
	return 0;
}

void host_report_serving(struct host *h)
{
	if (h->tko.by_upgrade)
		tko_report_serving(&h->tko, tko_paused_ms(h->tko.stopped_ns));
}

/* ---- the upgrade ---- */

void host_upgrade(struct host *h, int conn)
{
	ylog(YLOG_INFO, "upgrade: handing %zu sessions over to %s", h->n, h->exe);
	sdn_reloading();
	pthread_mutex_lock(&h->lock);
	/* While still serving: the learning sessions' images are written (a
	 * boot's reads may need the loop), for the successor to load. */
	for (size_t i = 0; i < h->n; i++)
		learn_end_ask(h->v[i]->s.learn);
	for (size_t i = 0; i < h->n; i++)
		learn_end_wait(h->v[i]->s.learn);
	pthread_mutex_unlock(&h->lock);
	uint64_t stopped = yolo_now_ns();
	host_stop_loops(h);
	/* A session whose mount went away meanwhile (its connection is gone)
	 * is not handed over: it is reaped now, off the list the successor
	 * reads. */
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++) {
		struct pollfd p = { .fd = fuse_session_fd(h->v[i]->s.se), .events = POLLIN };
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
			atomic_store(&h->v[i]->ended, true);
		else
			atomic_store(&h->v[i]->ended, false);
	}
	pthread_mutex_unlock(&h->lock);
	host_reap(h);
	pthread_mutex_lock(&h->lock);
	size_t cap = 16 + h->n * 40;
	char *value = malloc(cap);
	int *keep = malloc((h->n ? h->n : 1) * 3 * sizeof(*keep));
	size_t len = 0, nkeep = 0;
	char why[600] = "";
	int r = value && keep ? 0 : -ENOMEM;
	if (r == 0)
		len = (size_t)snprintf(value, cap, "sessions=");
	for (size_t i = 0; r == 0 && i < h->n; i++) {
		struct session *s = &h->v[i]->s;
		int rec, src, fuse = fuse_session_fd(s->se);
		stats_save(&s->stats, pt_record_user(s->fs), PT_RECORD_USER_MAX);
		pt_handover(s->fs, true, &rec, &src);
		len += (size_t)snprintf(value + len, cap - len, "%s%u:%d:%d:%d", i ? ";" : "",
					h->v[i]->id, rec, fuse, src);
		keep[nkeep++] = rec;
		keep[nkeep++] = fuse;
		keep[nkeep++] = src;
	}
	struct tko_successor succ;
	if (r == 0)
		r = tko_spawn_with(&succ, h->exe, h->argv, keep, nkeep, ENV_HOST, value, stopped);
	free(value);
	free(keep);
	if (r == -ENOMEM)
		snprintf(why, sizeof(why), "out of memory");
	else
		tko_await(&succ, r, h->exe, conn, "every session", why, sizeof(why));
	for (size_t i = 0; i < h->n; i++) {
		struct hosted *x = h->v[i];
		int rec, src;
		pt_handover(x->s.fs, false, &rec, &src);
		int e = host_start_loop(x);
		if (e < 0)
			ylog(YLOG_ERR, "%s: cannot restart its loop: %s", x->source, strerror(-e));
		/* What the loop read as it stopped was never answered: asked again. */
		pt_resend(x->s.fs);
	}
	pthread_mutex_unlock(&h->lock);
	atomic_store(&h->upgrading, false);
	tko_reply_serving_on(conn, why);
}
