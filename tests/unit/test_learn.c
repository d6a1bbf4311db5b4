/* test_learn.c - learning sessions (yolofs/learn.c) over a real source
 * directory, with the learning thread running:
 * - a session whose file is read without pause is not ended in the middle,
 *   however the thread's ticks fall between the readers' records (a clock
 *   difference that wrapped once ended a session mid-boot, and the rest of
 *   that boot was not learnt);
 * - a session with no read for learn_idle ends on its own, and its image
 *   holds the blocks read, in a file named after the group;
 * - the thread sleeps until the first end it knows of (a host has one per
 *   layer): a new session and an end asked for wake it. */
#include <dirent.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "learn.h"
#include "testutil.h"
#include "util.h"
#include "yolo_image.h"

#define BS 4096u
#define FILE_BLOCKS 64u

struct fixture {
	char *root, *src, *dir, *mnt;
	int source_fd;
	struct stats stats;
	struct learn *l;
};

static void start(struct fixture *fx, double idle_s)
{
	static const struct tu_file f = { "f", FILE_BLOCKS * BS };
	struct yolo_file_ident id;
	fx->root = tu_mkdtemp();
	fx->src = tu_join(fx->root, "src");
	fx->dir = tu_join(fx->root, "learn");
	fx->mnt = tu_join(fx->root, "mnt");
	assert_int_equal(mkdir(fx->src, 0755), 0);
	assert_int_equal(mkdir(fx->dir, 0755), 0);
	assert_int_equal(mkdir(fx->mnt, 0755), 0);
	assert_int_equal(tu_make_source(fx->src, &f, 1, BS, &id), 0);
	fx->source_fd = open(fx->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->source_fd >= 0);
	stats_init(&fx->stats);
	struct learn_config cfg = {
		.dir = fx->dir, .source = fx->src, .mountpoint = fx->mnt,
		.source_fd = fx->source_fd, .window_s = 600, .idle_s = idle_s,
		.stats = &fx->stats,
	};
	struct yolo_err err = { { 0 } };
	assert_int_equal(learn_create(&fx->l, &cfg, &err), 0);
	assert_int_equal(learn_start(fx->l), 0);
}

static void stop(struct fixture *fx)
{
	learn_destroy(fx->l);
	stats_destroy(&fx->stats);
	close(fx->source_fd);
	tu_rmtree(fx->root);
	free(fx->root);
	free(fx->src);
	free(fx->dir);
	free(fx->mnt);
}

/* The blocks of the one image learnt so far, or -1 when there is none. */
static int64_t learnt_blocks(const struct fixture *fx)
{
	const char *images = learn_images_dir(fx->l);
	DIR *d = opendir(images);
	assert_non_null(d);
	int64_t blocks = -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 5, ".yolo"))
			continue;
		assert_int_equal(blocks, -1);            /* one group, one image */
		assert_int_equal(strncmp(e->d_name, "f.", 2), 0);
		char *path = tu_join(images, e->d_name);
		struct yolo_image *img;
		struct yolo_err err = { { 0 } };
		assert_int_equal(yolo_image_open(path, &img, &err), 0);
		blocks = (int64_t)yolo_image_info(img)->block_count;
		yolo_image_close(img);
		free(path);
	}
	closedir(d);
	return blocks;
}

struct reader {
	struct learn *l;
	atomic_bool *stop;
};

/* Read block 0 again and again: every record stamps the session's last read
 * while the learning thread ticks. */
static void *read_without_pause(void *arg)
{
	struct reader *r = arg;
	while (!atomic_load(r->stop))
		learn_read(r->l, "f", 0, BS);
	return NULL;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

static void test_reads_without_pause_keep_the_session(void **state)
{
	(void)state;
	struct fixture fx;
	start(&fx, 1.0);
	learn_open(fx.l, "f");
	atomic_bool done = false;
	struct reader r = { fx.l, &done };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, read_without_pause, &r), 0);
	sleep_s(4.0);                                    /* 16 ticks, 4 idle periods */
	atomic_store(&done, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	/* Still the same session: this read joins it, and the end writes
	 * both blocks in one image.  Had a tick ended it early, the image of
	 * block 0 alone would be all there is. */
	learn_read(fx.l, "f", (FILE_BLOCKS - 1) * BS, BS);
	learn_end_sessions(fx.l);
	assert_int_equal(learnt_blocks(&fx), 2);
	stop(&fx);
}

static void test_idle_session_ends_on_its_own(void **state)
{
	(void)state;
	struct fixture fx;
	start(&fx, 0.5);
	learn_open(fx.l, "f");
	learn_read(fx.l, "f", 0, 3 * BS);
	learn_read(fx.l, "f", 10 * BS, BS);
	assert_int_equal(learnt_blocks(&fx), -1);       /* not before the idle time */
	for (int i = 0; i < 100 && learnt_blocks(&fx) < 0; i++)
		sleep_s(0.1);
	assert_int_equal(learnt_blocks(&fx), 4);
	/* Ended: a read without a new open starts nothing. */
	learn_read(fx.l, "f", 20 * BS, BS);
	learn_end_sessions(fx.l);
	assert_int_equal(learnt_blocks(&fx), 4);
	stop(&fx);
}

/* Voluntary context switches of the learning thread (named yolofs-learn;
 * one at a time here): each is a wake-up. */
static long learn_thread_wakeups(void)
{
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	long n = -1;
	struct dirent *e;
	while ((e = readdir(d)) && n < 0) {
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		bool ours = fgets(comm, sizeof(comm), f) && !strcmp(comm, "yolofs-learn\n");
		fclose(f);
		if (!ours)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		assert_non_null(f = fopen(path, "r"));
		char line[256];
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
				break;
		fclose(f);
	}
	closedir(d);
	assert_true(n >= 0);
	return n;
}

/* Nothing to end for a while: the thread sleeps, with no session and with
 * one whose end is seconds away (it ticked four times a second). */
static void test_thread_sleeps_until_an_end(void **state)
{
	(void)state;
	struct fixture fx;
	start(&fx, 10.0);
	sleep_s(0.2);                                    /* its first round: a prune */
	long w0 = learn_thread_wakeups();
	sleep_s(2.0);
	long idle_wakeups = learn_thread_wakeups() - w0;
	learn_open(fx.l, "f");
	learn_read(fx.l, "f", 0, BS);
	sleep_s(0.2);                                    /* woken by the new session */
	w0 = learn_thread_wakeups();
	sleep_s(2.0);
	long session_wakeups = learn_thread_wakeups() - w0;
	print_message("learning thread wake-ups in 2 s: %ld with no session, %ld with one\n",
		      idle_wakeups, session_wakeups);
	assert_true(idle_wakeups <= 1);
	assert_true(session_wakeups <= 1);
	learn_end_sessions(fx.l);                        /* an end asked for wakes it */
	assert_int_equal(learnt_blocks(&fx), 1);
	stop(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_without_pause_keep_the_session),
		cmocka_unit_test(test_idle_session_ends_on_its_own),
		cmocka_unit_test(test_thread_sleeps_until_an_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
