/* image_compare.c - does a source file still hold what an image captured
 * of it?  Used by `yolo-image rebind` and by yolofs's background check of
 * files whose metadata changed.  The source is read in runs of consecutive
 * captured blocks (the index is in block order), so a file's blocks cost a
 * few large reads rather than one per block. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_i.h"

#define RUN_MAX (1u << 20)

int yolo_image_compare_file(const struct yolo_image *img, uint32_t file_id, int fd)
{
	if (file_id >= img->info.file_count)
		return -EINVAL;
	const struct yolo_file *f = &img->files[file_id];
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != f->ident.size)
		return 0;
	uint32_t bs = img->info.block_size, shift = img->info.block_shift;
	uint8_t *run = malloc(RUN_MAX > bs ? RUN_MAX : bs), *blk = malloc(bs);
	int ret = 1;
	if (!run || !blk) {
		ret = -ENOMEM;
		goto out;
	}
	const struct yolo_block *b = img->blocks + f->first_block;
	for (uint32_t i = 0; i < f->block_count && ret == 1;) {
		/* The run: blocks i..j-1 with consecutive ids, up to RUN_MAX. */
		uint32_t j = i + 1;
		uint64_t len = b[i].raw_len;
		while (j < f->block_count && b[j].block_id == b[j - 1].block_id + 1 &&
		       len + b[j].raw_len <= RUN_MAX)
			len += b[j++].raw_len;
		int r = yolo_pread_exact(fd, run, len, b[i].block_id << shift);
		if (r < 0) {
			ret = r == -EIO ? 0 : r;         /* shorter than recorded: changed */
			break;
		}
		for (uint64_t pos = 0; i < j; pos += b[i++].raw_len) {
			int n = yolo_image_read_block(img, &b[i], blk, bs, YOLO_READ_VERIFY);
			if (n < 0) {
				ret = n;
				break;
			}
			if (memcmp(blk, run + pos, b[i].raw_len)) {
				ret = 0;
				break;
			}
		}
	}
out:
	free(run);
	free(blk);
	return ret;
}
