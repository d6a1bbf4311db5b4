/* session.h - one yolofs mount (prefix session_): a source directory
 * served at a mountpoint, with its options, boot images, learning, answers,
 * pass-through core and FUSE session.  A process serves one (yolofs SOURCE
 * MOUNTPOINT, main.c) or many (yolofs --host, host.c); what the sessions of
 * a process share — the background worker, the inotify hub and the memory
 * pool — is made by that owner and handed in (struct session_shared).
 *
 * Life: session_parse, session_open (source, images, core), session_mount
 * (or take a predecessor's session over), session_start (its threads),
 * session_serve (the loop; returns when unmounted or asked to stop),
 * session_end, session_free.  Each step says what went wrong on stderr;
 * session_free frees whatever the steps made. */
#ifndef YOLO_SESSION_H
#define YOLO_SESSION_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "options.h"
#include "stats.h"
#include "takeover.h"

struct bg;
struct detach;
struct ns_hub;
struct iset_pool;

/* What every session of the process shares; borrowed. */
struct session_shared {
	struct bg *bg;                   /* background jobs (comparisons, checks, priming) */
	struct ns_hub *hub;              /* inotify for namespace answers (NULL: none) */
	struct iset_pool *pool;          /* the memory budget and block store */
};

struct session {
	struct yolofs_opts o;
	struct fuse_args args;
	struct opts_paths images;        /* images= as expanded at start */
	struct stats stats;
	int source_fd;                   /* until the pass-through core takes it */
	struct learn *learn;             /* learn= */
	struct ns *ns;
	struct imageset *set;            /* NULL: started without images= */
	struct bs *bs;
	struct pt_fs *fs;
	struct fuse_session *se;
	struct detach *detach;           /* detach_when_emptied */
	bool mounted;                    /* by this process (else taken over) */
	struct tko_inherited tko;        /* what a predecessor left */
	/* The mount (its device and mount id; 0 and -1: not found).  A
	 * successor may be told them (its predecessor's list) rather than
	 * read the mount table once more. */
	dev_t mount_dev;
	long mnt_id;
	/* How learning asks for a reload of the images (learn.h). */
	void (*reload)(void *ctx);
	void *reload_ctx;
};

/* Parse argv (argc entries, kept: the session's options) into s, which is
 * zeroed first.  @return opts_parse's result. */
enum opts_result session_parse(struct session *s, int argc, char *argv[]);

/* Open the source (before mounting: a mount in place hides it), learning,
 * the images, the answers and the core with its FUSE session.
 * @return 0 or -1. */
int session_open(struct session *s, const struct session_shared *sh);

/* Mount, or take over the predecessor's session (s->tko; s->mount_dev,
 * if set, and s->mnt_id are then that mount's).  A taking over
 * that is refused returns -1, and by an upgrade after telling the
 * predecessor (it serves on).  @return 0 or -1. */
int session_mount(struct session *s);

/* Its threads (learning), its answers told of reports.  A thread that
 * cannot start is logged; the session serves without it. */
void session_start(struct session *s);

/* As a successor: drop the kernel's copies (the source may have changed
 * while nobody watched) and have the kernel send again what the
 * predecessor read but never answered. */
void session_took_over(struct session *s);

/* Whether the topmost FUSE mount at the session's mount point is still
 * the one it serves: whatever was mounted over it since must stay. */
bool session_mount_is_ours(const struct session *s);

/* The session loop, until unmounted or fuse_session_exit.  max_idle:
 * FUSE worker threads kept idle (UINT_MAX: libfuse's default).
 * @return its result: negative on failure. */
int session_serve(struct session *s, unsigned max_idle);

/* Re-read images= (SIGHUP, a control request, or learning having written
 * an image).  @return the image files that failed. */
size_t session_reload(struct session *s);

/* After the loop: end learning (its sessions' images written) and log the
 * statistics. */
void session_end(struct session *s);

/* Unmount (if still ours) and free everything the steps made. */
void session_free(struct session *s);

#endif /* YOLO_SESSION_H */
