/* takeover.h - yolofs taking its own FUSE session over (prefix tko_), so
 * that guests see a pause and no error:
 *  - upgrade in place: `yolofs --upgrade MOUNTPOINT` asks the running
 *    daemon (over its control socket) to stop serving and start the binary
 *    now installed at its own path as its successor (fork and exec: the
 *    old process, whose threads may be waiting in the kernel on requests
 *    only a serving daemon answers, is never the one that execs), which
 *    inherits the session, its record and its open files' descriptors and
 *    says over a pipe whether it serves.  Only then does the old daemon
 *    leave (systemd told the new main PID); a successor that fails or
 *    refuses (another record version, another INIT answer) leaves nothing
 *    behind and the old daemon serves on.  The command prints the outcome;
 *  - restart after a crash: the session's descriptors are kept in
 *    systemd's descriptor store, which hands them to the restarted daemon.
 * What is taken over and how: passthrough.h (pt_resume). */
#ifndef YOLO_TAKEOVER_H
#define YOLO_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What a predecessor left to this process. */
struct tko_inherited {
	bool present;                    /* a session to take over */
	bool by_upgrade;                 /* started by a running daemon (its descriptors
					  * inherited), else restarted after a crash */
	int record_fd, fuse_fd, source_fd;
	int status_fd;                   /* to the predecessor: serving, or why not; -1 */
	uint64_t stopped_ns;             /* CLOCK_MONOTONIC when serving stopped (0: unknown) */
};

/* Read and clear what a predecessor left in the environment: an upgrade's
 * hand-over, or systemd's $LISTEN_FDS with the stored descriptors' names.
 * @return 0 (t->present says whether there is one) or -EINVAL (logged:
 * a hand-over that names no usable descriptors). */
int tko_inherited(struct tko_inherited *t);

/* Keep the session's descriptors in systemd's store (no-op outside a
 * unit with $NOTIFY_SOCKET), or drop them (a clean unmount). */
void tko_store(int record_fd, int fuse_fd, int source_fd);
void tko_store_drop(void);

/* What root may ask of a daemon through its control socket: hand the
 * session to the binary now installed (yolofs --upgrade), or re-read
 * images= as SIGHUP does (yolo-share watch, after it installed an image). */
enum tko_request { TKO_UPGRADE, TKO_RELOAD };
/* The control socket of the FUSE mount `mount_dev`: a thread accepts
 * root's requests and calls request(ctx, what, connection) for each (the
 * connection is owned by the callee; answer with tko_reply).
 * @return 0 or -errno. */
int tko_listen(dev_t mount_dev, void (*request)(void *ctx, enum tko_request what, int conn), void *ctx);
void tko_listen_stop(void);
/* The mount `mount_dev`'s control socket is `socket_path`'s (a symbolic
 * link: one process serving many mounts, yolofs --host), or no more.
 * @return 0 or -errno. */
int tko_alias(dev_t mount_dev, const char *socket_path);
void tko_alias_remove(dev_t mount_dev);
/* Does a daemon own the mount `mount_dev` (its control socket answers)? */
bool tko_live(dev_t mount_dev);
/* Write one line to an upgrade command's connection and close it. */
void tko_reply(int conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A successor being started by an upgrade. */
struct tko_successor {
	pid_t pid;
	int status_fd;                   /* its report */
	double paused_ms;                /* as it measured, once serving */
};
/* Start `binary` (argv as at start) as the successor, handing over
 * record/fuse/source (inheritable).  @return 0 or -errno. */
int tko_spawn(struct tko_successor *s, const char *binary, char *const argv[], int record_fd,
	      int fuse_fd, int source_fd, uint64_t stopped_ns);
/* The same, generic: the descriptors `keep` inherited, and `env` set to
 * "VALUE,status=FD,stopped=NS" (FD: the report pipe). */
int tko_spawn_with(struct tko_successor *s, const char *binary, char *const argv[],
		   const int *keep, size_t nkeep, const char *env, const char *value,
		   uint64_t stopped_ns);
/* Wait for its report (one that says nothing for 10 minutes is killed).
 * @return 0 (it serves) or -errno, with why (a line, `len` bytes) saying
 * what went wrong; the successor has then exited without serving. */
int tko_wait(struct tko_successor *s, char *why, size_t len);
/* After tko_spawn(_with) returned `spawned`: wait for the successor; once
 * it serves, answer `conn`, make it systemd's main process and exit
 * (`what` it serves, for the log).  Returns only if it does not serve,
 * with why (`len` bytes) saying why: the caller serves on, and then says
 * so with tko_reply_serving_on (which also tells systemd READY=1). */
void tko_await(struct tko_successor *s, int spawned, const char *exe, int conn, const char *what,
	       char *why, size_t len);
void tko_reply_serving_on(int conn, const char *why);
/* Make the successor systemd's main process (MAINPID=, and a barrier so
 * that systemd has read it before this process exits). */
void tko_pass_main_pid(pid_t pid);

/* As a successor: tell the predecessor this process serves (then wait,
 * at most a few seconds, for it to leave), or why it cannot.  Both close
 * the status pipe. */
void tko_report_serving(struct tko_inherited *t, double paused_ms);
void tko_report_refused(struct tko_inherited *t, const char *why);

/* `yolofs --upgrade MOUNTPOINT`: ask the daemon serving MOUNTPOINT to
 * upgrade in place, print its answer.  @return the exit status. */
int tko_upgrade_command(const char *mountpoint);

/* Milliseconds since `stopped_ns` (yolo_now_ns), or -1 if unknown. */
double tko_paused_ms(uint64_t stopped_ns);

#endif /* YOLO_TAKEOVER_H */
