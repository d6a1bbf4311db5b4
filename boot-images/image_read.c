/* image_read.c - opens and validates boot images, looks blocks up, reads
 * them, and loads the data section into one (optionally pinned) buffer.
 *
 * The image is hostile until validated: every count is capped before any
 * allocation, every section and block range is checked against the file
 * size with overflow-safe arithmetic, and corruption returns -EUCLEAN with
 * a message naming the field.  After open the in-memory tables are
 * immutable, which is what makes lookups lock-free. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "image_i.h"

#define LOAD_CHUNK (8u << 20)

/* Where the image bytes come from during validation. */
struct src {
	int fd;
	const uint8_t *mem;
	uint64_t size;
};

static int src_read(const struct src *s, void *buf, uint64_t len, uint64_t off)
{
	if (len == 0)
		return 0;
	if (s->mem) {
		memcpy(buf, s->mem + off, len);
		return 0;
	}
	return yolo_pread_exact(s->fd, buf, len, off);
}

#define CORRUPT(img, err, ...) \
	yolo_fail(err, -EUCLEAN, "%s: " __VA_ARGS__)

/* A validated path, escaped for a message (needs `char pbuf[256]` in scope). */
#define P(path) yolo_printable(path, strlen(path), pbuf, sizeof(pbuf))

struct section {
	const char *name;
	uint64_t off, size;
};

static int check_sections(const char *name, const struct section *sec, int n, uint64_t file_size,
			  struct yolo_err *err)
{
	for (int i = 0; i < n; i++) {
		if (sec[i].off < YOLO_HEADER_SIZE && sec[i].size)
			return CORRUPT(img, err, "%s section at offset %llu overlaps the header",
				       name, sec[i].name, (unsigned long long)sec[i].off);
		if (sec[i].off > file_size || sec[i].size > file_size - sec[i].off)
			return CORRUPT(img, err, "%s section (offset %llu, %llu bytes) extends past the end of the file (%llu bytes); truncated?",
				       name, sec[i].name, (unsigned long long)sec[i].off,
				       (unsigned long long)sec[i].size, (unsigned long long)file_size);
	}
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			if (!sec[i].size || !sec[j].size)
				continue;
			if (sec[i].off < sec[j].off + sec[j].size && sec[j].off < sec[i].off + sec[i].size)
				return CORRUPT(img, err, "%s and %s sections overlap", name,
					       sec[i].name, sec[j].name);
		}
	return 0;
}

static int parse_header(struct yolo_image *img, const struct yolo_disk_header *d,
			struct yolo_err *err)
{
	const char *name = img->name;
	struct yolo_image_info *in = &img->info;
	if (memcmp(d->magic, YOLO_MAGIC, YOLO_MAGIC_LEN))
		return CORRUPT(img, err, "not a YOLO boot image (bad magic)", name);
	uint32_t version = get_le32(&d->version);
	if (version != YOLO_FORMAT_VERSION)
		return yolo_fail(err, -EOPNOTSUPP, "%s: format version %u is not supported (this build reads version %u)",
				 name, version, YOLO_FORMAT_VERSION);
	if (get_le32(&d->header_size) != YOLO_HEADER_SIZE)
		return CORRUPT(img, err, "header size %u, expected %u", name,
			       get_le32(&d->header_size), YOLO_HEADER_SIZE);
	if (get_hash(d->header_checksum) != yolo_header_hash(d))
		return CORRUPT(img, err, "header checksum mismatch", name);
	in->compat = get_le32(&d->compat);
	in->incompat = get_le32(&d->incompat);
	if (in->incompat & ~YOLO_INCOMPAT_KNOWN)
		return yolo_fail(err, -EOPNOTSUPP, "%s: unsupported incompatible features 0x%x",
				 name, in->incompat & ~YOLO_INCOMPAT_KNOWN);
	in->block_shift = get_le32(&d->block_shift);
	if (in->block_shift < YOLO_BLOCK_SHIFT_MIN || in->block_shift > YOLO_BLOCK_SHIFT_MAX)
		return CORRUPT(img, err, "block size 2^%u out of range 512..1 MiB", name, in->block_shift);
	in->block_size = 1u << in->block_shift;
	for (size_t i = 0; i < sizeof(d->reserved); i++)
		if (d->reserved[i])
			return CORRUPT(img, err, "reserved header byte %zu is not zero", name, i);
	img->ext_off = get_le64(&d->ext_off);
	img->ext_count = get_le32(&d->ext_count);
	img->ext_checksum = get_hash(d->ext_checksum);
	if (get_le32(&d->ext_reserved))
		return CORRUPT(img, err, "reserved extension field is not zero", name);
	if (!(in->compat & YOLO_COMPAT_EXT) && (img->ext_off || img->ext_count))
		return CORRUPT(img, err, "extension table without the feature flag", name);
	if ((in->compat & YOLO_COMPAT_EXT) && (!img->ext_count || img->ext_count > YOLO_MAX_EXT))
		return CORRUPT(img, err, "extension table of %u entries (1..%u)", name,
			       img->ext_count, YOLO_MAX_EXT);
	in->file_count = get_le32(&d->file_count);
	in->block_count = get_le64(&d->block_count);
	if (in->file_count > YOLO_MAX_FILES)
		return CORRUPT(img, err, "file count %u exceeds the limit %u", name,
			       in->file_count, YOLO_MAX_FILES);
	if (in->block_count > YOLO_MAX_BLOCKS)
		return CORRUPT(img, err, "block count %llu exceeds the limit %u", name,
			       (unsigned long long)in->block_count, YOLO_MAX_BLOCKS);
	in->data_off = get_le64(&d->data_off);
	in->data_size = get_le64(&d->data_size);
	in->raw_bytes = get_le64(&d->raw_bytes);
	in->created_ns = get_le64(&d->created_ns);
	uint64_t ft_size = get_le64(&d->file_table_size);
	uint64_t str_size = get_le64(&d->strings_size);
	uint64_t idx_size = get_le64(&d->index_size);
	if (ft_size != (uint64_t)in->file_count * sizeof(struct yolo_disk_file))
		return CORRUPT(img, err, "file table size %llu does not match %u files", name,
			       (unsigned long long)ft_size, in->file_count);
	if (idx_size != in->block_count * sizeof(struct yolo_disk_block))
		return CORRUPT(img, err, "block index size %llu does not match %llu blocks", name,
			       (unsigned long long)idx_size, (unsigned long long)in->block_count);
	if (str_size > (uint64_t)in->file_count * YOLO_MAX_PATH)
		return CORRUPT(img, err, "string table size %llu too large for %u files", name,
			       (unsigned long long)str_size, in->file_count);
	struct section sec[] = {
		{ "data", in->data_off, in->data_size },
		{ "file table", get_le64(&d->file_table_off), ft_size },
		{ "string table", get_le64(&d->strings_off), str_size },
		{ "block index", get_le64(&d->index_off), idx_size },
		{ "extension table", img->ext_off, (uint64_t)img->ext_count * sizeof(struct yolo_disk_ext) },
	};
	return check_sections(name, sec, 5, in->image_size, err);
}

/* The extension table and sections: every section within the file, clear
 * of the others and of the core sections, its checksum right; a required
 * type this reader does not know refuses the image.  Known types are
 * parsed. */
static int parse_extensions(struct yolo_image *img, const struct src *s,
			    const struct section *core, struct yolo_err *err)
{
	const char *name = img->name;
	uint32_t n = img->ext_count;
	if (!n)
		return 0;
	struct yolo_disk_ext tab[YOLO_MAX_EXT];
	int ret = src_read(s, tab, (uint64_t)n * sizeof(tab[0]), img->ext_off);
	if (ret < 0)
		return yolo_fail(err, ret, "%s: reading the extension table: %s", name, strerror(-ret));
	if (XXH3_64bits(tab, (uint64_t)n * sizeof(tab[0])) != img->ext_checksum)
		return CORRUPT(img, err, "extension table checksum mismatch", name);
	struct section sec[5 + YOLO_MAX_EXT];
	memcpy(sec, core, 5 * sizeof(sec[0]));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t type = get_le32(&tab[i].type), flags = get_le32(&tab[i].flags);
		if (flags & ~YOLO_EXTF_REQUIRED)
			return CORRUPT(img, err, "extension %u: unknown flags 0x%x", name, i, flags);
		for (uint32_t j = 0; j < i; j++)
			if (get_le32(&tab[j].type) == type)
				return CORRUPT(img, err, "extension type %u listed twice", name, type);
		if (type != YOLO_EXT_FILE_TIMES && type != YOLO_EXT_NAMESPACE &&
		    (flags & YOLO_EXTF_REQUIRED))
			return yolo_fail(err, -EOPNOTSUPP, "%s: needs extension type %u, which this build does not read",
					 name, type);
		sec[5 + i] = (struct section){ "extension", get_le64(&tab[i].off), get_le64(&tab[i].size) };
	}
	if ((ret = check_sections(name, sec, 5 + (int)n, img->info.image_size, err)) < 0)
		return ret;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t type = get_le32(&tab[i].type);
		if (type != YOLO_EXT_FILE_TIMES && type != YOLO_EXT_NAMESPACE)
			continue;                /* not ours: skipped */
		uint64_t off = sec[5 + i].off, size = sec[5 + i].size;
		if (type == YOLO_EXT_NAMESPACE) {
			uint8_t *buf = malloc(size + 1);
			if (!buf)
				return yolo_fail(err, -ENOMEM, "%s: out of memory", name);
			if ((ret = src_read(s, buf, size, off)) < 0) {
				free(buf);
				return yolo_fail(err, ret, "%s: reading the namespace section: %s", name,
						 strerror(-ret));
			}
			if (XXH3_64bits(buf, size) != get_hash(tab[i].checksum))
				ret = CORRUPT(img, err, "namespace section checksum mismatch", name);
			else
				ret = yolo_ns_parse(&img->ns, buf, size, name, err);
			free(buf);
			if (ret < 0)
				return ret;
			continue;
		}
		if (size != (uint64_t)img->info.file_count * sizeof(struct yolo_disk_file_times))
			return CORRUPT(img, err, "file times section of %llu bytes for %u files", name,
				       (unsigned long long)size, img->info.file_count);
		uint8_t *buf = malloc(size + 1);
		if (!buf)
			return yolo_fail(err, -ENOMEM, "%s: out of memory", name);
		if ((ret = src_read(s, buf, size, off)) < 0) {
			free(buf);
			return yolo_fail(err, ret, "%s: reading file times: %s", name, strerror(-ret));
		}
		if (XXH3_64bits(buf, size) != get_hash(tab[i].checksum)) {
			free(buf);
			return CORRUPT(img, err, "file times section checksum mismatch", name);
		}
		for (uint32_t f = 0; f < img->info.file_count; f++) {
			const struct yolo_disk_file_times *t = (const void *)(buf + (uint64_t)f * sizeof(*t));
			if (get_le64(&t->reserved)) {
				free(buf);
				return CORRUPT(img, err, "file %u: reserved time field is not zero", name, f);
			}
			img->files[f].ident.ctime_ns = (int64_t)get_le64(&t->ctime_ns);
		}
		free(buf);
	}
	return 0;
}

static int cmp_path_ids(const void *a, const void *b, void *arg)
{
	const struct yolo_file *files = arg;
	return strcmp(files[*(const uint32_t *)a].path, files[*(const uint32_t *)b].path);
}

static int parse_files(struct yolo_image *img, const uint8_t *ft, const uint8_t *strs,
		       uint64_t str_size, struct yolo_err *err)
{
	const char *name = img->name;
	uint32_t n = img->info.file_count;
	img->files = calloc(n ? n : 1, sizeof(*img->files));
	img->files_by_path = calloc(n ? n : 1, sizeof(uint32_t));
	img->paths = malloc(str_size + n + 1);
	if (!img->files || !img->files_by_path || !img->paths)
		return yolo_fail(err, -ENOMEM, "%s: out of memory", name);
	char *pp = img->paths;
	char pbuf[256];
	uint64_t next_block = 0, str_pos = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct yolo_disk_file *d = (const void *)(ft + (uint64_t)i * sizeof(*d));
		struct yolo_file *f = &img->files[i];
		uint64_t poff = get_le64(&d->path_off);
		uint32_t plen = get_le32(&d->path_len);
		/* Paths are packed in file order, so each string byte belongs to
		 * one path and the copies below fit the buffer. */
		if (poff != str_pos || plen > str_size - str_pos)
			return CORRUPT(img, err, "file %u: path (offset %llu, %u bytes) is not the next string in the string table",
				       name, i, (unsigned long long)poff, plen);
		str_pos += plen;
		if (!yolo_path_is_safe((const char *)strs + poff, plen))
			return CORRUPT(img, err, "file %u: unsafe path \"%s\" (absolute, empty, \".\" or \"..\" component)",
				       name, i, yolo_printable((const char *)strs + poff, plen, pbuf, sizeof(pbuf)));
		memcpy(pp, strs + poff, plen);
		pp[plen] = '\0';
		f->path = pp;
		pp += plen + 1;
		f->ident.size = get_le64(&d->size);
		f->ident.mtime_ns = (int64_t)get_le64(&d->mtime_ns);
		f->ident.ino = get_le64(&d->ino);
		f->ident.ctime_ns = YOLO_CTIME_UNKNOWN;          /* unless a file times section says */
		f->ident.dev = get_le64(&d->dev);
		f->fingerprint = get_hash(d->fingerprint);
		f->first_block = get_le64(&d->first_block);
		f->block_count = get_le32(&d->block_count);
		/* Files own consecutive, contiguous ranges of the index. */
		if (f->first_block != next_block || f->block_count > img->info.block_count - next_block)
			return CORRUPT(img, err, "file %u (%s): block range %llu+%u does not follow the previous file's",
				       name, i, P(f->path), (unsigned long long)f->first_block, f->block_count);
		next_block += f->block_count;
		img->files_by_path[i] = i;
	}
	if (str_pos != str_size)
		return CORRUPT(img, err, "string table has %llu bytes, paths use %llu", name,
			       (unsigned long long)str_size, (unsigned long long)str_pos);
	if (next_block != img->info.block_count)
		return CORRUPT(img, err, "files cover %llu of %llu index entries", name,
			       (unsigned long long)next_block, (unsigned long long)img->info.block_count);
	qsort_r(img->files_by_path, n, sizeof(uint32_t), cmp_path_ids, img->files);
	for (uint32_t i = 1; i < n; i++)
		if (!strcmp(img->files[img->files_by_path[i]].path, img->files[img->files_by_path[i - 1]].path))
			return CORRUPT(img, err, "path \"%s\" appears twice in the file table", name,
				       P(img->files[img->files_by_path[i]].path));
	return 0;
}

static int parse_blocks(struct yolo_image *img, const uint8_t *idx, struct yolo_err *err)
{
	const char *name = img->name;
	const struct yolo_image_info *in = &img->info;
	uint64_t n = in->block_count;
	uint64_t raw_total = 0;
	img->blocks = calloc(n ? n : 1, sizeof(*img->blocks));
	img->by_seq = malloc((n ? n : 1) * sizeof(uint32_t));
	if (!img->blocks || !img->by_seq)
		return yolo_fail(err, -ENOMEM, "%s: out of memory", name);
	memset(img->by_seq, 0xff, (n ? n : 1) * sizeof(uint32_t));
	uint64_t max_stored = ZSTD_compressBound(in->block_size);
	char pbuf[256];
	uint32_t fid = 0;
	for (uint64_t i = 0; i < n; i++) {
		const struct yolo_disk_block *d = (const void *)(idx + i * sizeof(*d));
		struct yolo_block *b = &img->blocks[i];
		b->block_id = get_le64(&d->block_id);
		b->data_off = get_le64(&d->data_off);
		b->checksum = get_hash(d->checksum);
		b->file_id = get_le32(&d->file_id);
		b->seq = get_le32(&d->seq);
		b->stored_len = get_le32(&d->stored_len);
		b->raw_len = get_le32(&d->raw_len);
		b->flags = get_le16(&d->flags);
		while (fid < in->file_count &&
		       i >= img->files[fid].first_block + img->files[fid].block_count)
			fid++;
		if (b->file_id != fid)
			return CORRUPT(img, err, "block %llu: file id %u, but it lies in file %u's range",
				       name, (unsigned long long)i, b->file_id, fid);
		const struct yolo_file *f = &img->files[fid];
		if (i > f->first_block && b->block_id <= img->blocks[i - 1].block_id)
			return CORRUPT(img, err, "block index not sorted at entry %llu (%s)", name,
				       (unsigned long long)i, P(f->path));
		if (get_le16(&d->reserved16) || get_le32(&d->reserved32))
			return CORRUPT(img, err, "block %llu: reserved fields not zero", name,
				       (unsigned long long)i);
		if (b->flags & ~YOLO_BLOCK_FLAGS_KNOWN || b->flags == (YOLO_BLOCK_ZERO | YOLO_BLOCK_ZSTD))
			return CORRUPT(img, err, "block %llu: bad flags 0x%x", name,
				       (unsigned long long)i, b->flags);
		if (f->ident.size == 0 || b->block_id > (f->ident.size - 1) >> in->block_shift)
			return CORRUPT(img, err, "%s block %llu: past the end of the file (%llu bytes)",
				       name, P(f->path), (unsigned long long)b->block_id,
				       (unsigned long long)f->ident.size);
		uint64_t left = f->ident.size - (b->block_id << in->block_shift);
		uint64_t expect = left < in->block_size ? left : in->block_size;
		if (b->raw_len != expect)
			return CORRUPT(img, err, "%s block %llu: length %u, expected %llu", name, P(f->path),
				       (unsigned long long)b->block_id, b->raw_len,
				       (unsigned long long)expect);
		if (b->flags & YOLO_BLOCK_ZERO) {
			if (b->stored_len || b->data_off)
				return CORRUPT(img, err, "%s block %llu: zero block with stored data", name,
					       P(f->path), (unsigned long long)b->block_id);
		} else if (b->flags & YOLO_BLOCK_ZSTD) {
			if (!(in->incompat & YOLO_INCOMPAT_ZSTD) || !b->stored_len || b->stored_len > max_stored)
				return CORRUPT(img, err, "%s block %llu: bad compressed block (%u bytes)", name,
					       P(f->path), (unsigned long long)b->block_id, b->stored_len);
		} else if (b->stored_len != b->raw_len) {
			return CORRUPT(img, err, "%s block %llu: stored length %u differs from length %u",
				       name, P(f->path), (unsigned long long)b->block_id, b->stored_len, b->raw_len);
		}
		if (b->data_off > in->data_size || b->stored_len > in->data_size - b->data_off)
			return CORRUPT(img, err, "%s block %llu: data (offset %llu, %u bytes) past the data section (%llu bytes)",
				       name, P(f->path), (unsigned long long)b->block_id,
				       (unsigned long long)b->data_off, b->stored_len,
				       (unsigned long long)in->data_size);
		if (b->seq >= n || img->by_seq[b->seq] != UINT32_MAX)
			return CORRUPT(img, err, "block %llu: access rank %u is out of range or repeated",
				       name, (unsigned long long)i, b->seq);
		img->by_seq[b->seq] = (uint32_t)i;
		raw_total += b->raw_len;
	}
	/* Data is laid out in first-access order: stored ranges must follow
	 * each other in rank order without overlapping. */
	uint64_t end = 0;
	for (uint64_t s = 0; s < n; s++) {
		const struct yolo_block *b = &img->blocks[img->by_seq[s]];
		if (!b->stored_len)
			continue;
		if (b->data_off < end)
			return CORRUPT(img, err, "block with access rank %llu: data overlaps the previous block's or is out of access order",
				       name, (unsigned long long)s);
		end = b->data_off + b->stored_len;
	}
	if (raw_total != in->raw_bytes)
		return CORRUPT(img, err, "header says %llu raw bytes, blocks add up to %llu", name,
			       (unsigned long long)in->raw_bytes, (unsigned long long)raw_total);
	return 0;
}

/* XXH3-64 over the file table and strings followed by the index. */
static uint64_t meta_hash(const uint8_t *tables, uint64_t tables_len, const uint8_t *idx,
			  uint64_t idx_len)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, tables, tables_len);
	XXH3_64bits_update(st, idx, idx_len);
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

static int open_src(struct yolo_image *img, const struct src *s, struct yolo_err *err)
{
	struct yolo_disk_header d;
	img->info.image_size = s->size;
	if (s->size < YOLO_HEADER_SIZE)
		return CORRUPT(img, err, "truncated header (%llu bytes)", img->name,
			       (unsigned long long)s->size);
	int ret = src_read(s, &d, sizeof(d), 0);
	if (ret < 0)
		return yolo_fail(err, ret, "%s: reading header: %s", img->name, strerror(-ret));
	ret = parse_header(img, &d, err);
	if (ret < 0)
		return ret;
	uint64_t ft_off = get_le64(&d.file_table_off), ft_size = get_le64(&d.file_table_size);
	uint64_t str_off = get_le64(&d.strings_off), str_size = get_le64(&d.strings_size);
	uint64_t idx_off = get_le64(&d.index_off), idx_size = get_le64(&d.index_size);
	/* Sizes are bounded by the file size now, so these allocations are too. */
	/* The index starts 8-aligned in this buffer so its entries can be
	 * addressed as structs. */
	uint64_t idx_pos = (ft_size + str_size + 7) & ~7ull;
	uint8_t *meta = malloc(idx_pos + idx_size + 1);
	if (!meta)
		return yolo_fail(err, -ENOMEM, "%s: out of memory", img->name);
	uint8_t *ft = meta, *strs = meta + ft_size, *idx = meta + idx_pos;
	if ((ret = src_read(s, ft, ft_size, ft_off)) < 0 ||
	    (ret = src_read(s, strs, str_size, str_off)) < 0 ||
	    (ret = src_read(s, idx, idx_size, idx_off)) < 0) {
		free(meta);
		return yolo_fail(err, ret, "%s: reading tables: %s", img->name, strerror(-ret));
	}
	if (meta_hash(meta, ft_size + str_size, idx, idx_size) != get_hash(d.meta_checksum)) {
		free(meta);
		return CORRUPT(img, err, "metadata checksum mismatch (file table, strings or index corrupt)",
			       img->name);
	}
	ret = parse_files(img, ft, strs, str_size, err);
	if (ret == 0)
		ret = parse_blocks(img, idx, err);
	free(meta);
	const struct section core[] = {
		{ "data", img->info.data_off, img->info.data_size },
		{ "file table", ft_off, ft_size },
		{ "string table", str_off, str_size },
		{ "block index", idx_off, idx_size },
		{ "extension table", img->ext_off, (uint64_t)img->ext_count * sizeof(struct yolo_disk_ext) },
	};
	if (ret == 0)
		ret = parse_extensions(img, s, core, err);
	return ret;
}

static struct yolo_image *image_new(const char *name)
{
	struct yolo_image *img = calloc(1, sizeof(*img));
	if (!img)
		return NULL;
	img->fd = -1;
	img->name = strdup(name ? name : "(image)");
	if (!img->name) {
		free(img);
		return NULL;
	}
	return img;
}

int yolo_image_open_fd(int fd, const char *name, struct yolo_image **out, struct yolo_err *err)
{
	struct yolo_image *img = image_new(name);
	if (!img)
		return yolo_fail(err, -ENOMEM, "out of memory");
	struct stat st;
	int ret;
	img->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (img->fd < 0 || fstat(img->fd, &st) < 0) {
		ret = -errno;
		yolo_fail(err, ret, "%s: %s", img->name, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = yolo_fail(err, -EINVAL, "%s: not a regular file", img->name);
		goto fail;
	}
	struct src s = { .fd = img->fd, .size = (uint64_t)st.st_size };
	ret = open_src(img, &s, err);
	if (ret < 0)
		goto fail;
	*out = img;
	return 0;
fail:
	yolo_image_close(img);
	return ret;
}

int yolo_image_open(const char *path, struct yolo_image **out, struct yolo_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return yolo_fail(err, -errno, "%s: %s", path, strerror(errno));
	int ret = yolo_image_open_fd(fd, path, out, err);
	close(fd);
	return ret;
}

int yolo_image_open_mem(const void *buf, size_t len, struct yolo_image **out,
			struct yolo_err *err)
{
	struct yolo_image *img = image_new("(memory)");
	if (!img)
		return yolo_fail(err, -ENOMEM, "out of memory");
	img->mem = buf;
	struct src s = { .fd = -1, .mem = buf, .size = len };
	int ret = open_src(img, &s, err);
	if (ret < 0) {
		yolo_image_close(img);
		return ret;
	}
	*out = img;
	return 0;
}

void yolo_image_close(struct yolo_image *img)
{
	if (!img)
		return;
	yolo_image_unload(img);
	if (img->fd >= 0)
		close(img->fd);
	free(img->files);
	free(img->files_by_path);
	free(img->paths);
	free(img->blocks);
	free(img->by_seq);
	yolo_ns_table_free(&img->ns);
	free(img->name);
	free(img);
}

const struct yolo_image_info *yolo_image_info(const struct yolo_image *img)
{
	return &img->info;
}

const char *yolo_image_name(const struct yolo_image *img)
{
	return img->name;
}

const struct yolo_file *yolo_image_file(const struct yolo_image *img, uint32_t id)
{
	return id < img->info.file_count ? &img->files[id] : NULL;
}

int yolo_image_find_file(const struct yolo_image *img, const char *relpath, uint32_t *id)
{
	uint32_t lo = 0, hi = img->info.file_count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint32_t fid = img->files_by_path[mid];
		int c = strcmp(img->files[fid].path, relpath);
		if (c == 0) {
			*id = fid;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

const struct yolo_block *yolo_image_lookup(const struct yolo_image *img, uint32_t file_id,
					   uint64_t block_id)
{
	if (file_id >= img->info.file_count)
		return NULL;
	const struct yolo_file *f = &img->files[file_id];
	const struct yolo_block *base = img->blocks + f->first_block;
	uint32_t lo = 0, hi = f->block_count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (base[mid].block_id == block_id)
			return &base[mid];
		if (base[mid].block_id < block_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct yolo_block *yolo_image_block(const struct yolo_image *img, uint64_t i)
{
	return i < img->info.block_count ? &img->blocks[i] : NULL;
}

const struct yolo_block *yolo_image_block_by_seq(const struct yolo_image *img, uint64_t seq)
{
	return seq < img->info.block_count ? &img->blocks[img->by_seq[seq]] : NULL;
}

/* Per-thread zstd context and staging buffer, freed at thread exit. */
struct read_tls {
	ZSTD_DCtx *dctx;
	uint8_t *stage;
	size_t stage_size;
};
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
	struct read_tls *t = p;
	ZSTD_freeDCtx(t->dctx);
	free(t->stage);
	free(t);
}

static void tls_init(void)
{
	pthread_key_create(&tls_key, tls_free);
}

static struct read_tls *get_tls(size_t stage_size)
{
	pthread_once(&tls_once, tls_init);
	struct read_tls *t = pthread_getspecific(tls_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		t->dctx = ZSTD_createDCtx();
		if (!t->dctx || pthread_setspecific(tls_key, t)) {
			tls_free(t);
			return NULL;
		}
	}
	if (t->stage_size < stage_size) {
		uint8_t *p = realloc(t->stage, stage_size);
		if (!p)
			return NULL;
		t->stage = p;
		t->stage_size = stage_size;
	}
	return t;
}

int yolo_image_read_data(const struct yolo_image *img, uint64_t data_off, size_t len, void *buf)
{
	if (data_off > img->info.data_size || len > img->info.data_size - data_off)
		return -EINVAL;
	if (img->data) {
		memcpy(buf, img->data + data_off, len);
		return 0;
	}
	if (img->mem) {
		memcpy(buf, img->mem + img->info.data_off + data_off, len);
		return 0;
	}
	return yolo_pread_exact(img->fd, buf, len, img->info.data_off + data_off);
}

const void *yolo_image_block_mem(const struct yolo_image *img, const struct yolo_block *b)
{
	if (b->flags & (YOLO_BLOCK_ZERO | YOLO_BLOCK_ZSTD))
		return NULL;
	if (img->data)
		return img->data + b->data_off;
	if (img->mem)
		return img->mem + img->info.data_off + b->data_off;
	return NULL;
}

int yolo_block_decode(const struct yolo_block *b, const void *stored, void *buf, size_t buflen)
{
	if (buflen < b->raw_len)
		return -EINVAL;
	if (b->flags & YOLO_BLOCK_ZERO) {
		memset(buf, 0, b->raw_len);
		return (int)b->raw_len;
	}
	if (!(b->flags & YOLO_BLOCK_ZSTD)) {
		memcpy(buf, stored, b->raw_len);
		return (int)b->raw_len;
	}
	struct read_tls *t = get_tls(0);
	if (!t)
		return -ENOMEM;
	size_t n = ZSTD_decompressDCtx(t->dctx, buf, b->raw_len, stored, b->stored_len);
	if (ZSTD_isError(n) || n != b->raw_len)
		return -EUCLEAN;
	return (int)b->raw_len;
}

int yolo_image_read_block(const struct yolo_image *img, const struct yolo_block *b,
			  void *buf, size_t buflen, unsigned flags)
{
	if (buflen < b->raw_len)
		return -EINVAL;
	if (b->flags & YOLO_BLOCK_ZERO) {
		memset(buf, 0, b->raw_len);
	} else {
		const uint8_t *stored = NULL;
		if (img->data)
			stored = img->data + b->data_off;
		else if (img->mem)
			stored = img->mem + img->info.data_off + b->data_off;
		if (!(b->flags & YOLO_BLOCK_ZSTD)) {
			if (stored)
				memcpy(buf, stored, b->raw_len);
			else {
				int ret = yolo_pread_exact(img->fd, buf, b->raw_len,
							  img->info.data_off + b->data_off);
				if (ret < 0)
					return ret;
			}
		} else {
			struct read_tls *t = get_tls(stored ? 0 : b->stored_len);
			if (!t)
				return -ENOMEM;
			if (!stored) {
				int ret = yolo_pread_exact(img->fd, t->stage, b->stored_len,
							  img->info.data_off + b->data_off);
				if (ret < 0)
					return ret;
				stored = t->stage;
			}
			size_t n = ZSTD_decompressDCtx(t->dctx, buf, b->raw_len, stored, b->stored_len);
			if (ZSTD_isError(n) || n != b->raw_len)
				return -EUCLEAN;
		}
	}
	if ((flags & YOLO_READ_VERIFY) && !yolo_block_check(b, buf))
		return -EUCLEAN;
	return (int)b->raw_len;
}

/* O_DIRECT reads of a data section, LOAD_READERS at a time: one request
 * at a time leaves a virtual or NVMe disk mostly idle (measured on the
 * development VM: 0.8-1.1 GB/s with one, 1.7-2.4 GB/s with four 8 MiB
 * requests in flight, for the same 259 MiB image). */
#define LOAD_READERS 4

struct direct_load {
	int fd;
	uint8_t *buf;
	uint64_t base, len;
	atomic_uint_fast64_t next;       /* offset of the next chunk to claim */
	atomic_bool failed;
};

static void *direct_reader(void *arg)
{
	struct direct_load *d = arg;
	for (;;) {
		uint64_t off = atomic_fetch_add(&d->next, LOAD_CHUNK);
		if (off >= d->len || atomic_load(&d->failed))
			return NULL;
		uint64_t need = d->len - off < LOAD_CHUNK ? d->len - off : LOAD_CHUNK, got = 0;
		while (got < need) {
			/* O_DIRECT lengths must be aligned; the tail may read into the tables. */
			uint64_t want = (need - got + 4095) & ~4095ull;
			ssize_t n = pread(d->fd, d->buf + off + got, want, (off_t)(d->base + off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				atomic_store(&d->failed, true);      /* buffered reads take over */
				return NULL;
			}
			got += (uint64_t)n;
		}
	}
}

/* Read [data_off, data_off+len) into buf; O_DIRECT when the geometry allows
 * so the image does not also occupy the page cache.  buf has room for an
 * aligned tail. */
static int load_read(struct yolo_image *img, uint8_t *buf, uint64_t len, bool *direct)
{
	*direct = false;
	if (img->info.data_off % 4096 == 0) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", img->fd);
		struct direct_load d = { .buf = buf, .base = img->info.data_off, .len = len };
		d.fd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (d.fd >= 0) {
			pthread_t t[LOAD_READERS];
			int started = 0;
			while (started < LOAD_READERS && (uint64_t)started * LOAD_CHUNK < len &&
			       pthread_create(&t[started], NULL, direct_reader, &d) == 0)
				started++;
			if (!started)
				direct_reader(&d);
			for (int i = 0; i < started; i++)
				pthread_join(t[i], NULL);
			close(d.fd);
			if (!atomic_load(&d.failed)) {
				*direct = true;
				return 0;
			}
		}
	}
	for (uint64_t done = 0; done < len; done += LOAD_CHUNK) {
		uint64_t want = len - done < LOAD_CHUNK ? len - done : LOAD_CHUNK;
		int ret = yolo_pread_exact(img->fd, buf + done, want, img->info.data_off + done);
		if (ret < 0)
			return ret;
	}
	posix_fadvise(img->fd, (off_t)img->info.data_off, (off_t)len, POSIX_FADV_DONTNEED);
	return 0;
}

void *yolo_image_read_data_section(const struct yolo_image *img, size_t *map_len,
				   struct yolo_load_result *res, struct yolo_err *err)
{
	struct yolo_load_result r = { 0 };
	uint64_t len = img->info.data_size, t0 = yolo_now_ns();
	*map_len = 0;
	if (res)
		*res = r;
	if (img->fd < 0 || len == 0) {
		yolo_fail(err, -EINVAL, "%s: no data section to read", img->name);
		return NULL;
	}
	/* Rounded up to whole pages plus one so an aligned O_DIRECT tail fits. */
	size_t ml = (size_t)((len + 4095) & ~4095ull) + 4096;
	uint8_t *buf = mmap(NULL, ml, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		yolo_fail(err, -errno, "%s: cannot allocate %llu bytes: %s", img->name,
			  (unsigned long long)len, strerror(errno));
		return NULL;
	}
	int ret = load_read((struct yolo_image *)img, buf, len, &r.direct);
	if (ret < 0) {
		munmap(buf, ml);
		yolo_fail(err, ret, "%s: reading data section: %s", img->name, strerror(-ret));
		return NULL;
	}
	r.bytes = len;
	r.ns = yolo_now_ns() - t0;
	if (res)
		*res = r;
	*map_len = ml;
	return buf;
}

int yolo_image_load(struct yolo_image *img, unsigned flags, struct yolo_load_result *res,
		    struct yolo_err *err)
{
	struct yolo_load_result r = { 0 };
	if (img->data || img->info.data_size == 0 || img->mem) {
		if (res)
			*res = r;
		return 0;
	}
	size_t map_len;
	uint8_t *buf = yolo_image_read_data_section(img, &map_len, &r, err);
	if (!buf)
		return err && err->msg[0] ? -EIO : -ENOMEM;
	if (flags & YOLO_LOAD_MLOCK) {
		if (mlock(buf, map_len) == 0)
			r.pinned = true;
		else
			r.mlock_errno = errno;
	}
	img->data = buf;
	img->data_map_len = map_len;
	img->data_pinned = r.pinned;
	if (res)
		*res = r;
	return 0;
}

void yolo_image_unload(struct yolo_image *img)
{
	if (!img->data)
		return;
	munmap(img->data, img->data_map_len);   /* also drops the mlock */
	img->data = NULL;
	img->data_map_len = 0;
	img->data_pinned = false;
}

void *yolo_image_take_data(struct yolo_image *img, size_t *map_len)
{
	void *data = img->data;
	*map_len = img->data_map_len;
	img->data = NULL;
	img->data_map_len = 0;
	img->data_pinned = false;
	return data;
}

bool yolo_image_is_loaded(const struct yolo_image *img)
{
	return img->data != NULL;
}
