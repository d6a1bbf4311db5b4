/* host.c - yolofs --host (see host.h): the sessions, their loops, the
 * control socket and the housekeeping loop on the main thread, which reaps
 * the sessions whose mount went away, runs the reloads learning asks for,
 * writes the one metrics file and carries out upgrades.
 *
 * Threads: the main thread (housekeeper: every change to the session list
 * but additions, and every session's end), the control thread (requests,
 * one at a time: it adds sessions), one loop thread per session (its
 * FUSE workers are libfuse's) and the shared ones (worker, inotify reader,
 * pager).  SIGTERM, SIGINT, SIGHUP and SIGUSR1 are blocked in every thread
 * and taken by the main thread with sigtimedwait; SIGUSR2 wakes a loop
 * thread out of its wait once its session was told to exit.
 *
 * Lock order: the host lock, then a session's own locks. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "background.h"
#include "host.h"
#include "host_i.h"
#include "imageset.h"
#include "learn.h"
#include "log.h"
#include "mount.h"
#include "namespace.h"
#include "passthrough.h"
#include "sdnotify.h"
#include "util.h"

#define REQUEST_MAX (16 * 1024)
#define LOOP_STACK (256 * 1024)

/* ---- the host's own options ---- */

static int parse_host_options(struct host *h, char *spec)
{
	char *save = NULL;
	for (char *o = strtok_r(spec, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		const char *v = strchr(o, '=') ? strchr(o, '=') + 1 : NULL;
		if (strncmp(o, "metrics=", 8) == 0 && *v) {
			free(h->metrics);
			h->metrics = strdup(v);
		} else if (strncmp(o, "metrics_interval=", 17) == 0 && atoi(v) > 0) {
			h->metrics_interval = (unsigned)atoi(v);
		} else if (strncmp(o, "memlimit=", 9) == 0) {
			if (opts_parse_memlimit(v, &h->memlimit) < 0)
				return -1;
		} else if (strcmp(o, "serve=memory") == 0 || strcmp(o, "serve=ssd") == 0) {
			h->memory = strcmp(o, "serve=memory") == 0;
		} else if (strcmp(o, "no_dedup") == 0) {
			h->dedup = false;
		} else {
			fprintf(stderr, "yolofs: --host: unknown option %s (the host takes metrics=, "
				"metrics_interval=, memlimit=, serve=, no_dedup; a mount's own options "
				"come with its attach request)\n", o);
			return -1;
		}
	}
	return 0;
}

/* ---- one session ---- */

void host_kick(struct host *h)
{
	pthread_kill(h->main_thread, SIGUSR1);
}

/* Learning wrote an image: the housekeeper reloads (never in a FUSE
 * worker, never on the learning thread that asked). */
static void reload_wanted(void *ctx)
{
	struct hosted *x = ctx;
	atomic_store(&x->reload_wanted, true);
	host_kick(x->host);
}

struct hosted *host_new_session(struct host *h, const char *label, const char *source,
				const char *options, char *why, size_t len)
{
	struct hosted *x = calloc(1, sizeof(*x));
	if (!x || !(x->label = strdup(label)) || !(x->source = strdup(source)) ||
	    !(x->options = strdup(options))) {
		snprintf(why, len, "out of memory");
		host_free_session(x);
		return NULL;
	}
	x->host = h;
	int argc = 0;
	x->argv[argc++] = "yolofs";
	if (*options) {
		x->argv[argc++] = "-o";
		x->argv[argc++] = x->options;
	}
	x->argv[argc++] = x->source;
	x->argv[argc++] = x->source;
	enum opts_result parsed = OPTS_EXIT_FAIL;
	if (source[0] == '/') {
		parsed = session_parse(&x->s, argc, x->argv);
		x->parsed = true;
	}
	if (source[0] != '/') {
		snprintf(why, len, "%s: the source must be an absolute path", source);
	} else if (parsed != OPTS_SERVE) {
		snprintf(why, len, "options %s refused (the host's log says why)", options);
	} else if (x->s.o.metrics || x->s.o.memlimit || x->s.o.serve || x->s.o.no_dedup) {
		snprintf(why, len, "metrics=, memlimit=, serve= and no_dedup are the host's options, "
			 "not a mount's");
	} else {
		x->s.reload = reload_wanted;
		x->s.reload_ctx = x;
		return x;
	}
	host_free_session(x);
	return NULL;
}

void host_free_session(struct hosted *x)
{
	if (!x)
		return;
	if (x->parsed)
		session_free(&x->s);
	free(x->label);
	free(x->source);
	free(x->options);
	free(x);
}

static void *loop_main(void *arg)
{
	struct hosted *x = arg;
	/* Only SIGUSR2 (the wake) reaches this thread and its workers. */
	int r = session_serve(&x->s, 1);
	if (r < 0)
		ylog(YLOG_ERR, "%s: session loop failed: %s", x->source, strerror(-r));
	atomic_store(&x->ended, true);
	host_kick(x->host);
	return NULL;
}

int host_start_loop(struct hosted *x)
{
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, LOOP_STACK);
	atomic_store(&x->ended, false);
	int r = pthread_create(&x->loop, &a, loop_main, x);
	pthread_attr_destroy(&a);
	x->loop_running = r == 0;
	return -r;
}

static struct hosted *find_source(struct host *h, const char *source)
{
	for (size_t i = 0; i < h->n; i++)
		if (!h->v[i]->detached && strcmp(h->v[i]->source, source) == 0)
			return h->v[i];
	return NULL;
}

/* List x (from then on it is the host's: the housekeeper may reap it as
 * soon as its mount goes), and say "ok ID MAJ:MIN LEARN" in msg.
 * @return 0 or -ENOMEM. */
static int add(struct host *h, struct hosted *x, char *msg, size_t len)
{
	pthread_mutex_lock(&h->lock);
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct hosted **v = realloc(h->v, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&h->lock);
			return -ENOMEM;
		}
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = x;
	if (!h->taking_over)             /* saved once after all (one line a session) */
		host_save_table(h);
	ylog(YLOG_INFO, "serving %s (%s) as session %u (%zu of %zu images)", x->source, x->label,
	     x->id, x->s.set ? iset_count(x->s.set) : 0, x->s.images.n);
	snprintf(msg, len, "ok %u %u:%u %s", x->id, major(x->s.mount_dev), minor(x->s.mount_dev),
		 x->s.learn ? learn_images_dir(x->s.learn) : "-");
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int host_start_session(struct host *h, struct hosted *x, char *msg, size_t len)
{
	if (session_open(&x->s, &h->sh) < 0 || session_mount(&x->s) < 0) {
		snprintf(msg, len, "error: %s: cannot mount (the host's log says why)", x->source);
		host_free_session(x);
		return -1;
	}
	session_start(&x->s);
	x->s.stats.keep = pt_record_user(x->s.fs);
	x->s.stats.keep_size = PT_RECORD_USER_MAX;
	int r;
	if (x->s.mount_dev && (r = tko_alias(x->s.mount_dev, h->socket_path)) < 0)
		ylog(YLOG_WARN, "%s: no control socket name for it (yolofs --upgrade of it cannot "
		     "reach the host): %s", x->source, strerror(-r));
	/* Taken over: its descriptors are in the store already (the same
	 * files), and systemd compares each new one with every stored one. */
	if (!x->s.tko.present)
		host_store(x);
	r = host_start_loop(x);
	if (r == 0 && (r = add(h, x, msg, len)) == 0)
		return 0;
	snprintf(msg, len, "error: %s: %s", x->source, strerror(-r));
	if (x->loop_running) {
		fuse_session_exit(x->s.se);
		pthread_kill(x->loop, SIGUSR2);
		pthread_join(x->loop, NULL);
	}
	host_store_drop(x);
	if (x->s.mount_dev)
		tko_alias_remove(x->s.mount_dev);
	session_end(&x->s);
	host_free_session(x);
	return -1;
}

/* ---- requests ---- */

static void attach(struct host *h, char *fields[], int n, int conn)
{
	char why[600], msg[PATH_MAX + 100];
	if (n < 3 || n > 4) {
		tko_reply(conn, "error: attach LABEL SOURCE [OPTIONS]");
		return;
	}
	if (atomic_load(&h->upgrading)) {
		tko_reply(conn, "error: an upgrade is under way; ask again");
		return;
	}
	pthread_mutex_lock(&h->lock);
	bool taken = find_source(h, fields[2]) != NULL;
	unsigned id = ++h->next_id;
	pthread_mutex_unlock(&h->lock);
	if (taken) {
		tko_reply(conn, "error: %s is attached already", fields[2]);
		return;
	}
	struct hosted *x = host_new_session(h, fields[1], fields[2], n == 4 ? fields[3] : "",
					    why, sizeof(why));
	if (!x) {
		tko_reply(conn, "error: %s", why);
		return;
	}
	x->id = id;
	host_start_session(h, x, msg, sizeof(msg));
	tko_reply(conn, "%s", msg);         /* x may be gone already: its mount too */
}

static void detach(struct host *h, char *fields[], int n, int conn)
{
	if (n != 2) {
		tko_reply(conn, "error: detach SOURCE");
		return;
	}
	pthread_mutex_lock(&h->lock);
	struct hosted *x = find_source(h, fields[1]);
	bool ours = x && session_mount_is_ours(&x->s);
	int r = ours && umount2(x->source, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ? -errno : 0;
	if (x && r == 0)
		x->detached = true;
	pthread_mutex_unlock(&h->lock);
	if (!x)
		tko_reply(conn, "error: %s is not attached", fields[1]);
	else if (r < 0)
		tko_reply(conn, "error: %s: %s", fields[1], strerror(-r));
	else
		tko_reply(conn, "ok detached%s", ours ? "" : " (it was not the topmost mount there)");
}

static void list(struct host *h, int conn)
{
	FILE *f = fdopen(dup(conn), "w");
	if (!f) {
		tko_reply(conn, "error: %s", strerror(errno));
		return;
	}
	pthread_mutex_lock(&h->lock);
	size_t n = h->n;
	for (size_t i = 0; i < n; i++) {
		struct hosted *x = h->v[i];
		fprintf(f, "%u\t%s\t%s\t%s\t%u:%u\t%s\n", x->id, x->label, x->source,
			atomic_load(&x->ended) ? "ended" : x->detached ? "detached" : "serving",
			major(x->s.mount_dev), minor(x->s.mount_dev),
			x->s.learn ? learn_images_dir(x->s.learn) : "-");
	}
	pthread_mutex_unlock(&h->lock);
	fclose(f);
	tko_reply(conn, "ok %zu sessions", n);
}

static void reload(struct host *h, char *fields[], int n, int conn)
{
	size_t asked = 0;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++) {
		if (n >= 2 && strcmp(h->v[i]->source, fields[1]) != 0)
			continue;
		atomic_store(&h->v[i]->reload_wanted, true);
		asked++;
	}
	pthread_mutex_unlock(&h->lock);
	host_kick(h);
	if (n >= 2 && !asked)
		tko_reply(conn, "error: %s is not attached", fields[1]);
	else
		tko_reply(conn, "ok: reload of %zu sessions queued", asked);
}

/* One request line from a root peer, split at tabs. */
static void serve_request(struct host *h, int conn)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != 0) {
		tko_reply(conn, "error: only root may ask this");
		return;
	}
	char *buf = malloc(REQUEST_MAX);
	size_t len = 0;
	struct pollfd p = { .fd = conn, .events = POLLIN };
	while (buf && len < REQUEST_MAX - 1 && !memchr(buf, '\n', len) && poll(&p, 1, 5000) == 1) {
		ssize_t r = recv(conn, buf + len, REQUEST_MAX - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	char *nl = buf ? memchr(buf, '\n', len) : NULL;
	if (!nl) {
		tko_reply(conn, "error: a request is one line ending in a newline");
		free(buf);
		return;
	}
	*nl = '\0';
	char *fields[8];
	int n = 0;
	for (char *f = buf, *save = NULL; n < 8 && (f = strtok_r(n ? NULL : buf, "\t", &save));)
		fields[n++] = f;
	const char *what = n ? fields[0] : "";
	int none = -1;
	if (strcmp(what, "attach") == 0) {
		attach(h, fields, n, conn);
	} else if (strcmp(what, "detach") == 0) {
		detach(h, fields, n, conn);
	} else if (strcmp(what, "list") == 0) {
		list(h, conn);
	} else if (strcmp(what, "reload") == 0) {
		reload(h, fields, n, conn);
	} else if (strcmp(what, "upgrade") == 0) {
		if (atomic_compare_exchange_strong(&h->upgrade_conn, &none, conn)) {
			atomic_store(&h->upgrading, true);
			host_kick(h);
		} else
			tko_reply(conn, "error: an upgrade is already under way");
	} else {
		tko_reply(conn, "error: unknown request (this host knows: attach, detach, list, "
			  "reload, upgrade)");
	}
	free(buf);
}

static void *control_main(void *arg)
{
	struct host *h = arg;
	for (;;) {
		int conn = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;     /* shut down */
		}
		serve_request(h, conn);
	}
}

static int listen_control(struct host *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(h->socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->socket_path);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", h->socket_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);             /* a predecessor's (exec'd or dead) */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(sa.sun_path, 0600) < 0 ||
	    listen(fd, 64) < 0) {
		int saverr = errno;
		close(fd);
		return -saverr;
	}
	h->listen_fd = fd;
	int r = pthread_create(&h->control, NULL, control_main, h);
	if (r) {
		close(fd);
		h->listen_fd = -1;
		return -r;
	}
	h->control_running = true;
	return 0;
}

static void stop_control(struct host *h)
{
	if (!h->control_running)
		return;
	shutdown(h->listen_fd, SHUT_RDWR);
	pthread_join(h->control, NULL);
	close(h->listen_fd);
	h->control_running = false;
}

/* ---- housekeeping (main thread) ---- */

/* Free the sessions whose loop ended (unmounted, detached and let go). */
void host_reap(struct host *h)
{
	for (;;) {
		struct hosted *x = NULL;
		pthread_mutex_lock(&h->lock);
		for (size_t i = 0; i < h->n && !x; i++) {
			if (!atomic_load(&h->v[i]->ended))
				continue;
			x = h->v[i];
			h->v[i] = h->v[--h->n];
			host_save_table(h);
		}
		pthread_mutex_unlock(&h->lock);
		if (!x)
			return;
		if (x->loop_running)
			pthread_join(x->loop, NULL);
		x->loop_running = false;
		host_store_drop(x);
		if (x->s.mount_dev)
			tko_alias_remove(x->s.mount_dev);
		session_end(&x->s);
		ylog(YLOG_INFO, "session %u (%s) ended", x->id, x->source);
		host_free_session(x);
	}
}

static void reloads(struct host *h)
{
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		if (atomic_exchange(&h->v[i]->reload_wanted, false))
			session_reload(&h->v[i]->s);
	pthread_mutex_unlock(&h->lock);
}

/* The one metrics file, and each session's counters kept in its record
 * (so they continue after a crash). */
static void write_metrics(struct host *h, bool *warned)
{
	pthread_mutex_lock(&h->lock);
	struct stats **v = malloc((h->n ? h->n : 1) * sizeof(*v));
	const char **labels = malloc((h->n ? h->n : 1) * sizeof(*labels));
	for (size_t i = 0; v && labels && i < h->n; i++) {
		struct session *s = &h->v[i]->s;
		if (s->stats.keep)
			stats_save(&s->stats, s->stats.keep, s->stats.keep_size);
		v[i] = &s->stats;
		labels[i] = h->v[i]->label;
	}
	int r = v && labels && h->metrics ?
		stats_write_metrics_many(v, labels, h->n, h->metrics) : 0;
	pthread_mutex_unlock(&h->lock);
	if (r < 0 && !*warned) {
		ylog(YLOG_WARN, "cannot write metrics to %s: %s", h->metrics, strerror(-r));
		*warned = true;
	}
	free(v);
	free(labels);
}

void host_stop_loops(struct host *h)
{
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++) {
		struct hosted *x = h->v[i];
		if (!x->loop_running)
			continue;
		fuse_session_exit(x->s.se);
		pthread_kill(x->loop, SIGUSR2);  /* out of its wait for the workers */
	}
	for (size_t i = 0; i < h->n; i++) {
		struct hosted *x = h->v[i];
		if (x->loop_running)
			pthread_join(x->loop, NULL);
		x->loop_running = false;
	}
	pthread_mutex_unlock(&h->lock);
}

/* SIGTERM: every session unmounted (and nothing left to take over). */
static void stop_all(struct host *h)
{
	ylog(YLOG_INFO, "stopping: unmounting %zu sessions", h->n);
	sdn_notify("STOPPING=1");
	host_stop_loops(h);
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++) {
		struct hosted *x = h->v[i];
		host_store_drop(x);
		if (x->s.mount_dev)
			tko_alias_remove(x->s.mount_dev);
		session_end(&x->s);
		host_free_session(x);
	}
	h->n = 0;
	host_save_table(h);
	pthread_mutex_unlock(&h->lock);
}

static void wake_only(int sig)
{
	(void)sig;
}

/* The signals only the main thread takes (sigtimedwait): blocked in all. */
static void main_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

static void housekeep(struct host *h)
{
	sigset_t wait;
	main_signals(&wait);
	bool warned = false;
	uint64_t next = 0;
	for (;;) {
		struct timespec ts = { .tv_sec = 1 };
		int sig = sigtimedwait(&wait, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			return;
		if (sig == SIGHUP) {
			pthread_mutex_lock(&h->lock);
			for (size_t i = 0; i < h->n; i++)
				atomic_store(&h->v[i]->reload_wanted, true);
			pthread_mutex_unlock(&h->lock);
		}
		host_reap(h);            /* before an upgrade: nothing dead is handed over */
		int conn = atomic_exchange(&h->upgrade_conn, -1);
		if (conn >= 0)
			host_upgrade(h, conn);
		reloads(h);
		uint64_t now = yolo_now_ns();
		if (now >= next) {
			write_metrics(h, &warned);
			next = now + (uint64_t)h->metrics_interval * 1000000000ull;
		}
	}
}

int host_main(int argc, char *argv[], const char *exe)
{
	static struct host h;            /* the threads keep pointers into it */
	h = (struct host){
		.socket_path = HOST_SOCKET, .metrics_interval = 15, .memory = true, .dedup = true,
		.argv = argv, .exe = exe, .main_thread = pthread_self(), .listen_fd = -1,
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	atomic_init(&h.upgrade_conn, -1);
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			h.socket_path = argv[++i];
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			char *spec = strdup(argv[++i]);
			int r = spec ? parse_host_options(&h, spec) : -1;
			free(spec);
			if (r < 0)
				return 1;
		} else {
			fprintf(stderr, "usage: yolofs --host [--socket PATH] [-o metrics=FILE,"
				"metrics_interval=N,memlimit=SIZE,serve=memory|ssd,no_dedup]\n");
			return 1;
		}
	}
	if (asprintf(&h.table_path, "%s.sessions", h.socket_path) < 0)
		return 1;
	/* Every thread made from here on inherits this mask. */
	sigset_t block;
	main_signals(&block);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	struct sigaction sa = { .sa_handler = wake_only };
	sigaction(SIGUSR2, &sa, NULL);
	struct iset_pool_config pc = { .memory = h.memory, .memlimit = h.memlimit, .dedup = h.dedup };
	int ret = 1, r;
	if (bg_create(&h.sh.bg) < 0 || iset_pool_create(&h.sh.pool, &pc) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		goto out;
	}
	if ((r = ns_hub_create(&h.sh.hub)) < 0)
		ylog(YLOG_WARN, "no namespace answers from memory: inotify: %s", strerror(-r));
	if ((h.sh.hub && (r = ns_hub_start(h.sh.hub)) < 0) || (r = bg_start(h.sh.bg)) < 0 ||
	    (r = iset_pool_start(h.sh.pool)) < 0) {
		fprintf(stderr, "yolofs: cannot start the host's threads: %s\n", strerror(-r));
		goto out;
	}
	if (host_take_over(&h) < 0)
		goto out;
	if ((r = listen_control(&h)) < 0) {
		fprintf(stderr, "yolofs: %s: %s\n", h.socket_path, strerror(-r));
		goto out;
	}
	ylog(YLOG_INFO, "host serving %zu sessions; requests at %s", h.n, h.socket_path);
	host_report_serving(&h);
	sdn_notifyf("READY=1\nSTATUS=serving %zu mounts", h.n);
	housekeep(&h);
	stop_control(&h);
	stop_all(&h);
	ret = 0;
out:
	stop_control(&h);
	ns_hub_destroy(h.sh.hub);
	bg_destroy(h.sh.bg);
	iset_pool_destroy(h.sh.pool);
	free(h.v);
	free(h.metrics);
	free(h.table_path);
	return ret;
}

/* ---- the client ---- */

int host_ctl_command(int argc, char *argv[])
{
	const char *path = HOST_SOCKET;
	int i = 2;
	if (i + 1 < argc && strcmp(argv[i], "--socket") == 0) {
		path = argv[i + 1];
		i += 2;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: yolofs --hostctl [--socket PATH] attach LABEL SOURCE "
			"[OPTIONS] | detach SOURCE | list | reload [SOURCE] | upgrade\n");
		return 2;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "yolofs: no yolofs host answers at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	FILE *f = fdopen(fd, "r+");
	for (int k = i; k < argc; k++)
		fprintf(f, "%s%s", k > i ? "\t" : "", argv[k]);
	fputc('\n', f);
	fflush(f);
	char line[4096];
	int ret = 1;
	while (fgets(line, sizeof(line), f)) {
		fputs(line, stdout);
		ret = strncmp(line, "ok", 2) == 0 ? 0 : 1;
	}
	fclose(f);
	return ret;
}
