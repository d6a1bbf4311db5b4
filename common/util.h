/* util.h - small helpers every YOLO program shares: the clocks, sizes
 * given on a command line, checking an untrusted relative path, opening it
 * strictly beneath a directory, and rendering untrusted bytes for a
 * message. */
#ifndef YOLO_UTIL_H
#define YOLO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC: for durations and deadlines. */
uint64_t yolo_now_ns(void);

/* Nanoseconds from `since` to `now` (both yolo_now_ns), or 0 when `since`
 * is the later: another thread may stamp a time after this one read `now`,
 * and the plain difference would then wrap to centuries. */
static inline uint64_t yolo_ns_since(uint64_t now, uint64_t since)
{
	return now > since ? now - since : 0;
}

/* Nanoseconds since the epoch (CLOCK_REALTIME): for timestamps kept in
 * files (an image's or a trace's creation time). */
uint64_t yolo_wall_ns(void);

/* Parse a size given by an operator: decimal digits, then optionally a
 * binary suffix K, M, G or T (either case, 1024 based), which may be
 * followed by "iB" or "B" ("512M", "2GiB", "64kB").  No sign, no
 * overflow.  @return 0 with *out set, or -EINVAL (*out unchanged). */
int yolo_parse_size(const char *s, uint64_t *out);

/* The longest relative path yolo_path_is_safe accepts, in bytes (as
 * PATH_MAX - 1); a boot image's file table holds paths of this kind. */
#define YOLO_SAFE_PATH_MAX 4095

/* Is `path` an acceptable relative path: non-empty, at most
 * YOLO_SAFE_PATH_MAX bytes, no leading '/', no empty, "." or ".."
 * component, no NUL among its `len` bytes?  @return true when acceptable. */
bool yolo_path_is_safe(const char *path, size_t len);

/* Open `relpath` strictly beneath `dirfd` (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS, falling back to a component-wise O_NOFOLLOW walk on
 * kernels without openat2).  `relpath` is untrusted.
 * @return a file descriptor, or -errno. */
int yolo_open_beneath(int dirfd, const char *relpath, int flags);

/* Render untrusted bytes (a path from an image) for a one-line message:
 * control bytes, DEL, non-ASCII, quote and backslash become \xNN, and the
 * result is cut (ending in "...") to fit `buflen` (at least 8).
 * @return buf. */
const char *yolo_printable(const char *s, size_t len, char *buf, size_t buflen);

#endif /* YOLO_UTIL_H */
