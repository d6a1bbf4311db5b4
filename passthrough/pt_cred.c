/* pt_cred.c - acting as the caller.  A FUSE request says who asked (fsuid,
 * fsgid, pid, and umask for creations); the source filesystem must decide
 * permissions, ACLs, quotas, reserved blocks, append-only/immutable flags
 * and LSM rules for that caller, not for the root daemon.  So a worker
 * thread takes the caller's identity for the one operation and gives it back
 * before replying:
 *
 *   - credentials are per thread in the kernel, so the raw setfsuid,
 *     setfsgid, setgroups and capset system calls change only the calling
 *     thread (glibc's setgroups() would change every thread: not used);
 *   - supplementary groups come from /proc/PID/task/PID/status of the
 *     calling thread, read per request: the caller is blocked in the request,
 *     so they cannot change under us, while any cache keyed by pid could be
 *     stale after a setgroups() or a reused pid.  An open file keeps the
 *     opener's groups for its writes (same pid, uid and gid only);
 *   - setfsuid() to a non-root id drops the file-system capabilities, but
 *     not CAP_SYS_RESOURCE (root's reserved blocks, quota hard limits) or
 *     CAP_SYS_ADMIN (trusted.* xattrs): the effective set is emptied too,
 *     and restored from the permitted set afterwards;
 *   - a root caller keeps the daemon's capabilities (it has them itself),
 *     acting only with its own fsgid;
 *   - the umask is per thread after unshare(CLONE_FS), so a creation gets
 *     the caller's umask applied by the source exactly when the source would
 *     apply it (not over a default ACL).
 * A thread that cannot return to the daemon's identity aborts the daemon:
 * carrying one caller's identity into the next request is worse. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pt_i.h"

/* The daemon's identity and a worker's buffers, per thread. */
struct thread_cred {
	bool ready;
	bool can_switch;                 /* the daemon is root: it can become anyone */
	bool fs_private;                 /* unshare(CLONE_FS) done: umask is ours */
	bool caps_lowered;               /* acting as a non-root caller: no effective caps */
	uid_t own_fsuid;
	gid_t own_fsgid;
	mode_t own_umask;
	struct __user_cap_data_struct own_caps[_LINUX_CAPABILITY_U32S_3];
	int own_ngroups;
	gid_t *own_groups;
	gid_t *groups;                   /* the current caller's, ngroups entries */
	int ngroups;
	size_t groups_cap;
	char *status;                    /* /proc status read buffer */
	size_t status_cap;
};

static pthread_key_t cred_key;
static pthread_once_t cred_once = PTHREAD_ONCE_INIT;
static struct ylog_limit switch_fail_log;

static void cred_free(void *p)
{
	struct thread_cred *t = p;
	free(t->own_groups);
	free(t->groups);
	free(t->status);
	free(t);
}

static void cred_key_init(void)
{
	pthread_key_create(&cred_key, cred_free);
}

static int capget_self(struct __user_cap_data_struct *data)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	return syscall(SYS_capget, &h, data) < 0 ? -errno : 0;
}

static int capset_self(const struct __user_cap_data_struct *data)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	return syscall(SYS_capset, &h, data) < 0 ? -errno : 0;
}

static int setgroups_self(int n, const gid_t *g)
{
	return syscall(SYS_setgroups, (size_t)n, g) < 0 ? -errno : 0;
}

/* This thread's state if it has acted as a caller, else NULL.  The key is
 * made first: before that, key 0 may be another module's, and its value is
 * no thread_cred (taken for one, its "own" capabilities were garbage). */
static struct thread_cred *thread_cred_if_any(void)
{
	pthread_once(&cred_once, cred_key_init);
	return pthread_getspecific(cred_key);
}

/* This thread's state, created (with the daemon's identity as it is now,
 * before any switch) at its first request.  @return NULL on ENOMEM. */
static struct thread_cred *thread_cred(void)
{
	pthread_once(&cred_once, cred_key_init);
	struct thread_cred *t = pthread_getspecific(cred_key);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->own_fsuid = (uid_t)setfsuid((uid_t)-1);
	t->own_fsgid = (gid_t)setfsgid((gid_t)-1);
	t->can_switch = geteuid() == 0;
	int n = getgroups(0, NULL);
	if (capget_self(t->own_caps) < 0 || n < 0 ||
	    !(t->own_groups = malloc(((size_t)n + 1) * sizeof(gid_t))) ||
	    (t->own_ngroups = getgroups(n, t->own_groups)) < 0 ||
	    pthread_setspecific(cred_key, t) != 0) {
		cred_free(t);
		return NULL;
	}
	t->ready = true;
	return t;
}

int pt_parse_status_groups(const char *text, size_t len, gid_t *out, size_t max)
{
	static const char key[] = "\nGroups:";
	const char *end = text + len, *p = NULL;
	/* The line may be the first one only in a malformed file; search for
	 * it after a newline so "XGroups:" cannot match. */
	for (const char *s = text; s + sizeof(key) - 1 <= end; s++) {
		if (*s == '\n' && memcmp(s, key, sizeof(key) - 1) == 0) {
			p = s + sizeof(key) - 1;
			break;
		}
	}
	if (!p)
		return -EINVAL;
	size_t n = 0;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end || *p == '\n')
			break;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		uint64_t v = 0;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > UINT32_MAX - 1)          /* (gid_t)-1 is not a group */
				return -EINVAL;
		}
		if (p < end && *p != ' ' && *p != '\t' && *p != '\n')
			return -EINVAL;
		if (n < max)
			out[n] = (gid_t)v;
		n++;
		if (n > 65536)                           /* NGROUPS_MAX */
			return -EINVAL;
	}
	return (int)n;
}

/* Read the supplementary groups of thread `pid` into t->groups.
 * @return 0 or -errno. */
static int read_groups(struct thread_cred *t, pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	int ret = 0;
	for (;;) {
		if (len + 4096 > t->status_cap) {
			size_t cap = t->status_cap ? t->status_cap * 2 : 8192;
			char *s = realloc(t->status, cap);
			if (!s) {
				ret = -ENOMEM;
				break;
			}
			t->status = s;
			t->status_cap = cap;
		}
		ssize_t n = read(fd, t->status + len, t->status_cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (ret < 0)
		return ret;
	int n = pt_parse_status_groups(t->status, len, t->groups, t->groups_cap);
	if (n > (int)t->groups_cap) {
		gid_t *g = realloc(t->groups, (size_t)n * sizeof(gid_t));
		if (!g)
			return -ENOMEM;
		t->groups = g;
		t->groups_cap = (size_t)n;
		n = pt_parse_status_groups(t->status, len, t->groups, t->groups_cap);
	}
	if (n < 0)
		return n;
	t->ngroups = n;
	return 0;
}

/* Undo a partial or complete switch.  Capabilities first: setfsuid back
 * to root needs CAP_SETUID in the effective set. */
static int restore_ids(struct thread_cred *t)
{
	int ret = capset_self(t->own_caps);
	if (ret == 0)
		t->caps_lowered = false;
	setfsuid(t->own_fsuid);
	setfsgid(t->own_fsgid);
	if (ret == 0)
		ret = setgroups_self(t->own_ngroups, t->own_groups);
	if (ret == 0 && ((uid_t)setfsuid((uid_t)-1) != t->own_fsuid ||
			 (gid_t)setfsgid((gid_t)-1) != t->own_fsgid))
		ret = -EPERM;
	return ret;
}

/* Become uid/gid with t->groups (non-root) or with the daemon's groups
 * and capabilities (root).  @return 0 or -errno, with nothing changed. */
static int switch_ids(struct thread_cred *t, uid_t uid, gid_t gid)
{
	int ret = 0;
	if (uid != 0)
		ret = setgroups_self(t->ngroups, t->groups);
	if (ret == 0) {
		setfsgid(gid);
		if ((gid_t)setfsgid((gid_t)-1) != gid)
			ret = -EPERM;
	}
	if (ret == 0 && uid != 0) {
		setfsuid(uid);
		if ((uid_t)setfsuid((uid_t)-1) != uid)
			ret = -EPERM;
	}
	if (ret == 0 && uid != 0) {
		struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
		memcpy(none, t->own_caps, sizeof(none));
		for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
			none[i].effective = 0;
		ret = capset_self(none);
		t->caps_lowered = ret == 0;
	}
	if (ret < 0) {
		if (restore_ids(t) < 0)
			abort();
		ylog_limited(&switch_fail_log, YLOG_ERR, "cannot act as uid %u gid %u: %s; "
			     "refusing the request", (unsigned)uid, (unsigned)gid, strerror(-ret));
	}
	return ret;
}

/* Act as (uid, gid) whose groups are t->groups (looked up by the caller of
 * this function when uid != 0). */
static int become(struct thread_cred *t, uid_t uid, gid_t gid, struct pt_as *as)
{
	if (uid == t->own_fsuid && gid == t->own_fsgid && (uid == 0 || !t->can_switch))
		return 0;                /* the daemon itself (or a root caller like it) */
	if (!t->can_switch)
		return 0;                /* not root: the daemon can only be itself */
	int ret = switch_ids(t, uid, gid);
	if (ret == 0)
		as->ids = true;
	return ret;
}

static int set_umask(struct thread_cred *t, mode_t mask, struct pt_as *as)
{
	if (!t->fs_private) {
		if (unshare(CLONE_FS) < 0)
			return -errno;
		t->fs_private = true;
		t->own_umask = umask(0);
		umask(t->own_umask);
	}
	umask(mask & 0777);
	as->umask = true;
	return 0;
}

int pt_as_caller(fuse_req_t req, struct pt_as *as, bool with_umask)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	*as = (struct pt_as){ 0 };
	struct thread_cred *t = thread_cred();
	if (!t)
		return -ENOMEM;
	t->ngroups = 0;
	if (c->uid != 0 && t->can_switch && c->pid > 0 && read_groups(t, c->pid) < 0)
		t->ngroups = 0;          /* the caller is gone: no supplementary groups */
	int ret = become(t, c->uid, c->gid, as);
	if (ret == 0 && with_umask && (ret = set_umask(t, c->umask, as)) < 0)
		pt_as_self(as);
	return ret;
}

int pt_as_writer(fuse_req_t req, struct pt_fh *fh, struct pt_as *as)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	*as = (struct pt_as){ 0 };
	struct thread_cred *t = thread_cred();
	if (!t)
		return -ENOMEM;
	const struct pt_caller *o = &fh->opener;
	/* Writes the kernel sends on its own (mmap write-back) carry no
	 * process: they are the opener's. */
	bool opener = c->pid == 0 || (c->pid == o->pid && c->uid == o->uid && c->gid == o->gid);
	uid_t uid = opener ? o->uid : c->uid;
	gid_t gid = opener ? o->gid : c->gid;
	if (uid == 0 || !t->can_switch)
		return become(t, uid, gid, as);
	if (opener && o->ngroups >= 0) {
		if ((size_t)o->ngroups > t->groups_cap) {
			gid_t *g = realloc(t->groups, (size_t)o->ngroups * sizeof(gid_t));
			if (!g)
				return -ENOMEM;
			t->groups = g;
			t->groups_cap = (size_t)o->ngroups;
		}
		memcpy(t->groups, o->groups, (size_t)o->ngroups * sizeof(gid_t));
		t->ngroups = o->ngroups;
	} else if (c->pid <= 0 || read_groups(t, c->pid) < 0) {
		t->ngroups = 0;
	}
	return become(t, uid, gid, as);
}

void pt_as_self(struct pt_as *as)
{
	struct thread_cred *t = thread_cred_if_any();
	if (!t)
		return;
	if (as->umask)
		umask(t->own_umask);
	if (as->ids && restore_ids(t) < 0) {
		ylog(YLOG_ERR, "a worker thread cannot return to the daemon's identity: %s",
		     strerror(errno));
		abort();
	}
	*as = (struct pt_as){ 0 };
}

/* The effective set of a thread acting as a non-root caller (none), plus
 * the daemon's capability `cap` when it is not -1. */
static int caps_with(struct thread_cred *t, int cap)
{
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
	memcpy(caps, t->own_caps, sizeof(caps));
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		caps[i].effective = 0;
	if (cap >= 0)
		caps[CAP_TO_INDEX(cap)].effective =
			t->own_caps[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap);
	return capset_self(caps);
}

/* Raise `cap` on a thread acting as a non-root caller (a no-op for the
 * daemon itself or a root caller), for one call.  @return whether it was
 * raised (lower it with caps_lower), or -EPERM. */
static int caps_raise(int cap)
{
	struct thread_cred *t = thread_cred_if_any();
	if (!t || !t->caps_lowered)
		return 0;
	return caps_with(t, cap) < 0 ? -EPERM : 1;
}

static void caps_lower(int raised, const char *what)
{
	if (raised <= 0)
		return;
	if (caps_with(thread_cred_if_any(), -1) < 0) {
		ylog(YLOG_ERR, "a worker thread cannot drop %s again: %s", what, strerror(errno));
		abort();                 /* never carry a capability into a caller's request */
	}
}

int pt_open_handle(int mount_fd, const struct pt_fhid *id, int flags)
{
	struct {
		struct file_handle h;
		unsigned char bytes[PT_FHID_MAX];
	} fh;
	fh.h.handle_type = id->type;
	fh.h.handle_bytes = id->len;
	memcpy(fh.h.f_handle, id->bytes, id->len);
	int raised = caps_raise(CAP_DAC_READ_SEARCH);
	if (raised < 0)
		return raised;
	int fd = open_by_handle_at(mount_fd, &fh.h, flags);
	int saverr = errno;
	caps_lower(raised, "CAP_DAC_READ_SEARCH");
	return fd < 0 ? -saverr : fd;
}

#ifdef HAVE_FUSE_PASSTHROUGH
int pt_backing_open(fuse_req_t req, int fd)
{
	int raised = caps_raise(CAP_SYS_ADMIN);
	if (raised < 0)
		return raised;
	int id = fuse_passthrough_open(req, fd);
	int saverr = errno;
	caps_lower(raised, "CAP_SYS_ADMIN");
	return id > 0 ? id : -(saverr ? saverr : EIO);
}
#endif

int pt_caller_keep(fuse_req_t req, struct pt_caller *c)
{
	const struct fuse_ctx *x = fuse_req_ctx(req);
	struct thread_cred *t = thread_cred_if_any();
	*c = (struct pt_caller){ .uid = x->uid, .gid = x->gid, .pid = x->pid, .ngroups = -1 };
	if (x->uid == 0 || !t || !t->can_switch)
		return 0;
	c->groups = malloc(((size_t)t->ngroups + 1) * sizeof(gid_t));
	if (!c->groups)
		return -ENOMEM;
	memcpy(c->groups, t->groups, (size_t)t->ngroups * sizeof(gid_t));
	c->ngroups = t->ngroups;
	return 0;
}

void pt_caller_free(struct pt_caller *c)
{
	free(c->groups);
	c->groups = NULL;
	c->ngroups = -1;
}
