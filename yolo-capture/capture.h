/* capture.h - yolo-capture's modules: the entry point (capture_main.c), the
 * options both commands share (capture_opts.c), the recording session
 * (capture_record.c) and image building (capture_build.c). */
#ifndef YOLO_CAPTURE_H
#define YOLO_CAPTURE_H

#include <stdint.h>
#include <stdio.h>

#include "yolo_trace.h"

/* ---- capture_opts.c ---- */

void capture_usage(FILE *out);

/* An image option into `wo`: `c` 'b' (--block-size) or 'z' (--zstd) with
 * its argument, a decimal unsigned 32-bit value.  @return 0, or -1 (an
 * error printed). */
int capture_image_opt(int c, const char *arg, struct yolo_writer_opts *wo);

/* ---- the commands ---- */

/* `yolo-capture build ...` (argv[0] is "build").  @return exit status. */
int capture_build_main(int argc, char **argv);

/* `yolo-capture [options] -o IMAGE SOURCE -- COMMAND...`.  @return exit status. */
int capture_record_main(int argc, char **argv);

/* Build IMAGE from a trace and print the summary.  @return 0 or -1 (printed). */
int capture_write_image(const struct yolo_trace *t, int source_dirfd, const char *out,
			const struct yolo_writer_opts *wo);

#endif /* YOLO_CAPTURE_H */
