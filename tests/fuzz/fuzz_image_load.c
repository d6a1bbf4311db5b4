/* fuzz_image_load.c - libFuzzer target for yolofs's image LOAD path, not
 * only the parser: the input is written as an image file (as given, and a
 * copy with its checksums recomputed: fixsum.h) next to a good image, over
 * a temporary source directory that holds the files the input names, with
 * newer metadata than captured (so comparisons are queued), and goes
 * through what the daemon does at start, at a SIGHUP and at exit:
 *
 *   pass 1 (serve=memory, as main.c at start): iset_create before the
 *     background worker runs, lookups, iset_reload with renamed copies,
 *     iset_destroy while the jobs are still queued (the set freed with a
 *     comparison holding an image: issue 23 item 9), then bg_destroy;
 *   pass 2 (serve=memory, memlimit of one block, the worker and the pager
 *     running): the same, the set destroyed while jobs may be running;
 *   pass 3 (serve=ssd): open, lookups and reads of every block of every
 *     file the input names through the image set's own image.
 *
 * Invariants (abort when broken): a bad image never fails the set
 * (iset_create and iset_reload return and the set holds the good image,
 * which serves its file), an input the parser refuses is counted in
 * images_refused; the sanitizers find the rest (use after free, leaks).
 *
 * Standalone: replay.c runs a corpus through it in the unit suite (built
 * with ASan/UBSan there: tests/fuzz/meson.build). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "background.h"
#include "fixsum.h"
#include "imageset.h"
#include "log.h"
#include "stats.h"
#include "yolo_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "CHECK failed: %s (%s:%d)\n", \
	#cond, __FILE__, __LINE__); abort(); } } while (0)

enum { MAX_FILES = 32, MAX_BLOCKS = 2048, MAX_SIZE = 16 << 20 };

static char base[64], src[128], img[128];
static char good_path[192], in_path[192], fixed_path[192], in2_path[192], fixed2_path[192];
static int src_fd = -1;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(p);
	return 0;
}

static void cleanup(void)
{
	if (base[0])
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Empty the source directory but for good.img. */
static int rm_source(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag;
	if (ftw->level == 0 || (ftw->level == 1 && strcmp(p + ftw->base, "good.img") == 0))
		return 0;
	remove(p);
	return 0;
}

static void write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	close(fd);
}

/* The good image: good.img, 3 blocks of 4 KiB, captured as it is. */
static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(base, sizeof(base), "%s/yolo-load.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	CHECK(mkdtemp(base));
	atexit(cleanup);
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(img, sizeof(img), "%s/img", base);
	CHECK(mkdir(src, 0755) == 0 && mkdir(img, 0755) == 0);
	snprintf(good_path, sizeof(good_path), "%s/good.yolo", img);
	snprintf(in_path, sizeof(in_path), "%s/in.yolo", img);
	snprintf(fixed_path, sizeof(fixed_path), "%s/fixed.yolo", img);
	snprintf(in2_path, sizeof(in2_path), "%s/in2.yolo", img);
	snprintf(fixed2_path, sizeof(fixed2_path), "%s/fixed2.yolo", img);
	src_fd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(src_fd >= 0);

	static uint8_t blk[3 * 4096];
	for (size_t i = 0; i < sizeof(blk); i++)
		blk[i] = (uint8_t)(i * 7 + i / 4096);
	char path[192];
	snprintf(path, sizeof(path), "%s/good.img", src);
	write_file(path, blk, sizeof(blk));
	struct stat st;
	CHECK(stat(path, &st) == 0);
	struct yolo_file_ident id = yolo_ident_from_stat(&st);
	struct yolo_writer *w;
	struct yolo_err err = { { 0 } };
	uint32_t fid;
	CHECK(yolo_writer_create(&w, good_path, &(struct yolo_writer_opts){ .zstd_level = 1 },
				 &err) == 0);
	CHECK(yolo_writer_add_file(w, "good.img", &id, &fid, &err) == 0);
	for (uint64_t b = 0; b < 3; b++)
		CHECK(yolo_writer_add_block(w, fid, b, blk + b * 4096, 4096, &err) == 0);
	CHECK(yolo_writer_commit(w, &err) == 0);
	ylog_init("fuzz_image_load");
	ylog_set_level(YLOG_ERR);        /* refusals only */
}

/* Create `rel` (a path the parser found safe) beneath the source, with its
 * directories; the caller writes it.  @return an O_WRONLY fd or -1. */
static int create_beneath(const char *rel)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", rel);
	int dir = dup(src_fd);
	char *p = buf, *slash;
	while (dir >= 0 && (slash = strchr(p, '/'))) {
		*slash = '\0';
		mkdirat(dir, p, 0755);
		int next = openat(dir, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dir);
		dir = next;
		p = slash + 1;
	}
	if (dir < 0)
		return -1;
	int fd = openat(dir, p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	close(dir);
	return fd;
}

/* The source files the image names, holding its blocks (those that
 * decode), at their captured size when that is small, written now: their
 * metadata differs from the capture, so each is compared. */
static void make_sources(struct yolo_image *im)
{
	const struct yolo_image_info *in = yolo_image_info(im);
	static uint8_t buf[1u << YOLO_BLOCK_SHIFT_MAX];
	uint32_t blocks = 0;
	for (uint32_t i = 0; i < in->file_count && i < MAX_FILES; i++) {
		const struct yolo_file *f = yolo_image_file(im, i);
		if (strcmp(f->path, "good.img") == 0 || strncmp(f->path, "good.img/", 9) == 0)
			continue;
		int fd = create_beneath(f->path);
		if (fd < 0)
			continue;
		for (uint32_t k = 0; k < f->block_count && blocks < MAX_BLOCKS; k++, blocks++) {
			const struct yolo_block *b = yolo_image_block(im, f->first_block + k);
			if ((uint64_t)b->block_id * in->block_size >= MAX_SIZE)
				continue;
			int n = yolo_image_read_block(im, b, buf, sizeof(buf), 0);
			if (n > 0 && pwrite(fd, buf, (size_t)n,
					    (off_t)(b->block_id * in->block_size)) < 0)
				break;
		}
		if (f->ident.size <= MAX_SIZE && ftruncate(fd, (off_t)f->ident.size) < 0)
			CHECK(errno != EBADF);
		close(fd);
	}
}

/* Look up every file of the input and good.img, as an open would. */
static void lookups(struct imageset *set, struct yolo_image *im, bool read_blocks)
{
	static uint8_t buf[1u << YOLO_BLOCK_SHIFT_MAX];
	const struct yolo_image_info *in = im ? yolo_image_info(im) : NULL;
	for (uint32_t i = 0; in && i < in->file_count && i < MAX_FILES; i++) {
		const char *rel = yolo_image_file(im, i)->path;
		struct stat st;
		if (fstatat(src_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		uint32_t id;
		struct iset_image *f = iset_find(set, rel, &st, &id);
		if (!f)
			continue;
		const struct yolo_file *yf = yolo_image_file(f->img, id);
		CHECK(yf && strcmp(yf->path, rel) == 0);
		struct bst_view *v = iset_memory(f);
		if (v)
			bst_view_put(v);
		for (uint32_t k = 0; read_blocks && k < yf->block_count && k < 64; k++)
			yolo_image_read_block(f->img, yolo_image_block(f->img, yf->first_block + k),
					      buf, sizeof(buf), YOLO_READ_VERIFY);
		iset_image_put(f);
	}
	struct stat st;
	uint32_t id;
	CHECK(fstatat(src_fd, "good.img", &st, 0) == 0);
	struct iset_image *g = iset_find(set, "good.img", &st, &id);
	CHECK(g);                        /* the good image always serves */
	CHECK(strcmp(g->path, good_path) == 0);
	iset_image_put(g);
}

enum pass { PASS_QUEUED, PASS_RUNNING, PASS_SSD };

static void pass(enum pass p, struct yolo_image *im, bool parses)
{
	static struct stats stats;
	stats_init(&stats);
	struct bg *bg;
	CHECK(bg_create(&bg) == 0);
	if (p != PASS_QUEUED)
		CHECK(bg_start(bg) == 0);
	const char *paths[] = { in_path, good_path, fixed_path };
	struct iset_pool_config pcfg = {
		.memory = p != PASS_SSD, .memlimit = p == PASS_RUNNING ? 4096 : 0, .dedup = true,
	};
	struct iset_pool *pool = NULL;
	CHECK(iset_pool_create(&pool, &pcfg) == 0);
	struct iset_config cfg = {
		.pool = pool, .paths = paths, .npaths = 3, .source_fd = src_fd,
		.bg = bg, .ns = NULL, .trust_all = true,
	};
	struct imageset *set = NULL;
	struct yolo_err err = { { 0 } };
	CHECK(iset_create(&set, &cfg, &stats, &err) == 0);   /* a bad image never fails it */
	CHECK(iset_count(set) >= 1);
	if (!parses)
		CHECK(atomic_load(&stats.images_refused) >= 1);
	if (p == PASS_RUNNING)
		iset_pool_start(pool);
	lookups(set, im, p == PASS_SSD);
	/* SIGHUP: the same images under new names (opened afresh) and the
	 * old names gone. */
	CHECK(rename(in_path, in2_path) == 0 && rename(fixed_path, fixed2_path) == 0);
	const char *again[] = { fixed2_path, in2_path, good_path };
	iset_reload(set, again, 3);
	CHECK(iset_count(set) >= 1);
	lookups(set, im, p == PASS_SSD);
	CHECK(rename(in2_path, in_path) == 0 && rename(fixed2_path, fixed_path) == 0);
	iset_destroy(set);               /* PASS_QUEUED: with its jobs queued, not run */
	iset_pool_destroy(pool);
	bg_destroy(bg);
	stats_destroy(&stats);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base[0])
		setup();
	uint8_t *fixed = malloc(size ? size : 1);
	CHECK(fixed);
	memcpy(fixed, data, size);
	fix_checksums(fixed, size);
	write_file(in_path, data, size);
	write_file(fixed_path, fixed, size);

	/* The sources, from whichever copy parses. */
	struct yolo_image *im = NULL;
	struct yolo_err err = { { 0 } };
	bool parses = yolo_image_open_mem(data, size, &im, &err) == 0;
	if (!parses && yolo_image_open_mem(fixed, size, &im, &err) < 0)
		im = NULL;
	if (im)
		make_sources(im);

	pass(PASS_QUEUED, im, parses);
	pass(PASS_RUNNING, im, parses);
	pass(PASS_SSD, im, parses);

	if (im)
		yolo_image_close(im);
	free(fixed);
	nftw(src, rm_source, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
