/* capture_main.c - yolo-capture's entry point: record a boot (the
 * default) or build an image from a saved trace (`build`). */
#include <string.h>

#include "config.h"

#include "capture.h"
#include "log.h"
#include "passthrough.h"

int main(int argc, char **argv)
{
	ylog_init("yolo-capture");
	pt_log_to_ylog();
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("yolo-capture %s\n", YOLO_VERSION);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "build"))
		return capture_build_main(argc - 1, argv + 1);
	return capture_record_main(argc, argv);
}
