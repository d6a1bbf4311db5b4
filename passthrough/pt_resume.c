/* pt_resume.c - taking a FUSE session over from a daemon that stopped
 * (upgraded in place by exec) or died (restarted by systemd, which kept
 * the session's descriptors):
 *  - the session's descriptor I/O: plain read/writev on /dev/fuse that
 *    keep the kernel's INIT and the reply it got in the session record;
 *  - a successor replays that INIT to libfuse (the kernel sends only one
 *    per session) and swallows the reply, which must equal the one the
 *    kernel got: a successor that would negotiate differently refuses;
 *  - it rebuilds the nodes and open handles from the record;
 *  - the kernel resends what the old daemon read but never answered
 *    (FUSE_NOTIFY_RESEND, Linux 6.9);
 *  - across exec, the descriptors a successor inherits. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pt_i.h"
#include "yolo_err.h"

/* The kernel's message headers (include/uapi/linux/fuse.h), by layout:
 * libfuse does not install them and Debian 12's are older than resend. */
struct wire_in {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};
_Static_assert(sizeof(struct wire_in) == 40, "fuse_in_header");
struct wire_out {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};
_Static_assert(sizeof(struct wire_out) == 16, "fuse_out_header");
#define WIRE_INIT 26u
#define WIRE_NOTIFY_RESEND 7            /* Linux 6.9 */
#define WIRE_DEV_IOC_CLONE _IOR(229, 0, uint32_t)

#ifdef HAVE_FUSE_CUSTOM_IO
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct pt_fs *fs = userdata;
	ssize_t n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(struct wire_in) && !atomic_load(&fs->init_kept)) {
		const struct wire_in *h = buf;
		if (h->opcode == WIRE_INIT) {
			pt_record_init(fs, true, buf, (size_t)n);
			fs->init_unique = h->unique;
		}
	}
	return n;
}

static size_t gather(const struct iovec *iov, int count, unsigned char *out, size_t max)
{
	size_t len = 0;
	for (int i = 0; i < count; i++) {
		size_t n = iov[i].iov_len < max - len ? iov[i].iov_len : max - len;
		memcpy(out + len, iov[i].iov_base, n);
		len += n;
	}
	return len;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct pt_fs *fs = userdata;
	if (!atomic_load(&fs->init_kept) && count > 0 && iov[0].iov_len >= sizeof(struct wire_out) &&
	    ((const struct wire_out *)iov[0].iov_base)->unique == fs->init_unique) {
		unsigned char reply[sizeof(fs->replay_out)];
		size_t len = gather(iov, count, reply, sizeof(reply));
		if (fs->replaying) {
			/* The kernel had its answer from the predecessor. */
			memcpy(fs->replay_out, reply, len);
			fs->replay_len = len;
			atomic_store(&fs->init_kept, true);
			return (ssize_t)len;
		}
		pt_record_init(fs, false, reply, len);
		atomic_store(&fs->init_kept, true);
	}
	return writev(fd, iov, count);
}

static ssize_t io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			      unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

/* A clone of the session's descriptor per worker (-o clone_fd). */
static int io_clone(int master_fd)
{
	uint32_t master = (uint32_t)master_fd;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ioctl(fd, WIRE_DEV_IOC_CLONE, &master) < 0) {
		int saverr = errno;
		close(fd);
		errno = saverr;
		return -1;
	}
	return fd;
}

int pt_session_io(struct pt_fs *fs, struct fuse_session *se, int fd)
{
	struct fuse_custom_io io = {
		.read = io_read, .writev = io_writev, .clone_fd = io_clone,
		.splice_send = fs->cfg.splice ? io_splice_send : NULL,
	};
	fs->se = se;
	fs->fuse_fd = fd;
	return fuse_session_custom_io_317(se, &io, sizeof(io), fd);
}

/* Hand libfuse the kernel's INIT again; its reply must be the one the
 * kernel got.  @return 0 or -errno. */
static int replay_init(struct pt_fs *fs, struct fuse_session *se, struct yolo_err *err)
{
	size_t in_len, out_len;
	const void *in = pt_record_init_bytes(fs, true, &in_len);
	const unsigned char *out = pt_record_init_bytes(fs, false, &out_len);
	/* libfuse's buffer: at least its own minimum read size. */
	size_t size = in_len < 8192 ? 8192 : in_len;
	void *copy = calloc(1, size);
	if (!copy)
		return yolo_fail(err, -ENOMEM, "out of memory");
	memcpy(copy, in, in_len);
	fs->init_unique = ((const struct wire_in *)in)->unique;
	fs->replaying = true;
	struct fuse_buf buf = { .size = in_len, .mem = copy, .fd = -1 };
	fuse_session_process_buf(se, &buf);
	free(copy);
	fs->replaying = false;
	if (!atomic_load(&fs->init_kept))
		return yolo_fail(err, -EPROTO, "libfuse did not answer the replayed INIT");
	if (fs->replay_len != out_len || memcmp(fs->replay_out, out, out_len) != 0)
		return yolo_fail(err, -EPROTO, "this yolofs would answer the kernel's INIT differently "
				 "from the running one (another libfuse, or other options)");
	return 0;
}

int pt_resume(struct pt_fs *fs, struct fuse_session *se, int record_fd, int fuse_fd,
	      bool inherited, struct yolo_err *err)
{
	pt_record_close(fs);
	int ret = pt_record_open(fs, record_fd);
	if (ret < 0)
		return yolo_fail(err, ret, "session record: %s", strerror(-ret));
	if ((ret = pt_record_check(fs, err)) < 0)
		return ret;
	if ((ret = pt_session_io(fs, se, fuse_fd)) < 0)
		return yolo_fail(err, ret, "libfuse refused the session's descriptor");
	if ((ret = replay_init(fs, se, err)) < 0)
		return ret;
	size_t nodes = 0, files = 0, dirs = 0, lost = 0;
	if ((ret = pt_inode_restore(fs, inherited, &nodes)) < 0)
		return yolo_fail(err, ret, "rebuilding the node table: %s", strerror(-ret));
	struct pt_record_handle h;
	for (uint64_t i = 0; pt_record_handle_at(fs, i, &h); i++) {
		if (!h.id)
			continue;
		ret = h.is_dir ? pt_dir_restore(fs, &h, inherited) :
				 pt_file_restore(fs, &h, inherited);
		if (ret < 0) {
			/* The kernel's requests on it get EBADF: one file, logged. */
			ylog(YLOG_ERR, "open %s %" PRIu64 " of node %" PRIu64 " not taken over: %s",
			     h.is_dir ? "directory" : "file", h.id, h.nodeid, strerror(-ret));
			lost++;
			continue;
		}
		*(h.is_dir ? &dirs : &files) += 1;
	}
	pt_record_free_unused(fs);
	ylog(YLOG_INFO, "took the session over: %zu nodes, %zu open files, %zu open directories "
	     "(%s)%s", nodes, files, dirs, inherited ? "descriptors inherited" : "reopened",
	     lost ? ", some opens lost (logged)" : "");
	return 0;
}

int pt_resend(struct pt_fs *fs)
{
	struct wire_out o = { .len = sizeof(o), .error = WIRE_NOTIFY_RESEND, .unique = 0 };
	if (write(fs->fuse_fd, &o, sizeof(o)) != (ssize_t)sizeof(o)) {
		int saverr = errno;
		ylog(YLOG_WARN, "the kernel cannot resend what the previous daemon read but never "
		     "answered (Linux >= 6.9 can): those callers wait until interrupted: %s",
		     strerror(saverr));
		return -saverr;
	}
	return 0;
}
#else
int pt_session_io(struct pt_fs *fs, struct fuse_session *se, int fd)
{
	fs->se = se;
	fs->fuse_fd = fd;
	return 0;
}

int pt_resume(struct pt_fs *fs, struct fuse_session *se, int record_fd, int fuse_fd,
	      bool inherited, struct yolo_err *err)
{
	(void)fs; (void)se; (void)record_fd; (void)fuse_fd; (void)inherited;
	return yolo_fail(err, -ENOTSUP, "built against libfuse " YOLO_FUSE_VERSION
			 " (taking a session over needs >= 3.17)");
}

int pt_resend(struct pt_fs *fs)
{
	(void)fs;
	return -ENOTSUP;
}
#endif

static void handover_handle(struct pt_fs *fs, struct pt_handle *h, bool inherit)
{
	int fd = -1;
	if (h->is_dir) {
		struct pt_dir *d = (struct pt_dir *)h;
		fd = d->dp ? dirfd(d->dp) : -1;
	} else {
		fd = atomic_load(&((struct pt_fh *)h)->fd);
	}
	if (fd >= 0)
		pt_set_cloexec(fd, !inherit);
	pt_record_handle_fd(fs, h, inherit ? fd : -1);
}

void pt_handover(struct pt_fs *fs, bool inherit, int *record_fd, int *source_fd)
{
	uint64_t item;
	pthread_mutex_lock(&fs->handles_lock);
	for (uint32_t pos = 0; yhash_next(&fs->handles, &pos, &item);)
		handover_handle(fs, (struct pt_handle *)(uintptr_t)item, inherit);
	pthread_mutex_unlock(&fs->handles_lock);
	pt_inode_handover(fs, inherit);
	pt_set_cloexec(pt_record_fd(fs), !inherit);
	pt_set_cloexec(fs->root.fd, !inherit);
	*record_fd = pt_record_fd(fs);
	*source_fd = fs->root.fd;
}
