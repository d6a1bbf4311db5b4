/* trace.c - writes and reads boot traces (see yolo_trace.h for the layout).
 * Writing appends checksummed chunks so a crash leaves a detectable prefix;
 * reading validates every chunk, file id and path before trusting any. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_i.h"
#include "yolo_trace.h"

#define TRACE_HEADER_SIZE 32
#define CHUNK_FILE 1u
#define CHUNK_READS 2u
#define CHUNK_END 3u
#define CHUNK_NS 4u
#define FILE_REC_SIZE 40                 /* FILE payload before the path */
#define READ_REC_SIZE 32
#define READS_PER_CHUNK 4096

struct yolo_trace_writer {
	int fd;
	char *path;
	struct yolo_filelist files;      /* paths declared so far, by id */
	struct yolo_file_ident *idents;  /* files.n, by id */
	uint32_t idents_cap;
	uint64_t nreads;
	uint8_t *pending;                /* READS payload being filled */
	uint32_t npending;
	struct yolo_ns_builder ns;       /* questions so far, written at close */
};

static int write_chunk(struct yolo_trace_writer *tw, uint32_t type, const void *payload,
		       uint32_t len, struct yolo_err *err)
{
	uint8_t head[8], sum[8];
	put_le32(head, type);
	put_le32(head + 4, len);
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return yolo_fail(err, -ENOMEM, "out of memory");
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, head, sizeof(head));
	XXH3_64bits_update(st, payload, len);
	put_hash(sum, XXH3_64bits_digest(st));
	XXH3_freeState(st);
	off_t at = lseek(tw->fd, 0, SEEK_END);
	int ret = at < 0 ? -errno : 0;
	if (!ret)
		ret = yolo_pwrite_full(tw->fd, head, sizeof(head), (uint64_t)at);
	if (!ret)
		ret = yolo_pwrite_full(tw->fd, payload, len, (uint64_t)at + sizeof(head));
	if (!ret)
		ret = yolo_pwrite_full(tw->fd, sum, sizeof(sum), (uint64_t)at + sizeof(head) + len);
	if (ret < 0)
		return yolo_fail(err, ret, "%s: writing trace: %s", tw->path, strerror(-ret));
	return 0;
}

int yolo_trace_create(struct yolo_trace_writer **out, const char *path, struct yolo_err *err)
{
	struct yolo_trace_writer *tw = calloc(1, sizeof(*tw));
	if (!tw || !(tw->path = strdup(path)) ||
	    !(tw->pending = malloc(READS_PER_CHUNK * READ_REC_SIZE))) {
		if (tw)
			free(tw->path);
		free(tw);
		return yolo_fail(err, -ENOMEM, "out of memory");
	}
	tw->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (tw->fd < 0) {
		int ret = yolo_fail(err, -errno, "%s: %s", path, strerror(errno));
		yolo_trace_abandon(tw);
		return ret;
	}
	uint8_t h[TRACE_HEADER_SIZE] = { 0 };
	memcpy(h, YOLO_TRACE_MAGIC, 8);
	put_le32(h + 8, YOLO_TRACE_VERSION);
	put_le32(h + 12, TRACE_HEADER_SIZE);
	put_le64(h + 16, yolo_wall_ns());
	int ret = yolo_pwrite_full(tw->fd, h, sizeof(h), 0);
	if (ret < 0) {
		yolo_fail(err, ret, "%s: %s", path, strerror(-ret));
		yolo_trace_abandon(tw);
		return ret;
	}
	*out = tw;
	return 0;
}

int yolo_trace_add_file(struct yolo_trace_writer *tw, const char *relpath,
			const struct yolo_file_ident *ident, uint32_t *file_id,
			struct yolo_err *err)
{
	size_t plen = strlen(relpath);
	if (!yolo_path_is_safe(relpath, plen))
		return yolo_fail(err, -EINVAL, "unsafe path \"%s\"", relpath);
	int64_t known = yolo_filelist_find(&tw->files, relpath);
	if (known >= 0) {
		if (yolo_ident_change(&tw->idents[known], ident))
			return yolo_fail(err, -ESTALE, "%s changed while it was being traced", relpath);
		*file_id = (uint32_t)known;
		return 0;
	}
	if (tw->files.n == tw->idents_cap) {
		uint32_t cap = tw->idents_cap ? tw->idents_cap * 2 : 64;
		struct yolo_file_ident *v = realloc(tw->idents, cap * sizeof(*v));
		if (!v)
			return yolo_fail(err, -ENOMEM, "out of memory");
		tw->idents = v;
		tw->idents_cap = cap;
	}
	uint8_t rec[FILE_REC_SIZE + YOLO_MAX_PATH];
	put_le32(rec, tw->files.n);
	put_le32(rec + 4, (uint32_t)plen);
	put_le64(rec + 8, ident->size);
	put_le64(rec + 16, (uint64_t)ident->mtime_ns);
	put_le64(rec + 24, ident->ino);
	put_le64(rec + 32, ident->dev);
	memcpy(rec + FILE_REC_SIZE, relpath, plen);
	/* Reads already buffered refer only to earlier files; keep order simple
	 * by flushing them first. */
	int ret = yolo_trace_flush(tw, err);
	if (ret == 0)
		ret = write_chunk(tw, CHUNK_FILE, rec, (uint32_t)(FILE_REC_SIZE + plen), err);
	if (ret < 0)
		return ret;
	int id = yolo_filelist_add(&tw->files, relpath);
	if (id < 0)
		return yolo_fail(err, id, "out of memory");
	tw->idents[id] = *ident;
	*file_id = (uint32_t)id;
	return 0;
}

int yolo_trace_add_read(struct yolo_trace_writer *tw, const struct yolo_trace_read *r,
			struct yolo_err *err)
{
	if (r->file_id >= tw->files.n)
		return yolo_fail(err, -EINVAL, "read of undeclared file %u", r->file_id);
	uint8_t *p = tw->pending + (size_t)tw->npending * READ_REC_SIZE;
	put_le64(p, r->t_ns);
	put_le64(p + 8, r->offset);
	put_le32(p + 16, r->length);
	put_le32(p + 20, r->file_id);
	put_le32(p + 24, r->pid);
	put_le32(p + 28, 0);
	tw->nreads++;
	if (++tw->npending == READS_PER_CHUNK)
		return yolo_trace_flush(tw, err);
	return 0;
}

int yolo_trace_add_ns(struct yolo_trace_writer *tw, const char *relpath, uint16_t flags,
		      const char *xattr, struct yolo_err *err)
{
	uint32_t node;
	int ret = yolo_ns_builder_add(&tw->ns, relpath, xattr ? 0 : flags, &node);
	if (ret == 0 && xattr)
		ret = yolo_ns_builder_add_xattr(&tw->ns, node, xattr);
	if (ret < 0)
		return yolo_fail(err, ret, "namespace question about \"%s\": %s", relpath,
				 strerror(-ret));
	return 0;
}

int yolo_trace_flush(struct yolo_trace_writer *tw, struct yolo_err *err)
{
	if (!tw->npending)
		return 0;
	int ret = write_chunk(tw, CHUNK_READS, tw->pending, tw->npending * READ_REC_SIZE, err);
	tw->npending = 0;
	return ret;
}

int yolo_trace_close(struct yolo_trace_writer *tw, struct yolo_err *err)
{
	uint8_t end[16];
	put_le64(end, tw->files.n);
	put_le64(end + 8, tw->nreads);
	int ret = yolo_trace_flush(tw, err);
	if (ret == 0 && tw->ns.n) {
		uint8_t *ns = NULL;
		uint64_t len = 0;
		ret = yolo_ns_builder_serialize(&tw->ns, &ns, &len);
		if (ret == 0 && len > UINT32_MAX)
			ret = -EFBIG;
		if (ret == 0)
			ret = write_chunk(tw, CHUNK_NS, ns, (uint32_t)len, err);
		else
			yolo_fail(err, ret, "%s: namespace questions: %s", tw->path, strerror(-ret));
		free(ns);
	}
	if (ret == 0)
		ret = write_chunk(tw, CHUNK_END, end, sizeof(end), err);
	if (ret == 0 && fsync(tw->fd) < 0)
		ret = yolo_fail(err, -errno, "%s: fsync: %s", tw->path, strerror(errno));
	yolo_trace_abandon(tw);
	return ret;
}

void yolo_trace_abandon(struct yolo_trace_writer *tw)
{
	if (!tw)
		return;
	if (tw->fd >= 0)
		close(tw->fd);
	yolo_filelist_free(&tw->files);
	free(tw->idents);
	yolo_ns_builder_free(&tw->ns);
	free(tw->pending);
	free(tw->path);
	free(tw);
}

void yolo_trace_free(struct yolo_trace *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nfiles; i++)
		free(t->files[i].path);
	free(t->files);
	free(t->reads);
	yolo_ns_table_free(&t->ns);
	free(t);
}

static int parse_file_chunk(struct yolo_trace *t, const uint8_t *p, uint32_t len,
			    const char *name, struct yolo_err *err)
{
	if (len < FILE_REC_SIZE)
		return yolo_fail(err, -EUCLEAN, "%s: short FILE record", name);
	uint32_t id = get_le32(p), plen = get_le32(p + 4);
	if (id != t->nfiles || plen != len - FILE_REC_SIZE ||
	    !yolo_path_is_safe((const char *)p + FILE_REC_SIZE, plen))
		return yolo_fail(err, -EUCLEAN, "%s: bad FILE record %u (id out of order or unsafe path)",
				 name, t->nfiles);
	if (t->nfiles >= YOLO_MAX_FILES)
		return yolo_fail(err, -EUCLEAN, "%s: too many files", name);
	struct yolo_trace_file *nf = realloc(t->files, (t->nfiles + 1) * sizeof(*nf));
	if (!nf)
		return yolo_fail(err, -ENOMEM, "out of memory");
	t->files = nf;
	struct yolo_trace_file *f = &t->files[t->nfiles];
	f->path = strndup((const char *)p + FILE_REC_SIZE, plen);
	if (!f->path)
		return yolo_fail(err, -ENOMEM, "out of memory");
	f->ident.size = get_le64(p + 8);
	f->ident.mtime_ns = (int64_t)get_le64(p + 16);
	f->ident.ino = get_le64(p + 24);
	f->ident.dev = get_le64(p + 32);
	f->ident.ctime_ns = YOLO_CTIME_UNKNOWN;  /* not traced: recorded when an image is built */
	t->nfiles++;
	return 0;
}

static int parse_reads_chunk(struct yolo_trace *t, const uint8_t *p, uint32_t len,
			     uint64_t *cap, const char *name, struct yolo_err *err)
{
	if (len % READ_REC_SIZE)
		return yolo_fail(err, -EUCLEAN, "%s: READS chunk of %u bytes", name, len);
	uint64_t n = len / READ_REC_SIZE;
	if (t->nreads + n > YOLO_TRACE_MAX_READS)
		return yolo_fail(err, -EUCLEAN, "%s: too many reads", name);
	if (t->nreads + n > *cap) {
		uint64_t ncap = *cap ? *cap : 1024;
		while (ncap < t->nreads + n)
			ncap *= 2;
		struct yolo_trace_read *nr = realloc(t->reads, ncap * sizeof(*nr));
		if (!nr)
			return yolo_fail(err, -ENOMEM, "out of memory");
		t->reads = nr;
		*cap = ncap;
	}
	for (uint64_t i = 0; i < n; i++, p += READ_REC_SIZE) {
		struct yolo_trace_read *r = &t->reads[t->nreads];
		r->t_ns = get_le64(p);
		r->offset = get_le64(p + 8);
		r->length = get_le32(p + 16);
		r->file_id = get_le32(p + 20);
		r->pid = get_le32(p + 24);
		if (r->file_id >= t->nfiles || r->offset > (uint64_t)INT64_MAX - r->length)
			return yolo_fail(err, -EUCLEAN, "%s: read %llu: bad file id or offset", name,
					 (unsigned long long)t->nreads);
		t->nreads++;
	}
	return 0;
}

static int parse_trace(struct yolo_trace *t, const uint8_t *buf, uint64_t size,
		       const char *name, struct yolo_err *err)
{
	if (size < TRACE_HEADER_SIZE || memcmp(buf, YOLO_TRACE_MAGIC, 8))
		return yolo_fail(err, -EUCLEAN, "%s: not a YOLO boot trace", name);
	if (get_le32(buf + 8) != YOLO_TRACE_VERSION)
		return yolo_fail(err, -EOPNOTSUPP, "%s: trace version %u not supported", name,
				 get_le32(buf + 8));
	if (get_le32(buf + 12) != TRACE_HEADER_SIZE)
		return yolo_fail(err, -EUCLEAN, "%s: trace header size %u, expected %u", name,
				 get_le32(buf + 12), TRACE_HEADER_SIZE);
	t->start_ns = get_le64(buf + 16);
	uint64_t pos = TRACE_HEADER_SIZE, cap = 0;
	while (pos < size) {
		if (size - pos < 16)
			return yolo_fail(err, -EUCLEAN, "%s: partial trace: torn chunk at byte %llu (capture crashed?)",
					 name, (unsigned long long)pos);
		uint32_t type = get_le32(buf + pos), len = get_le32(buf + pos + 4);
		if (len > size - pos - 16)
			return yolo_fail(err, -EUCLEAN, "%s: partial trace: torn chunk at byte %llu (capture crashed?)",
					 name, (unsigned long long)pos);
		if (XXH3_64bits(buf + pos, 8 + (uint64_t)len) != get_hash(buf + pos + 8 + len))
			return yolo_fail(err, -EUCLEAN, "%s: chunk at byte %llu fails its checksum", name,
					 (unsigned long long)pos);
		const uint8_t *p = buf + pos + 8;
		int ret;
		switch (type) {
		case CHUNK_FILE:
			ret = parse_file_chunk(t, p, len, name, err);
			break;
		case CHUNK_READS:
			ret = parse_reads_chunk(t, p, len, &cap, name, err);
			break;
		case CHUNK_NS:
			if (t->ns.nnodes)
				return yolo_fail(err, -EUCLEAN, "%s: a second namespace chunk", name);
			ret = yolo_ns_parse(&t->ns, p, len, name, err);
			break;
		case CHUNK_END:
			if (len != 16 || get_le64(p) != t->nfiles || get_le64(p + 8) != t->nreads)
				return yolo_fail(err, -EUCLEAN, "%s: end record does not match the trace's contents",
						 name);
			if (pos + 16 + len != size)
				return yolo_fail(err, -EUCLEAN, "%s: data after the end record", name);
			return 0;
		default:
			return yolo_fail(err, -EUCLEAN, "%s: unknown chunk type %u at byte %llu", name,
					 type, (unsigned long long)pos);
		}
		if (ret < 0)
			return ret;
		pos += 16 + (uint64_t)len;
	}
	return yolo_fail(err, -EUCLEAN, "%s: partial trace: no end record (%llu reads in complete chunks; capture crashed?)",
			 name, (unsigned long long)t->nreads);
}

int yolo_trace_load(const char *path, struct yolo_trace **out, struct yolo_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return yolo_fail(err, -errno, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return yolo_fail(err, -EINVAL, "%s: not a regular file", path);
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	struct yolo_trace *t = calloc(1, sizeof(*t));
	int ret = !buf || !t ? -ENOMEM : yolo_pread_exact(fd, buf, size, 0);
	close(fd);
	if (ret == 0)
		ret = parse_trace(t, buf, size, path, err);
	else
		yolo_fail(err, ret, "%s: %s", path, strerror(-ret));
	free(buf);
	if (ret < 0) {
		yolo_trace_free(t);
		return ret;
	}
	*out = t;
	return 0;
}
