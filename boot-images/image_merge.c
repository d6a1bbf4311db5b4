/* image_merge.c - merges boot images of the same source (for boots that
 * read slightly different blocks each time) into one: the union of their
 * blocks, keeping the first image's first-access order and appending each
 * further image's new blocks in its own order. */
#include <errno.h>
#include <stdlib.h>

#include "image_i.h"

/* Add every file of `img` to the writer (or match an existing one) and
 * record the writer's id for each in `map`. */
static int merge_files(struct yolo_writer *w, const struct yolo_image *img, uint32_t *map,
		       struct yolo_err *err)
{
	for (uint32_t i = 0; i < img->info.file_count; i++) {
		const struct yolo_file *f = &img->files[i];
		uint32_t id;
		if (yolo_writer_find_file(w, f->path, &id) == 0) {
			map[i] = id;     /* identity checked by the caller */
			continue;
		}
		int ret = yolo_writer_add_file(w, f->path, &f->ident, &id, err);
		if (ret < 0)
			return ret;
		map[i] = id;
	}
	return 0;
}

/* Identity of `path` as recorded by the earliest image that has it. */
static const struct yolo_file *first_ident(struct yolo_image *const *in, size_t upto,
					   const char *path)
{
	for (size_t k = 0; k < upto; k++) {
		uint32_t id;
		if (yolo_image_find_file(in[k], path, &id) == 0)
			return yolo_image_file(in[k], id);
	}
	return NULL;
}

int yolo_image_merge(const char *out, struct yolo_image *const *in, size_t n,
		     const struct yolo_writer_opts *opts, struct yolo_err *err)
{
	if (n == 0)
		return yolo_fail(err, -EINVAL, "nothing to merge");
	uint32_t bs = in[0]->info.block_size;
	for (size_t k = 1; k < n; k++) {
		if (in[k]->info.block_size != bs)
			return yolo_fail(err, -EINVAL, "%s: block size %u differs from %s's %u",
					 in[k]->name, in[k]->info.block_size, in[0]->name, bs);
		for (uint32_t i = 0; i < in[k]->info.file_count; i++) {
			const struct yolo_file *f = &in[k]->files[i];
			const struct yolo_file *g = first_ident(in, k, f->path);
			/* Inode numbers may differ between machines; size and mtime may not. */
			if (g && (g->ident.size != f->ident.size || g->ident.mtime_ns != f->ident.mtime_ns))
				return yolo_fail(err, -EINVAL, "%s: \"%s\" has a different size or mtime than in %s; images are not of the same source",
						 in[k]->name, f->path, in[0]->name);
		}
	}
	struct yolo_writer_opts wo = opts ? *opts : (struct yolo_writer_opts){ 0 };
	wo.block_size = bs;
	wo.compat |= YOLO_COMPAT_MERGED;
	struct yolo_writer *w;
	int ret = yolo_writer_create(&w, out, &wo, err);
	if (ret < 0)
		return ret;
	uint8_t *buf = malloc(bs);
	uint32_t *map = NULL;
	if (!buf) {
		ret = yolo_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t k = 0; k < n; k++) {
		const struct yolo_image *img = in[k];
		free(map);
		map = malloc((img->info.file_count + 1) * sizeof(*map));
		if (!map) {
			ret = yolo_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		if ((ret = merge_files(w, img, map, err)) < 0)
			goto fail;
		for (uint64_t s = 0; s < img->info.block_count; s++) {
			const struct yolo_block *b = yolo_image_block_by_seq(img, s);
			uint32_t fid = map[b->file_id];
			const char *path = img->files[b->file_id].path;
			if (yolo_writer_has_block(w, fid, b->block_id)) {
				/* Present already: the images must agree on its bytes. */
				const struct yolo_block *prev = NULL;
				for (size_t j = 0; j < k && !prev; j++) {
					uint32_t id;
					if (yolo_image_find_file(in[j], path, &id) == 0)
						prev = yolo_image_lookup(in[j], id, b->block_id);
				}
				if (prev && prev->checksum != b->checksum) {
					ret = yolo_fail(err, -EINVAL, "%s: block %llu of \"%s\" differs from an earlier image's",
							img->name, (unsigned long long)b->block_id, path);
					goto fail;
				}
				continue;
			}
			ret = yolo_image_read_block(img, b, buf, bs, YOLO_READ_VERIFY);
			if (ret < 0) {
				yolo_fail(err, ret, "%s: block %llu of \"%s\": %s", img->name,
					  (unsigned long long)b->block_id, path,
					  ret == -EUCLEAN ? "data does not match its checksum" : strerror(-ret));
				goto fail;
			}
			if ((ret = yolo_writer_add_block(w, fid, b->block_id, buf, b->raw_len, err)) < 0)
				goto fail;
		}
	}
	/* The namespace questions of every image, unioned. */
	for (size_t k = 0; k < n; k++)
		if ((ret = yolo_writer_add_ns_table(w, &in[k]->ns, in[k]->name, err)) < 0)
			goto fail;
	free(buf);
	free(map);
	return yolo_writer_commit(w, err);
fail:
	free(buf);
	free(map);
	yolo_writer_discard(w);
	return ret;
}
