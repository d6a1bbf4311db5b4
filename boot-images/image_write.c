/* image_write.c - builds a boot image incrementally.
 *
 * Blocks arrive in first-access order and are appended to the data section
 * of a temporary file as they come (through a large write buffer); the file
 * table, string table, block index and header are written by commit, which
 * then fsyncs and renames the file into place, so a crash or error never
 * leaves a half-written image at the destination path.  Namespace questions
 * are collected with image_ns.c's builder, which knows nothing of writers. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "image_i.h"

#define WBUF_SIZE (4u << 20)

struct yolo_writer {
	char *path;                      /* destination */
	char *tmp_path;                  /* temporary file renamed over path */
	int fd;
	uint32_t block_shift;
	uint32_t compat;
	uint32_t incompat;
	ZSTD_CCtx *cctx;                 /* NULL when not compressing */
	int zstd_level;
	uint8_t *cbuf;                   /* compression output, ZSTD_compressBound(block) */
	size_t cbuf_size;

	struct yolo_filelist files;      /* paths, by file id */
	struct yolo_file_ident *idents;  /* files.n, by file id */
	uint64_t idents_cap;

	struct yolo_block *blocks;       /* arrival (first-access) order until commit */
	uint64_t nblocks, blocks_cap;
	struct yhash block_index;        /* (file, block) -> index in blocks */

	uint8_t *wbuf;                   /* pending data-section bytes */
	size_t wbuf_len;
	uint64_t data_size;              /* bytes of data section so far (incl. wbuf) */
	uint64_t end;                    /* size of the finished file */
	struct yolo_ns_builder ns;       /* namespace questions, if any */
	uint64_t raw_bytes;
};

struct block_key {
	uint32_t file_id;
	uint64_t block_id;
};

static uint64_t hash_key(uint32_t file_id, uint64_t block_id)
{
	uint8_t k[12];
	put_le32(k, file_id);
	put_le64(k + 4, block_id);
	return XXH3_64bits(k, sizeof(k));
}

static int grow(void **arr, uint64_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	uint64_t ncap = *cap ? *cap * 2 : 64;
	while (ncap < need)
		ncap *= 2;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static bool block_is(const void *ctx, uint64_t i, const void *key)
{
	const struct yolo_block *b = &((const struct yolo_writer *)ctx)->blocks[i];
	const struct block_key *k = key;
	return b->file_id == k->file_id && b->block_id == k->block_id;
}

/* Has the block with this key and its `hash` been added already? */
static bool has_block(const struct yolo_writer *w, uint64_t hash, uint32_t file_id,
		      uint64_t block_id)
{
	uint64_t i;
	return yhash_find(&w->block_index, hash, block_is, w,
			  &(struct block_key){ file_id, block_id }, &i);
}

uint32_t yolo_writer_block_size(const struct yolo_writer *w)
{
	return 1u << w->block_shift;
}

int yolo_writer_create(struct yolo_writer **out, const char *path,
		       const struct yolo_writer_opts *opts, struct yolo_err *err)
{
	uint32_t bs = opts && opts->block_size ? opts->block_size : 1u << YOLO_BLOCK_SHIFT_DEFAULT;
	int level = opts ? opts->zstd_level : 0;
	if ((bs & (bs - 1)) || bs < (1u << YOLO_BLOCK_SHIFT_MIN) || bs > (1u << YOLO_BLOCK_SHIFT_MAX))
		return yolo_fail(err, -EINVAL, "block size %u: must be a power of two from 512 to 1 MiB", bs);
	if (level < 0 || level > ZSTD_maxCLevel())
		return yolo_fail(err, -EINVAL, "zstd level %d out of range 0..%d", level, ZSTD_maxCLevel());

	struct yolo_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return yolo_fail(err, -ENOMEM, "out of memory");
	w->fd = -1;
	w->block_shift = (uint32_t)__builtin_ctz(bs);
	w->compat = opts ? opts->compat : 0;
	w->zstd_level = level;
	int ret = -ENOMEM;
	w->path = strdup(path);
	w->wbuf = malloc(WBUF_SIZE);
	if (!w->path || !w->wbuf || asprintf(&w->tmp_path, "%s.tmp.XXXXXX", path) < 0) {
		w->tmp_path = NULL;
		goto fail;
	}
	if (level > 0) {
		w->cctx = ZSTD_createCCtx();
		w->cbuf_size = ZSTD_compressBound(bs);
		w->cbuf = malloc(w->cbuf_size);
		if (!w->cctx || !w->cbuf)
			goto fail;
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 0);
	}
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0) {
		ret = -errno;
		free(w->tmp_path);
		w->tmp_path = NULL;
		yolo_fail(err, ret, "%s: cannot create temporary file: %s", path, strerror(-ret));
		yolo_writer_discard(w);
		return ret;
	}
	fchmod(w->fd, 0644);
	w->data_size = 0;
	*out = w;
	return 0;
fail:
	yolo_writer_discard(w);
	return yolo_fail(err, ret, "out of memory");
}

int yolo_writer_find_file(const struct yolo_writer *w, const char *relpath, uint32_t *file_id)
{
	int64_t id = yolo_filelist_find(&w->files, relpath);
	if (id < 0)
		return -ENOENT;
	*file_id = (uint32_t)id;
	return 0;
}

int yolo_writer_add_file(struct yolo_writer *w, const char *relpath,
			 const struct yolo_file_ident *ident, uint32_t *file_id,
			 struct yolo_err *err)
{
	if (!yolo_path_is_safe(relpath, strlen(relpath)))
		return yolo_fail(err, -EINVAL, "path \"%s\": must be relative, without empty, \".\" or \"..\" components", relpath);
	if (w->files.n >= YOLO_MAX_FILES)
		return yolo_fail(err, -EFBIG, "too many files (limit %u)", YOLO_MAX_FILES);
	if (yolo_filelist_find(&w->files, relpath) >= 0)
		return yolo_fail(err, -EEXIST, "path \"%s\" added twice", relpath);
	if (grow((void **)&w->idents, &w->idents_cap, w->files.n + 1, sizeof(*w->idents)) < 0)
		return yolo_fail(err, -ENOMEM, "out of memory");
	int id = yolo_filelist_add(&w->files, relpath);
	if (id < 0)
		return yolo_fail(err, id, "out of memory");
	w->idents[id] = *ident;
	*file_id = (uint32_t)id;
	return 0;
}

bool yolo_writer_has_block(const struct yolo_writer *w, uint32_t file_id, uint64_t block_id)
{
	return has_block(w, hash_key(file_id, block_id), file_id, block_id);
}

static int flush_wbuf(struct yolo_writer *w)
{
	if (!w->wbuf_len)
		return 0;
	uint64_t off = YOLO_DATA_ALIGN + w->data_size - w->wbuf_len;
	int ret = yolo_pwrite_full(w->fd, w->wbuf, w->wbuf_len, off);
	w->wbuf_len = 0;
	return ret;
}

static int append_data(struct yolo_writer *w, const void *data, size_t len)
{
	if (w->wbuf_len + len > WBUF_SIZE) {
		int ret = flush_wbuf(w);
		if (ret < 0)
			return ret;
	}
	memcpy(w->wbuf + w->wbuf_len, data, len);
	w->wbuf_len += len;
	w->data_size += len;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zeros[256];
	while (len >= sizeof(zeros)) {
		if (memcmp(p, zeros, sizeof(zeros)))
			return false;
		p += sizeof(zeros);
		len -= sizeof(zeros);
	}
	return memcmp(p, zeros, len) == 0;
}

int yolo_writer_add_block(struct yolo_writer *w, uint32_t file_id, uint64_t block_id,
			  const void *data, uint32_t len, struct yolo_err *err)
{
	if (file_id >= w->files.n)
		return yolo_fail(err, -EINVAL, "block for unknown file id %u", file_id);
	const char *path = w->files.paths[file_id];
	uint64_t size = w->idents[file_id].size, bs = 1ull << w->block_shift;
	if (block_id > (size - 1) >> w->block_shift || size == 0)
		return yolo_fail(err, -EINVAL, "%s: block %llu is past the end of the file (%llu bytes)",
				 path, (unsigned long long)block_id, (unsigned long long)size);
	uint64_t off = block_id << w->block_shift;
	uint64_t expect = size - off < bs ? size - off : bs;
	if (len != expect)
		return yolo_fail(err, -EINVAL, "%s: block %llu has %u bytes, expected %llu",
				 path, (unsigned long long)block_id, len, (unsigned long long)expect);
	uint64_t hash = hash_key(file_id, block_id);
	if (has_block(w, hash, file_id, block_id))
		return yolo_fail(err, -EEXIST, "%s: block %llu added twice", path,
				 (unsigned long long)block_id);
	if (w->nblocks >= YOLO_MAX_BLOCKS)
		return yolo_fail(err, -EFBIG, "too many blocks (limit %u)", YOLO_MAX_BLOCKS);
	if (grow((void **)&w->blocks, &w->blocks_cap, w->nblocks + 1, sizeof(*w->blocks)) < 0)
		return yolo_fail(err, -ENOMEM, "out of memory");

	struct yolo_block b = {
		.block_id = block_id, .file_id = file_id, .seq = (uint32_t)w->nblocks,
		.raw_len = len, .checksum = XXH3_64bits(data, len),
	};
	const void *stored = data;
	if (all_zero(data, len)) {
		b.flags = YOLO_BLOCK_ZERO;
		stored = NULL;
	} else if (w->cctx) {
		size_t c = ZSTD_compress2(w->cctx, w->cbuf, w->cbuf_size, data, len);
		if (!ZSTD_isError(c) && c < len) {
			b.flags = YOLO_BLOCK_ZSTD;
			b.stored_len = (uint32_t)c;
			stored = w->cbuf;
			w->incompat |= YOLO_INCOMPAT_ZSTD;
		}
	}
	if (stored) {
		if (!b.stored_len)
			b.stored_len = len;
		b.data_off = w->data_size;
		int ret = append_data(w, stored, b.stored_len);
		if (ret < 0)
			return yolo_fail(err, ret, "%s: writing data: %s", w->tmp_path, strerror(-ret));
	}
	if (yhash_add(&w->block_index, hash, w->nblocks) < 0)
		return yolo_fail(err, -ENOMEM, "out of memory");
	w->blocks[w->nblocks++] = b;
	w->raw_bytes += len;
	return 0;
}

static int cmp_block_key(const void *a, const void *b)
{
	const struct yolo_block *x = a, *y = b;
	if (x->file_id != y->file_id)
		return x->file_id < y->file_id ? -1 : 1;
	return x->block_id < y->block_id ? -1 : x->block_id > y->block_id;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Serialise the tables into one buffer: file table, strings, index. */
static int build_tables(struct yolo_writer *w, uint8_t **out, struct yolo_disk_header *h)
{
	uint64_t ft_size = (uint64_t)w->files.n * sizeof(struct yolo_disk_file);
	uint64_t str_size = 0;
	for (uint32_t i = 0; i < w->files.n; i++)
		str_size += strlen(w->files.paths[i]);
	uint64_t idx_size = w->nblocks * sizeof(struct yolo_disk_block);
	uint64_t str_pad = align_up(str_size, 8);
	uint8_t *buf = calloc(1, ft_size + str_pad + idx_size + 1);
	if (!buf)
		return -ENOMEM;

	if (w->nblocks)
		qsort(w->blocks, w->nblocks, sizeof(*w->blocks), cmp_block_key);

	uint64_t tables_off = align_up(YOLO_DATA_ALIGN + w->data_size, 8);
	h->file_table_off = tables_off;
	h->file_table_size = ft_size;
	h->strings_off = tables_off + ft_size;
	h->strings_size = str_size;
	h->index_off = h->strings_off + str_pad;
	h->index_size = idx_size;

	uint64_t str_pos = 0, bi = 0;
	for (uint32_t i = 0; i < w->files.n; i++) {
		const char *path = w->files.paths[i];
		const struct yolo_file_ident *id = &w->idents[i];
		struct yolo_disk_file d;
		memset(&d, 0, sizeof(d));
		uint64_t first = bi;
		while (bi < w->nblocks && w->blocks[bi].file_id == i)
			bi++;
		size_t plen = strlen(path);
		put_le64(&d.size, id->size);
		put_le64(&d.mtime_ns, (uint64_t)id->mtime_ns);
		put_le64(&d.ino, id->ino);
		put_le64(&d.dev, id->dev);
		put_le64(&d.first_block, first);
		put_le32(&d.block_count, (uint32_t)(bi - first));
		put_le32(&d.path_len, (uint32_t)plen);
		put_le64(&d.path_off, str_pos);
		put_hash(d.fingerprint, yolo_fingerprint(&w->blocks[first], (uint32_t)(bi - first)));
		memcpy(buf + (uint64_t)i * sizeof(d), &d, sizeof(d));
		memcpy(buf + ft_size + str_pos, path, plen);
		str_pos += plen;
	}
	uint8_t *idx = buf + ft_size + str_pad;
	for (uint64_t i = 0; i < w->nblocks; i++) {
		const struct yolo_block *b = &w->blocks[i];
		struct yolo_disk_block d;
		memset(&d, 0, sizeof(d));
		put_le64(&d.block_id, b->block_id);
		put_le64(&d.data_off, b->data_off);
		put_hash(d.checksum, b->checksum);
		put_le32(&d.file_id, b->file_id);
		put_le32(&d.seq, b->seq);
		put_le32(&d.stored_len, b->stored_len);
		put_le32(&d.raw_len, b->raw_len);
		put_le16(&d.flags, b->flags);
		memcpy(idx + i * sizeof(d), &d, sizeof(d));
	}
	/* The meta checksum covers the three sections as stored, without padding. */
	h->ext_off = h->index_off + idx_size;     /* extensions follow (write_extensions) */
	XXH3_state_t *st = XXH3_createState();
	if (!st) {
		free(buf);
		return -ENOMEM;
	}
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, buf, ft_size + str_size);
	XXH3_64bits_update(st, idx, idx_size);
	put_hash(h->meta_checksum, XXH3_64bits_digest(st));
	XXH3_freeState(st);
	*out = buf;
	return 0;
}

/* Write one extension section at *off (8-aligned) and fill its entry. */
static int write_section(struct yolo_writer *w, uint32_t type, const uint8_t *buf, uint64_t size,
			 uint64_t *off, struct yolo_disk_ext *ext)
{
	uint64_t at = align_up(*off, 8);
	memset(ext, 0, sizeof(*ext));
	put_le32(&ext->type, type);
	put_le64(&ext->off, at);
	put_le64(&ext->size, size);
	put_hash(ext->checksum, XXH3_64bits(buf, size));
	*off = at + size;
	return yolo_pwrite_full(w->fd, buf, size, at);
}

/* The extension sections (the files' change times; the namespace
 * questions, if any) and the table naming them, from `off` on; fills the
 * header's extension fields.  @return 0 or -errno. */
static int write_extensions(struct yolo_writer *w, uint64_t off, struct yolo_disk_header *d)
{
	struct yolo_disk_ext ext[2];
	uint32_t n = 0;
	uint64_t size = (uint64_t)w->files.n * sizeof(struct yolo_disk_file_times);
	uint8_t *times = calloc(1, size + 1), *ns = NULL;
	if (!times)
		return -ENOMEM;
	for (uint32_t i = 0; i < w->files.n; i++)
		put_le64(times + (uint64_t)i * sizeof(struct yolo_disk_file_times),
			 (uint64_t)w->idents[i].ctime_ns);
	int ret = write_section(w, YOLO_EXT_FILE_TIMES, times, size, &off, &ext[n++]);
	uint64_t ns_size = 0;
	if (ret == 0 && w->ns.n && (ret = yolo_ns_builder_serialize(&w->ns, &ns, &ns_size)) == 0)
		ret = write_section(w, YOLO_EXT_NAMESPACE, ns, ns_size, &off, &ext[n++]);
	free(times);
	free(ns);
	if (ret < 0)
		return ret;
	uint64_t tab_off = align_up(off, 8);
	if ((ret = yolo_pwrite_full(w->fd, ext, n * sizeof(ext[0]), tab_off)) < 0)
		return ret;
	put_le64(&d->ext_off, tab_off);
	put_le32(&d->ext_count, n);
	put_hash(d->ext_checksum, XXH3_64bits(ext, n * sizeof(ext[0])));
	w->end = tab_off + n * sizeof(ext[0]);
	return 0;
}

int yolo_writer_add_ns(struct yolo_writer *w, const char *relpath, uint16_t flags,
		       uint32_t *node, struct yolo_err *err)
{
	int ret = yolo_ns_builder_add(&w->ns, relpath, flags, node);
	if (ret < 0)
		return yolo_fail(err, ret, "namespace question about \"%s\": %s", relpath,
				 strerror(-ret));
	return 0;
}

int yolo_writer_add_ns_xattr(struct yolo_writer *w, uint32_t node, const char *name,
			     struct yolo_err *err)
{
	int ret = yolo_ns_builder_add_xattr(&w->ns, node, name);
	if (ret < 0)
		return yolo_fail(err, ret, "xattr question \"%s\": %s", name, strerror(-ret));
	return 0;
}

int yolo_writer_add_ns_table(struct yolo_writer *w, const struct yolo_ns_table *t,
			     const char *name, struct yolo_err *err)
{
	uint32_t *map = malloc((t->nnodes + 1) * sizeof(*map));
	char path[YOLO_MAX_PATH + 1];
	int ret = map ? 0 : yolo_fail(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; ret == 0 && i < t->nnodes; i++) {
		ret = yolo_ns_node_path(t, i, path, sizeof(path));
		if (ret < 0)
			ret = yolo_fail(err, ret, "%s: namespace node %u: path too long", name, i);
		else
			ret = yolo_writer_add_ns(w, path, t->nodes[i].flags, &map[i], err);
	}
	for (uint32_t i = 0; ret == 0 && i < t->nxattrs; i++)
		ret = yolo_writer_add_ns_xattr(w, map[t->xattrs[i].node], t->xattrs[i].name, err);
	free(map);
	return ret;
}

static int fsync_parent_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (dfd < 0)
		return -errno;
	int ret = fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return ret;
}

int yolo_writer_commit(struct yolo_writer *w, struct yolo_err *err)
{
	struct yolo_disk_header h;
	uint8_t *tables = NULL;
	memset(&h, 0, sizeof(h));
	int ret = flush_wbuf(w);
	if (ret < 0) {
		yolo_fail(err, ret, "%s: writing data: %s", w->tmp_path, strerror(-ret));
		goto out;
	}
	ret = build_tables(w, &tables, &h);
	if (ret < 0) {
		yolo_fail(err, ret, "out of memory");
		goto out;
	}
	struct yolo_disk_header d;
	memset(&d, 0, sizeof(d));
	memcpy(d.magic, YOLO_MAGIC, YOLO_MAGIC_LEN);
	put_le32(&d.version, YOLO_FORMAT_VERSION);
	put_le32(&d.header_size, YOLO_HEADER_SIZE);
	put_le32(&d.compat, w->compat | YOLO_COMPAT_EXT);
	put_le32(&d.incompat, w->incompat);
	put_le32(&d.block_shift, w->block_shift);
	put_le32(&d.file_count, w->files.n);
	put_le64(&d.block_count, w->nblocks);
	put_le64(&d.data_off, YOLO_DATA_ALIGN);
	put_le64(&d.data_size, w->data_size);
	put_le64(&d.file_table_off, h.file_table_off);
	put_le64(&d.file_table_size, h.file_table_size);
	put_le64(&d.strings_off, h.strings_off);
	put_le64(&d.strings_size, h.strings_size);
	put_le64(&d.index_off, h.index_off);
	put_le64(&d.index_size, h.index_size);
	put_le64(&d.created_ns, yolo_wall_ns());
	put_le64(&d.raw_bytes, w->raw_bytes);
	memcpy(d.meta_checksum, h.meta_checksum, 8);

	uint64_t tables_len = h.index_off + h.index_size - h.file_table_off;
	ret = yolo_pwrite_full(w->fd, tables, tables_len, h.file_table_off);
	if (ret == 0)
		ret = write_extensions(w, h.ext_off, &d);
	put_hash(d.header_checksum, yolo_header_hash(&d));       /* last: covers the above */
	if (ret < 0 ||
	    (ret = yolo_pwrite_full(w->fd, &d, sizeof(d), 0)) < 0 ||
	    (ret = ftruncate(w->fd, (off_t)w->end) < 0 ? -errno : 0) < 0 ||
	    (ret = fsync(w->fd) < 0 ? -errno : 0) < 0) {
		yolo_fail(err, ret, "%s: %s", w->tmp_path, strerror(-ret));
		goto out;
	}
	if (rename(w->tmp_path, w->path) < 0) {
		ret = -errno;
		yolo_fail(err, ret, "%s: cannot rename into place: %s", w->path, strerror(-ret));
		goto out;
	}
	free(w->tmp_path);
	w->tmp_path = NULL;              /* nothing to remove any more */
	ret = fsync_parent_dir(w->path);
	if (ret < 0)
		yolo_fail(err, ret, "%s: fsync of directory: %s", w->path, strerror(-ret));
out:
	free(tables);
	yolo_writer_discard(w);
	return ret;
}

void yolo_writer_discard(struct yolo_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		if (w->tmp_path)         /* created, not yet renamed */
			unlink(w->tmp_path);
	}
	yolo_filelist_free(&w->files);
	free(w->idents);
	yolo_ns_builder_free(&w->ns);
	free(w->blocks);
	yhash_free(&w->block_index);
	free(w->wbuf);
	free(w->cbuf);
	ZSTD_freeCCtx(w->cctx);
	free(w->tmp_path);
	free(w->path);
	free(w);
}
