/* yolo_err.c - the error carrier's one helper (see yolo_err.h). */
#include <stdarg.h>
#include <stdio.h>

#include "yolo_err.h"

int yolo_fail(struct yolo_err *err, int ret, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return ret;
}
