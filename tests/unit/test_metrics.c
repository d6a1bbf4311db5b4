/* test_metrics.c - yolofs's statistics renderings (yolofs/stats.c): the
 * SIGUSR1 log lines and the Prometheus text each carry every metric of
 * yolofs/metrics.def, expanded here from the list itself, with its own
 * value: the globals once, the per-image ones once for each image.  And
 * the counters a successor daemon continues (stats_save, stats_restore):
 * every global counter, no gauge, and a text cut short or naming a metric
 * this build does not have loses only that line. */
#include "config.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

static const struct listed {
	bool per_image, counter;
	const char *series, *help;
} list[] = {
#define X(scope, kind, name, help) \
	{ STATS_PICK_##scope(false, false, true), STATS_KIND_##kind(true, false), \
	  STATS_SERIES(scope, kind, name), help },
#include "metrics.def"
#undef X
};
#define NLIST (sizeof(list) / sizeof(list[0]))

#define NIMAGES 2
/* The second name needs escaping in a Prometheus label. */
static const char *const image_names[NIMAGES] = { "/images/one.yolo", "/images/tw\"o\\x.yolo" };
static const char *const image_labels[NIMAGES] = {
	"{image=\"/images/one.yolo\",generation=\"0\"}",
	"{image=\"/images/tw\\\"o\\\\x.yolo\",generation=\"7\"}",
};

struct fixture {
	struct stats st;
	struct stats_image im[NIMAGES];
};

/* The value metric i is given: img 0 for a global, 1.. for an image. */
static uint64_t given(size_t i, unsigned img)
{
	return (i + 1) * 10 + img;
}

/* What the renderings must show: the given value, except for the gauges
 * stats.c computes from the image list. */
static uint64_t shown(size_t i, unsigned img)
{
	if (strcmp(list[i].series, "images") == 0)
		return NIMAGES;
	if (strcmp(list[i].series, "image_in_memory") == 0)
		return 1;                /* every image's loaded_bytes is given, not 0 */
	return given(i, img);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	stats_init(&fx->st);
	for (unsigned k = 0; k < NIMAGES; k++) {
		fx->im[k].name = image_names[k];
		fx->im[k].generation = k ? 7 : 0;
	}
	size_t i = 0;
#define X(scope, kind, name, help) \
	STATS_PICK_##scope(atomic_store(&fx->st.name, given(i, 0)), \
			   atomic_store(&fx->st.mem.name, given(i, 0)), \
			   (atomic_store(&fx->im[0].name, given(i, 1)), \
			    atomic_store(&fx->im[1].name, given(i, 2)))); \
	i++;
#include "metrics.def"
#undef X
	assert_int_equal(i, NLIST);
	for (unsigned k = 0; k < NIMAGES; k++)
		assert_int_equal(stats_register(&fx->st, &fx->im[k]), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	stats_destroy(&fx->st);
	free(fx);
	return 0;
}

struct lines {
	char *line[8];
	size_t n;
};

static void collect(void *ctx, const char *line)
{
	struct lines *l = ctx;
	assert_true(l->n < 8);
	l->line[l->n] = strdup(line);
	assert_non_null(l->line[l->n]);
	l->n++;
}

/* Checks " NAME VALUE" pairs after `prefix`: exactly the metrics of the
 * scope, each once, with its value. */
static void check_log_line(const char *line, const char *prefix, bool per_image, unsigned img)
{
	size_t plen = strlen(prefix);
	assert_memory_equal(line, prefix, plen);
	char *rest = strdup(line + plen);
	assert_non_null(rest);
	size_t want = 0, seen[NLIST] = { 0 }, pairs = 0;
	char *save = NULL;
	for (char *name = strtok_r(rest, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
		char *val = strtok_r(NULL, " ", &save);
		assert_non_null(val);
		pairs++;
		size_t i = 0;
		while (i < NLIST && (strcmp(list[i].series, name) != 0 || list[i].per_image != per_image))
			i++;
		if (i == NLIST)
			fail_msg("log line names \"%s\", not a metric of its scope: %s", name, line);
		seen[i]++;
		assert_int_equal(strtoull(val, NULL, 10), shown(i, img));
	}
	for (size_t i = 0; i < NLIST; i++) {
		if (list[i].per_image != per_image)
			continue;
		want++;
		if (seen[i] != 1)
			fail_msg("log line carries %s %zu times: %s", list[i].series, seen[i], line);
	}
	assert_int_equal(pairs, want);
	free(rest);
}

static void test_log_lines_carry_every_metric(void **state)
{
	struct fixture *fx = *state;
	struct lines l = { .n = 0 };
	stats_log_lines(&fx->st, collect, &l);
	assert_int_equal(l.n, 1 + NIMAGES);
	check_log_line(l.line[0], "stats:", false, 0);
	char prefix[256];
	for (unsigned k = 0; k < NIMAGES; k++) {
		snprintf(prefix, sizeof(prefix), "stats: %s (generation %u):", image_names[k],
			 fx->im[k].generation);
		check_log_line(l.line[1 + k], prefix, true, k + 1);
	}
	for (size_t k = 0; k < l.n; k++)
		free(l.line[k]);
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* `line` (without its newline) is a whole line of `framed` (the text after a
 * newline), once. */
static void assert_line_once(const char *framed, const char *line)
{
	char *want;
	assert_true(asprintf(&want, "\n%s\n", line) > 0);
	if (count(framed, want) != 1)
		fail_msg("the metrics text holds the line \"%s\" %zu times", line, count(framed, want));
	free(want);
}

static void test_prometheus_text_carries_every_metric(void **state)
{
	struct fixture *fx = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	stats_print_metrics(&fx->st, f);
	assert_int_equal(fclose(f), 0);
	char *framed;
	assert_true(asprintf(&framed, "\n%s", text) > 0);

	assert_int_equal(count(text, "# TYPE "), NLIST);
	assert_int_equal(count(text, "# HELP "), NLIST);
	size_t samples = 0, lines = count(text, "\n");
	char line[512];
	for (size_t i = 0; i < NLIST; i++) {
		const struct listed *m = &list[i];
		const char *total = m->counter ? "_total" : "";
		snprintf(line, sizeof(line), "# HELP yolofs_%s%s %s", m->series, total, m->help);
		assert_line_once(framed, line);
		snprintf(line, sizeof(line), "# TYPE yolofs_%s%s %s", m->series, total,
			 m->counter ? "counter" : "gauge");
		assert_line_once(framed, line);
		if (!m->per_image) {
			snprintf(line, sizeof(line), "yolofs_%s%s %" PRIu64, m->series, total,
				 shown(i, 0));
			assert_line_once(framed, line);
			samples++;
			continue;
		}
		for (unsigned k = 0; k < NIMAGES; k++) {
			snprintf(line, sizeof(line), "yolofs_%s%s%s %" PRIu64, m->series, total,
				 image_labels[k], shown(i, k + 1));
			assert_line_once(framed, line);
			samples++;
		}
	}
	/* Nothing but the list: HELP, TYPE and the samples above. */
	assert_int_equal(lines, 2 * NLIST + samples);
	free(framed);
	free(text);
}

/* Every global counter of `b` is `times` that of `a`; every gauge of `b`
 * is 0 (gauges are not carried over). */
static void assert_counters(struct stats *a, struct stats *b, uint64_t times)
{
#define X(scope, kind, name, help) \
	STATS_PICK_##scope(STATS_KIND_##kind( \
		assert_int_equal(atomic_load(&b->name), times * atomic_load(&a->name)), \
		assert_int_equal(atomic_load(&b->name), 0)), , );
#include "metrics.def"
#undef X
}

static void test_counters_carry_over(void **state)
{
	struct fixture *fx = *state;
	char buf[2048];
	stats_save(&fx->st, buf, sizeof(buf));
	struct stats next;
	stats_init(&next);
	stats_restore(&next, buf, sizeof(buf));
	assert_counters(&fx->st, &next, 1);
	/* Restored into a daemon that already counted: added. */
	stats_restore(&next, buf, sizeof(buf));
	assert_counters(&fx->st, &next, 2);
	stats_destroy(&next);
}

static void test_counters_text_cut_or_foreign(void **state)
{
	struct fixture *fx = *state;
	char full[2048], cut[2048];
	stats_save(&fx->st, full, sizeof(full));
	/* Cut in the middle of its second line: only the first is read. */
	const char *second = strchr(full, '\n') + 1;
	size_t keep = (size_t)(second - full) + 3;
	memcpy(cut, full, keep);
	cut[keep] = '\0';
	struct stats next;
	stats_init(&next);
	stats_restore(&next, cut, sizeof(cut));
	size_t restored = 0;
#define X(scope, kind, name, help) \
	STATS_PICK_##scope(STATS_KIND_##kind(restored += atomic_load(&next.name) != 0;, ), , )
#include "metrics.def"
#undef X
	assert_int_equal(restored, 1);
	stats_destroy(&next);
	/* A metric this build does not have, a malformed line, no NUL at all. */
	const char foreign[] = "no_such_metric 5\nreloads x\nreloads 3\n";
	stats_init(&next);
	stats_restore(&next, foreign, sizeof(foreign));
	assert_int_equal(atomic_load(&next.reloads), 3);
	char unterminated[4] = { 'r', 'e', 'l', 'o' };
	stats_restore(&next, unterminated, sizeof(unterminated));
	assert_int_equal(atomic_load(&next.reloads), 3);
	/* Saved into too small a buffer: still a string. */
	char tiny[10];
	stats_save(&fx->st, tiny, sizeof(tiny));
	assert_true(memchr(tiny, '\0', sizeof(tiny)) != NULL);
	stats_destroy(&next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_lines_carry_every_metric, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prometheus_text_carries_every_metric, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_counters_carry_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_text_cut_or_foreign, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
