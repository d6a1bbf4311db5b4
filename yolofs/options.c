/* options.c - yolofs's command line (see options.h): the option table,
 * the help text, the checks of option values, and images= expanded into
 * image files. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "options.h"
#include "passthrough.h"
#include "util.h"
#include "yolo_image.h"

#define YOPT(t, f, v) { t, offsetof(struct yolofs_opts, f), v }
static const struct fuse_opt yolofs_opt_table[] = {
	YOPT("images=%s", images, 0),
	YOPT("serve=%s", serve, 0),
	YOPT("memlimit=%s", memlimit, 0),
	YOPT("readahead=%s", readahead, 0),
	YOPT("metrics=%s", metrics, 0),
	YOPT("metrics_interval=%u", metrics_interval, 0),
	YOPT("timeout=%lf", timeout, 0),
	YOPT("answer_timeout=%lf", answer_timeout, 0),
	YOPT("splice", splice, 1),
	YOPT("no_keep_cache", no_keep_cache, 1),
	YOPT("no_passthrough", no_passthrough, 1),
	YOPT("no_prefill", no_prefill, 1),
	YOPT("no_dedup", no_dedup, 1),
	YOPT("no_namespace", no_namespace, 1),
	YOPT("direct_io", direct_io, 1),
	YOPT("insecure_images", insecure_images, 1),
	YOPT("detach_when_emptied", detach_when_emptied, 1),
	YOPT("learn=%s", learn, 0),
	YOPT("learn_by=%s", learn_by, 0),
	YOPT("learn_window=%lf", learn_window, 0),
	YOPT("learn_idle=%lf", learn_idle, 0),
	YOPT("learn_max=%s", learn_max, 0),
	FUSE_OPT_END
};

/* The help text before libfuse's. */
static void usage(const char *prog)
{
	printf("usage: %s [options] SOURCE MOUNTPOINT\n"
	       "       %s --upgrade MOUNTPOINT\n"
	       "       %s --clear-stale MOUNTPOINT\n"
	       "\n"
	       "Serve SOURCE (a directory of qcow2 backing files or an overlay2 lowerdir) at\n"
	       "MOUNTPOINT, answering reads of captured blocks from boot images.  MOUNTPOINT\n"
	       "may be SOURCE itself.\n"
	       "\n"
	       "--upgrade: the yolofs serving MOUNTPOINT hands its session to the binary now\n"
	       "installed at its path (guests see a pause, no error); prints the outcome.\n"
	       "--clear-stale: unmount a yolofs mount at MOUNTPOINT that no daemon serves.\n"
	       "\n"
	       "yolofs options:\n"
	       "    -o images=PATH[:PATH...]  boot images (*.yolo files or directories of them,\n"
	       "                              absolute paths; a directory may be empty until a\n"
	       "                              reload).  Only images that nobody but root (or\n"
	       "                              the daemon's user) can change are loaded\n"
	       "    -o serve=memory|ssd       hold images in pinned memory (default) or read\n"
	       "                              blocks from the image files\n"
	       "    -o memlimit=SIZE          most bytes of images in memory (K/M/G/T suffixes):\n"
	       "                              the most recently used images that fit stay in\n"
	       "                              memory, the others are read from their files\n"
	       "    -o no_dedup               do not share identical blocks between images\n"
	       "    -o metrics=FILE           write Prometheus text metrics to FILE\n"
	       "    -o metrics_interval=N     rewrite it every N seconds (default 2)\n"
	       "    -o timeout=SECONDS        kernel entry/attribute cache timeout (default 1)\n"
	       "    -o answer_timeout=SECONDS the same for the namespace answers yolofs keeps\n"
	       "                              fresh itself: every change on the source drops\n"
	       "                              the kernel's copy at once (default 86400, or\n"
	       "                              timeout= when that is given)\n"
	       "    -o no_namespace           keep no namespace answers: every lookup, stat,\n"
	       "                              xattr and listing is asked of SOURCE (slower,\n"
	       "                              never wrong), and no inotify instance is held\n"
	       "                              (fs.inotify.max_user_instances is per user)\n"
	       "    -o no_keep_cache          drop the kernel page cache at every open\n"
	       "    -o no_passthrough         no kernel passthrough: read files no image serves\n"
	       "                              through yolofs too (by default the kernel reads\n"
	       "                              them from SOURCE itself, Linux >= 6.9)\n"
	       "    -o no_prefill             do not push a file's image blocks into the kernel\n"
	       "                              page cache when it is first opened\n"
	       "    -o readahead=SIZE         kernel readahead window (default 1M, 0 disables)\n"
	       "    -o splice                 splice replies for source reads (slower here)\n"
	       "    -o direct_io              bypass the kernel page cache entirely\n"
	       "    -o insecure_images        also load images that users other than root could\n"
	       "                              have written (for tests only: such an image\n"
	       "                              decides what guests boot)\n"
	       "    -o detach_when_emptied    detach the mount when the last entry of SOURCE is\n"
	       "                              removed through it (a container engine removing\n"
	       "                              the layer); exit when nothing holds it any more\n"
	       "    -o learn=DIR              learn boot images: record what boots read from\n"
	       "                              SOURCE and write images to DIR/KEY/ (KEY names\n"
	       "                              SOURCE), loaded at once and extended by later\n"
	       "                              boots.  DIR must be trusted like images\n"
	       "    -o learn_by=file|mount    one image per file (default; nova's _base) or one\n"
	       "                              for the whole mount (a container layer)\n"
	       "    -o learn_window=SECONDS   a boot lasts at most this long (default 300)\n"
	       "    -o learn_idle=SECONDS     ...or until nothing is read from SOURCE for this\n"
	       "                              long (default 15)\n"
	       "    -o learn_max=SIZE         most bytes of images in DIR (the least recently\n"
	       "                              learnt of this mount's are removed)\n"
	       "\n"
	       "SIGHUP re-reads images= (new and replaced images serve new opens; files\n"
	       "already open keep theirs); SIGUSR1 prints serving statistics to the log;\n"
	       "SIGTERM/SIGINT unmount.\n"
	       "\n", prog, prog, prog);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct yolofs_opts *o = data;
	if (key == FUSE_OPT_KEY_NONOPT && !o->source) {
		o->source = strdup(arg);
		return o->source ? 0 : -1;
	}
	return 1;
}

int opts_parse_memlimit(const char *text, uint64_t *bytes)
{
	if (yolo_parse_size(text, bytes) == 0)
		return 0;
	fprintf(stderr, "yolofs: memlimit=%s: expected a size like 512M or 2G\n", text);
	return -1;
}

/* Turn the option strings into values.  @return 0, or -1 said on stderr. */
static int check_values(struct yolofs_opts *o)
{
	o->memory = true;
	if (o->serve && strcmp(o->serve, "ssd") == 0)
		o->memory = false;
	else if (o->serve && strcmp(o->serve, "memory") != 0) {
		fprintf(stderr, "yolofs: serve=%s: expected memory or ssd\n", o->serve);
		return -1;
	}
	if (o->memlimit && opts_parse_memlimit(o->memlimit, &o->memlimit_bytes) < 0)
		return -1;
	o->readahead_bytes = PT_MAX_READ;
	if (o->readahead && (yolo_parse_size(o->readahead, &o->readahead_bytes) < 0 ||
			     o->readahead_bytes > PT_MAX_READ)) {
		fprintf(stderr, "yolofs: readahead=%s: expected a size up to 1M\n", o->readahead);
		return -1;
	}
	if (o->answer_timeout < 0 || o->timeout < 0) {
		fprintf(stderr, "yolofs: %s must not be negative\n",
			o->timeout < 0 ? "timeout" : "answer_timeout");
		return -1;
	}
	/* Who sets timeout= (timeout=0: the kernel keeps nothing) means it for
	 * the answers too, unless answer_timeout= says otherwise. */
	if (isnan(o->answer_timeout))
		o->answer_timeout = isnan(o->timeout) ? 86400 : o->timeout;
	if (isnan(o->timeout))
		o->timeout = 1;
	if (o->learn_max && yolo_parse_size(o->learn_max, &o->learn_max_bytes) < 0) {
		fprintf(stderr, "yolofs: learn_max=%s: expected a size like 2G\n", o->learn_max);
		return -1;
	}
	if (o->learn_by && strcmp(o->learn_by, "file") && strcmp(o->learn_by, "mount")) {
		fprintf(stderr, "yolofs: learn_by=%s: expected file or mount\n", o->learn_by);
		return -1;
	}
	o->learn_by_mount = o->learn_by && !strcmp(o->learn_by, "mount");
	if (o->learn_window <= 0 || o->learn_idle <= 0) {
		fprintf(stderr, "yolofs: learn_window and learn_idle must be positive\n");
		return -1;
	}
	return 0;
}

enum opts_result opts_parse(struct yolofs_opts *o, struct fuse_args *args, const char *prog)
{
	o->timeout = NAN;                /* unset: 1 */
	o->answer_timeout = NAN;         /* unset: 86400, or timeout= when that is set */
	o->metrics_interval = 2;
	o->learn_window = 300;
	o->learn_idle = 15;
	if (fuse_opt_parse(args, o, yolofs_opt_table, opt_proc) < 0)
		return OPTS_EXIT_FAIL;
	if (fuse_parse_cmdline(args, &o->cmd) != 0)
		return OPTS_EXIT_FAIL;
	if (o->cmd.show_help) {
		usage(prog);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return OPTS_EXIT_OK;
	}
	if (o->cmd.show_version) {
		printf("yolofs %s (libfuse %s)\n", YOLO_VERSION, fuse_pkgversion());
		return OPTS_EXIT_OK;
	}
	if (!o->source || !o->cmd.mountpoint) {
		fprintf(stderr, "yolofs: usage: %s [options] SOURCE MOUNTPOINT (see --help)\n",
			prog);
		return OPTS_EXIT_FAIL;
	}
	return check_values(o) < 0 ? OPTS_EXIT_FAIL : OPTS_SERVE;
}

void opts_free(struct yolofs_opts *o)
{
	free(o->cmd.mountpoint);
	free(o->images);
	free(o->serve);
	free(o->memlimit);
	free(o->readahead);
	free(o->metrics);
	free(o->learn);
	free(o->learn_by);
	free(o->learn_max);
	free(o->source);
}

static int paths_add(struct opts_paths *pl, const char *p)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 8;
		char **v = realloc(pl->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pl->v = v;
		pl->cap = cap;
	}
	if (!(pl->v[pl->n] = strdup(p)))
		return -ENOMEM;
	pl->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void opts_paths_free(struct opts_paths *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->v[i]);
	free(pl->v);
	*pl = (struct opts_paths){ 0 };
}

int opts_collect_images(const char *spec, struct opts_paths *pl, struct yolo_err *err)
{
	char *copy = strdup(spec), *save = NULL;
	int ret;
	if (!copy)
		goto nomem;
	for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		struct stat st;
		if (p[0] != '/') {
			ret = yolo_fail(err, -EINVAL, "image path %s: must be absolute", p);
			goto fail;
		}
		if (stat(p, &st) < 0) {
			ret = yolo_fail(err, -errno, "image %s: %s", p, strerror(errno));
			goto fail;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (paths_add(pl, p) < 0)
				goto nomem;
			continue;
		}
		DIR *d = opendir(p);
		if (!d) {
			ret = yolo_fail(err, -errno, "image directory %s: %s", p, strerror(errno));
			goto fail;
		}
		size_t first = pl->n;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!yolo_is_image_file_name(de->d_name))
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", p, de->d_name);
			if (paths_add(pl, path) < 0) {
				closedir(d);
				goto nomem;
			}
		}
		closedir(d);
		if (pl->n > first)
			qsort(pl->v + first, pl->n - first, sizeof(char *), cmp_str);
	}
	free(copy);
	return 0;
nomem:
	ret = yolo_fail(err, -ENOMEM, "out of memory");
fail:
	free(copy);
	opts_paths_free(pl);
	return ret;
}
