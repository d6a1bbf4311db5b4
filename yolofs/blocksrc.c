/* blocksrc.c - yolofs's block source (prefix bs_): the pass-through core's
 * hooks that serve reads of source files from boot images.
 *
 *  - open: the first open of an inode asks the image set for an image that
 *    may serve the file (freshness.h decides) and pushes the file's image
 *    blocks into the kernel page cache (prefill), every time: the pages of
 *    an inode the kernel kept may have been reclaimed since (memory
 *    pressure, `echo 1 > drop_caches`), and a captured page the boot finds
 *    missing makes the kernel's readahead fetch its uncaptured neighbours
 *    from the slow source;
 *  - read: the identity is checked again (fstat), the read is planned
 *    (read_plan.h: image pieces and merged source runs, trimmed, short at
 *    end of file) and each piece gathered: image bytes from memory or the
 *    image file, each block checked (one function, block_bytes) before it
 *    is used; a bad block is read from the source instead, logged with a
 *    limit, and after FR_BAD_BLOCK_LIMIT of them the file is no longer
 *    served from that image;
 *  - changes through the mount: the blocks they touch are dropped and the
 *    file's new identity recorded (freshness.h), with readers excluded so a
 *    reply is entirely from before or entirely from after a change.
 *
 * A source error is returned as such, never as a short read.  Which images
 * exist and where their blocks are is imageset.c's job; an open file keeps
 * the image it was opened with (a reference) until released. */
#include "config.h"

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
#include "learn.h"
#include "log.h"
#include "read_plan.h"

struct bs {
	/* Immutable after bs_create. */
	bool prefill;
	struct imageset *set;
	struct learn *learn;             /* NULL: not learning */
	pthread_key_t tls_key;           /* per-thread buffers (struct bs_tls) */
	struct stats *stats;
};

/* State of one open inode whose file an image serves (or, when learning,
 * any regular file: then `im` may be NULL); lives from the first open to
 * the last release (the core's ipriv).  Immutable. */
struct bs_file {
	struct iset_image *im;           /* holds a reference; NULL: no image serves it */
	struct learn *learn;             /* records what is read from the source, or NULL */
	struct fr_file *fresh;           /* the image's record of the file */
	const struct yolo_file *yf;
	const struct yolo_block *base;   /* the file's block-index entries */
	uint32_t file_id;
	uint32_t shift;
	char *path;
};

/* Per-thread buffers: one block of any size, and a read plan. */
struct bs_tls {
	uint8_t *block;
	struct rp_piece *plan;
	size_t plan_max;
};

static struct ylog_limit bad_block_log = { .burst = 5, .interval_s = 60 };
static struct ylog_limit mismatch_log = { .burst = 5, .interval_s = 60 };

static void tls_free(void *p)
{
	struct bs_tls *t = p;
	free(t->block);
	free(t->plan);
	free(t);
}

static struct bs_tls *tls_get(struct bs *bs)
{
	struct bs_tls *t = pthread_getspecific(bs->tls_key);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->plan_max = rp_max_pieces(PT_MAX_READ, YOLO_BLOCK_SHIFT_MIN);
	if (posix_memalign((void **)&t->block, 4096, (size_t)1 << YOLO_BLOCK_SHIFT_MAX) ||
	    !(t->plan = malloc(t->plan_max * sizeof(*t->plan))) ||
	    pthread_setspecific(bs->tls_key, t)) {
		tls_free(t);
		return NULL;
	}
	return t;
}

/* ---- one block ---- */

/* Index of the file's entry `i` in its image's block index. */
static uint64_t block_index(const struct bs_file *f, uint32_t i)
{
	return f->yf->first_block + i;
}

/* Entry `i` failed its check (r: why): dropped, counted, logged with a
 * limit, and after FR_BAD_BLOCK_LIMIT of them the file is no longer served
 * from this image.  The caller reads the source instead. */
static void bad_block(struct bs_file *f, uint32_t i, int r)
{
	const struct yolo_block *b = &f->base[i];
	stats_add(&f->im->st.bad_blocks, 1);
	ylog_limited(&bad_block_log, YLOG_WARN, "%s: block %" PRIu64 " of image %s is unreadable "
		     "(%s); reading the source", f->path, b->block_id, f->im->path,
		     r == -EUCLEAN ? "does not match its checksum" : strerror(-r));
	if (fr_file_bad_block(f->fresh, i)) {
		stats_add(&f->im->st.files_disabled, 1);
		ylog(YLOG_WARN, "%s: %d bad blocks in image %s; the file is read from the source "
		     "from now on", f->path, FR_BAD_BLOCK_LIMIT, f->im->path);
	}
}

/* The raw bytes of the file's entry `i`, checked against its checksum
 * (yolo_block_check, inside bst_block or yolo_image_read_block) before
 * they are used, in every mode: from memory (`mem`) or read from the image
 * file into `buf`.  NULL for a bad block (see bad_block). */
static const uint8_t *block_bytes(struct bs_file *f, const struct bst_view *mem, uint32_t i,
				  uint8_t *buf)
{
	const struct yolo_block *b = &f->base[i];
	const uint8_t *p = NULL;
	int r = -EUCLEAN;
	if (mem)
		p = bst_block(mem, block_index(f, i), b);
	else if ((r = yolo_image_read_block(f->im->img, b, buf, (size_t)1 << YOLO_BLOCK_SHIFT_MAX,
					     YOLO_READ_VERIFY)) >= 0)
		p = buf;
	if (!p)
		bad_block(f, i, r);
	return p;
}

/* ---- opening ---- */

/* @return the new file state (holding the image reference `im`, which may
 * be NULL when learning), or NULL. */
static struct bs_file *file_new(struct bs *bs, struct iset_image *im, uint32_t id,
				const char *relpath)
{
	struct bs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->learn = bs->learn;
	f->im = im;
	if (im) {
		f->yf = yolo_image_file(im->img, id);
		f->fresh = &im->fresh[id];
		f->file_id = id;
		f->shift = im->info->block_shift;
		f->base = f->yf->block_count ? yolo_image_block(im->img, f->yf->first_block) : NULL;
	}
	f->path = strdup(relpath);
	if (!f->path) {
		free(f);
		return NULL;
	}
	return f;
}

static void file_free(struct bs_file *f)
{
	if (!f)
		return;
	iset_image_put(f->im);
	free(f->path);
	free(f);
}

/* Prefill from the image file (serve=ssd): read the longest stretch from
 * entry i of whole, raw, not dropped blocks that follow each other both in
 * the file (from block `first`, `len` bytes of the run gathered) and in the
 * image's data section with one read into run + len, then check each.
 * @return how many blocks were read and are good (0 or 1: read them one by
 * one), or -(k + 1) when block k of the stretch is bad (blocks before it
 * are good and in place; the bad one is logged). */
static int prefill_ssd_run(struct bs_file *f, uint32_t i, uint64_t first, size_t len,
			   size_t max, uint8_t *run)
{
	uint32_t bsz = 1u << f->shift, j = i;
	for (; j < f->yf->block_count && len + ((size_t)(j - i + 1) << f->shift) <= max; j++) {
		const struct yolo_block *b = &f->base[j];
		if (b->flags || b->raw_len != bsz || b->stored_len != bsz ||
		    b->block_id != first + len / bsz + (j - i) || fr_file_dropped(f->fresh, j))
			break;
		if (j > i && b->data_off != f->base[j - 1].data_off + bsz)
			break;
	}
	int n = (int)(j - i);
	if (n < 2 || yolo_image_read_data(f->im->img, f->base[i].data_off, (size_t)n << f->shift,
					  run + len) < 0)
		return 0;
	for (int k = 0; k < n; k++) {
		if (!yolo_block_check(&f->base[i + k], run + len + ((size_t)k << f->shift))) {
			bad_block(f, i + k, -EUCLEAN);
			return -(k + 1);
		}
	}
	return n;
}

/* Push the file's image blocks into the kernel page cache (notify_store),
 * runs of consecutive blocks at a time.  Without this the kernel's
 * readahead widens the boot's reads into neighbouring blocks the image
 * does not hold, and each such request waits for the slow source; with it,
 * the boot's reads are page-cache hits and readahead is only triggered by
 * real misses.  Only called at the first open of an inode, before the open
 * is answered, so no write through the mount can race it; blocks dropped
 * by earlier changes and bad blocks are left out (the kernel asks for them
 * and the read path reads the source).  @return bytes pushed, or -errno. */
static int64_t prefill(struct bs *bs, struct bs_file *f, const struct pt_open_info *info)
{
	enum { RUN_MAX = 1 << 20 };
	struct bs_tls *t = tls_get(bs);
	if (!info->se || !f->yf->block_count)
		return 0;
	uint8_t *run = malloc(RUN_MAX);
	if (!run || !t) {
		free(run);
		return -ENOMEM;
	}
	struct bst_view *mem = iset_memory(f->im);
	uint32_t bsz = 1u << f->shift;
	int64_t pushed = 0;
	int ret = 0;
	uint32_t i = 0;
	while (i < f->yf->block_count && ret == 0) {
		uint64_t first = f->base[i].block_id;
		size_t len = 0;
		/* The run's bytes where they lie in memory, one block after
		 * another (an image's blocks are loaded in order): pushed from
		 * there with no copy; NULL once they had to be gathered in run. */
		const uint8_t *direct = NULL;
		/* Gather consecutive good blocks; a dropped or bad one ends the run. */
		while (i < f->yf->block_count && len + bsz <= RUN_MAX &&
		       f->base[i].block_id == first + len / bsz) {
			int n = mem ? 0 : prefill_ssd_run(f, i, first, len, RUN_MAX, run);
			if (n < 0) {             /* a bad block ends the run after what was good */
				len += (size_t)(-n - 1) << f->shift;
				i += (uint32_t)-n;
				break;
			}
			if (n > 1) {
				len += (size_t)n << f->shift;
				i += (uint32_t)n;
				continue;
			}
			const uint8_t *p = fr_file_dropped(f->fresh, i) ? NULL :
					   block_bytes(f, mem, i, t->block);
			i++;
			if (!p)
				break;
			if (mem && len == 0) {
				direct = p;
			} else if (!direct || p != direct + len) {
				if (direct)
					memcpy(run, direct, len);
				direct = NULL;
				memcpy(run + len, p, f->base[i - 1].raw_len);
			}
			len += f->base[i - 1].raw_len;
		}
		if (len == 0)
			continue;
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
		bv.buf[0].mem = direct ? (void *)direct : run;
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
	/* Kernel passthrough for what neither serves nor learns from: no
	 * image may serve the file now (none has it, or its copy is not
	 * fresh), and no learning session records it (with learn=, every open
	 * begins or joins one). */
	if (!info->relpath || !S_ISREG(info->st->st_mode))
		return bs->learn ? 0 : PT_OPEN_PASSTHROUGH;
	if (bs->learn)
		learn_open(bs->learn, info->relpath);    /* a boot may be starting */
	if (!info->first)
		return *ipriv || bs->learn ? 0 : PT_OPEN_PASSTHROUGH;
	uint32_t id = 0;
	struct iset_image *im = iset_find(bs->set, info->relpath, info->st, &id);
	if (!im && !bs->learn)
		return PT_OPEN_PASSTHROUGH;
	struct bs_file *f = file_new(bs, im, id, info->relpath);
	if (!f) {
		iset_image_put(im);
		return -ENOMEM;          /* fail the open rather than serve without checks */
	}
	*ipriv = f;
	if (!im)
		return 0;                /* only learnt from */
	stats_add(&im->st.files_matched, 1);
	YLOG_TRACE("%s: served from image %s (%u blocks)", info->relpath, im->path,
		   f->yf->block_count);
	if (bs->prefill && !fi->direct_io && info->se) {
		/* The core keeps the kernel's cache only for a file as it was
		 * when that cache was filled; otherwise empty it first, so no
		 * stale page of an uncaptured block survives the keep_cache that
		 * keeps what is pushed now. */
		if (!fi->keep_cache)
			fuse_lowlevel_notify_inval_inode(info->se, info->nodeid, 0, 0);
		int64_t n = prefill(bs, f, info);
		if (n > 0) {
			stats_add(&im->st.bytes_prefilled, (uint64_t)n);
			fi->keep_cache = 1;      /* else the open would drop what was pushed */
		} else if (n < 0) {
			YLOG_TRACE("%s: page-cache prefill failed: %s", info->relpath,
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

struct lookup_ctx {
	const struct bs_file *f;
};

/* The plan's lookup: the file's entry for block `b` if it is held, not
 * dropped, and long enough. */
static int32_t lookup_entry(void *ctx, uint64_t b, uint32_t need)
{
	const struct bs_file *f = ((struct lookup_ctx *)ctx)->f;
	const struct yolo_block *blk = yolo_image_lookup(f->im->img, f->file_id, b);
	if (!blk)
		return -1;
	uint32_t i = (uint32_t)(blk - f->base);
	if (fr_file_dropped(f->fresh, i) || need > blk->raw_len)
		return -1;
	return (int32_t)i;
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
	uint64_t hits, misses, bytes_img, bytes_src;
};

/* Read a source piece into the reply buffer.  @return 1 when complete,
 * 0 when the file ended inside it (the reply ends there), or -errno. */
static int source_piece(const struct bs_file *f, struct pt_file *file, uint64_t off,
			const struct rp_piece *p, struct pt_readbuf *out, struct tally *t)
{
	char *dst = out->scratch + (p->off - off);
	int fd = pt_file_fd(file);       /* opened now if the open was lazy */
	if (fd < 0)
		return fd;
	ssize_t n = pt_read_source(fd, dst, p->len, (off_t)p->off, 0);
	if (n < 0)
		return (int)n;
	t->bytes_src += (uint64_t)n;
	if (f->learn)
		learn_read(f->learn, f->path, p->off, (uint64_t)n);
	if (n > 0)
		push(out, dst, (size_t)n);
	return (size_t)n == p->len;
}

/* Pieces k.. that can be read from the image file in one request: whole
 * blocks, stored uncompressed one after the other in the data section
 * (first-access order keeps a sequentially read stretch together).
 * @return how many (0 or 1: read them one by one). */
static int ssd_run(const struct bs_file *f, const struct rp_piece *plan, int k, int n)
{
	int j = k;
	for (; j < n; j++) {
		const struct rp_piece *p = &plan[j];
		if (p->entry == RP_SOURCE)
			break;
		const struct yolo_block *b = &f->base[p->entry];
		if (b->flags || p->in_block || p->len != b->raw_len)
			break;
		if (j > k) {
			const struct yolo_block *a = &f->base[plan[j - 1].entry];
			if (b->data_off != a->data_off + a->stored_len)
				break;
		}
	}
	return j - k;
}

/* Read a run of `n` pieces from k (ssd_run) into their place in the reply
 * buffer with one read of the image file, then check each block; a bad one
 * is read from the source instead.  @return as source_piece. */
static int gather_ssd_run(struct bs_file *f, const struct rp_piece *plan, int k, int n,
			  struct pt_file *file, uint64_t off, struct pt_readbuf *out, struct tally *t)
{
	const struct rp_piece *first = &plan[k], *last = &plan[k + n - 1];
	size_t len = (size_t)(last->off + last->len - first->off);
	char *dst = out->scratch + (first->off - off);
	int r = yolo_image_read_data(f->im->img, f->base[first->entry].data_off, len, dst);
	for (int j = k; j < k + n; j++) {
		const struct rp_piece *p = &plan[j];
		char *at = out->scratch + (p->off - off);
		if (r == 0 && yolo_block_check(&f->base[p->entry], at)) {
			t->hits++;
			t->bytes_img += p->len;
			continue;
		}
		bad_block(f, (uint32_t)p->entry, r < 0 ? r : -EUCLEAN);
		t->misses++;
		int fd = pt_file_fd(file);
		if (fd < 0)
			return fd;
		ssize_t got = pt_read_source(fd, at, p->len, (off_t)p->off, 0);
		if (got < 0)
			return (int)got;
		t->bytes_src += (uint64_t)got;
		if (f->learn)
			learn_read(f->learn, f->path, p->off, (uint64_t)got);
		if ((size_t)got < p->len) {
			push(out, dst, (size_t)(at + got - dst));   /* the file ended here */
			return 0;
		}
	}
	push(out, dst, len);
	return 1;
}

/* Gather the plan's pieces into `out`.  Called with the record's lock held
 * shared; `mem` is the image's blocks in memory (NULL: read the image file). */
static int gather(struct bs_tls *tls, struct bs_file *f, const struct bst_view *mem,
		  struct pt_file *file, uint64_t off, int npieces, struct pt_readbuf *out,
		  struct tally *t)
{
	for (int k = 0; k < npieces; k++) {
		const struct rp_piece *p = &tls->plan[k];
		const uint8_t *src = NULL;
		int run = mem ? 0 : ssd_run(f, tls->plan, k, npieces);
		if (run > 1) {
			int r = gather_ssd_run(f, tls->plan, k, run, file, off, out, t);
			if (r <= 0)
				return r;
			k += run - 1;
			continue;
		}
		if (p->entry != RP_SOURCE) {
			const uint8_t *bytes = block_bytes(f, mem, (uint32_t)p->entry, tls->block);
			if (bytes)
				src = bytes + p->in_block;
		}
		if (!src) {
			t->misses += p->entry == RP_SOURCE ?
				     ((p->off + p->len - 1) >> f->shift) - (p->off >> f->shift) + 1 : 1;
			int r = source_piece(f, file, off, p, out, t);
			if (r <= 0)
				return r;        /* an error, or the file ended: a short reply */
			continue;
		}
		t->hits++;
		t->bytes_img += p->len;
		if (mem && out->cnt < PT_IOV_MAX - 2) {
			push(out, src, p->len);  /* zero-copy from memory */
		} else {
			/* From the image file, or out of segments (small blocks):
			 * copy; every later segment then merges with this one. */
			memcpy(out->scratch + (p->off - off), src, p->len);
			push(out, out->scratch + (p->off - off), p->len);
		}
	}
	return 0;
}

static int bs_read(void *ctx, void *ipriv, struct pt_file *file, uint64_t off, size_t size,
		   struct pt_readbuf *out)
{
	struct bs *bs = ctx;
	struct bs_file *f = ipriv;
	struct stat st;
	struct bs_tls *tls;
	if (!f || !f->im) {
		stats_add(&bs->stats->reads_passthrough, 1);
		if (f)                   /* the core reads at most `size` bytes there */
			learn_read(f->learn, f->path, off, size);
		return PT_READ_PASS;
	}
	int r = pt_file_stat(file, &st);
	if (r < 0)
		return r;
	if (!(tls = tls_get(bs)))
		return -ENOMEM;
	struct yolo_file_ident now = yolo_ident_from_stat(&st);
	if (!fr_file_read_begin(f->fresh, &now)) {
		fr_file_read_end(f->fresh);
		stats_add(&bs->stats->reads_passthrough, 1);
		if (!atomic_exchange(&f->fresh->read_mismatch_logged, true))
			ylog_limited(&mismatch_log, YLOG_INFO, "%s: changed since it was opened, or "
				     "not to be served from image %s now; reading the source",
				     f->path, f->im->path);
		if (f->learn)
			learn_read(f->learn, f->path, off, size);
		return PT_READ_PASS;
	}
	struct lookup_ctx lc = { f };
	int n = rp_plan(tls->plan, tls->plan_max, off, size, (uint64_t)st.st_size, f->shift,
			lookup_entry, &lc);
	struct tally t = { 0 };
	struct bst_view *mem = iset_memory(f->im);
	out->hold = mem;                 /* the reply may point into it: read_done puts it */
	out->cnt = 0;
	int ret = n < 0 ? -EINVAL : gather(tls, f, mem, file, off, n, out, &t);
	fr_file_read_end(f->fresh);
	struct stats_image *s = &f->im->st;
	if (t.hits)
		stats_add(&s->hits, t.hits);
	if (t.misses)
		stats_add(&s->misses, t.misses);
	if (t.bytes_img)
		stats_add(mem ? &s->bytes_memory : &s->bytes_ssd, t.bytes_img);
	if (t.bytes_src)
		stats_add(&s->bytes_source, t.bytes_src);
	return ret;
}

static void bs_read_done(void *ctx, void *hold)
{
	bst_view_put(hold);
}

/* ---- changes through the mount ---- */

/* The file's entries with block_id in [first, last]: [*lo, *hi). */
static void entry_range(const struct bs_file *f, uint64_t first, uint64_t last, uint32_t *lo,
			uint32_t *hi)
{
	uint32_t n = f->yf->block_count, a = 0, b = n;
	while (a < b) {                  /* first entry with block_id >= first */
		uint32_t mid = a + (b - a) / 2;
		if (f->base[mid].block_id < first)
			a = mid + 1;
		else
			b = mid;
	}
	*lo = a;
	while (a < n && f->base[a].block_id <= last)
		a++;
	*hi = a;
}

static void bs_modify_begin(void *ctx, void *ipriv, enum pt_modify op, uint64_t off,
			    uint64_t len, int fd)
{
	struct bs_file *f = ipriv;
	if (!f || !f->im || op == PT_MOD_ATTR)
		return;                  /* attributes: iset_attr_set, for every image */
	struct stat st;
	struct yolo_file_ident before;
	bool known = fd >= 0 && fstat(fd, &st) == 0;
	if (known)
		before = yolo_ident_from_stat(&st);
	uint64_t first = off >> f->shift, last = UINT64_MAX;
	if (op == PT_MOD_WRITE || op == PT_MOD_COPY)
		last = len ? (off + len - 1) >> f->shift : 0;
	/* A truncate drops everything from `off` on; a fallocate (its mode is
	 * not known here: collapse and insert shift the rest) too. */
	uint32_t lo = 0, hi = 0;
	if (op != PT_MOD_WRITE || len)
		entry_range(f, first, last, &lo, &hi);
	fr_file_change_begin(f->fresh, known ? &before : NULL, lo, hi);
	if (hi > lo)
		stats_add(&f->im->st.invalidations, hi - lo);
}

static void bs_modify_end(void *ctx, void *ipriv, enum pt_modify op, uint64_t off, uint64_t len,
			  int fd, int64_t result)
{
	struct bs_file *f = ipriv;
	if (!f || !f->im || op == PT_MOD_ATTR)
		return;
	struct stat st;
	struct yolo_file_ident after;
	bool known = fd >= 0 && fstat(fd, &st) == 0;
	if (known)
		after = yolo_ident_from_stat(&st);
	fr_file_change_end(f->fresh, known ? &after : NULL, true);
}

static void bs_attr_set(void *ctx, const char *relpath, const struct stat *before,
			const struct stat *after)
{
	struct bs *bs = ctx;
	iset_attr_set(bs->set, relpath, before, after);
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

/* ---- start-up ---- */

int bs_create(struct bs **out, struct imageset *set, struct learn *learn, struct stats *stats,
	      bool prefill)
{
	struct bs *bs = calloc(1, sizeof(*bs));
	if (!bs || pthread_key_create(&bs->tls_key, tls_free)) {
		free(bs);
		return -ENOMEM;
	}
	bs->prefill = prefill;
	bs->set = set;
	bs->learn = learn;
	bs->stats = stats;
	*out = bs;
	return 0;
}

void bs_destroy(struct bs *bs)
{
	if (!bs)
		return;
	pthread_key_delete(bs->tls_key);
	free(bs);
}
