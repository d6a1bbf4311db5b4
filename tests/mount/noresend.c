/* noresend.c - a mutant for the takeover tests (LD_PRELOAD): yolofs
 * without FUSE_NOTIFY_RESEND.  It drops the one 16-byte notification
 * (fuse_out_header: unique 0, error FUSE_NOTIFY_RESEND) and passes every
 * other write on, so the requests a previous daemon read but never
 * answered are never answered: the test must see their callers hang.
 * (_GNU_SOURCE, for RTLD_NEXT, comes from the build.) */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

ssize_t write(int fd, const void *buf, size_t count)
{
	static ssize_t (*real_write)(int, const void *, size_t);
	if (count == 16) {
		struct { uint32_t len; int32_t error; uint64_t unique; } h;
		memcpy(&h, buf, sizeof(h));
		if (h.len == 16 && h.error == 7 && h.unique == 0)
			return 16;
	}
	if (!real_write)
		real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	return real_write(fd, buf, count);
}
