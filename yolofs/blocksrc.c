/* blocksrc.c - yolofs's block source (prefix bs_): matching opened source
 * files to boot-image files, the identity check that refuses stale files,
 * the per-block read path (image hit from memory or SSD, merged preads of
 * the source for misses, first/last block trimming, short reads at EOF) and
 * invalidation of blocks modified through the mount.
 *
 * Staleness rules (the image must never win over the source):
 *  - at the first open of an inode its size, mtime and inode number must
 *    equal the image's capture identity, else the file is not served (logged
 *    once per image file);
 *  - every served read re-checks size and mtime with fstat, so a change made
 *    behind the daemon's back while the file is open disables the file;
 *  - changes through the mount take the file's lock exclusively, drop the
 *    affected blocks, modify the source and record the new size/mtime
 *    before readers continue; readers hold the lock shared from the check
 *    until their data is gathered, so a reply is entirely from before or
 *    entirely from after a write, never mixed.
 * Which images exist and which are in memory is imageset.c's job; an open
 * file keeps the image it was opened with (a reference) until released.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocksrc.h"
#include "imageset.h"
#include "log.h"

struct bs {
	/* Immutable after bs_create. */
	bool prefill;
	struct imageset *set;
	pthread_key_t tmp_key;           /* per-thread partial-block buffer */
	struct stats *stats;
};

/* State of one open inode whose file is in an image; lives from the first
 * open to the last release (pt core's ipriv). */
struct bs_file {
	/* Immutable. */
	struct iset_image *im;             /* holds a reference */
	const struct yolo_file *yf;
	const struct yolo_block *base;   /* the file's block-index entries */
	uint32_t file_id;
	uint32_t shift;
	int fd;                          /* dup of the first open's fd, for fstat */
	char *path;

	/* Writers (modify_begin..modify_end) take it exclusively, readers shared.
	 * Lock order: pt inode mutex, then this lock. */
	pthread_rwlock_t lock;
	atomic_bool enabled;             /* only ever goes true -> false (any thread) */
	uint64_t *invalid;               /* bitmap over base[0..block_count); protected by lock */
	uint64_t size;                   /* expected source size; protected by lock */
	struct timespec mtime;           /* expected source mtime; protected by lock */
};

/* A buffer for one block of any size, per thread. */
static uint8_t *tmp_buf(struct bs *bs)
{
	uint8_t *p = pthread_getspecific(bs->tmp_key);
	if (!p) {
		if (posix_memalign((void **)&p, 4096, (size_t)1 << YOLO_BLOCK_SHIFT_MAX))
			return NULL;
		if (pthread_setspecific(bs->tmp_key, p)) {
			free(p);
			return NULL;
		}
	}
	return p;
}

static void disable(struct bs_file *f, const char *why)
{
	if (atomic_exchange(&f->enabled, false))
		ylog(YLOG_WARN, "%s: %s; serving it from the source from now on", f->path, why);
}

static bool same_mtime(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* ---- opening ---- */

/* @return the new file state (holding the image reference `im`), or NULL. */
static struct bs_file *file_new(struct iset_image *im, uint32_t id, const char *relpath,
				const struct pt_open_info *info)
{
	struct bs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->im = im;
	f->yf = yolo_image_file(im->img, id);
	f->file_id = id;
	f->shift = im->info->block_shift;
	f->base = f->yf->block_count ? yolo_image_block(im->img, f->yf->first_block) : NULL;
	f->invalid = calloc((f->yf->block_count + 63) / 64 + 1, sizeof(uint64_t));
	f->path = strdup(relpath);
	f->fd = fcntl(info->fd, F_DUPFD_CLOEXEC, 0);
	if (!f->invalid || !f->path || f->fd < 0) {
		if (f->fd >= 0)
			close(f->fd);
		free(f->invalid);
		free(f->path);
		free(f);
		return NULL;
	}
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->lock, &a);
	pthread_rwlockattr_destroy(&a);
	atomic_init(&f->enabled, true);
	f->size = (uint64_t)info->st->st_size;
	f->mtime = info->st->st_mtim;
	return f;
}

static void file_free(struct bs_file *f)
{
	if (!f)
		return;
	pthread_rwlock_destroy(&f->lock);
	close(f->fd);
	iset_image_put(f->im);
	free(f->invalid);
	free(f->path);
	free(f);
}

/* Index of block-index entry `blk` (one of the file's) in its image. */
static uint64_t block_index(const struct bs_file *f, const struct yolo_block *blk)
{
	return f->yf->first_block + (uint64_t)(blk - f->base);
}

/* Block `i` of the file's entries into buf: from memory when `mem`, else
 * from the image file with its checksum checked.  @return raw_len or -errno. */
static int copy_block(const struct bs_file *f, const struct bst_view *mem, uint32_t i,
		      uint8_t *buf, size_t buflen)
{
	if (mem) {
		memcpy(buf, bst_block(mem, block_index(f, &f->base[i])), f->base[i].raw_len);
		return (int)f->base[i].raw_len;
	}
	return yolo_image_read_block(f->im->img, &f->base[i], buf, buflen, YOLO_READ_VERIFY);
}

/* Push the file's image blocks into the kernel page cache
 * (notify_store), runs of consecutive blocks at a time.  Without this the
 * kernel's readahead widens the boot's reads into neighbouring blocks the
 * image does not hold, and each such request waits for the slow source;
 * with it, the boot's reads are page-cache hits and readahead is only
 * triggered by real misses.  Only called at the first open of an inode,
 * before the open is answered, so no write through the mount can race it.
 * @return bytes pushed, or -errno. */
static int64_t prefill(struct bs_file *f, const struct pt_open_info *info)
{
	enum { RUN_MAX = 1 << 20 };
	if (!info->se || !f->yf->block_count)
		return 0;
	uint8_t *run = malloc(RUN_MAX);
	if (!run)
		return -ENOMEM;
	struct bst_view *mem = iset_memory(f->im);
	uint32_t bs = 1u << f->shift;
	int64_t pushed = 0;
	int ret = 0;
	uint32_t i = 0;
	while (i < f->yf->block_count && ret == 0) {
		uint64_t first = f->base[i].block_id;
		size_t len = 0;
		/* Gather consecutive blocks; a failed checksum ends the run and
		 * the block is left to the read path (which serves the source). */
		for (; i < f->yf->block_count && len + bs <= RUN_MAX &&
		       f->base[i].block_id == first + len / bs; i++) {
			int n = copy_block(f, mem, i, run + len, bs);
			if (n < 0) {
				i++;
				break;
			}
			len += (size_t)n;
		}
		if (len == 0)
			continue;
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
		bv.buf[0].mem = run;
		ret = fuse_lowlevel_notify_store(info->se, info->nodeid, first << f->shift, &bv, 0);
		if (ret == 0)
			pushed += (int64_t)len;
	}
	bst_view_put(mem);
	free(run);
	return ret < 0 ? ret : pushed;
}

static int bs_open(void *ctx, const struct pt_open_info *info, void **ipriv,
		   struct fuse_file_info *fi)
{
	struct bs *bs = ctx;
	if (!info->first || !info->relpath || !S_ISREG(info->st->st_mode))
		return 0;
	uint32_t id;
	struct iset_image *im = iset_find(bs->set, info->relpath, info->st, &id);
	if (!im)
		return 0;
	struct bs_file *f = file_new(im, id, info->relpath, info);
	if (!f) {
		iset_image_put(im);
		return -ENOMEM;          /* fail the open rather than serve without checks */
	}
	stats_add(&im->st.files_matched, 1);
	ylog(YLOG_DEBUG, "%s: served from image %s (%u blocks)", info->relpath, im->path,
	       f->yf->block_count);
	*ipriv = f;
	/* keep_cache already set means the kernel kept this inode's cache
	 * from an earlier open of the unchanged file: what was pushed
	 * then is still there (or was evicted and is served on demand). */
	if (bs->prefill && !fi->direct_io && !fi->keep_cache) {
		int64_t n = prefill(f, info);
		if (n > 0) {
			stats_add(&im->st.bytes_prefilled, (uint64_t)n);
			fi->keep_cache = 1;      /* else the open would drop what was pushed */
		} else if (n < 0) {
			ylog(YLOG_DEBUG, "%s: page-cache prefill failed: %s", info->relpath,
			       strerror((int)-n));
		}
	}
	return 0;
}

static void bs_release(void *ctx, void **ipriv, bool last)
{
	if (last) {
		file_free(*ipriv);
		*ipriv = NULL;
	}
}

/* ---- reading ---- */

static bool is_invalid(const struct bs_file *f, size_t idx)
{
	return (f->invalid[idx / 64] >> (idx % 64)) & 1;
}

/* The image entry for block `b` if it may be served, else NULL.  Called
 * with the lock held (shared or exclusive). */
static const struct yolo_block *valid_block(const struct bs_file *f, uint64_t b)
{
	const struct yolo_block *blk = yolo_image_lookup(f->im->img, f->file_id, b);
	if (!blk || is_invalid(f, (size_t)(blk - f->base)))
		return NULL;
	return blk;
}

/* Append [p, p+len) to the reply, merging with the previous segment. */
static void push(struct pt_readbuf *out, const void *p, size_t len)
{
	if (out->cnt > 0) {
		struct iovec *last = &out->iov[out->cnt - 1];
		if ((const char *)last->iov_base + last->iov_len == (const char *)p) {
			last->iov_len += len;
			return;
		}
	}
	out->iov[out->cnt].iov_base = (void *)p;
	out->iov[out->cnt].iov_len = len;
	out->cnt++;
}

struct tally {
	uint64_t hits, misses, bytes_img, bytes_src, bad;
};

/* Called with f->lock held shared; `mv` is the image's blocks in memory
 * (NULL: read the image file). */
static int serve(struct bs *bs, struct bs_file *f, const struct bst_view *mv, int fd,
		 uint64_t off, size_t size, struct pt_readbuf *out, struct tally *t)
{
	struct stat st;
	if (!atomic_load(&f->enabled))
		return PT_READ_PASS;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != f->size || !same_mtime(&st.st_mtim, &f->mtime)) {
		disable(f, "changed behind the daemon's back");
		return PT_READ_PASS;
	}
	uint64_t fsize = (uint64_t)st.st_size;
	out->cnt = 0;
	if (off >= fsize || size == 0)
		return 0;
	uint64_t end = off + (size < fsize - off ? size : fsize - off);
	uint64_t bsz = 1ull << f->shift;
	uint64_t run = UINT64_MAX;       /* start of the pending miss run */
	struct yolo_image *img = f->im->img;
	for (uint64_t b = off >> f->shift;; b++) {
		uint64_t bstart = b << f->shift;
		bool done = bstart >= end;
		uint64_t s = done ? end : bstart > off ? bstart : off;
		uint64_t e = bstart + bsz < end ? bstart + bsz : end;
		const struct yolo_block *blk = done ? NULL : valid_block(f, b);
		bool hit = false;
		if ((done || blk) && run != UINT64_MAX) {
			/* Flush the merged miss run [run, s) with one pread. */
			char *dst = out->scratch + (run - off);
			uint64_t want = s - run;
			ssize_t n = pt_read_source(fd, dst, want, (off_t)run, 0);
			if (n < 0)
				return (int)n;
			t->bytes_src += (uint64_t)n;
			if (n > 0)
				push(out, dst, (size_t)n);
			run = UINT64_MAX;
			if ((uint64_t)n < want)
				return 0;        /* the file shrank: short read */
		}
		if (done)
			break;
		if (blk && e - bstart <= blk->raw_len) {
			const uint8_t *mem = mv ? bst_block(mv, block_index(f, blk)) : NULL;
			if (mem && out->cnt >= PT_IOV_MAX - 2) {
				/* Out of segments (small blocks): copy; from here on every
				 * segment is in scratch and merges with the previous one. */
				memcpy(out->scratch + (s - off), mem + (s - bstart), e - s);
				push(out, out->scratch + (s - off), e - s);
				hit = true;
			} else if (mem) {
				push(out, mem + (s - bstart), e - s);
				hit = true;
			} else {
				char *dst = out->scratch + (s - off);
				int r;
				if (s == bstart && e - s == blk->raw_len) {
					r = yolo_image_read_block(img, blk, dst, blk->raw_len,
								  YOLO_READ_VERIFY);
				} else {
					uint8_t *tmp = tmp_buf(bs);
					r = tmp ? yolo_image_read_block(img, blk, tmp,
									(size_t)1 << YOLO_BLOCK_SHIFT_MAX,
									YOLO_READ_VERIFY)
						: -ENOMEM;
					if (r >= 0)
						memcpy(dst, tmp + (s - bstart), e - s);
				}
				if (r >= 0) {
					push(out, dst, e - s);
					hit = true;
				} else {
					t->bad++;
					ylog(YLOG_WARN, "%s: block %" PRIu64 " of image %s "
					       "unreadable (%s); reading the source", f->path, b,
					       f->im->path, strerror(-r));
				}
			}
		}
		if (hit) {
			t->hits++;
			t->bytes_img += e - s;
		} else {
			t->misses++;
			if (run == UINT64_MAX)
				run = s;
		}
	}
	return 0;
}

static int bs_read(void *ctx, void *ipriv, int fd, uint64_t off, size_t size,
		   struct pt_readbuf *out)
{
	struct bs *bs = ctx;
	struct bs_file *f = ipriv;
	if (!f || !atomic_load_explicit(&f->enabled, memory_order_relaxed)) {
		stats_add(&bs->stats->reads_passthrough, 1);
		return PT_READ_PASS;
	}
	struct tally t = { 0 };
	struct bst_view *mv = iset_memory(f->im);
	out->hold = mv;                  /* the reply may point into it: read_done puts it */
	pthread_rwlock_rdlock(&f->lock);
	int ret = serve(bs, f, mv, fd, off, size, out, &t);
	pthread_rwlock_unlock(&f->lock);
	struct stats_image *s = &f->im->st;
	if (ret == PT_READ_PASS)
		stats_add(&bs->stats->reads_passthrough, 1);
	if (t.hits)
		stats_add(&s->hits, t.hits);
	if (t.misses)
		stats_add(&s->misses, t.misses);
	if (t.bytes_img)
		stats_add(mv ? &s->bytes_memory : &s->bytes_ssd, t.bytes_img);
	if (t.bytes_src)
		stats_add(&s->bytes_source, t.bytes_src);
	if (t.bad)
		stats_add(&s->bad_blocks, t.bad);
	return ret;
}

static void bs_attr_set(void *ctx, const char *relpath, const struct stat *before,
			 const struct stat *after)
{
	struct bs *bs = ctx;
	iset_attr_set(bs->set, relpath, before, after);
}

static void bs_read_done(void *ctx, void *hold)
{
	bst_view_put(hold);
}

/* ---- modification ---- */

/* Drop the file's blocks with block_id in [first, last].  Lock held exclusively. */
static void invalidate(struct bs_file *f, uint64_t first, uint64_t last)
{
	uint32_t n = f->yf->block_count, lo = 0, hi = n;
	while (lo < hi) {                /* first entry with block_id >= first */
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->base[mid].block_id < first)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t dropped = 0;
	for (uint32_t i = lo; i < n && f->base[i].block_id <= last; i++) {
		if (!is_invalid(f, i)) {
			f->invalid[i / 64] |= 1ull << (i % 64);
			dropped++;
		}
	}
	if (dropped) {
		stats_add(&f->im->st.invalidations, dropped);
		ylog(YLOG_DEBUG, "%s: dropped %" PRIu64 " image blocks", f->path, dropped);
	}
}

static void bs_modify_begin(void *ctx, void *ipriv, enum pt_modify op, uint64_t off,
			    uint64_t len)
{
	struct bs_file *f = ipriv;
	if (!f)
		return;
	pthread_rwlock_wrlock(&f->lock);
	if (!atomic_load(&f->enabled))
		return;
	uint64_t first = off >> f->shift;
	switch (op) {
	case PT_MOD_WRITE:
	case PT_MOD_COPY:
		if (len)
			invalidate(f, first, (off + len - 1) >> f->shift);
		break;
	case PT_MOD_TRUNCATE:
		invalidate(f, first, UINT64_MAX);
		break;
	case PT_MOD_ATTR:
		break;                   /* contents unchanged; modify_end records the mtime */
	case PT_MOD_FALLOCATE:
		/* The mode is not known here: collapse/insert shift the rest of
		 * the file, so drop everything from the range on. */
		invalidate(f, first, UINT64_MAX);
		break;
	}
}

static void bs_modify_end(void *ctx, void *ipriv, enum pt_modify op, uint64_t off, uint64_t len,
			  int fd, int64_t result)
{
	struct bs_file *f = ipriv;
	if (!f)
		return;
	struct stat st;
	if (fstat(f->fd, &st) == 0) {
		f->size = (uint64_t)st.st_size;
		f->mtime = st.st_mtim;
	} else {
		disable(f, "cannot stat after a modification");
	}
	pthread_rwlock_unlock(&f->lock);
}

struct pt_hooks bs_hooks(struct bs *bs)
{
	return (struct pt_hooks){
		.ctx = bs,
		.open = bs_open,
		.release = bs_release,
		.read = bs_read,
		.read_done = bs_read_done,
		.modify_begin = bs_modify_begin,
		.modify_end = bs_modify_end,
		.attr_set = bs_attr_set,
	};
}

/* ---- startup ---- */

int bs_create(struct bs **out, struct imageset *set, struct stats *stats, bool prefill)
{
	struct bs *bs = calloc(1, sizeof(*bs));
	if (!bs || pthread_key_create(&bs->tmp_key, free)) {
		free(bs);
		return -ENOMEM;
	}
	bs->prefill = prefill;
	bs->set = set;
	bs->stats = stats;
	*out = bs;
	return 0;
}

void bs_destroy(struct bs *bs)
{
	if (!bs)
		return;
	pthread_key_delete(bs->tmp_key);
	free(bs);
}
