/* test_pt_cred.c - the pass-through core's reading of a caller's
 * supplementary groups from /proc/PID/status: the groups of a real status
 * file (this process's, compared with getgroups), none, many, and every
 * malformed line refused rather than half-read (a caller must never get
 * groups it does not have); and reopening by file handle on a thread that
 * never acted as a caller, which must leave its capabilities alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "pt_i.h"

static int parse(const char *text, gid_t *out, size_t max)
{
	return pt_parse_status_groups(text, strlen(text), out, max);
}

static void test_groups_listed(void **state)
{
	gid_t g[8];
	const char *st = "Name:\tx\nUid:\t1\t1\t1\t1\nGroups:\t4 24 4242 65533 \nNSpid:\t7\n";
	assert_int_equal(parse(st, g, 8), 4);
	assert_int_equal(g[0], 4);
	assert_int_equal(g[1], 24);
	assert_int_equal(g[2], 4242);
	assert_int_equal(g[3], 65533);
}

static void test_no_groups(void **state)
{
	gid_t g[1];
	assert_int_equal(parse("Name:\tx\nGroups:\t\nNSpid:\t7\n", g, 1), 0);
	assert_int_equal(parse("Name:\tx\nGroups:", g, 1), 0);
}

static void test_count_beyond_buffer(void **state)
{
	gid_t g[2];
	assert_int_equal(parse("Name:\tx\nGroups:\t1 2 3 4 5\n", g, 2), 5);
	assert_int_equal(g[0], 1);
	assert_int_equal(g[1], 2);
}

static void test_malformed(void **state)
{
	gid_t g[8];
	assert_int_equal(parse("Name:\tx\nUid:\t1\n", g, 8), -EINVAL);           /* no line */
	assert_int_equal(parse("Groups:\t1 2\n", g, 8), -EINVAL);                /* not after a newline */
	assert_int_equal(parse("Name:\tx\nXGroups:\t1\n", g, 8), -EINVAL);
	assert_int_equal(parse("Name:\tx\nGroups:\t1 x2\n", g, 8), -EINVAL);
	assert_int_equal(parse("Name:\tx\nGroups:\t12a\n", g, 8), -EINVAL);
	assert_int_equal(parse("Name:\tx\nGroups:\t-1\n", g, 8), -EINVAL);
	assert_int_equal(parse("Name:\tx\nGroups:\t4294967295\n", g, 8), -EINVAL); /* (gid_t)-1 */
	assert_int_equal(parse("Name:\tx\nGroups:\t99999999999\n", g, 8), -EINVAL);
}

static void test_own_status(void **state)
{
	char path[64], buf[16384];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)getpid(), (int)getpid());
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	gid_t want[256], got[256];
	int nw = getgroups(256, want);
	assert_true(nw >= 0);
	assert_int_equal(pt_parse_status_groups(buf, n, got, 256), nw);
	for (int i = 0; i < nw; i++)
		assert_int_equal(got[i], want[i]);
}

static void caps_now(struct __user_cap_data_struct *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	assert_int_equal(syscall(SYS_capget, &h, c), 0);
}

/* pt_open_handle on a thread that never acted as anyone, while another
 * module's thread-specific key holds a value (the first key made, as
 * libfuse's and the core's own are): it opens the object and the thread
 * keeps every capability (it once took that value for its own state and
 * set its permitted capabilities to garbage: EPERM ever after). */
static void test_open_handle_fresh_thread(void **state)
{
	if (geteuid() != 0)
		skip();
	pthread_key_t other;
	assert_int_equal(pthread_key_create(&other, NULL), 0);
	static char junk[4096];
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(pthread_setspecific(other, junk), 0);
	char dir[] = "/tmp/pt_cred.XXXXXX";
	assert_non_null(mkdtemp(dir));
	int root = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(root >= 0);
	struct {
		struct file_handle h;
		unsigned char bytes[PT_FHID_MAX];
	} fh = { .h.handle_bytes = PT_FHID_MAX };
	int mnt;
	assert_int_equal(name_to_handle_at(root, "", &fh.h, &mnt, AT_EMPTY_PATH), 0);
	struct pt_fhid id = { .type = fh.h.handle_type, .len = fh.h.handle_bytes };
	memcpy(id.bytes, fh.h.f_handle, id.len);
	struct __user_cap_data_struct before[_LINUX_CAPABILITY_U32S_3], after[_LINUX_CAPABILITY_U32S_3];
	caps_now(before);
	for (int i = 0; i < 3; i++) {
		int fd = pt_open_handle(root, &id, O_PATH | O_CLOEXEC);
		assert_true(fd >= 0);
		close(fd);
	}
	caps_now(after);
	assert_memory_equal(before, after, sizeof(before));
	close(root);
	rmdir(dir);
	pthread_key_delete(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_groups_listed),
		cmocka_unit_test(test_no_groups),
		cmocka_unit_test(test_count_beyond_buffer),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_own_status),
		cmocka_unit_test(test_open_handle_fresh_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
