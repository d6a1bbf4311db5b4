/* image_rebind.c - re-stamps a boot image for a copy of its source on
 * another machine (or after a timestamp-only change): every captured block
 * of every file is compared with the source file's current bytes, and the
 * files whose blocks all still match are written to a new image with their
 * current identity (size, mtime, inode).  Files that changed or are missing
 * are left out, so the new image can never serve stale data. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_i.h"

int yolo_image_rebind(const char *out, const struct yolo_image *img, int source_dirfd,
		      const struct yolo_writer_opts *opts, struct yolo_rebind_report *rep,
		      yolo_verify_cb cb, void *ctx, struct yolo_err *err)
{
	struct yolo_rebind_report r = { 0 };
	uint32_t nf = img->info.file_count, bs = img->info.block_size;
	struct yolo_file_ident *now = calloc(nf + 1, sizeof(*now));
	bool *keep = calloc(nf + 1, sizeof(*keep));
	uint32_t *map = calloc(nf + 1, sizeof(*map));
	uint8_t *buf = malloc(bs);
	struct yolo_writer *w = NULL;
	char pbuf[256], line[512];
	int ret = 0;
	if (!now || !keep || !map || !buf) {
		ret = yolo_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t fid = 0; fid < nf; fid++) {
		const char *path = img->files[fid].path;
		const char *shown = yolo_printable(path, strlen(path), pbuf, sizeof(pbuf));
		int fd = yolo_open_beneath(source_dirfd, path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			r.files_missing++;
			snprintf(line, sizeof(line), "%s: missing from the source; left out", shown);
			if (cb)
				cb(ctx, line);
			if (fd >= 0)
				close(fd);
			continue;
		}
		/* The identity recorded is the one from before the comparison:
		 * if the file changed meanwhile (its change time moved), the
		 * comparison proved nothing about it. */
		int m = yolo_image_compare_file(img, fid, fd);
		struct stat after;
		if (m == 1 && (fstat(fd, &after) < 0 || after.st_ctim.tv_sec != st.st_ctim.tv_sec ||
			       after.st_ctim.tv_nsec != st.st_ctim.tv_nsec))
			m = 0;
		close(fd);
		if (m < 0) {
			ret = yolo_fail(err, m, "%s: %s", shown,
					m == -EUCLEAN ? "image block does not match its checksum"
						      : strerror(-m));
			goto out;
		}
		if (!m) {
			r.files_changed++;
			snprintf(line, sizeof(line), "%s: source bytes differ from the image; left out",
				 shown);
			if (cb)
				cb(ctx, line);
			continue;
		}
		keep[fid] = true;
		now[fid] = yolo_ident_from_stat(&st);
		r.files_rebound++;
		r.blocks += img->files[fid].block_count;
	}
	if (!r.files_rebound) {
		ret = yolo_fail(err, -ENOENT, "%s: no file matches the source; nothing written",
				img->name);
		goto out;
	}
	struct yolo_writer_opts wo = opts ? *opts : (struct yolo_writer_opts){ 0 };
	wo.block_size = bs;
	wo.compat |= img->info.compat & YOLO_COMPAT_MERGED;
	if ((ret = yolo_writer_create(&w, out, &wo, err)) < 0)
		goto out;
	for (uint32_t fid = 0; fid < nf; fid++)
		if (keep[fid] && (ret = yolo_writer_add_file(w, img->files[fid].path, &now[fid],
							     &map[fid], err)) < 0)
			goto out;
	for (uint64_t s = 0; s < img->info.block_count; s++) {
		const struct yolo_block *b = yolo_image_block_by_seq(img, s);
		if (!keep[b->file_id])
			continue;
		int n = yolo_image_read_block(img, b, buf, bs, YOLO_READ_VERIFY);
		if (n < 0) {
			ret = yolo_fail(err, n, "%s: block %llu: %s", img->name,
					(unsigned long long)b->block_id, strerror(-n));
			goto out;
		}
		if ((ret = yolo_writer_add_block(w, map[b->file_id], b->block_id, buf, b->raw_len,
						 err)) < 0)
			goto out;
	}
	if ((ret = yolo_writer_add_ns_table(w, &img->ns, img->name, err)) < 0)
		goto out;
	ret = yolo_writer_commit(w, err);
	w = NULL;
out:
	yolo_writer_discard(w);
	free(now);
	free(keep);
	free(map);
	free(buf);
	if (rep)
		*rep = r;
	return ret;
}
