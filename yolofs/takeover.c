/* takeover.c - the hand-over between a yolofs and its successor (see
 * takeover.h): the environment a successor is started with and systemd's
 * descriptor store, the successor's start and report, the control socket
 * the upgrade command talks to, and the command itself. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mount.h"
#include "sdnotify.h"
#include "takeover.h"
#include "util.h"

#define ENV_HANDOVER "YOLOFS_TAKEOVER"
#define NAME_RECORD "yolofs-record"
#define NAME_FUSE "yolofs-fuse"
#define NAME_SOURCE "yolofs-source"
#define CONTROL_DIR "/run/yolofs"
#define TKO_WAIT_S 600                     /* a successor loading images: at most this */

double tko_paused_ms(uint64_t stopped_ns)
{
	return stopped_ns ? (double)(yolo_now_ns() - stopped_ns) / 1e6 : -1;
}

static bool fd_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

/* "record=N,fuse=N,source=N,status=N,stopped=NS" */
static int parse_handover(struct tko_inherited *t, const char *v)
{
	int record = -1, fuse = -1, source = -1, status = -1;
	unsigned long long stopped = 0;
	if (sscanf(v, "record=%d,fuse=%d,source=%d,status=%d,stopped=%llu", &record, &fuse,
		   &source, &status, &stopped) != 5 ||
	    !fd_open(record) || !fd_open(fuse) || !fd_open(source))
		return -EINVAL;
	t->record_fd = record;
	t->fuse_fd = fuse;
	t->source_fd = source;
	t->status_fd = fd_open(status) ? status : -1;
	t->stopped_ns = stopped;
	t->by_upgrade = true;
	return 0;
}

/* systemd's $LISTEN_FDS (from 3) named by $LISTEN_FDNAMES. */
static int parse_listen_fds(struct tko_inherited *t)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	if (!pid || !n || !names || strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	int count = atoi(n);
	char *copy = strdup(names), *save = NULL;
	if (!copy)
		return -ENOMEM;
	int i = 0;
	for (char *name = strtok_r(copy, ":", &save); name && i < count;
	     name = strtok_r(NULL, ":", &save), i++) {
		int fd = 3 + i;
		int *slot = strcmp(name, NAME_RECORD) == 0 ? &t->record_fd :
			    strcmp(name, NAME_FUSE) == 0 ? &t->fuse_fd :
			    strcmp(name, NAME_SOURCE) == 0 ? &t->source_fd : NULL;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (slot && *slot < 0)
			*slot = fd;
		else
			close(fd);       /* not ours, or a duplicate */
	}
	free(copy);
	if (t->record_fd < 0 && t->fuse_fd < 0 && t->source_fd < 0)
		return 0;
	if (t->record_fd < 0 || t->fuse_fd < 0 || t->source_fd < 0)
		return -EINVAL;
	return 1;
}

int tko_inherited(struct tko_inherited *t)
{
	*t = (struct tko_inherited){
		.record_fd = -1, .fuse_fd = -1, .source_fd = -1, .status_fd = -1,
	};
	const char *v = getenv(ENV_HANDOVER);
	int ret = 0;
	if (v) {
		ret = parse_handover(t, v);
	} else {
		ret = parse_listen_fds(t);
		if (ret < 0)
			ylog(YLOG_ERR, "systemd handed over %s descriptors named %s", getenv("LISTEN_FDS"),
			     getenv("LISTEN_FDNAMES"));
	}
	unsetenv(ENV_HANDOVER);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (ret < 0) {
		ylog(YLOG_ERR, "a session hand-over without its descriptors (record, /dev/fuse, "
		     "source): not taken over");
		return ret;
	}
	t->present = v ? true : ret > 0;
	int fds[] = { t->record_fd, t->fuse_fd, t->source_fd, t->status_fd };
	for (size_t i = 0; t->present && i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	return 0;
}

/* ---- systemd's descriptor store ---- */

void tko_store(int record_fd, int fuse_fd, int source_fd)
{
	const struct { int fd; const char *name; } v[] = {
		{ record_fd, NAME_RECORD }, { fuse_fd, NAME_FUSE }, { source_fd, NAME_SOURCE },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int r = sdn_store_fd(v[i].fd, v[i].name);
		if (r < 0) {
			ylog(YLOG_WARN, "cannot keep the session in systemd's descriptor store (%s): "
			     "a crash fails the guests' I/O: %s", v[i].name, strerror(-r));
			return;
		}
	}
}

void tko_store_drop(void)
{
	sdn_store_remove(NAME_RECORD);
	sdn_store_remove(NAME_FUSE);
	sdn_store_remove(NAME_SOURCE);
}

/* ---- the control socket ---- */

static void control_path(dev_t dev, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(sa->sun_path, sizeof(sa->sun_path), CONTROL_DIR "/%u:%u.sock", major(dev),
		 minor(dev));
}

static struct {
	int fd;
	pthread_t thread;
	bool running;
	struct sockaddr_un sa;
	void (*request)(void *ctx, enum tko_request what, int conn);
	void *ctx;
} control = { .fd = -1 };

void tko_reply(int conn, const char *fmt, ...)
{
	if (conn < 0)
		return;
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (send(conn, line, (size_t)n, MSG_NOSIGNAL) < 0)
		ylog(YLOG_DEBUG, "upgrade command gone: %s", strerror(errno));
	close(conn);
}

/* One request line from a root peer: "upgrade" or "reload". */
static void control_serve(int conn)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char buf[64] = "";
	struct pollfd p = { .fd = conn, .events = POLLIN };
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
		tko_reply(conn, "error: only root may ask this");
		return;
	}
	ssize_t n = poll(&p, 1, 5000) == 1 ? recv(conn, buf, sizeof(buf) - 1, 0) : -1;
	if (n > 0 && strcmp(buf, "upgrade\n") == 0)
		control.request(control.ctx, TKO_UPGRADE, conn);
	else if (n > 0 && strcmp(buf, "reload\n") == 0)
		control.request(control.ctx, TKO_RELOAD, conn);
	else
		tko_reply(conn, "error: unknown request (this yolofs knows: upgrade, reload)");
}

static void *control_main(void *arg)
{
	(void)arg;
	for (;;) {
		int conn = accept4(control.fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;     /* shut down */
		}
		control_serve(conn);
	}
}

int tko_listen(dev_t mount_dev, void (*request)(void *ctx, enum tko_request what, int conn), void *ctx)
{
	control_path(mount_dev, &control.sa);
	if (mkdir(CONTROL_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A predecessor's (exec'd or dead) socket file: ours now. */
	unlink(control.sa.sun_path);
	if (bind(fd, (struct sockaddr *)&control.sa, sizeof(control.sa)) < 0 ||
	    chmod(control.sa.sun_path, 0600) < 0 || listen(fd, 4) < 0) {
		int saverr = errno;
		close(fd);
		return -saverr;
	}
	control.fd = fd;
	control.request = request;
	control.ctx = ctx;
	int r = pthread_create(&control.thread, NULL, control_main, NULL);
	if (r != 0) {
		close(fd);
		control.fd = -1;
		return -r;
	}
	control.running = true;
	return 0;
}

void tko_listen_stop(void)
{
	if (!control.running)
		return;
	shutdown(control.fd, SHUT_RDWR);
	pthread_join(control.thread, NULL);
	close(control.fd);
	unlink(control.sa.sun_path);
	control.running = false;
	control.fd = -1;
}

int tko_alias(dev_t mount_dev, const char *socket_path)
{
	struct sockaddr_un sa;
	control_path(mount_dev, &sa);
	if (mkdir(CONTROL_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	unlink(sa.sun_path);             /* a dead daemon's */
	return symlink(socket_path, sa.sun_path) < 0 ? -errno : 0;
}

void tko_alias_remove(dev_t mount_dev)
{
	struct sockaddr_un sa;
	control_path(mount_dev, &sa);
	unlink(sa.sun_path);
}

/* A connection to the control socket of the mount `dev` (its path in sa).
 * @return the socket or -errno. */
static int control_connect(dev_t dev, struct sockaddr_un *sa)
{
	control_path(dev, sa);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		int saverr = errno;
		close(fd);
		return -saverr;
	}
	return fd;
}

bool tko_live(dev_t mount_dev)
{
	struct sockaddr_un sa;
	int fd = control_connect(mount_dev, &sa);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* ---- the successor ---- */

int tko_spawn_with(struct tko_successor *s, const char *binary, char *const argv[],
		   const int *keep, size_t nkeep, const char *env, const char *value,
		   uint64_t stopped_ns)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	char *v;
	if (asprintf(&v, "%s,status=%d,stopped=%" PRIu64, value, p[1], stopped_ns) < 0) {
		close(p[0]);
		close(p[1]);
		return -ENOMEM;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int saverr = errno;
		free(v);
		close(p[0]);
		close(p[1]);
		return -saverr;
	}
	if (pid == 0) {
		/* One thread here: nothing can hold the exec up. */
		for (size_t i = 0; i < nkeep; i++)
			fcntl(keep[i], F_SETFD, 0);
		fcntl(p[1], F_SETFD, 0);
		setenv(env, v, 1);
		execv(binary, argv);
		dprintf(p[1], "error: cannot exec %s: %s\n", binary, strerror(errno));
		_exit(127);
	}
	free(v);
	close(p[1]);
	*s = (struct tko_successor){ .pid = pid, .status_fd = p[0], .paused_ms = -1 };
	return 0;
}

int tko_spawn(struct tko_successor *s, const char *binary, char *const argv[], int record_fd,
	      int fuse_fd, int source_fd, uint64_t stopped_ns)
{
	char v[100];
	snprintf(v, sizeof(v), "record=%d,fuse=%d,source=%d", record_fd, fuse_fd, source_fd);
	int keep[] = { record_fd, fuse_fd, source_fd };
	return tko_spawn_with(s, binary, argv, keep, 3, ENV_HANDOVER, v, stopped_ns);
}

int tko_wait(struct tko_successor *s, char *why, size_t len)
{
	char buf[600];
	size_t n = 0;
	ssize_t r = 0;
	/* One line, once the successor has loaded its images (seconds for
	 * big ones).  One that says nothing for TKO_WAIT_S is stuck: killed
	 * (it never served; whatever it may have read is asked again). */
	struct pollfd p = { .fd = s->status_fd, .events = POLLIN };
	while (n < sizeof(buf) - 1) {
		int k = poll(&p, 1, TKO_WAIT_S * 1000);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			kill(s->pid, SIGKILL);
			snprintf(buf, sizeof(buf), "the new yolofs said nothing in %d s: killed", TKO_WAIT_S);
			n = strlen(buf);
			break;
		}
		r = read(s->status_fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(buf, '\n', n))
			break;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	close(s->status_fd);
	s->status_fd = -1;
	if (sscanf(buf, "serving %lf", &s->paused_ms) == 1)
		return 0;
	/* It is gone or going: reap it (it never served). */
	waitpid(s->pid, NULL, 0);
	snprintf(why, len, "%s", n ? buf : "the new yolofs exited before serving (see its log)");
	return -EPROTO;
}

void tko_await(struct tko_successor *s, int spawned, const char *exe, int conn, const char *what,
	       char *why, size_t len)
{
	int r = spawned;
	if (r < 0)
		snprintf(why, len, "cannot start %.400s: %s", exe, strerror(-r));
	else
		r = tko_wait(s, why, len);
	if (r < 0)
		return;
	ylog(YLOG_INFO, "upgrade: pid %ld serves %s, paused %.1f ms; leaving", (long)s->pid, what,
	     s->paused_ms);
	tko_reply(conn, "ok: yolofs (pid %ld) serves, paused %.1f ms", (long)s->pid, s->paused_ms);
	tko_pass_main_pid(s->pid);
	_exit(0);                        /* nothing to undo: the sessions are the successor's */
}

void tko_reply_serving_on(int conn, const char *why)
{
	ylog(YLOG_ERR, "upgrade: %s; serving on", why);
	tko_reply(conn, "%s%s; yolofs %s (pid %ld) serves on", strncmp(why, "error: ", 7) ? "error: " : "",
		  why, YOLO_VERSION, (long)getpid());
	sdn_notify("READY=1");
}

void tko_pass_main_pid(pid_t pid)
{
	if (sdn_notifyf("MAINPID=%ld", (long)pid) <= 0)
		return;
	/* BARRIER=1: systemd closes its copy of the pipe's write end once it
	 * has handled every earlier message (MAINPID= among them). */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	int r = sdn_send_fd("BARRIER=1", p[1]);
	close(p[1]);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	if (r > 0)
		poll(&pf, 1, 5000);
	close(p[0]);
}

void tko_report_serving(struct tko_inherited *t, double paused_ms)
{
	if (t->status_fd < 0)
		return;
	pid_t parent = getppid();
	dprintf(t->status_fd, "serving %.1f\n", paused_ms);
	close(t->status_fd);
	t->status_fd = -1;
	/* Systemd takes notifications from the main process only: the
	 * predecessor passes that on, then leaves. */
	int pfd = (int)syscall(SYS_pidfd_open, parent, 0);
	if (pfd < 0)
		return;
	struct pollfd pf = { .fd = pfd, .events = POLLIN };
	poll(&pf, 1, 5000);
	close(pfd);
}

void tko_report_refused(struct tko_inherited *t, const char *why)
{
	if (t->status_fd < 0)
		return;
	dprintf(t->status_fd, "error: the new yolofs refused the session: %s\n", why);
	close(t->status_fd);
	t->status_fd = -1;
}

/* ---- the command ---- */

int tko_upgrade_command(const char *mountpoint)
{
	dev_t dev;
	if (mount_top_id(mountpoint, true, &dev) < 0) {
		fprintf(stderr, "yolofs: %s: no FUSE mount there\n", mountpoint);
		return 1;
	}
	struct sockaddr_un sa;
	int fd = control_connect(dev, &sa);
	if (fd < 0) {
		fprintf(stderr, "yolofs: %s: no yolofs answers at %s: %s\n", mountpoint, sa.sun_path,
			strerror(-fd));
		return 1;
	}
	if (send(fd, "upgrade\n", 8, MSG_NOSIGNAL) != 8) {
		fprintf(stderr, "yolofs: %s: %s\n", mountpoint, strerror(errno));
		close(fd);
		return 1;
	}
	/* The answer comes from the successor (or the daemon it returned to),
	 * once it serves: after its images are loaded. */
	char buf[1024];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	if (len == 0) {
		fprintf(stderr, "yolofs: %s: the daemon closed the connection without an answer "
			"(see its log)\n", mountpoint);
		return 1;
	}
	bool ok = strncmp(buf, "ok", 2) == 0;
	fprintf(ok ? stdout : stderr, "yolofs: %s: %s", mountpoint, buf);
	return ok ? 0 : 1;
}
