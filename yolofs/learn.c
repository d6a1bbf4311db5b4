/* learn.c - learning boot images while boots run (see learn.h).
 *
 * Locking: `lock` protects the session list, each session's contents and
 * the buffer of recent questions.  Recording holds it for a few hash
 * lookups; writing an image is done by the learning thread on a session
 * already taken off the list, without the lock. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "filelist.h"
#include "hashmap.h"
#include "learn.h"
#include "log.h"
#include "trust.h"
#include "util.h"
#include "yolo_image.h"

#define BLOCK_SHIFT 12                   /* learnt images use 4 KiB blocks */
#define SESSION_MAX_BYTES (1ull << 30)   /* a "boot" reading more is not one */
#define MAX_QUESTIONS (1u << 20)
#define RECENT_MAX 65536
#define PRUNE_EVERY_NS (60 * 1000000000ull)

struct question {
	char *path;
	uint16_t flags;                  /* YOLO_NS_*; 0 with xattr */
	char *xattr;                     /* getxattr of this name, or NULL */
	uint64_t t_ns;
};


struct session {
	struct session *next;
	char *group;                     /* a relpath (by file) or "" (by mount) */
	uint64_t start_ns, last_ns;      /* begun; last read from the source */
	struct yolo_filelist files;      /* relpaths read */
	uint64_t *order;                 /* (file << 40 | block) in first-access order */
	size_t norder, order_cap;
	struct yhash seen;               /* set of order's keys */
	struct question *qs;
	size_t nqs, qs_cap;
	struct yhash qseen;              /* set of question keys */
};

struct learn {
	struct learn_config cfg;         /* dir and source copied */
	char *images_dir;                /* DIR/KEY */
	int dirfd;                       /* DIR */
	int keyfd;                       /* DIR/KEY */
	pthread_mutex_t lock;
	struct session *sessions;
	struct question *recent;         /* questions asked outside a session (by mount) */
	size_t nrecent;
	pthread_t thread;
	bool running;
	int quit_fd;                     /* eventfd */
	int wake_fd;                     /* eventfd: an end was asked for */
	/* learn_end_ask/wait: asked and done counts (under lock), done
	 * signalled; end_want: what the last ask waits for. */
	uint64_t end_asked, end_done, end_want;
	pthread_cond_t ended;
};

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ull;
	return h;
}
#define FNV0 14695981039346656037ull

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

/* `s` as a file name: [A-Za-z0-9._-] kept, anything else '_', at most
 * `max` bytes, then ".HASH" of all of s. */
static void name_of(const char *s, size_t max, char *out, size_t outlen)
{
	size_t n = 0;
	for (const char *p = s; *p && n < max && n + 1 < outlen; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		if (n == 0 && c == '/')
			continue;
		out[n++] = ok ? c : '_';
	}
	if (n && out[0] == '.')
		out[0] = '_';            /* never a hidden name, never "." or ".." */
	snprintf(out + n, outlen - n, "%s%08" PRIx32, n ? "." : "", (uint32_t)fnv(s, strlen(s), FNV0));
}

/* ---- sets of 64-bit keys (common/'s table, items their own keys) ---- */

static bool set_has(const struct yhash *set, uint64_t k)
{
	uint64_t item;
	return yhash_find(set, mix(k), yhash_item_is, NULL, &k, &item);
}

/* Insert `k`.  @return 1 added, 0 present, -ENOMEM. */
static int set_add(struct yhash *set, uint64_t k)
{
	if (set_has(set, k))
		return 0;
	return yhash_add(set, mix(k), k) < 0 ? -ENOMEM : 1;
}

/* ---- sessions (lock held) ---- */

static struct session *find_session(struct learn *l, const char *group)
{
	for (struct session *s = l->sessions; s; s = s->next)
		if (!strcmp(s->group, group))
			return s;
	return NULL;
}

static void free_question(struct question *q)
{
	free(q->path);
	free(q->xattr);
}

static void free_session(struct session *s)
{
	if (!s)
		return;
	yolo_filelist_free(&s->files);
	for (size_t i = 0; i < s->nqs; i++)
		free_question(&s->qs[i]);
	free(s->order);
	yhash_free(&s->seen);
	free(s->qs);
	yhash_free(&s->qseen);
	free(s->group);
	free(s);
}

/* One key per question: per flag bit, or per xattr name. */
static uint64_t question_key(const char *path, uint16_t bit, const char *xattr)
{
	uint64_t h = fnv(path, strlen(path) + 1, FNV0);
	h = fnv(&bit, sizeof(bit), h);
	if (xattr)
		h = fnv(xattr, strlen(xattr), h);
	return h | 1;
}

/* Add question `q` (taken) to the session, once.  @return 0 or -ENOMEM
 * (then q is freed). */
static int add_question(struct session *s, struct question *q)
{
	uint64_t h = question_key(q->path, q->flags, q->xattr);
	int r = s->nqs < MAX_QUESTIONS ? set_add(&s->qseen, h) : 0;
	if (r == 1 && s->nqs == s->qs_cap) {
		size_t cap = s->qs_cap ? s->qs_cap * 2 : 256;
		void *v = realloc(s->qs, cap * sizeof(*s->qs));
		if (!v)
			r = -ENOMEM;
		else {
			s->qs = v;
			s->qs_cap = cap;
		}
	}
	if (r != 1) {                    /* present, full or out of memory */
		free_question(q);
		return r < 0 ? r : 0;
	}
	s->qs[s->nqs++] = *q;
	return 0;
}

/* Wake the learning thread (an eventfd: never blocks); `unless` says what
 * happens if it cannot be. */
static void wake_thread(struct learn *l, const char *unless)
{
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof(one)) < 0)
		ylog(YLOG_DEBUG, "learn: cannot wake the thread (%s)", unless);
}

static struct session *new_session(struct learn *l, const char *group)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s || !(s->group = strdup(group))) {
		free(s);
		return NULL;
	}
	s->start_ns = s->last_ns = yolo_now_ns();
	/* By mount, the questions of the moments before the first open (the
	 * lookups that found the file) belong to this boot too. */
	for (size_t i = 0; i < l->nrecent; i++)
		add_question(s, &l->recent[i]);
	l->nrecent = 0;
	s->next = l->sessions;
	l->sessions = s;
	/* The thread sleeps until the first end it knows of: this one may
	 * come sooner. */
	wake_thread(l, "this session may last longer");
	return s;
}

/* The session's id of `path`, added when new.  @return it, or -errno. */
static int64_t file_id(struct session *s, const char *path)
{
	int64_t id = yolo_filelist_find(&s->files, path);
	if (id >= 0)
		return id;
	if (s->files.n >= (1u << 23))
		return -EFBIG;
	return yolo_filelist_add(&s->files, path);
}

static void add_blocks(struct session *s, uint32_t file, uint64_t off, uint64_t len)
{
	uint64_t first = off >> BLOCK_SHIFT, last = (off + len - 1) >> BLOCK_SHIFT;
	for (uint64_t b = first; b <= last && b < (1ull << 40); b++) {
		if (((uint64_t)s->norder << BLOCK_SHIFT) >= SESSION_MAX_BYTES)
			return;
		uint64_t k = (uint64_t)file << 40 | b;
		if (set_add(&s->seen, k) != 1)
			continue;
		if (s->norder == s->order_cap) {
			size_t cap = s->order_cap ? s->order_cap * 2 : 1024;
			void *v = realloc(s->order, cap * sizeof(*s->order));
			if (!v)
				return;          /* the set says it is there: only this block is lost */
			s->order = v;
			s->order_cap = cap;
		}
		s->order[s->norder++] = k;
	}
}

static const char *group_of(const struct learn *l, const char *relpath)
{
	return l->cfg.by_mount ? "" : relpath;
}

void learn_open(struct learn *l, const char *relpath)
{
	pthread_mutex_lock(&l->lock);
	if (!find_session(l, group_of(l, relpath)))
		new_session(l, group_of(l, relpath));
	pthread_mutex_unlock(&l->lock);
}

void learn_read(struct learn *l, const char *relpath, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	pthread_mutex_lock(&l->lock);
	struct session *s = find_session(l, group_of(l, relpath));
	int64_t file = s ? file_id(s, relpath) : -1;
	if (file >= 0) {
		add_blocks(s, (uint32_t)file, off, len);
		s->last_ns = yolo_now_ns();
	}
	pthread_mutex_unlock(&l->lock);
}

static void rec_asked(void *ctx, enum pt_ns_question q, const char *path, const char *xname)
{
	struct learn *l = ctx;
	static const uint16_t flag[] = {
		[PT_NS_Q_LOOKUP] = YOLO_NS_LOOKUP, [PT_NS_Q_READDIR] = YOLO_NS_READDIR,
		[PT_NS_Q_READLINK] = YOLO_NS_READLINK, [PT_NS_Q_LISTXATTR] = YOLO_NS_LISTXATTR,
		[PT_NS_Q_GETXATTR] = 0,
	};
	struct question x = { .path = strdup(path), .flags = flag[q],
			      .xattr = q == PT_NS_Q_GETXATTR && xname ? strdup(xname) : NULL,
			      .t_ns = yolo_now_ns() };
	if (!x.path || (q == PT_NS_Q_GETXATTR && !x.xattr)) {
		free_question(&x);
		return;
	}
	pthread_mutex_lock(&l->lock);
	struct session *s = find_session(l, "");
	if (s) {
		add_question(s, &x);
	} else {
		/* Keep only what a session starting now would take: the last
		 * idle_s seconds, at most RECENT_MAX questions. */
		uint64_t keep = (uint64_t)(l->cfg.idle_s * 1e9);
		size_t drop = 0;
		while (drop < l->nrecent && (yolo_ns_since(x.t_ns, l->recent[drop].t_ns) > keep ||
					     l->nrecent - drop >= RECENT_MAX))
			free_question(&l->recent[drop++]);
		memmove(l->recent, l->recent + drop, (l->nrecent - drop) * sizeof(*l->recent));
		l->nrecent -= drop;
		l->recent[l->nrecent++] = x;
	}
	pthread_mutex_unlock(&l->lock);
}

struct pt_ns_recorder learn_recorder(struct learn *l)
{
	return (struct pt_ns_recorder){ .ctx = l, .asked = l->cfg.by_mount ? rec_asked : NULL };
}

/* ---- writing an image ---- */

/* The identity `relpath` has now, or false when it cannot be had. */
static bool ident_now(struct learn *l, const char *relpath, struct yolo_file_ident *id, int *fd_out)
{
	int fd = yolo_open_beneath(l->cfg.source_fd, relpath, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return false;
	}
	*id = yolo_ident_from_stat(&st);
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return true;
}

static int add_question_to(struct yolo_writer *w, const char *path, uint16_t flags,
			   const char *xattr, struct yolo_err *err)
{
	uint32_t node;
	int r = yolo_writer_add_ns(w, path, xattr ? 0 : flags, &node, err);
	if (r == 0 && xattr)
		r = yolo_writer_add_ns_xattr(w, node, xattr, err);
	return r;
}

/* `known`: the set of the questions an older image has (question_key). */
static void know(struct yhash *known, const char *path, uint16_t flags, const char *xattr)
{
	for (uint16_t bit = 1; xattr ? bit == 1 : bit && bit <= flags; bit <<= 1)
		if (xattr || (flags & bit))
			set_add(known, question_key(path, xattr ? 0 : bit, xattr));
}

static bool known_all(const struct yhash *known, const char *path, uint16_t flags,
		      const char *xattr)
{
	for (uint16_t bit = 1; xattr ? bit == 1 : bit && bit <= flags; bit <<= 1)
		if ((xattr || (flags & bit)) &&
		    !set_has(known, question_key(path, xattr ? 0 : bit, xattr)))
			return false;
	return true;
}

/* Do `f`'s blocks in `old` hold what the source file open as `fd` holds
 * now?  (An attribute change, such as nova's touch of a base file, changes
 * the identity and not the bytes.) */
static bool same_bytes(struct yolo_image *old, const struct yolo_file *f, int fd, uint8_t *buf,
		       uint8_t *src)
{
	for (uint32_t i = 0; i < f->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(old, f->first_block + i);
		int n = yolo_image_read_block(old, b, buf, 1u << BLOCK_SHIFT, YOLO_READ_VERIFY);
		if (n < 0 || pread(fd, src, (size_t)n, (off_t)(b->block_id << BLOCK_SHIFT)) != n ||
		    memcmp(buf, src, (size_t)n))
			return false;
	}
	return true;
}

/* The blocks and questions of `old` (an earlier image of this group) whose
 * files still hold the same bytes; its questions go into the set `known`.
 * @return 0 or -errno. */
static int carry_over(struct learn *l, struct yolo_writer *w, struct yolo_image *old,
		      uint8_t *buf, struct yhash *known, struct yolo_err *err)
{
	const struct yolo_image_info *in = yolo_image_info(old);
	uint32_t *map = malloc((in->file_count + 1) * sizeof(*map));
	uint8_t *src = malloc(1u << BLOCK_SHIFT);
	int r = map && src ? 0 : -ENOMEM;
	for (uint32_t i = 0; i < in->file_count && r == 0; i++) {
		const struct yolo_file *f = yolo_image_file(old, i);
		struct yolo_file_ident now;
		int fd = -1;
		map[i] = UINT32_MAX;
		if (ident_now(l, f->path, &now, &fd) && f->ident.size == now.size &&
		    (yolo_ident_same(&f->ident, &now) || same_bytes(old, f, fd, buf, src)))
			r = yolo_writer_add_file(w, f->path, &now, &map[i], err);
		if (fd >= 0)
			close(fd);
	}
	free(src);
	for (uint64_t s = 0; s < in->block_count && r == 0; s++) {
		const struct yolo_block *b = yolo_image_block_by_seq(old, s);
		if (map[b->file_id] == UINT32_MAX)
			continue;
		int n = yolo_image_read_block(old, b, buf, 1u << BLOCK_SHIFT, YOLO_READ_VERIFY);
		if (n < 0)
			continue;        /* a bad block is read again from the source */
		r = yolo_writer_add_block(w, map[b->file_id], b->block_id, buf, (uint32_t)n, err);
	}
	char path[PATH_MAX];
	for (uint32_t i = 0; i < yolo_image_ns_node_count(old) && r == 0; i++) {
		if (yolo_image_ns_path(old, i, path, sizeof(path)) < 0)
			continue;        /* longer than any path: not carried over */
		uint16_t flags = yolo_image_ns_node(old, i)->flags;
		if (flags)
			r = add_question_to(w, path, flags, NULL, err);
		know(known, path, flags, NULL);
	}
	for (uint32_t i = 0; i < yolo_image_ns_xattr_count(old) && r == 0; i++) {
		const struct yolo_ns_xattr *x = yolo_image_ns_xattr(old, i);
		if (yolo_image_ns_path(old, x->node, path, sizeof(path)) < 0)
			continue;
		r = add_question_to(w, path, 0, x->name, err);
		know(known, path, 0, x->name);
	}
	free(map);
	return r;
}

/* The session's files as they are now and its blocks, read from the source
 * now (the image is compared with the source once written, so a change
 * while it is written removes it), and its questions not `known` already.
 * @return 0 or -errno. */
static int add_session(struct learn *l, struct yolo_writer *w, const struct session *s,
		       uint8_t *buf, const struct yhash *known, uint64_t *added,
		       struct yolo_err *err)
{
	uint32_t *map = malloc((s->files.n + 1) * sizeof(*map));
	int *fds = malloc((s->files.n + 1) * sizeof(*fds));
	uint64_t *sizes = malloc((s->files.n + 1) * sizeof(*sizes));
	int r = map && fds && sizes ? 0 : -ENOMEM;
	for (uint32_t i = 0; i < s->files.n && fds; i++)
		fds[i] = -1;
	for (uint32_t i = 0; i < s->files.n && r == 0; i++) {
		struct yolo_file_ident now;
		map[i] = UINT32_MAX;
		if (!ident_now(l, s->files.paths[i], &now, &fds[i]))
			continue;        /* gone */
		sizes[i] = now.size;
		if (yolo_writer_find_file(w, s->files.paths[i], &map[i]) < 0)
			r = yolo_writer_add_file(w, s->files.paths[i], &now, &map[i], err);
	}
	for (size_t i = 0; i < s->norder && r == 0; i++) {
		uint32_t f = (uint32_t)(s->order[i] >> 40);
		uint64_t b = s->order[i] & ((1ull << 40) - 1), off = b << BLOCK_SHIFT;
		if (map[f] == UINT32_MAX || off >= sizes[f] || yolo_writer_has_block(w, map[f], b))
			continue;
		uint32_t len = sizes[f] - off < (1u << BLOCK_SHIFT) ? (uint32_t)(sizes[f] - off) :
			       1u << BLOCK_SHIFT;
		ssize_t n = pread(fds[f], buf, len, (off_t)off);
		if (n != (ssize_t)len) {
			int e = n < 0 ? errno : ESTALE;  /* ESTALE: it shrank, changed after all */
			r = yolo_fail(err, -e, "reading %s: %s", s->files.paths[f], strerror(e));
			break;
		}
		r = yolo_writer_add_block(w, map[f], b, buf, len, err);
		++*added;
	}
	for (size_t i = 0; i < s->nqs && r == 0; i++) {
		const struct question *q = &s->qs[i];
		if (known_all(known, q->path, q->flags, q->xattr))
			continue;
		r = add_question_to(w, q->path, q->flags, q->xattr, err);
		++*added;
	}
	for (uint32_t i = 0; fds && i < s->files.n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(map);
	free(fds);
	free(sizes);
	return r;
}

static void image_name(const struct learn *l, const char *group, char *out, size_t len)
{
	char name[NAME_MAX - 16];
	if (l->cfg.by_mount)
		snprintf(name, sizeof(name), "mount");
	else
		name_of(group, 160, name, sizeof(name));
	snprintf(out, len, "%s/%s.yolo", l->images_dir, name);
}

static uint64_t dir_bytes(int dirfd, int depth);
static void keep_within_limit(struct learn *l, const char *keep);

/* Write (or extend) the session's image, check it against the source and
 * have the image set reloaded.  @return true when an image was written. */
static bool write_session(struct learn *l, const struct session *s)
{
	char path[PATH_MAX];
	struct yolo_err err = { { 0 } };
	uint64_t t0 = yolo_now_ns();
	image_name(l, s->group, path, sizeof(path));
	if (!s->norder && !s->nqs)
		return false;            /* everything came from the images already */
	struct yolo_image *old = NULL;
	if (access(path, F_OK) == 0 && yolo_image_open(path, &old, &err) < 0) {
		ylog(YLOG_WARN, "learn: %s: %s; starting it afresh", path, err.msg);
		old = NULL;
	}
	struct yolo_writer *w = NULL;
	uint8_t *buf = malloc(1u << BLOCK_SHIFT);
	struct yolo_writer_opts o = { .block_size = 1u << BLOCK_SHIFT };
	struct yhash known = { 0 };          /* the questions the older image has */
	uint64_t added = 0;
	int r = buf ? yolo_writer_create(&w, path, &o, &err) : -ENOMEM;
	if (r == 0 && old)
		r = carry_over(l, w, old, buf, &known, &err);
	if (r == 0)
		r = add_session(l, w, s, buf, &known, &added, &err);
	free(buf);
	yhash_free(&known);
	yolo_image_close(old);
	if (r == 0 && !added) {
		yolo_writer_discard(w);  /* nothing new: the image stays as it is */
		return false;
	}
	if (r == 0)
		r = yolo_writer_commit(w, &err);
	else
		yolo_writer_discard(w);
	if (r < 0) {
		ylog(YLOG_WARN, "learn: %s not written: %s", path, err.msg[0] ? err.msg : strerror(-r));
		return false;
	}
	/* What is served must be what the source holds: compare every block. */
	struct yolo_image *img = NULL;
	struct yolo_verify_report rep = { 0 };
	r = yolo_image_open(path, &img, &err);
	if (r == 0)
		r = yolo_image_verify(img, l->cfg.source_fd, &rep, NULL, NULL);
	if (r != 0) {
		ylog(YLOG_WARN, "learn: %s does not match the source (%s); removed", path,
		     r < 0 ? err.msg : "changed while it was written");
		yolo_image_close(img);
		unlink(path);
		return false;
	}
	const struct yolo_image_info *in = yolo_image_info(img);
	ylog(YLOG_INFO, "learn: %s: %u files, %" PRIu64 " blocks (%.1f MiB), %u namespace paths; "
	     "boot of %.1f s, written and checked in %.2f s", path, in->file_count, in->block_count,
	     in->raw_bytes / 1048576.0, yolo_image_ns_node_count(img),
	     (s->last_ns - s->start_ns) / 1e9, (yolo_now_ns() - t0) / 1e9);
	stats_add(&l->cfg.stats->learned_images, 1);
	yolo_image_close(img);
	keep_within_limit(l, path);
	return true;
}

/* ---- limits ---- */

/* A directory stream over dirfd's directory (dirfd itself stays open). */
static DIR *dir_stream(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d && fd >= 0)
		close(fd);
	return d;
}

/* Bytes of *.yolo files in dirfd (depth 1: and in its subdirectories). */
static uint64_t dir_bytes(int dirfd, int depth)
{
	DIR *d = dir_stream(dirfd);
	uint64_t sum = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode) && yolo_is_image_file_name(de->d_name)) {
			sum += (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode) && depth > 0) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub >= 0) {
				sum += dir_bytes(sub, depth - 1);
				close(sub);
			}
		}
	}
	closedir(d);
	return sum;
}

/* Our images, oldest written first.  @return how many (names malloc'd). */
static size_t own_images(struct learn *l, char ***names_out)
{
	DIR *d = dir_stream(l->keyfd);
	struct ent { char *name; struct timespec t; } *v = NULL;
	size_t n = 0, cap = 0;
	if (!d) {
		*names_out = NULL;
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!yolo_is_image_file_name(de->d_name) ||
		    fstatat(l->keyfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			void *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		if (!(v[n].name = strdup(de->d_name)))
			break;
		v[n++].t = st.st_mtim;
	}
	closedir(d);
	/* Insertion sort by mtime: a node has a few hundred images at most. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && (v[j].t.tv_sec < v[j - 1].t.tv_sec ||
			(v[j].t.tv_sec == v[j - 1].t.tv_sec && v[j].t.tv_nsec < v[j - 1].t.tv_nsec)); j--) {
			struct ent t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	char **names = malloc((n + 1) * sizeof(*names));
	for (size_t i = 0; i < n; i++) {
		if (names)
			names[i] = v[i].name;
		else
			free(v[i].name);
	}
	free(v);
	*names_out = names;
	return names ? n : 0;
}

/* Over learn_max: remove our least recently written images (the one just
 * written last of all). */
static void keep_within_limit(struct learn *l, const char *keep)
{
	if (!l->cfg.max_bytes)
		return;
	uint64_t total = dir_bytes(l->dirfd, 1);
	if (total <= l->cfg.max_bytes)
		return;
	char **names;
	size_t n = own_images(l, &names);
	const char *base = strrchr(keep, '/') ? strrchr(keep, '/') + 1 : keep;
	for (int pass = 0; pass < 2 && total > l->cfg.max_bytes; pass++) {
		for (size_t i = 0; i < n && total > l->cfg.max_bytes; i++) {
			struct stat st;
			if (!names[i] || (pass == 0) == !strcmp(names[i], base) ||
			    fstatat(l->keyfd, names[i], &st, 0) < 0 || unlinkat(l->keyfd, names[i], 0) < 0)
				continue;
			total -= (uint64_t)st.st_size < total ? (uint64_t)st.st_size : total;
			ylog(YLOG_INFO, "learn: removed %s/%s to stay within learn_max=%" PRIu64 " bytes%s",
			     l->images_dir, names[i], l->cfg.max_bytes,
			     pass ? " (it does not fit on its own)" : "");
			free(names[i]);
			names[i] = NULL;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Remove our images none of whose files exist any more.  @return how many. */
static size_t prune(struct learn *l)
{
	char **names;
	size_t n = own_images(l, &names), removed = 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct yolo_image *img;
		struct yolo_err err;
		snprintf(path, sizeof(path), "%s/%s", l->images_dir, names[i]);
		if (yolo_image_open(path, &img, &err) == 0) {
			const struct yolo_image_info *in = yolo_image_info(img);
			bool any = in->file_count == 0 && yolo_image_ns_node_count(img) > 0;
			for (uint32_t f = 0; f < in->file_count && !any; f++) {
				struct stat st;
				any = fstatat(l->cfg.source_fd, yolo_image_file(img, f)->path, &st,
					      AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
			}
			yolo_image_close(img);
			if (!any && unlinkat(l->keyfd, names[i], 0) == 0) {
				ylog(YLOG_INFO, "learn: removed %s: its files are gone", path);
				removed++;
			}
		}
		free(names[i]);
	}
	free(names);
	return removed;
}

/* ---- the learning thread ---- */

/* When `s` ends: learn_window after it began or learn_idle after its last
 * read, whichever comes first. */
static uint64_t session_end_ns(const struct learn *l, const struct session *s)
{
	uint64_t window = (uint64_t)(l->cfg.window_s * 1e9), idle = (uint64_t)(l->cfg.idle_s * 1e9);
	uint64_t by_window = s->start_ns + window, by_idle = s->last_ns + idle;
	return by_window < by_idle ? by_window : by_idle;
}

/* Milliseconds from `now` to `due`, rounded up (poll's timeout). */
static int ms_until(uint64_t now, uint64_t due)
{
	uint64_t ms = (yolo_ns_since(due, now) + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The thread sleeps until the first session's end or the next prune, not
 * on a fixed tick: a host with 500 layers has 500 of these threads, and
 * ticking four times a second was most of its idle CPU.  A read only moves
 * a session's end later (woken too early, the thread sleeps again); a new
 * session, an end asked for and a stop wake it. */
static void *learn_main(void *arg)
{
	struct learn *l = arg;
	uint64_t next_prune = 0, wake_at = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = l->quit_fd, .events = POLLIN },
				       { .fd = l->wake_fd, .events = POLLIN } };
		uint64_t woken;
		if (poll(p, 2, ms_until(yolo_now_ns(), wake_at)) > 0 && p[0].revents)
			return NULL;
		if (p[1].revents && read(l->wake_fd, &woken, sizeof(woken)) < 0)
			woken = 0;       /* read again at the next wake */
		struct session *done = NULL;
		pthread_mutex_lock(&l->lock);
		/* Read under the lock: a read recorded after an earlier clock
		 * reading looked, by a wrapped difference, idle for centuries
		 * and ended the session in the middle of a boot. */
		uint64_t now = yolo_now_ns();
		uint64_t asked = l->end_asked;
		bool end_all = asked > l->end_done;
		uint64_t next = next_prune > now ? next_prune : now + PRUNE_EVERY_NS;
		for (struct session **sp = &l->sessions; *sp;) {
			struct session *s = *sp;
			uint64_t end = session_end_ns(l, s);
			if (end_all || end <= now) {
				*sp = s->next;
				s->next = done;
				done = s;
			} else {
				next = end < next ? end : next;
				sp = &s->next;
			}
		}
		pthread_mutex_unlock(&l->lock);
		wake_at = next;
		bool changed = false;
		while (done) {
			struct session *s = done;
			done = s->next;
			changed |= write_session(l, s);
			free_session(s);
		}
		if (end_all) {
			pthread_mutex_lock(&l->lock);
			l->end_done = asked;
			pthread_cond_broadcast(&l->ended);
			pthread_mutex_unlock(&l->lock);
		}
		if (now >= next_prune) {
			changed |= prune(l) > 0;
			next_prune = now + PRUNE_EVERY_NS;
		}
		if (changed && l->cfg.reload)
			l->cfg.reload(l->cfg.reload_ctx);
	}
}

/* ---- life ---- */

/* Is `path` `dir` or below it (both resolved)? */
static bool below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strcmp(dir, "/") || (!strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0'));
}

int learn_create(struct learn **out, const struct learn_config *cfg, struct yolo_err *err)
{
	if (cfg->dir[0] != '/')
		return yolo_fail(err, -EINVAL, "learn=%s: must be an absolute path", cfg->dir);
	struct learn *l = calloc(1, sizeof(*l));
	char real[PATH_MAX], key[NAME_MAX];
	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	l->dirfd = l->keyfd = l->quit_fd = l->wake_fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->ended, NULL);
	int r = 0;
	if (!realpath(cfg->source, real)) {
		r = yolo_fail(err, -errno, "source %s: %s", cfg->source, strerror(errno));
		goto fail;
	}
	name_of(real, 120, key, sizeof(key));
	/* Writing images through our own mount would wait on ourselves and
	 * put them into the source. */
	char dreal[PATH_MAX], mreal[PATH_MAX];
	if (!realpath(cfg->dir, dreal) || !realpath(cfg->mountpoint, mreal)) {
		r = -errno;
		yolo_fail(err, r, "%s: %s", realpath(cfg->dir, dreal) ? cfg->mountpoint : cfg->dir,
			  strerror(errno));
		goto fail;
	}
	if (below(dreal, real) || below(dreal, mreal)) {
		r = yolo_fail(err, -EINVAL, "%s is inside the mounted directory; keep learnt "
			      "images elsewhere (e.g. /var/lib/yolo/learn)", cfg->dir);
		goto fail;
	}
	if ((l->dirfd = trust_open_dir(cfg->dir, cfg->check_trust, err)) < 0) {
		r = l->dirfd;
		goto fail;
	}
	if (mkdirat(l->dirfd, key, 0755) < 0 && errno != EEXIST) {
		r = yolo_fail(err, -errno, "%s/%s: %s", cfg->dir, key, strerror(errno));
		goto fail;
	}
	l->keyfd = openat(l->dirfd, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (asprintf(&l->images_dir, "%s/%s", cfg->dir, key) < 0) {
		l->images_dir = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (l->keyfd < 0) {
		r = yolo_fail(err, -errno, "%s: %s", l->images_dir, strerror(errno));
		goto fail;
	}
	if (cfg->check_trust && (r = trust_check_fd(l->keyfd, l->images_dir, err)) < 0)
		goto fail;
	if (!(l->recent = calloc(RECENT_MAX, sizeof(*l->recent))) ||
	    (l->quit_fd = eventfd(0, EFD_CLOEXEC)) < 0 ||
	    (l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	*out = l;
	return 0;
fail:
	learn_destroy(l);
	return r;
}

const char *learn_images_dir(const struct learn *l)
{
	return l->images_dir;
}

int learn_start(struct learn *l)
{
	int r = pthread_create(&l->thread, NULL, learn_main, l);
	if (r)
		return -r;
	pthread_setname_np(l->thread, "yolofs-learn");   /* top -H, ps -L */
	l->running = true;
	return 0;
}

void learn_end_ask(struct learn *l)
{
	if (!l || !l->running)
		return;
	pthread_mutex_lock(&l->lock);
	l->end_want = ++l->end_asked;
	pthread_mutex_unlock(&l->lock);
	wake_thread(l, "it ends the sessions when it next wakes");
}

void learn_end_wait(struct learn *l)
{
	if (!l || !l->running)
		return;
	pthread_mutex_lock(&l->lock);
	while (l->end_done < l->end_want)
		pthread_cond_wait(&l->ended, &l->lock);
	pthread_mutex_unlock(&l->lock);
}

void learn_end_sessions(struct learn *l)
{
	learn_end_ask(l);
	learn_end_wait(l);
}

void learn_destroy(struct learn *l)
{
	if (!l)
		return;
	if (l->running) {
		uint64_t one = 1;
		if (write(l->quit_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(l->thread, NULL);
	}
	while (l->sessions) {
		struct session *s = l->sessions;
		l->sessions = s->next;
		free_session(s);
	}
	for (size_t i = 0; i < l->nrecent; i++)
		free_question(&l->recent[i]);
	free(l->recent);
	if (l->dirfd >= 0)
		close(l->dirfd);
	if (l->keyfd >= 0)
		close(l->keyfd);
	if (l->quit_fd >= 0)
		close(l->quit_fd);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->ended);
	free(l->images_dir);
	free(l);
}
