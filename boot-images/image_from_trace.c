/* image_from_trace.c - turns a boot trace into a boot image: every block a
 * recorded read touched, in the order the boot first touched it, with the
 * bytes read from the (unchanged) source files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_i.h"
#include "yolo_trace.h"

/* Open every traced file beneath the source and check it is unchanged
 * (size and mtime as traced); record its current identity, inode included,
 * which is what a server will compare against. */
static int open_sources(const struct yolo_trace *t, int dirfd, int *fds,
			struct yolo_file_ident *idents, struct yolo_err *err)
{
	for (uint32_t i = 0; i < t->nfiles; i++) {
		const struct yolo_trace_file *f = &t->files[i];
		int fd = yolo_open_beneath(dirfd, f->path, O_RDONLY);
		if (fd < 0)
			return yolo_fail(err, fd, "%s: cannot open in source: %s", f->path, strerror(-fd));
		fds[i] = fd;
		struct stat st;
		if (fstat(fd, &st) < 0)
			return yolo_fail(err, -errno, "%s: %s", f->path, strerror(errno));
		idents[i] = yolo_ident_from_stat(&st);
		/* The inode may differ (a copied tree); size and mtime may not. */
		if (idents[i].size != f->ident.size || idents[i].mtime_ns != f->ident.mtime_ns)
			return yolo_fail(err, -ESTALE, "%s: changed since it was traced (size or mtime differ)",
					 f->path);
	}
	return 0;
}

int yolo_image_build_from_trace(const struct yolo_trace *t, int source_dirfd, const char *out,
				const struct yolo_writer_opts *opts, struct yolo_build_stats *stats,
				struct yolo_err *err)
{
	struct yolo_build_stats s = { 0 };
	struct yolo_writer *w = NULL;
	int *fds = malloc((t->nfiles + 1) * sizeof(int));
	uint32_t *ids = malloc((t->nfiles + 1) * sizeof(uint32_t));
	struct yolo_file_ident *idents = malloc((t->nfiles + 1) * sizeof(*idents));
	uint8_t *buf = NULL;
	int ret = -ENOMEM;
	if (!fds || !ids || !idents) {
		yolo_fail(err, ret, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < t->nfiles; i++) {
		fds[i] = -1;
		ids[i] = UINT32_MAX;     /* added to the image on first use */
	}
	if ((ret = open_sources(t, source_dirfd, fds, idents, err)) < 0)
		goto out;
	if ((ret = yolo_writer_create(&w, out, opts, err)) < 0)
		goto out;
	uint32_t shift = (uint32_t)__builtin_ctz(yolo_writer_block_size(w));
	uint32_t bs = 1u << shift;
	if (!(buf = malloc(bs))) {
		ret = yolo_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t r = 0; r < t->nreads; r++) {
		const struct yolo_trace_read *rd = &t->reads[r];
		const struct yolo_trace_file *f = &t->files[rd->file_id];
		uint64_t end = rd->offset + rd->length;
		if (end > f->ident.size)
			end = f->ident.size;
		if (rd->length == 0 || rd->offset >= end)
			continue;
		s.reads++;
		if (ids[rd->file_id] == UINT32_MAX) {
			ret = yolo_writer_add_file(w, f->path, &idents[rd->file_id], &ids[rd->file_id], err);
			if (ret < 0)
				goto out;
			s.files++;
		}
		uint32_t id = ids[rd->file_id];
		/* Last block is the one holding byte end-1, not end. */
		for (uint64_t b = rd->offset >> shift; b <= (end - 1) >> shift; b++) {
			if (yolo_writer_has_block(w, id, b))
				continue;
			uint64_t off = b << shift;
			uint32_t len = f->ident.size - off < bs ? (uint32_t)(f->ident.size - off) : bs;
			ret = yolo_pread_exact(fds[rd->file_id], buf, len, off);
			if (ret < 0) {
				yolo_fail(err, ret, "%s: reading block %llu: %s", f->path,
					  (unsigned long long)b, strerror(-ret));
				goto out;
			}
			if ((ret = yolo_writer_add_block(w, id, b, buf, len, err)) < 0)
				goto out;
			s.blocks++;
			s.bytes += len;
		}
	}
	/* The change time recorded must be that of the bytes read: a file
	 * changed while they were read (its change time moved) is refused. */
	for (uint32_t i = 0; i < t->nfiles; i++) {
		struct stat st;
		if (ids[i] == UINT32_MAX || fds[i] < 0)
			continue;
		if (fstat(fds[i], &st) < 0 ||
		    yolo_ident_from_stat(&st).ctime_ns != idents[i].ctime_ns) {
			ret = yolo_fail(err, -ESTALE, "%s: changed while its blocks were read",
					t->files[i].path);
			goto out;
		}
	}
	if ((ret = yolo_writer_add_ns_table(w, &t->ns, "trace", err)) < 0)
		goto out;
	ret = yolo_writer_commit(w, err);
	w = NULL;
out:
	yolo_writer_discard(w);
	if (fds)
		for (uint32_t i = 0; i < t->nfiles; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	free(fds);
	free(ids);
	free(idents);
	free(buf);
	if (stats)
		*stats = s;
	return ret;
}
