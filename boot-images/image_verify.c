/* image_verify.c - checks an opened image's block data against its stored
 * checksums and, optionally, against the source files it was captured from
 * (identity and current bytes), reporting each problem as one line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_i.h"

static void report(yolo_verify_cb cb, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(yolo_verify_cb cb, void *ctx, const char *fmt, ...)
{
	if (!cb)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cb(ctx, line);
}

/* Compare one file's identity and blocks with the source.  Returns -errno
 * only for failures of the verification itself (out of memory). */
static int verify_source_file(const struct yolo_image *img, uint32_t fid, int dirfd,
			      uint8_t *img_buf, uint8_t *src_buf, struct yolo_verify_report *rep,
			      yolo_verify_cb cb, void *ctx)
{
	const struct yolo_file *f = yolo_image_file(img, fid);
	char pbuf[256];
	const char *shown = yolo_printable(f->path, strlen(f->path), pbuf, sizeof(pbuf));
	int fd = yolo_open_beneath(dirfd, f->path, O_RDONLY);
	if (fd < 0) {
		rep->files_missing++;
		report(cb, ctx, "%s: cannot open in source: %s", shown, strerror(-fd));
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int saverr = errno;
		close(fd);
		rep->files_missing++;
		report(cb, ctx, "%s: cannot stat in source: %s", shown, strerror(saverr));
		return 0;
	}
	struct yolo_file_ident now = yolo_ident_from_stat(&st);
	if (yolo_ident_change(&f->ident, &now)) {
		rep->files_changed++;
		report(cb, ctx, "%s: changed since capture (size %llu->%llu, mtime %lld->%lld, inode %llu->%llu); a server will not use its blocks",
		       shown, (unsigned long long)f->ident.size, (unsigned long long)now.size,
		       (long long)f->ident.mtime_ns, (long long)now.mtime_ns,
		       (unsigned long long)f->ident.ino, (unsigned long long)now.ino);
	}
	uint32_t bs = img->info.block_size;
	for (uint32_t i = 0; i < f->block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, f->first_block + i);
		if (yolo_image_read_block(img, b, img_buf, bs, YOLO_READ_VERIFY) < 0)
			continue;        /* already reported as a bad block */
		ssize_t n = pread(fd, src_buf, b->raw_len, (off_t)(b->block_id << img->info.block_shift));
		if (n != (ssize_t)b->raw_len || memcmp(img_buf, src_buf, b->raw_len)) {
			rep->blocks_stale++;
			report(cb, ctx, "%s block %llu: source bytes differ from the image", shown,
			       (unsigned long long)b->block_id);
		}
	}
	close(fd);
	return 0;
}

int yolo_image_verify(const struct yolo_image *img, int source_dirfd,
		      struct yolo_verify_report *rep, yolo_verify_cb cb, void *ctx)
{
	struct yolo_verify_report r = { 0 };
	char pbuf[256];
	uint32_t bs = img->info.block_size;
	uint8_t *img_buf = malloc(bs), *src_buf = malloc(bs);
	int ret = 0;
	if (!img_buf || !src_buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < img->info.block_count; i++) {
		const struct yolo_block *b = yolo_image_block(img, i);
		int n = yolo_image_read_block(img, b, img_buf, bs, YOLO_READ_VERIFY);
		if (n >= 0) {
			r.blocks_ok++;
		} else {
			r.blocks_bad++;
			const char *p = img->files[b->file_id].path;
			report(cb, ctx, "%s block %llu: %s", yolo_printable(p, strlen(p), pbuf, sizeof(pbuf)),
			       (unsigned long long)b->block_id,
			       n == -EUCLEAN ? "stored data does not match its checksum" : strerror(-n));
		}
	}
	if (source_dirfd >= 0)
		for (uint32_t fid = 0; fid < img->info.file_count && ret == 0; fid++)
			ret = verify_source_file(img, fid, source_dirfd, img_buf, src_buf, &r, cb, ctx);
out:
	free(img_buf);
	free(src_buf);
	if (rep)
		*rep = r;
	if (ret < 0)
		return ret;
	return (r.blocks_bad || r.files_missing || r.files_changed || r.blocks_stale) ? 1 : 0;
}
