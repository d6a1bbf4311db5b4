/* blockstore.c - content-addressed, refcounted, read-only, pinned storage
 * of boot-image blocks (see blockstore.h).
 *
 * Memory comes in segments: the first image's data section is adopted as
 * read (no copy) when all its blocks are new; otherwise the new blocks are
 * copied into one segment of exactly their size and the read buffer is
 * dropped, so content already held elsewhere costs nothing.  A filled
 * segment is made read-only (so held blocks cannot change after they were
 * checked, and a fork shares them without copying) and, once pinning is on,
 * locked.  It is unmapped when the last chunk in it is released.
 *
 * Dedup keys: the checksum the image records for a block, confirmed by
 * comparing the bytes.  No hash is computed while loading; a chunk's bytes
 * are checked against that checksum once, at first use (bst_block), and
 * since two chunks are only shared when their checksums and bytes are
 * equal, the result holds for every image that shares it.
 *
 * Concurrency: chunks, segments, the hash table and the usage counters are
 * protected by bst.lock.  A chunk's data pointer is set before the load
 * returns the view and never changes, so readers holding a view reference
 * need no lock; its check result is an atomic written once. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "blockstore.h"
#include "hashmap.h"
#include "util.h"
#include "yolo_format.h"

struct bst_seg {
	uint8_t *base;
	size_t map_len;
	uint64_t live;                   /* chunks in it */
	bool pinned;
	struct bst_seg *prev, *next;     /* every segment, for bst_pin */
};

enum { UNCHECKED, GOOD, BAD };

struct bst_chunk {
	uint64_t checksum;               /* as recorded by the image that brought it */
	uint32_t len;
	uint32_t refs;                   /* view entries using it */
	const uint8_t *data;
	struct bst_seg *seg;             /* NULL only while its load is in progress */
	atomic_uchar state;              /* UNCHECKED, then GOOD or BAD for good */
};

struct bst {
	bool dedup;                      /* immutable */
	uint8_t *zeros;                  /* immutable: the largest block of zeros */
	size_t zeros_len;
	pthread_mutex_t lock;            /* protects the rest, chunks and segments */
	bool pin;                        /* lock new segments in memory */
	struct bst_seg *segs;
	struct yhash chunks;             /* checksum -> chunks (dedup only; items: pointers) */
	struct bst_usage use;
};

struct bst_view {
	atomic_uint refs;
	struct bst *store;
	uint64_t nblocks;
	uint64_t logical;
	struct bst_chunk **chunk;        /* per index entry; NULL for zero blocks */
};

int bst_create(struct bst **out, bool dedup)
{
	struct bst *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dedup = dedup;
	/* Untouched anonymous read-only pages: all map the kernel's zero page. */
	s->zeros_len = (size_t)1 << YOLO_BLOCK_SHIFT_MAX;
	s->zeros = mmap(NULL, s->zeros_len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->zeros == MAP_FAILED) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void bst_destroy(struct bst *s)
{
	if (!s)
		return;
	munmap(s->zeros, s->zeros_len);
	pthread_mutex_destroy(&s->lock);
	yhash_free(&s->chunks);
	free(s);
}

void bst_usage(struct bst *s, struct bst_usage *u)
{
	pthread_mutex_lock(&s->lock);
	*u = s->use;
	pthread_mutex_unlock(&s->lock);
}

/* ---- segments (lock held) ---- */

static void seg_pin(struct bst *s, struct bst_seg *g, int *err)
{
	if (g->pinned)
		return;
	if (mlock(g->base, g->map_len) == 0) {
		g->pinned = true;
		s->use.pinned += g->map_len;
	} else if (err && !*err) {
		*err = errno;
	}
}

static void seg_add(struct bst *s, struct bst_seg *g, int *mlock_err)
{
	mprotect(g->base, g->map_len, PROT_READ);
	g->next = s->segs;
	if (s->segs)
		s->segs->prev = g;
	s->segs = g;
	s->use.resident += g->map_len;
	if (s->pin)
		seg_pin(s, g, mlock_err);
}

static void seg_free(struct bst *s, struct bst_seg *g)
{
	if (g->prev)
		g->prev->next = g->next;
	else
		s->segs = g->next;
	if (g->next)
		g->next->prev = g->prev;
	munmap(g->base, g->map_len);     /* also drops the mlock */
	s->use.resident -= g->map_len;
	if (g->pinned)
		s->use.pinned -= g->map_len;
	free(g);
}

int bst_pin(struct bst *s)
{
	int err = 0;
	pthread_mutex_lock(&s->lock);
	s->pin = true;
	for (struct bst_seg *g = s->segs; g; g = g->next)
		seg_pin(s, g, &err);
	pthread_mutex_unlock(&s->lock);
	return -err;
}

/* ---- the content table (lock held) ---- */

/* What a chunk is looked up by: its checksum, confirmed by its bytes. */
struct content {
	uint64_t checksum;
	uint32_t len;
	const uint8_t *data;
};

static bool chunk_holds(const void *ctx, uint64_t item, const void *key)
{
	const struct bst_chunk *c = (const struct bst_chunk *)(uintptr_t)item;
	const struct content *k = key;
	(void)ctx;
	return c->checksum == k->checksum && c->len == k->len &&
	       memcmp(c->data, k->data, k->len) == 0;
}

static struct bst_chunk *table_find(struct bst *s, uint64_t checksum, uint32_t len,
				    const uint8_t *data)
{
	struct content k = { checksum, len, data };
	uint64_t item;
	return yhash_find(&s->chunks, checksum, chunk_holds, NULL, &k, &item) ?
	       (struct bst_chunk *)(uintptr_t)item : NULL;
}

static int table_insert(struct bst *s, struct bst_chunk *c)
{
	return yhash_add(&s->chunks, c->checksum, (uintptr_t)c);
}

static void table_remove(struct bst *s, struct bst_chunk *c)
{
	yhash_remove(&s->chunks, c->checksum, (uintptr_t)c);
}

static void chunk_unref(struct bst *s, struct bst_chunk *c)
{
	if (--c->refs)
		return;
	if (s->dedup)
		table_remove(s, c);
	s->use.unique -= c->len;
	if (c->seg && --c->seg->live == 0)
		seg_free(s, c->seg);
	free(c);
}

/* Release the view's first n entries (lock held). */
static void release_chunks(struct bst *s, struct bst_view *v, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (v->chunk[i])
			chunk_unref(s, v->chunk[i]);
}

static void view_free(struct bst_view *v)
{
	free(v->chunk);
	free(v);
}

/* ---- loading ---- */

/* The raw bytes of every block, from the data section read into `data`:
 * stored bytes in place, zstd blocks decompressed into *zbuf, NULL for zero
 * blocks. */
static int raw_pointers(struct yolo_image *img, const uint8_t *data, const uint8_t **src,
			uint8_t **zbuf, struct yolo_err *err)
{
	const struct yolo_image_info *info = yolo_image_info(img);
	uint64_t zbytes = 0;
	for (uint64_t i = 0; i < info->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		if (b->flags & YOLO_BLOCK_ZSTD)
			zbytes += b->raw_len;
	}
	*zbuf = NULL;
	if (zbytes && !(*zbuf = malloc(zbytes)))
		return yolo_fail(err, -ENOMEM, "%s: out of memory", yolo_image_name(img));
	uint64_t zoff = 0;
	for (uint64_t i = 0; i < info->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		src[i] = (b->flags & YOLO_BLOCK_ZERO) ? NULL : data + b->data_off;
		if (!(b->flags & YOLO_BLOCK_ZSTD))
			continue;
		int r = yolo_block_decode(b, data + b->data_off, *zbuf + zoff, b->raw_len);
		if (r < 0)
			return yolo_fail(err, r, "%s: block %llu: %s", yolo_image_name(img),
					 (unsigned long long)i,
					 r == -EUCLEAN ? "a zstd frame that does not decode" :
					 strerror(-r));
		src[i] = *zbuf + zoff;
		zoff += b->raw_len;
	}
	return 0;
}

/* One load in progress. */
struct load {
	struct yolo_image *img;
	const char *name;                /* for messages */
	struct bst_view *v;
	const uint8_t **src;             /* per block: its raw bytes (NULL: a zero block) */
	uint8_t *buf;                    /* the data section as read, map_len bytes */
	size_t map_len;
	uint8_t *zbuf;                   /* the zstd blocks decompressed */
	uint64_t new_bytes, new_chunks;  /* content the store did not hold */
	bool shared;                     /* some block's content was held already */
};

/* Point each entry of the view at a chunk holding its block's bytes: one
 * already held with the same checksum and bytes (dedup), else a new chunk
 * over the bytes as loaded (lock held).  @return the entries done, fewer
 * than the view's when out of memory. */
static uint64_t share_or_add_chunks(struct bst *s, struct load *l)
{
	struct bst_view *v = l->v;
	uint64_t i;
	for (i = 0; i < v->nblocks; i++) {
		if (!l->src[i])
			continue;
		const struct yolo_block *b = yolo_image_block(l->img, i);
		struct bst_chunk *c = s->dedup ? table_find(s, b->checksum, b->raw_len, l->src[i]) : NULL;
		v->logical += b->raw_len;
		if (c) {
			c->refs++;
			l->shared = true;
		} else {
			if (!(c = calloc(1, sizeof(*c))))
				break;
			c->checksum = b->checksum;
			c->len = b->raw_len;
			c->refs = 1;
			c->data = l->src[i];
			atomic_init(&c->state, UNCHECKED);
			if (s->dedup && table_insert(s, c) < 0) {
				free(c);
				break;
			}
			s->use.unique += b->raw_len;
			l->new_bytes += b->raw_len;
			l->new_chunks++;
		}
		v->chunk[i] = c;
	}
	return i;
}

/* Give the new chunks a segment and add it to the store (lock held): the
 * read buffer itself when every block is new and stored as is (taken from
 * l->buf), else a mapping of exactly their size that they are copied into.
 * @return the segment, or NULL with err filled (out of memory). */
static struct bst_seg *store_new_chunks(struct bst *s, struct load *l, int *mlock_errno,
					struct yolo_err *err)
{
	struct bst_view *v = l->v;
	struct bst_seg *g = calloc(1, sizeof(*g));
	if (!g) {
		yolo_fail(err, -ENOMEM, "%s: out of memory", l->name);
		return NULL;
	}
	if (l->buf && !l->zbuf && !l->shared) {
		*g = (struct bst_seg){ .base = l->buf, .map_len = l->map_len };
		l->buf = NULL;
	} else {
		size_t len = (size_t)((l->new_bytes + 4095) & ~4095ull);
		uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			free(g);
			yolo_fail(err, -ENOMEM, "%s: cannot allocate %llu bytes", l->name,
				  (unsigned long long)len);
			return NULL;
		}
		*g = (struct bst_seg){ .base = p, .map_len = len };
		for (uint64_t j = 0; j < v->nblocks; j++) {
			struct bst_chunk *c = v->chunk[j];
			if (c && !c->seg && c->data == l->src[j]) {
				memcpy(p, c->data, c->len);
				c->data = p;
				p += c->len;
			}
		}
	}
	for (uint64_t j = 0; j < v->nblocks; j++) {
		struct bst_chunk *c = v->chunk[j];
		if (c && !c->seg) {
			c->seg = g;
			g->live++;
		}
	}
	seg_add(s, g, mlock_errno);
	return g;
}

int bst_load(struct bst *s, struct yolo_image *img, struct bst_view **out,
	     struct bst_load_result *res, struct yolo_err *err)
{
	const struct yolo_image_info *info = yolo_image_info(img);
	uint64_t n = info->block_count, t0 = yolo_now_ns();
	struct bst_load_result r = { 0 };
	struct load l = { .img = img, .name = yolo_image_name(img) };
	l.src = calloc(n ? n : 1, sizeof(*l.src));
	l.v = calloc(1, sizeof(*l.v));
	int ret;
	if (!l.src || !l.v || !(l.v->chunk = calloc(n ? n : 1, sizeof(*l.v->chunk)))) {
		ret = yolo_fail(err, -ENOMEM, "%s: out of memory", l.name);
		goto out;
	}
	atomic_init(&l.v->refs, 1);
	l.v->store = s;
	l.v->nblocks = n;

	if (n && !(l.buf = yolo_image_read_data_section(img, &l.map_len, NULL, err))) {
		ret = -EIO;
		goto out;
	}
	ret = raw_pointers(img, l.buf, l.src, &l.zbuf, err);
	if (ret < 0)
		goto out;

	pthread_mutex_lock(&s->lock);
	uint64_t done = share_or_add_chunks(s, &l);
	struct bst_seg *g = NULL;
	if (done < n)
		ret = yolo_fail(err, -ENOMEM, "%s: out of memory", l.name);
	else if (l.new_chunks && !(g = store_new_chunks(s, &l, &r.mlock_errno, err)))
		ret = -ENOMEM;
	if (ret < 0) {
		release_chunks(s, l.v, done);
		pthread_mutex_unlock(&s->lock);
		goto out;
	}
	if (g)
		r.added = g->map_len;
	r.pinned = s->pin && (!g || g->pinned);
	s->use.logical += l.v->logical;
	s->use.views++;
	pthread_mutex_unlock(&s->lock);
	r.logical = l.v->logical;
	r.ns = yolo_now_ns() - t0;
	*out = l.v;
	l.v = NULL;
out:
	if (l.v)
		view_free(l.v);
	if (l.buf)
		munmap(l.buf, l.map_len);
	free(l.zbuf);
	free(l.src);
	if (res)
		*res = r;
	return ret;
}

/* ---- views ---- */

const uint8_t *bst_block(const struct bst_view *v, uint64_t index, const struct yolo_block *b)
{
	struct bst_chunk *c = v->chunk[index];
	if (!c)                          /* a zero block: its checksum must be that of zeros */
		return yolo_block_check(b, v->store->zeros) ? v->store->zeros : NULL;
	unsigned char st = atomic_load_explicit(&c->state, memory_order_acquire);
	if (st == UNCHECKED) {
		st = yolo_block_check(b, c->data) ? GOOD : BAD;
		atomic_store_explicit(&c->state, st, memory_order_release);
	}
	return st == GOOD ? c->data : NULL;
}

uint64_t bst_verify(const struct bst_view *v, struct yolo_image *img, uint64_t *first_bad)
{
	uint64_t bad = 0;
	for (uint64_t i = 0; i < v->nblocks; i++) {
		if (bst_block(v, i, yolo_image_block(img, i)))
			continue;
		if (!bad++ && first_bad)
			*first_bad = i;
	}
	return bad;
}

void bst_view_get(struct bst_view *v)
{
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void bst_view_put(struct bst_view *v)
{
	if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct bst *s = v->store;
	pthread_mutex_lock(&s->lock);
	release_chunks(s, v, v->nblocks);
	s->use.logical -= v->logical;
	s->use.views--;
	pthread_mutex_unlock(&s->lock);
	view_free(v);
}
