/* yolo_image_tool.c - `yolo-image`: inspect, verify, merge and rebind boot images
 * from the command line.  Exit status: 0 success, 1 verification found
 * problems, 2 bad usage or an unreadable/corrupt image. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "util.h"
#include "yolo_image.h"

#define MIB (1024.0 * 1024.0)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: yolo-image inspect [--blocks] [--namespace] IMAGE\n"
		"       yolo-image verify [--source DIR] IMAGE\n"
		"       yolo-image merge -o OUT [--zstd LEVEL] IMAGE...\n"
		"       yolo-image rebind --source DIR [-o OUT] IMAGE\n"
		"       yolo-image --version\n"
		"\n"
		"inspect  print the image's files, blocks, bytes and per-file coverage\n"
		"         (--blocks also lists every block in first-access order,\n"
		"         --namespace every namespace question the boot asked)\n"
		"verify   check the image's own consistency (tables and every block's\n"
		"         checksum); only with --source also that each file is unchanged and\n"
		"         each block still holds what the source directory holds.  Without\n"
		"         --source nothing says the blocks are those of any source: whoever\n"
		"         wrote the image chose them\n"
		"merge    write the union of several boot images of the same source\n"
		"rebind   re-stamp IMAGE for the source as it is in DIR (another machine's copy,\n"
		"         or files whose timestamps changed): files whose captured blocks\n"
		"         all match are kept with their current identity, the others left\n"
		"         out; writes OUT (default: IMAGE itself, replaced atomically)\n");
}

static struct yolo_image *open_or_die(const char *path)
{
	struct yolo_image *img;
	struct yolo_err err = { "" };
	if (yolo_image_open(path, &img, &err) < 0) {
		fprintf(stderr, "yolo-image: %s\n", err.msg);
		exit(2);
	}
	return img;
}

/* Image paths are untrusted: never send their raw bytes to a terminal. */
static const char *shown(const char *path)
{
	static char buf[4 * YOLO_MAX_PATH + 8];
	return yolo_printable(path, strlen(path), buf, sizeof(buf));
}

static const char *flag_name(uint16_t flags)
{
	if (flags & YOLO_BLOCK_ZERO)
		return "zero";
	if (flags & YOLO_BLOCK_ZSTD)
		return "zstd";
	return "raw";
}

static int cmd_inspect(int argc, char **argv)
{
	bool list_blocks = false, list_ns = false;
	static const struct option opts[] = {
		{ "blocks", no_argument, NULL, 'b' }, { "namespace", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "bnh", opts, NULL)) != -1) {
		if (c == 'b')
			list_blocks = true;
		else if (c == 'n')
			list_ns = true;
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	struct yolo_image *img = open_or_die(argv[optind]);
	const struct yolo_image_info *in = yolo_image_info(img);
	uint64_t zero = 0, zstd = 0;
	for (uint64_t i = 0; i < in->block_count; i++) {
		uint16_t f = yolo_image_block(img, i)->flags;
		zero += !!(f & YOLO_BLOCK_ZERO);
		zstd += !!(f & YOLO_BLOCK_ZSTD);
	}
	time_t created = (time_t)(in->created_ns / 1000000000ull);
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&created));
	printf("image:       %s\n", argv[optind]);
	printf("format:      version %u, block size %u, features%s%s%s\n", YOLO_FORMAT_VERSION,
	       in->block_size, in->incompat & YOLO_INCOMPAT_ZSTD ? " zstd" : "",
	       in->compat & YOLO_COMPAT_MERGED ? " merged" : "",
	       (in->incompat | in->compat) ? "" : " none");
	printf("created:     %s\n", when);
	printf("files:       %u\n", in->file_count);
	printf("blocks:      %llu (%llu zero, %llu zstd-compressed)\n",
	       (unsigned long long)in->block_count, (unsigned long long)zero,
	       (unsigned long long)zstd);
	printf("data:        %.2f MiB of blocks stored in %.2f MiB (image file %.2f MiB)\n",
	       in->raw_bytes / MIB, in->data_size / MIB, in->image_size / MIB);
	uint32_t nn = yolo_image_ns_node_count(img), nq[4] = { 0 };
	for (uint32_t i = 0; i < nn; i++)
		for (int q = 0; q < 4; q++)
			nq[q] += !!(yolo_image_ns_node(img, i)->flags & (1u << q));
	printf("namespace:   %u paths: %u looked up, %u listed, %u links read, %u xattr lists; "
	       "%u xattrs asked for\n", nn, nq[0], nq[1], nq[2], nq[3], yolo_image_ns_xattr_count(img));
	printf("\n%10s %10s %8s %7s  %s\n", "size MiB", "captured", "blocks", "cover", "path");
	for (uint32_t i = 0; i < in->file_count; i++) {
		const struct yolo_file *f = yolo_image_file(img, i);
		uint64_t bytes = 0;
		for (uint32_t j = 0; j < f->block_count; j++)
			bytes += yolo_image_block(img, f->first_block + j)->raw_len;
		printf("%10.2f %10.2f %8u %6.2f%%  %s\n", f->ident.size / MIB, bytes / MIB,
		       f->block_count, f->ident.size ? 100.0 * bytes / f->ident.size : 0.0, shown(f->path));
	}
	if (list_blocks) {
		printf("\n%8s %10s %12s %8s %5s  %s\n", "seq", "block", "data off", "stored", "kind", "path");
		for (uint64_t s = 0; s < in->block_count; s++) {
			const struct yolo_block *b = yolo_image_block_by_seq(img, s);
			printf("%8llu %10llu %12llu %8u %5s  %s\n", (unsigned long long)s,
			       (unsigned long long)b->block_id, (unsigned long long)b->data_off,
			       b->stored_len, flag_name(b->flags), shown(yolo_image_file(img, b->file_id)->path));
		}
	}
	if (list_ns) {
		printf("\n%8s %8s %-10s %s\n", "node", "parent", "asked", "name");
		for (uint32_t i = 0; i < nn; i++) {
			const struct yolo_ns_node *n = yolo_image_ns_node(img, i);
			printf("%8u %8u %c%c%c%c       %s\n", i, n->parent,
			       n->flags & YOLO_NS_LOOKUP ? 'L' : '-', n->flags & YOLO_NS_READDIR ? 'D' : '-',
			       n->flags & YOLO_NS_READLINK ? 'R' : '-', n->flags & YOLO_NS_LISTXATTR ? 'X' : '-',
			       i ? shown(n->name) : "(source root)");
		}
		for (uint32_t i = 0; i < yolo_image_ns_xattr_count(img); i++) {
			const struct yolo_ns_xattr *x = yolo_image_ns_xattr(img, i);
			printf("%8s %8u xattr      %s\n", "", x->node, shown(x->name));
		}
	}
	yolo_image_close(img);
	return 0;
}

static void print_problem(void *ctx, const char *problem)
{
	unsigned long *count = ctx;
	if (++*count <= 100)
		printf("PROBLEM: %s\n", problem);
	else if (*count == 101)
		printf("PROBLEM: (further problems not listed)\n");
}

static int cmd_verify(int argc, char **argv)
{
	const char *source = NULL;
	static const struct option opts[] = {
		{ "source", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		if (c == 's')
			source = optarg;
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	int dirfd = -1;
	if (source) {
		dirfd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0) {
			fprintf(stderr, "yolo-image: %s: %s\n", source, strerror(errno));
			return 2;
		}
	}
	struct yolo_image *img = open_or_die(argv[optind]);
	struct yolo_verify_report rep;
	unsigned long problems = 0;
	int ret = yolo_image_verify(img, dirfd, &rep, print_problem, &problems);
	yolo_image_close(img);
	if (dirfd >= 0)
		close(dirfd);
	if (ret < 0) {
		fprintf(stderr, "yolo-image: %s: verify failed: %s\n", argv[optind], strerror(-ret));
		return 2;
	}
	printf("%s: %llu blocks ok, %llu bad", argv[optind], (unsigned long long)rep.blocks_ok,
	       (unsigned long long)rep.blocks_bad);
	if (source)
		printf("; source %s: %llu files missing, %llu changed, %llu stale blocks", source,
		       (unsigned long long)rep.files_missing, (unsigned long long)rep.files_changed,
		       (unsigned long long)rep.blocks_stale);
	printf(" -> %s\n", ret ? "FAILED" : "OK");
	if (!source && !ret)
		printf("(the image is consistent with itself; its contents were not compared with "
		       "any source: use --source DIR for that)\n");
	return ret ? 1 : 0;
}

static int cmd_merge(int argc, char **argv)
{
	const char *out = NULL;
	struct yolo_writer_opts wo = { 0 };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' }, { "zstd", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "o:z:h", opts, NULL)) != -1) {
		if (c == 'o') {
			out = optarg;
		} else if (c == 'z') {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 22) {
				fprintf(stderr, "yolo-image: --zstd: \"%s\" is not a level 0..22\n", optarg);
				return 2;
			}
			wo.zstd_level = (int)v;
		} else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (!out || optind >= argc) {
		fprintf(stderr, "yolo-image: merge needs -o OUT and at least one image\n");
		return 2;
	}
	size_t n = (size_t)(argc - optind);
	struct yolo_image **imgs = calloc(n, sizeof(*imgs));
	if (!imgs)
		return 2;
	for (size_t i = 0; i < n; i++)
		imgs[i] = open_or_die(argv[optind + (int)i]);
	struct yolo_err err = { "" };
	int ret = yolo_image_merge(out, imgs, n, &wo, &err);
	for (size_t i = 0; i < n; i++)
		yolo_image_close(imgs[i]);
	free(imgs);
	if (ret < 0) {
		fprintf(stderr, "yolo-image: merge: %s\n", err.msg);
		return 2;
	}
	struct yolo_image *m = open_or_die(out);
	const struct yolo_image_info *in = yolo_image_info(m);
	printf("%s: %u files, %llu blocks, %.2f MiB\n", out, in->file_count,
	       (unsigned long long)in->block_count, in->raw_bytes / MIB);
	yolo_image_close(m);
	return 0;
}

static int cmd_rebind(int argc, char **argv)
{
	const char *out = NULL, *source = NULL;
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' }, { "source", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "o:s:h", opts, NULL)) != -1) {
		if (c == 'o') {
			out = optarg;
		} else if (c == 's') {
			source = optarg;
		} else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (!source || optind != argc - 1) {
		fprintf(stderr, "yolo-image: rebind needs --source DIR and one image\n");
		return 2;
	}
	const char *path = argv[optind];
	int dirfd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		fprintf(stderr, "yolo-image: source %s: %s\n", source, strerror(errno));
		return 2;
	}
	struct yolo_image *img = open_or_die(path);
	struct yolo_rebind_report rep;
	struct yolo_err err = { "" };
	unsigned long problems = 0;
	int ret = yolo_image_rebind(out ? out : path, img, dirfd, NULL, &rep, print_problem,
				    &problems, &err);
	yolo_image_close(img);
	close(dirfd);
	if (ret < 0) {
		fprintf(stderr, "yolo-image: rebind: %s\n", err.msg);
		return 2;
	}
	printf("%s: %u files rebound (%llu blocks), %u changed and %u missing left out -> %s\n",
	       out ? out : path, rep.files_rebound, (unsigned long long)rep.blocks,
	       rep.files_changed, rep.files_missing,
	       rep.files_changed || rep.files_missing ? "PARTIAL" : "OK");
	return rep.files_changed || rep.files_missing ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version")) {
		printf("yolo-image %s (format version %u)\n", YOLO_VERSION, YOLO_FORMAT_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	/* Subcommand options start after the subcommand name. */
	argc--;
	argv++;
	if (!strcmp(cmd, "inspect"))
		return cmd_inspect(argc, argv);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc, argv);
	if (!strcmp(cmd, "merge"))
		return cmd_merge(argc, argv);
	if (!strcmp(cmd, "rebind"))
		return cmd_rebind(argc, argv);
	fprintf(stderr, "yolo-image: unknown command \"%s\" (try --help)\n", cmd);
	return 2;
}
