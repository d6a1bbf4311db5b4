/* learn.h - yolofs's learning mode (prefix learn_): boot images made by
 * yolofs itself, so no operator captures anything by hand.
 *
 * A boot opens its files; each open of a regular file begins (or joins) a
 * learning session for its group, and while the session lasts yolofs
 * records every byte of the group that is read from the source (all of it
 * for a file no image serves; only the misses for one an image serves) and,
 * for a whole mount, the namespace questions the source answered.  The
 * session ends `window` seconds after it began or once the group has had
 * no such read for `idle` seconds, whichever comes first; then the image
 * is written beside the ones learnt before (one per group, extended by the
 * later sessions: a union), atomically, verified against the source, and
 * the image set is reloaded so the next boot is served.  A session that
 * read nothing from the source writes nothing.
 *
 * Groups: by file (nova's `_base`: one image per base file, whichever VMs
 * boot from it) or by mount (a container layer: one image for the layer).
 * Images go to DIR/KEY/, KEY naming the source directory, so daemons
 * sharing DIR (one per layer) never load each other's images; DIR must be
 * trusted as images are (trust.h).  The blocks written are read from the
 * source when the session ends, with the files' identity of that moment,
 * and the image is compared with the source once written (removed if a
 * file changed meanwhile); an earlier image's blocks are kept for files that
 * still hold the same bytes.
 *
 * Limits: `max_bytes` for all of DIR (this daemon removes its own least
 * recently written images to stay under it); images none of whose files
 * exist any more are removed; images are served within memlimit like any
 * other. */
#ifndef YOLO_LEARN_H
#define YOLO_LEARN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "passthrough.h"
#include "stats.h"
#include "yolo_err.h"

struct learn_config {
	const char *dir;                 /* learn=DIR (absolute) */
	const char *source;              /* the source directory as given (names KEY) */
	const char *mountpoint;          /* DIR must not be below it (nor below source) */
	int source_fd;                   /* borrowed */
	bool by_mount;                   /* one image per mount, else one per file */
	double window_s;                 /* learn_window= */
	double idle_s;                   /* learn_idle= */
	uint64_t max_bytes;              /* learn_max= (0: no limit) */
	bool check_trust;                /* DIR must be trusted (not insecure_images) */
	struct stats *stats;
	/* Called (on the learning thread) after an image was written or
	 * removed: re-read the image set. */
	void (*reload)(void *ctx);
	void *reload_ctx;
};

struct learn;

/* Check DIR and create DIR/KEY.  @return 0, or -errno with err. */
int learn_create(struct learn **out, const struct learn_config *cfg, struct yolo_err *err);
/* DIR/KEY: where this daemon's learnt images are (load them from there). */
const char *learn_images_dir(const struct learn *l);
/* Start the thread that ends sessions and writes images (after
 * daemonizing).  @return 0 or -errno. */
int learn_start(struct learn *l);
/* End every session now and write its image, as if its window had closed
 * (on the learning thread; returns once they are written): before this
 * daemon hands its session to a successor, so that what was learnt of a
 * boot in progress is kept. */
void learn_end_sessions(struct learn *l);
/* The same in two steps, so that a process with many mounts asks every
 * one before it waits for any (the thread is woken at once). */
void learn_end_ask(struct learn *l);
void learn_end_wait(struct learn *l);
/* Stop; sessions not ended are dropped (a boot cut short is not learnt). */
void learn_destroy(struct learn *l);

/* `relpath`, a regular file, was opened: begin or join its group's session. */
void learn_open(struct learn *l, const char *relpath);
/* `len` bytes at `off` of `relpath` were read from the source. */
void learn_read(struct learn *l, const char *relpath, uint64_t off, uint64_t len);

/* A recorder of namespace questions for pt_config.ns_rec (by mount only). */
struct pt_ns_recorder learn_recorder(struct learn *l);

#endif /* YOLO_LEARN_H */
