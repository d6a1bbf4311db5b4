/* yolo_err.h - the one error carrier of YOLO: a function that fails returns
 * a negative errno and, given a `struct yolo_err *` (which may be NULL),
 * fills it with a one-line message naming what is wrong, for the caller to
 * log or print as it is. */
#ifndef YOLO_ERR_H
#define YOLO_ERR_H

struct yolo_err {
	char msg[512];
};

/* Format a message into `err` (if non-NULL).  @return `ret` (a -errno),
 * so a failing path reads `return yolo_fail(err, -EINVAL, "...", ...);`. */
int yolo_fail(struct yolo_err *err, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* YOLO_ERR_H */
