/* sdnotify.c - systemd readiness notification (sd_notify protocol) so that
 * yolofs can run as a Type=notify unit without linking libsystemd: READY=1
 * once the mount is live, RELOADING=1/READY=1 around an image reload,
 * STOPPING=1 when unmounting; and descriptors kept in systemd's store
 * (FDSTORE=1), which a restarted daemon gets back.  Stateless: $NOTIFY_SOCKET is read at every
 * call and each message uses its own socket. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sdnotify.h"

/* $NOTIFY_SOCKET's address.  @return 1, 0 when unset, or -errno. */
static int notify_address(struct sockaddr_un *sa, socklen_t *salen)
{
	const char *name = getenv("NOTIFY_SOCKET");
	if (!name || !*name)
		return 0;
	if (name[0] != '/' && name[0] != '@')
		return -EAFNOSUPPORT;
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	size_t len = strlen(name);
	if (len >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, name, len);
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (name[0] == '@')
		sa->sun_path[0] = '\0';  /* abstract: the length delimits the name */
	else
		(*salen)++;              /* path: include the terminating NUL */
	return 1;
}

/* One datagram, with descriptor `fd` attached unless it is -1. */
static int send_state(const char *state, int fd)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int ret = notify_address(&sa, &salen);
	if (ret <= 0)
		return ret;
	int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	struct iovec iov = { .iov_base = (void *)state, .iov_len = strlen(state) };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl = { 0 };
	struct msghdr msg = {
		.msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1,
	};
	if (fd >= 0) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	ret = n < 0 ? -errno : (size_t)n != iov.iov_len ? -EMSGSIZE : 1;
	close(sock);
	return ret;
}

int sdn_notify(const char *state)
{
	return send_state(state, -1);
}

int sdn_send_fd(const char *state, int fd)
{
	return send_state(state, fd);
}

int sdn_store_fd(int fd, const char *name)
{
	char state[128];
	/* FDPOLL=0: systemd would poll it for hang-ups, which an O_PATH
	 * descriptor cannot be polled for (the store refuses it then). */
	snprintf(state, sizeof(state), "FDSTORE=1\nFDPOLL=0\nFDNAME=%s", name);
	return send_state(state, fd);
}

int sdn_store_remove(const char *name)
{
	char state[128];
	snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	return send_state(state, -1);
}

int sdn_notifyf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	int ret = sdn_notify(s);
	free(s);
	return ret;
}

int sdn_reloading(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -errno;
	return sdn_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
			   (unsigned long long)ts.tv_sec * 1000000ULL +
			   (unsigned long long)ts.tv_nsec / 1000ULL);
}
