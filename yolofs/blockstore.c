/* blockstore.c - content-addressed, refcounted, pinned storage of boot-image
 * blocks (see blockstore.h).
 *
 * Memory comes in segments: the first image's data section is adopted as
 * read (no copy) when all its blocks are new; otherwise the new blocks are
 * copied into one segment of exactly their size and the read buffer is
 * dropped, so content already held elsewhere costs nothing.  A segment is
 * unmapped when the last chunk in it is released.
 *
 * Concurrency: chunks, segments, the hash table and the usage counters are
 * protected by bst.lock.  A chunk's data pointer is set before the load
 * returns the view and never changes, so readers holding a view reference
 * need no lock. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xxhash.h>

#include "blockstore.h"
#include "yolo_format.h"

struct bst_seg {
	uint8_t *base;
	size_t map_len;
	uint64_t live;                   /* chunks in it */
	bool pinned;
};

struct bst_chunk {
	struct bst_chunk *next;          /* hash chain (dedup only) */
	XXH128_hash_t hash;
	uint32_t len;
	uint32_t refs;                   /* view entries using it */
	const uint8_t *data;
	struct bst_seg *seg;             /* NULL only while its load is in progress */
};

struct bst {
	bool dedup;                      /* immutable */
	uint8_t *zeros;                  /* immutable: the largest block of zeros */
	size_t zeros_len;
	pthread_mutex_t lock;            /* protects the rest, chunks and segments */
	struct bst_chunk **buckets;
	size_t nbuckets, nchunks;
	struct bst_usage use;
};

struct bst_view {
	atomic_uint refs;
	struct bst *store;
	uint64_t nblocks;
	uint64_t logical;
	struct bst_chunk **chunk;        /* per index entry; NULL for zero blocks */
};

/* Fill err with one line.  @return ret. */
__attribute__((format(printf, 3, 4)))
static int fail(struct yolo_err *err, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return ret;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
	free(s->buckets);
	free(s);
}

void bst_usage(struct bst *s, struct bst_usage *u)
{
	pthread_mutex_lock(&s->lock);
	*u = s->use;
	pthread_mutex_unlock(&s->lock);
}

/* ---- the content table (lock held) ---- */

static struct bst_chunk **bucket(struct bst *s, XXH128_hash_t h)
{
	return &s->buckets[h.low64 & (s->nbuckets - 1)];
}

static struct bst_chunk *table_find(struct bst *s, XXH128_hash_t h, uint32_t len,
				    const uint8_t *data)
{
	if (!s->nbuckets)
		return NULL;
	for (struct bst_chunk *c = *bucket(s, h); c; c = c->next)
		if (XXH128_isEqual(c->hash, h) && c->len == len && memcmp(c->data, data, len) == 0)
			return c;
	return NULL;
}

static int table_insert(struct bst *s, struct bst_chunk *c)
{
	if (s->nchunks >= s->nbuckets) {
		size_t n = s->nbuckets ? s->nbuckets * 2 : 4096;
		struct bst_chunk **b = calloc(n, sizeof(*b));
		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < s->nbuckets; i++) {
			for (struct bst_chunk *c2 = s->buckets[i], *next; c2; c2 = next) {
				next = c2->next;
				c2->next = b[c2->hash.low64 & (n - 1)];
				b[c2->hash.low64 & (n - 1)] = c2;
			}
		}
		free(s->buckets);
		s->buckets = b;
		s->nbuckets = n;
	}
	struct bst_chunk **head = bucket(s, c->hash);
	c->next = *head;
	*head = c;
	s->nchunks++;
	return 0;
}

static void table_remove(struct bst *s, struct bst_chunk *c)
{
	for (struct bst_chunk **p = bucket(s, c->hash); *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			s->nchunks--;
			return;
		}
	}
}

static void seg_free(struct bst *s, struct bst_seg *g)
{
	munmap(g->base, g->map_len);     /* also drops the mlock */
	s->use.resident -= g->map_len;
	if (g->pinned)
		s->use.pinned -= g->map_len;
	free(g);
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

/* The raw bytes of every block of a loaded image: stored bytes in place,
 * zstd blocks decompressed into *zbuf, NULL for zero blocks. */
static int raw_pointers(struct yolo_image *img, const uint8_t **src, uint8_t **zbuf,
			struct yolo_err *err)
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
		return fail(err, -ENOMEM, "%s: out of memory", yolo_image_name(img));
	uint64_t zoff = 0;
	for (uint64_t i = 0; i < info->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		src[i] = yolo_image_block_mem(img, b);
		if (!(b->flags & YOLO_BLOCK_ZSTD))
			continue;
		int r = yolo_image_read_block(img, b, *zbuf + zoff, b->raw_len, 0);
		if (r < 0)
			return fail(err, r, "%s: block %llu: %s", yolo_image_name(img),
					 (unsigned long long)i, strerror(-r));
		src[i] = *zbuf + zoff;
		zoff += b->raw_len;
	}
	return 0;
}

int bst_load(struct bst *s, struct yolo_image *img, struct bst_view **out,
	     struct bst_load_result *res, struct yolo_err *err)
{
	const struct yolo_image_info *info = yolo_image_info(img);
	const char *name = yolo_image_name(img);
	uint64_t n = info->block_count, t0 = now_ns();
	struct bst_load_result r = { 0 };
	const uint8_t **src = calloc(n ? n : 1, sizeof(*src));
	XXH128_hash_t *h = s->dedup ? calloc(n ? n : 1, sizeof(*h)) : NULL;
	struct bst_view *v = calloc(1, sizeof(*v));
	uint8_t *zbuf = NULL, *buf = NULL;
	size_t map_len = 0;
	int ret;
	if (!src || (s->dedup && !h) || !v || !(v->chunk = calloc(n ? n : 1, sizeof(*v->chunk)))) {
		ret = fail(err, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	atomic_init(&v->refs, 1);
	v->store = s;
	v->nblocks = n;

	ret = yolo_image_load(img, 0, NULL, err);
	if (ret < 0)
		goto out;
	ret = raw_pointers(img, src, &zbuf, err);
	if (ret < 0)
		goto out;
	buf = yolo_image_take_data(img, &map_len);
	/* One pass, no lock: each block's checksum (XXH3-64 of the raw bytes)
	 * and, while it is in the CPU cache, its content hash. */
	uint64_t bad = 0, first_bad = 0;
	for (uint64_t i = 0; i < n; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		if (!src[i])
			continue;
		if (XXH3_64bits(src[i], b->raw_len) != b->checksum && !bad++)
			first_bad = i;
		if (h)
			h[i] = XXH3_128bits(src[i], b->raw_len);
	}
	if (bad) {
		const struct yolo_block *b = yolo_image_block(img, first_bad);
		const char *path = yolo_image_file(img, b->file_id)->path;
		char shown[256];
		ret = fail(err, -EUCLEAN, "%s: %llu corrupt blocks (first: block %llu of %s does "
			   "not match its checksum)", name, (unsigned long long)bad,
			   (unsigned long long)b->block_id,
			   yolo_printable(path, strlen(path), shown, sizeof(shown)));
		goto out;
	}

	pthread_mutex_lock(&s->lock);
	uint64_t new_bytes = 0, new_chunks = 0, i;
	bool adopt = buf && !zbuf;       /* the read buffer becomes the segment */
	for (i = 0; i < n; i++) {
		if (!src[i])
			continue;
		uint32_t len = yolo_image_block(img, i)->raw_len;
		struct bst_chunk *c = h ? table_find(s, h[i], len, src[i]) : NULL;
		v->logical += len;
		if (c) {
			c->refs++;
			adopt = false;
		} else {
			if (!(c = calloc(1, sizeof(*c))))
				break;
			*c = (struct bst_chunk){ .len = len, .refs = 1, .data = src[i] };
			if (h) {
				c->hash = h[i];
				if (table_insert(s, c) < 0) {
					free(c);
					break;
				}
			}
			s->use.unique += len;
			new_bytes += len;
			new_chunks++;
		}
		v->chunk[i] = c;
	}
	struct bst_seg *g = NULL;
	if (i < n || (new_chunks && !(g = calloc(1, sizeof(*g))))) {
		release_chunks(s, v, i);
		pthread_mutex_unlock(&s->lock);
		ret = fail(err, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	if (g && adopt) {
		*g = (struct bst_seg){ .base = buf, .map_len = map_len };
		buf = NULL;
	} else if (g) {
		/* Copy the new content into a segment of its exact size. */
		size_t len = (size_t)((new_bytes + 4095) & ~4095ull);
		uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			free(g);
			release_chunks(s, v, n);
			pthread_mutex_unlock(&s->lock);
			ret = fail(err, -ENOMEM, "%s: cannot allocate %llu bytes", name,
					(unsigned long long)len);
			goto out;
		}
		*g = (struct bst_seg){ .base = p, .map_len = len };
		for (uint64_t j = 0; j < n; j++) {
			struct bst_chunk *c = v->chunk[j];
			if (c && !c->seg && c->data == src[j]) {
				memcpy(p, c->data, c->len);
				c->data = p;
				p += c->len;
			}
		}
	}
	if (g) {
		for (uint64_t j = 0; j < n; j++) {
			struct bst_chunk *c = v->chunk[j];
			if (c && !c->seg) {
				c->seg = g;
				g->live++;
			}
		}
		if (mlock(g->base, g->map_len) == 0)
			g->pinned = true;
		else
			r.mlock_errno = errno;
		s->use.resident += g->map_len;
		if (g->pinned)
			s->use.pinned += g->map_len;
		r.added = g->map_len;
	}
	r.pinned = !g || g->pinned;
	s->use.logical += v->logical;
	s->use.views++;
	pthread_mutex_unlock(&s->lock);
	r.logical = v->logical;
	r.ns = now_ns() - t0;
	*out = v;
	v = NULL;
	ret = 0;
out:
	if (v)
		view_free(v);
	if (buf)
		munmap(buf, map_len);
	yolo_image_unload(img);          /* after a failure part way */
	free(zbuf);
	free(src);
	free(h);
	if (res)
		*res = r;
	return ret;
}

/* ---- views ---- */

const uint8_t *bst_block(const struct bst_view *v, uint64_t index)
{
	const struct bst_chunk *c = v->chunk[index];
	return c ? c->data : v->store->zeros;
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
