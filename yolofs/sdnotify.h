/* sdnotify.h - the systemd readiness protocol (prefix sdn_) without a
 * libsystemd dependency: one datagram of newline-separated VAR=VALUE
 * assignments to the AF_UNIX socket named by $NOTIFY_SOCKET.  Without
 * $NOTIFY_SOCKET (not started by a Type=notify unit) every call does nothing.
 *
 * Which process may send: systemd accepts messages from the unit's main
 * process only (NotifyAccess=main, the default), so a unit runs `yolofs -f`
 * and notifies from that process.  A daemonized yolofs (no -f) adds
 * MAINPID= to its READY=1 so that a unit with NotifyAccess=all can follow
 * the fork. */
#ifndef YOLO_SDNOTIFY_H
#define YOLO_SDNOTIFY_H

/* Send STATE (e.g. "READY=1", "STOPPING=1", "STATUS=...", several joined by
 * '\n') to $NOTIFY_SOCKET, a file system path ("/run/systemd/notify") or an
 * abstract socket ("@name").  Thread-safe; never blocks for long (datagram,
 * MSG_DONTWAIT).
 * @return 1 sent, 0 no $NOTIFY_SOCKET, -errno on failure (also -EAFNOSUPPORT
 * for an address form this implementation does not speak, e.g. vsock:). */
int sdn_notify(const char *state);

/* sdn_notify of a printf-formatted STATE.  @return as sdn_notify; -ENOMEM
 * when formatting fails. */
int sdn_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "RELOADING=1" with MONOTONIC_USEC= (CLOCK_MONOTONIC in microseconds, which
 * Type=notify-reload in systemd >= 253 requires).  Send "READY=1" when the
 * reload is done, whether it succeeded or not.  @return as sdn_notify. */
int sdn_reloading(void);

/* STATE with descriptor `fd` attached (e.g. BARRIER=1).  @return as
 * sdn_notify. */
int sdn_send_fd(const char *state, int fd);

/* Keep `fd` in the unit's descriptor store under `name` (FDSTORE=1; the
 * unit needs FileDescriptorStoreMax=), or drop what is kept under `name`.
 * systemd hands kept descriptors to the next start of the unit (after a
 * crash) through $LISTEN_FDS and $LISTEN_FDNAMES.  @return as sdn_notify. */
int sdn_store_fd(int fd, const char *name);
int sdn_store_remove(const char *name);

#endif
