/* test_namespace.c - yolofs's namespace answers (yolofs/namespace.c) on
 * real directories, several ns over one hub, with the inotify reader held
 * back: a change made before a question must never be answered from
 * memory, whether or not its report has been handled yet; and a report
 * reaches every ns it concerns, and only those. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "namespace.h"
#include "testutil.h"

/* One source directory and the ns over it. */
struct side {
	char *src;
	int src_fd;
	ino_t root_ino;
	struct stats stats;
	struct ns *ns;
	struct pt_ns_hooks h;
	atomic_uint kernel_calls;        /* kernel_changed calls */
	atomic_bool root_dropped;        /* the kernel's copy of the root was dropped */
};

struct fixture {
	char *dir;
	struct ns_hub *hub;
	struct yolo_image *img;
	struct side one, two;            /* two.src unset: one side only */
};

/* kernel_changed blocks the reader once when `hold_reader` is set, until
 * `release` is posted (`entered` once it is inside). */
static atomic_bool hold_reader;
static sem_t entered, release;

static void kernel_changed(void *ctx, dev_t dev, ino_t ino, const char *name)
{
	struct side *s = ctx;
	(void)dev;
	atomic_fetch_add(&s->kernel_calls, 1);
	if (ino == s->root_ino && !name)
		atomic_store(&s->root_dropped, true);
	if (atomic_exchange(&hold_reader, false)) {
		sem_post(&entered);
		sem_wait(&release);
	}
}

static char *join(const char *a, const char *b)
{
	return tu_join(a, b);
}

static void mkfile(const char *dir, const char *rel, const char *content)
{
	char *p = join(dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	free(p);
}

static void chmod_rel(const struct side *s, const char *rel, mode_t mode)
{
	char *p = join(s->src, rel);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static int lookup(const struct side *s, const char *path, struct stat *st)
{
	struct pt_fhid id;
	return s->h.lookup(s->h.ctx, path, st, &id);
}

static bool answers(const struct side *s, const char *path)
{
	struct stat st;
	return lookup(s, path, &st) == 1;
}

/* The file handle of `rel` in the source now (the object the core asks
 * about), in a buffer the next call reuses. */
static const struct pt_fhid *idp(const struct side *s, const char *rel)
{
	static struct pt_fhid id;
	struct {
		struct file_handle h;
		unsigned char bytes[PT_FHID_MAX];
	} fh = { .h.handle_bytes = PT_FHID_MAX };
	int mnt;
	char *p = join(s->src, rel);
	assert_int_equal(name_to_handle_at(AT_FDCWD, p, &fh.h, &mnt, 0), 0);
	free(p);
	id.type = fh.h.handle_type;
	id.len = fh.h.handle_bytes;
	memcpy(id.bytes, fh.h.f_handle, id.len);
	return &id;
}

/* Until the reader has handled what is queued (the answer about "b" is no
 * longer PT_NS_UNKNOWN for being unsettled) or 5 s passed. */
static void wait_handled(const struct side *s)
{
	for (int i = 0; i < 500 && !answers(s, "b"); i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
}

/* A skip under CI is a test that did not run (tests/mount/lib.sh's skip()):
 * the README's machine has /tmp on ext4. */
static void skip_unless_local(const char *src)
{
	const char *ci = getenv("CI");
	if (ci && strcmp(ci, "true") == 0)
		fail_msg("FAIL (CI): would skip: %s is not on a local disk file system", src);
	skip();
}

/* The source tree under `dir`/`name`: a/ (a/f, a/g with user.x, a/l -> f),
 * b/.  a/f is a hard link to `link_from`'s a/f when given. */
static char *make_tree(const char *dir, const char *name, const char *link_from)
{
	char *src = join(dir, name);
	char *a = join(src, "a"), *b = join(src, "b");
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(a, 0755), 0);
	assert_int_equal(mkdir(b, 0755), 0);
	char *f = join(src, "a/f"), *l = join(src, "a/l");
	if (link_from) {
		char *from = join(link_from, "a/f");
		assert_int_equal(link(from, f), 0);
		free(from);
	} else {
		mkfile(src, "a/f", "eff");
		assert_int_equal(setxattr(f, "user.x", "1", 1, 0), 0);
	}
	mkfile(src, "a/g", "gee");
	assert_int_equal(symlink("f", l), 0);
	free(a);
	free(b);
	free(f);
	free(l);
	return src;
}

/* An image asking about all of make_tree's paths, a/'s listing, a/l's
 * target, a/f's user.x, and absent a/n. */
static struct yolo_image *make_image(const char *dir)
{
	char *path = join(dir, "ns.yolo");
	struct yolo_writer *w;
	struct yolo_err err = { "" };
	struct yolo_image *img;
	uint32_t node;
	assert_int_equal(yolo_writer_create(&w, path, NULL, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "a", YOLO_NS_LOOKUP | YOLO_NS_READDIR, &node, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "a/f", YOLO_NS_LOOKUP, &node, &err), 0);
	assert_int_equal(yolo_writer_add_ns_xattr(w, node, "user.x", &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "a/g", YOLO_NS_LOOKUP, &node, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "a/l", YOLO_NS_LOOKUP | YOLO_NS_READLINK, &node, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "a/n", YOLO_NS_LOOKUP, &node, &err), 0);
	assert_int_equal(yolo_writer_add_ns(w, "b", YOLO_NS_LOOKUP, &node, &err), 0);
	assert_int_equal(yolo_writer_commit(w, &err), 0);
	assert_int_equal(yolo_image_open(path, &img, &err), 0);
	free(path);
	return img;
}

/* `s` (src set): an ns over it, primed with `img`, telling the kernel. */
static void side_open(struct side *s, struct ns_hub *hub, const struct yolo_image *img)
{
	struct stat st;
	s->src_fd = open(s->src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(s->src_fd >= 0);
	assert_int_equal(fstat(s->src_fd, &st), 0);
	s->root_ino = st.st_ino;
	assert_int_equal(ns_create(&s->ns, hub, s->src_fd, &s->stats), 0);
	ns_set_kernel(s->ns, kernel_changed, s);
	s->h = ns_hooks(s->ns);
	uint32_t primed = ns_prime(s->ns, img);
	if (primed == 0)                 /* not a local disk file system (namespace.c) */
		skip_unless_local(s->src);
	assert_int_equal(primed, 7);
}

static void side_close(struct side *s)
{
	ns_destroy(s->ns);
	if (s->src_fd > 0)
		close(s->src_fd);
	free(s->src);
}

/* Sides `one` and, with `both`, `two` (a/f a hard link to one's), started
 * over one hub. */
static int setup_sides(void **state, bool both)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	*state = fx;
	fx->dir = tu_mkdtemp();
	fx->img = make_image(fx->dir);
	assert_int_equal(ns_hub_create(&fx->hub), 0);
	/* Both trees before priming: the link is a change of a/f. */
	fx->one.src = make_tree(fx->dir, "src", NULL);
	if (both)
		fx->two.src = make_tree(fx->dir, "src2", fx->one.src);
	side_open(&fx->one, fx->hub, fx->img);
	if (both)
		side_open(&fx->two, fx->hub, fx->img);
	/* Primed before the reader starts: their reports wait for it. */
	assert_int_equal(ns_hub_start(fx->hub), 0);
	assert_int_equal(ns_start(fx->one.ns), 0);
	wait_handled(&fx->one);          /* the reports of reading the listing */
	if (both) {
		assert_int_equal(ns_start(fx->two.ns), 0);
		wait_handled(&fx->two);
	}
	return 0;
}

static int setup(void **state)
{
	return setup_sides(state, false);
}

static int setup_two(void **state)
{
	return setup_sides(state, true);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	side_close(&fx->one);
	side_close(&fx->two);
	ns_hub_destroy(fx->hub);
	yolo_image_close(fx->img);
	tu_rmtree(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

static void test_answers(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one;
	struct stat st, real;
	char *f = join(one->src, "a/f");
	assert_int_equal(lookup(one, "a/f", &st), 1);
	assert_int_equal(stat(f, &real), 0);
	assert_int_equal(st.st_ino, real.st_ino);
	assert_int_equal(st.st_mode, real.st_mode);
	assert_int_equal(lookup(one, "a/n", &st), -ENOENT);
	assert_int_equal(lookup(one, "a/unasked", &st), PT_NS_UNKNOWN);
	char buf[16];
	assert_int_equal(one->h.xattr(one->h.ctx, "a/f", idp(one, "a/f"), "user.x", buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '1');
	assert_int_equal(one->h.xattr(one->h.ctx, "a/f", idp(one, "a/f"), "user.x", NULL, 0), 1);
	assert_int_equal(one->h.readlink(one->h.ctx, "a/l", idp(one, "a/l"), buf, sizeof(buf)), 1);
	struct pt_ns_entry *e;
	size_t n;
	assert_int_equal(one->h.listing(one->h.ctx, "a", idp(one, "a"), &e, &n), 0);
	assert_int_equal(n, 5);                  /* . .. f g l */
	free(e);
	free(f);
}

/* Each kind of change drops what it concerns, and only that. */
static void test_drops(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one;
	struct stat st;
	struct pt_ns_entry *e;
	size_t n;
	char buf[16];

	/* A new entry: the directory's attributes and listing. */
	mkfile(one->src, "a/new", "");
	wait_handled(one);
	assert_int_equal(lookup(one, "a", &st), PT_NS_UNKNOWN);
	assert_int_equal(one->h.listing(one->h.ctx, "a", idp(one, "a"), &e, &n), PT_NS_UNKNOWN);
	assert_int_equal(lookup(one, "a/g", &st), 1);
	assert_int_equal(lookup(one, "a/n", &st), -ENOENT);

	/* Created where an absence was answered. */
	mkfile(one->src, "a/n", "");
	wait_handled(one);
	assert_int_equal(lookup(one, "a/n", &st), PT_NS_UNKNOWN);

	/* An xattr set: that file's answers. */
	char *f = join(one->src, "a/f");
	assert_int_equal(setxattr(f, "user.x", "2", 1, 0), 0);
	wait_handled(one);
	assert_int_equal(one->h.xattr(one->h.ctx, "a/f", idp(one, "a/f"), "user.x", buf, sizeof(buf)), PT_NS_UNKNOWN);

	/* An open for reading (a writer through a shared mapping opens the
	 * file first, and its writes are never reported). */
	char *g = join(one->src, "a/g");
	int fd = open(g, O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	wait_handled(one);
	assert_int_equal(lookup(one, "a/g", &st), PT_NS_UNKNOWN);

	/* A symlink replaced. */
	char *l = join(one->src, "a/l");
	assert_int_equal(unlink(l), 0);
	assert_int_equal(symlink("g", l), 0);
	wait_handled(one);
	assert_int_equal(one->h.readlink(one->h.ctx, "a/l", idp(one, "a/l"), buf, sizeof(buf)), PT_NS_UNKNOWN);
	assert_int_equal(lookup(one, "b", &st), 1);           /* untouched */
	free(f);
	free(g);
	free(l);
}

/* A renamed directory: nothing below its old name is answered any more. */
static void test_rename_dir(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one;
	struct stat st;
	char *a = join(one->src, "a"), *c = join(one->src, "c");
	assert_int_equal(rename(a, c), 0);
	assert_int_equal(mkdir(a, 0755), 0);
	wait_handled(one);
	assert_int_equal(lookup(one, "a", &st), PT_NS_UNKNOWN);
	assert_int_equal(lookup(one, "a/f", &st), PT_NS_UNKNOWN);
	assert_int_equal(lookup(one, "a/n", &st), PT_NS_UNKNOWN);
	free(a);
	free(c);
}

/* The reader held back (inside the kernel drop of another ns's change),
 * the report of a change stays queued, and no answer may be given while it
 * is, in any ns of the hub (with the reader free, the same holds for the
 * moments before it handles the report). */
static void test_queued_report_blocks_answers(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one, *two = &fx->two;
	atomic_store(&hold_reader, true);
	assert_int_equal(chmod(two->src, 0700), 0);      /* one report: the root's own */
	sem_wait(&entered);
	assert_true(answers(one, "a/g"));                /* nothing queued or being handled */
	chmod_rel(one, "a/g", 0600);
	assert_false(answers(one, "a/g"));
	assert_false(answers(one, "b"));                 /* anything, while queued */
	assert_false(answers(two, "b"));                 /* in every ns */
	sem_post(&release);
	wait_handled(one);
	assert_true(answers(one, "b"));                  /* settled again */
	assert_false(answers(one, "a/g"));               /* dropped */
	assert_true(answers(two, "a/g"));                /* another ns's file */
}

/* A stopped ns answers nothing; started again, it knows nothing (reports
 * were not applied meanwhile) and the kernel is told; the others go on. */
static void test_stop_start(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one, *two = &fx->two;
	ns_stop(one->ns);
	assert_false(answers(one, "b"));
	chmod_rel(one, "a/g", 0600);
	unsigned calls = atomic_load(&one->kernel_calls);
	assert_int_equal(ns_start(one->ns), 0);
	assert_true(atomic_load(&one->kernel_calls) > calls);
	assert_true(atomic_load(&one->root_dropped));
	wait_handled(two);
	assert_false(answers(one, "b"));
	assert_false(answers(one, "a/f"));
	assert_true(answers(two, "b"));
	assert_true(answers(two, "a/g"));
}

/* Two ns with the same relative paths: a change in one directory drops
 * that ns's answer only. */
static void test_two_ns_same_paths(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one, *two = &fx->two;
	assert_true(answers(two, "a/f"));
	chmod_rel(two, "a/g", 0600);
	wait_handled(two);
	wait_handled(one);
	assert_false(answers(two, "a/g"));
	assert_true(answers(two, "a/f"));
	assert_true(answers(one, "a/g"));
}

/* a/f of both directories is one file (a hard link): one watch, and a
 * change through either name is reported to both ns. */
static void test_hard_link_reported_to_both(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one, *two = &fx->two;
	assert_true(answers(one, "a/f"));
	assert_true(answers(two, "a/f"));
	chmod_rel(one, "a/f", 0600);
	wait_handled(one);
	wait_handled(two);
	assert_false(answers(one, "a/f"));
	assert_false(answers(two, "a/f"));
	assert_true(answers(one, "a/g"));
	assert_true(answers(two, "a/g"));
}

/* The descriptors of this process that are inotify instances, and the
 * watches of the last one found (*watches). */
static int inotify_instances(int *watches)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d))) {
		char link[300], target[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		ssize_t len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strcmp(target, "anon_inode:inotify"))
			continue;
		n++;
		char info[300], line[512];
		snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", de->d_name);
		FILE *f = fopen(info, "r");
		assert_non_null(f);
		*watches = 0;
		while (fgets(line, sizeof(line), f))
			*watches += !strncmp(line, "inotify wd:", 11);
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Destroying one ns removes the watches only it held; the survivor's,
 * the shared one included, go on reporting. */
static void test_destroy_leaves_the_other(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one, *two = &fx->two;
	int watches = 0;
	/* Each watches its root, a, a/f, a/g, a/l and b; a/f is one file. */
	assert_int_equal(inotify_instances(&watches), 1);
	assert_int_equal(watches, 11);
	assert_true(answers(two, "a/f"));
	ns_destroy(one->ns);
	one->ns = NULL;
	assert_int_equal(inotify_instances(&watches), 1);
	assert_int_equal(watches, 6);
	chmod_rel(one, "a/f", 0600);                     /* through the other's name */
	wait_handled(two);
	assert_false(answers(two, "a/f"));
	assert_true(answers(two, "a/g"));
	chmod_rel(two, "a/g", 0600);
	wait_handled(two);
	assert_false(answers(two, "a/g"));
	assert_true(answers(two, "b"));
}

/* Lost reports (the queue overflowed while the reader was held back) drop
 * every answer of every ns. */
static void test_overflow_drops_all(void **state)
{
	struct fixture *fx = *state;
	struct side *one = &fx->one, *two = &fx->two;
	FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
	unsigned max = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%u", &max), 1);
	fclose(f);
	char *g1 = join(one->src, "a/g"), *g2 = join(two->src, "a/g");
	atomic_store(&hold_reader, true);
	assert_int_equal(chmod(two->src, 0700), 0);
	sem_wait(&entered);
	/* Alternately (the same report twice in a row is queued once). */
	for (unsigned i = 0; i <= max; i++) {
		int fd = open(i % 2 ? g1 : g2, O_RDONLY);
		assert_true(fd >= 0);
		close(fd);
	}
	sem_post(&release);
	/* Only dropping everything drops the kernel's copy of one's root. */
	for (int i = 0; i < 500 && !atomic_load(&one->root_dropped); i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	assert_true(atomic_load(&one->root_dropped));
	assert_false(answers(one, "b"));
	assert_false(answers(two, "b"));
	assert_false(answers(two, "a/l"));
	free(g1);
	free(g2);
}

/* Many ns over one hub: one inotify instance for all, and a change still
 * reaches only its own ns. */
static void test_many_ns_one_instance(void **state)
{
	(void)state;
	enum { N = 200 };
	int watches = 0, before = inotify_instances(&watches);
	char *dir = tu_mkdtemp();
	struct yolo_image *img = make_image(dir);
	struct ns_hub *hub;
	struct side *s = calloc(N, sizeof(*s));
	assert_int_equal(ns_hub_create(&hub), 0);
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "src%d", i);
		s[i].src = make_tree(dir, name, NULL);
		side_open(&s[i], hub, img);
	}
	assert_int_equal(inotify_instances(&watches), before + 1);
	assert_int_equal(watches, 6 * N);
	assert_int_equal(ns_hub_start(hub), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(ns_start(s[i].ns), 0);
	for (int i = 0; i < N; i++)
		wait_handled(&s[i]);
	chmod_rel(&s[137], "a/g", 0600);
	wait_handled(&s[137]);
	assert_false(answers(&s[137], "a/g"));
	assert_true(answers(&s[136], "a/g"));
	assert_true(answers(&s[138], "a/g"));
	for (int i = 0; i < N; i++)
		side_close(&s[i]);
	assert_int_equal(inotify_instances(&watches), before + 1);
	assert_int_equal(watches, 0);
	ns_hub_destroy(hub);
	assert_int_equal(inotify_instances(&watches), before);
	free(s);
	yolo_image_close(img);
	tu_rmtree(dir);
	free(dir);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int table_lines(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	int n = 0, c;
	assert_non_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* What a change of the mount table costs with 500 ns over one hub and a
 * table of about 1,500 mounts (in a mount namespace of this process's
 * own): read once, each ns works out the mounts below its source.
 * Measured from the mount's return until every ns answers again, and
 * printed, not asserted.  The ns below whose source it is drops what it
 * covers, and only that one. */
static void test_mount_change_cost(void **state)
{
	(void)state;
	enum { N = 500, LINES = 1500 };
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		print_message("not measured: a mount namespace of its own: %s\n", strerror(errno));
		skip();
	}
	char *dir = tu_mkdtemp(), *m = join(dir, "m");
	assert_int_equal(mkdir(m, 0755), 0);
	assert_int_equal(mount("yolo-test", m, "tmpfs", 0, NULL), 0);
	for (int i = table_lines(); i < LINES; i++) {
		char sub[32];
		snprintf(sub, sizeof(sub), "%d", i);
		char *p = join(m, sub);
		assert_int_equal(mkdir(p, 0755), 0);
		assert_int_equal(mount("yolo-test", p, "tmpfs", 0, NULL), 0);
		free(p);
	}
	int lines = table_lines();
	struct yolo_image *img = make_image(dir);
	struct ns_hub *hub;
	struct side *s = calloc(N, sizeof(*s));
	assert_int_equal(ns_hub_create(&hub), 0);
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "src%d", i);
		s[i].src = make_tree(dir, name, NULL);
		side_open(&s[i], hub, img);
	}
	assert_int_equal(ns_hub_start(hub), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(ns_start(s[i].ns), 0);
	for (int i = 0; i < N; i++)
		wait_handled(&s[i]);
	char *a = join(s[250].src, "a");
	double t0 = now_ms();
	assert_int_equal(mount("yolo-test", a, "tmpfs", 0, NULL), 0);
	for (int i = 0; i < N; i++)
		while (!answers(&s[i], "b") && now_ms() - t0 < 5000)
			nanosleep(&(struct timespec){ 0, 20000 }, NULL);
	double ms = now_ms() - t0;
	print_message("mount table of %d lines, %d ns over one hub: a change handled in %.1f ms\n",
		      lines, N, ms);
	assert_false(answers(&s[250], "a"));
	assert_false(answers(&s[250], "a/g"));
	assert_true(answers(&s[249], "a/g"));
	assert_true(answers(&s[251], "a"));
	assert_int_equal(umount(a), 0);
	assert_int_equal(umount2(m, MNT_DETACH), 0);
	for (int i = 0; i < N; i++)
		side_close(&s[i]);
	ns_hub_destroy(hub);
	free(s);
	free(a);
	free(m);
	yolo_image_close(img);
	tu_rmtree(dir);
	free(dir);
}

/* The mount table: which mounts change what the source's paths name. */
static void test_parse_mounts(void **state)
{
	(void)state;
	char table[] =
		"20 1 8:1 / / rw - ext4 /dev/vda rw\n"
		"30 20 0:40 / /srv/src rw - ext4 /dev/loop0 rw\n"                 /* the source's mount */
		"31 30 0:41 / /srv/src/d rw - tmpfs tmpfs rw\n"                    /* over a recorded dir */
		"32 31 0:42 / /srv/src/d/e rw - tmpfs tmpfs rw\n"                  /* on such a mount */
		"33 30 0:40 /alt /srv/src/with\\040space rw - ext4 /dev/loop0 rw\n" /* a bind, escaped */
		"34 30 0:43 / /srv/src rw - fuse.yolofs yolofs rw\n"               /* yolofs in place */
		"35 34 0:44 / /srv/src/x rw - tmpfs tmpfs rw\n"                    /* stacked on yolofs */
		"36 20 0:45 / /srv/srcother rw - tmpfs tmpfs rw\n"                 /* a name prefix only */
		"37 20 0:46 / /var/lib/docker/overlay2/m/merged rw - overlay overlay rw\n"
		"garbage line\n";
	struct ns_submount *v;
	size_t n;
	assert_int_equal(ns_parse_mounts(table, "/srv/src", 30, &v, &n), 0);
	assert_int_equal(n, 3);
	const char *want[] = { "d", "d/e", "with space" };
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i].rel, want[i]);
	assert_int_equal(v[0].id, 31);
	ns_free_mounts(v, n);
}

int main(void)
{
	sem_init(&entered, 0, 0);
	sem_init(&release, 0, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_mounts),
		cmocka_unit_test_setup_teardown(test_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_report_blocks_answers, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_stop_start, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_two_ns_same_paths, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_hard_link_reported_to_both, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_leaves_the_other, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_overflow_drops_all, setup_two, teardown),
		cmocka_unit_test(test_many_ns_one_instance),
		cmocka_unit_test(test_mount_change_cost),        /* last: in a mount namespace */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
