/* trust.h - only trusted boot images are opened (prefix trust_).
 *
 * A boot image decides the bytes every guest sees for the files it
 * matches, so whoever can change one could change what guests boot.  An
 * image is opened only if it, and every directory on the way to it from /
 * (symlinks followed, and held to the same rule), belongs to root or to
 * the user the daemon runs as and is writable by nobody else (no group or
 * other write bit), as sshd's StrictModes does for key files.  The checks
 * are made on the objects opened, one component at a time, never on a path
 * that could be swapped between a check and an open. */
#ifndef YOLO_TRUST_H
#define YOLO_TRUST_H

#include <stdbool.h>

#include "yolo_err.h"

/* Open the image at `path` (absolute) for reading.  With `check` false
 * (the insecure_images option, for tests) only opens it.  @return a file
 * descriptor, or -errno with the reason in `err` (-EPERM: not trusted). */
int trust_open_image(const char *path, bool check, struct yolo_err *err);

/* The same for a directory (learn=: where learned images are written).
 * @return an O_RDONLY|O_DIRECTORY descriptor, or -errno with err. */
int trust_open_dir(const char *path, bool check, struct yolo_err *err);

/* Does the object open as `fd` (named `what` in messages) itself pass the
 * owner and mode rule?  @return 0, or -EPERM (or -errno) with err. */
int trust_check_fd(int fd, const char *what, struct yolo_err *err);

#endif /* YOLO_TRUST_H */
