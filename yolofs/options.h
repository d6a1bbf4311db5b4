/* options.h - yolofs's command line (prefix opts_): one options struct
 * filled through a fuse_opt table over offsetof, libfuse's own options
 * (MOUNTPOINT, -f, -d, threads; options neither knows are rejected when
 * the session is made), the help text, and the checks that turn option
 * strings into values, each failure one line on stderr.  Also images=
 * expanded into image files, at start and at every reload. */
#ifndef YOLO_OPTIONS_H
#define YOLO_OPTIONS_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yolo_err.h"

struct yolofs_opts {
	/* As given (options.c's help text says what each means). */
	char *images;                    /* images=PATH[:PATH...] */
	char *serve;                     /* serve=memory|ssd */
	char *memlimit;                  /* memlimit=SIZE */
	char *readahead;                 /* readahead=SIZE */
	char *metrics;                   /* metrics=FILE */
	unsigned metrics_interval;       /* metrics_interval=SECONDS */
	double timeout;                  /* timeout=SECONDS (entry/attr cache) */
	double answer_timeout;           /* answer_timeout=SECONDS (the same, for kept answers) */
	int splice;                      /* splice: splice replies for source reads */
	int no_keep_cache;               /* no_keep_cache: drop the page cache at every open */
	int no_passthrough;              /* no_passthrough: every read through the daemon */
	int no_prefill;                  /* no_prefill: do not push image blocks into the page cache */
	int no_dedup;                    /* no_dedup: hold identical blocks of different images twice */
	int no_namespace;                /* no_namespace: no namespace answers, no inotify instance */
	int direct_io;                   /* direct_io: bypass the page cache (testing) */
	int insecure_images;             /* insecure_images: load images anyone could have written (tests) */
	int detach_when_emptied;         /* detach_when_emptied: see detach.h */
	char *learn;                     /* learn=DIR: see learn.h */
	char *learn_by;                  /* learn_by=file|mount */
	double learn_window;             /* learn_window=SECONDS */
	double learn_idle;               /* learn_idle=SECONDS */
	char *learn_max;                 /* learn_max=SIZE */
	char *source;                    /* first non-option argument */
	struct fuse_cmdline_opts cmd;    /* libfuse's: mountpoint, foreground, debug, threads */

	/* Checked and converted by opts_parse. */
	bool memory;                     /* serve=memory (the default), else ssd */
	uint64_t memlimit_bytes;         /* 0: no limit */
	uint64_t readahead_bytes;        /* at most PT_MAX_READ */
	uint64_t learn_max_bytes;        /* 0: no limit */
	bool learn_by_mount;             /* learn_by=mount, else by file */
};

enum opts_result {
	OPTS_SERVE,                      /* checked: go on */
	OPTS_EXIT_OK,                    /* --help or --version printed */
	OPTS_EXIT_FAIL,                  /* a bad command line, said on stderr */
};

/* Parse `args` into `o` (zeroed; the defaults are set here) and check the
 * values.  `prog` (argv[0]) is named in the usage lines.  What libfuse's
 * session takes stays in args. */
enum opts_result opts_parse(struct yolofs_opts *o, struct fuse_args *args, const char *prog);
void opts_free(struct yolofs_opts *o);

/* memlimit=TEXT (the mount's and the host's): its bytes, or -1 said on stderr. */
int opts_parse_memlimit(const char *text, uint64_t *bytes);

/* Image files, in the order they are searched. */
struct opts_paths {
	char **v;
	size_t n, cap;
};

/* Expand images=A:B:DIR into image files (absolute paths; a directory
 * gives its *.yolo files in name order, possibly none).  @return 0, or
 * -errno with the problem in err (and `pl` emptied). */
int opts_collect_images(const char *spec, struct opts_paths *pl, struct yolo_err *err);
void opts_paths_free(struct opts_paths *pl);

#endif /* YOLO_OPTIONS_H */
