/* capture.h - yolo-capture's modules: the command line (capture_main.c), the
 * recording session (capture_record.c) and image building (capture_build.c). */
#ifndef YOLO_CAPTURE_H
#define YOLO_CAPTURE_H

#include <stdint.h>
#include <stdio.h>

#include "yolo_trace.h"

void capture_usage(FILE *out);

/* Parse a decimal unsigned 32-bit value; prints an error and returns -1. */
int capture_parse_uint(const char *s, uint32_t *out);

/* `yolo-capture build ...` (argv[0] is "build").  @return exit status. */
int capture_build_main(int argc, char **argv);

/* `yolo-capture [options] -o IMAGE SOURCE -- COMMAND...`.  @return exit status. */
int capture_record_main(int argc, char **argv);

/* Build IMAGE from a trace and print the summary.  @return 0 or -1 (printed). */
int capture_write_image(const struct yolo_trace *t, int source_dirfd, const char *out,
			const struct yolo_writer_opts *wo);

#endif /* YOLO_CAPTURE_H */
