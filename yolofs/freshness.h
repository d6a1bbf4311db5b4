/* freshness.h - may a boot image serve a source file?  (prefix fr_)
 *
 * The source always wins.  An image records each file's identity at
 * capture (struct yolo_file_ident): size, mtime, change time and inode
 * number (and the device number, never compared).  Size and mtime can be
 * set back by user space (touch -d, cp -p, rsync -t, tar x), the change
 * time cannot: any write, chmod, chown, touch or rename moves it.  So:
 *
 *   - identity the accepted one (yolo_ident_same)   -> serve
 *   - size differs                                  -> changed: never served
 *   - anything else differs (mtime, change time,
 *     inode, or no change time recorded)            -> compare every captured
 *     block with the source in the background; serve again only if all are
 *     equal (the identity compared becomes the accepted one).  Until then,
 *     and forever if a block differs, the file is read from the source.
 *
 * Changes made through the mount are seen as they happen: a content change
 * drops the blocks it touches (for the daemon's lifetime, not until the last
 * close) and moves the accepted identity along; an attribute change (touch,
 * chmod, chown, xattrs: nova touches its base files, libvirt chowns them)
 * moves it along without dropping anything.  Either only if the file was
 * as accepted just before; otherwise the change underneath it is judged at
 * the next open.  After a restart nothing of this is remembered: a file
 * touched, through the mount or not, is compared again, without `rebind`.
 *
 * struct fr_state and the fr_ functions on it are the rule, pure and
 * unit-tested (tests/unit/test_freshness.c); struct fr_file adds what the
 * server needs around it: a lock, the blocks dropped through the mount,
 * the count of bad image blocks, once-only logging.
 */
#ifndef YOLO_FRESHNESS_H
#define YOLO_FRESHNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "yolo_image.h"

enum fr_verdict { FR_SERVE, FR_COMPARE, FR_CHANGED };

/* The rule: how `now` relates to the `accepted` identity.  *why names the
 * first field that differs ("size", "inode number", "mtime", "change time",
 * "no change time recorded"), or NULL. */
enum fr_verdict fr_judge(const struct yolo_file_ident *accepted,
			 const struct yolo_file_ident *now, const char **why);

enum fr_status {
	FR_UNJUDGED,                     /* not judged since the last event */
	FR_FRESH,                        /* served while the file is `accepted` */
	FR_COMPARING,                    /* a comparison of `pending` runs or is queued */
	FR_STALE,                        /* `pending` does not hold the captured bytes */
	FR_DISABLED,                     /* the image's copy is damaged: never again */
};

struct fr_state {
	enum fr_status status;
	struct yolo_file_ident accepted; /* what may be served */
	struct yolo_file_ident pending;  /* COMPARING / STALE: the identity concerned */
	uint64_t generation;             /* changes made through the mount so far */
	const char *why;                 /* the latest finding, for messages */
};

void fr_state_init(struct fr_state *s, const struct yolo_file_ident *recorded);

enum fr_action {
	FR_ACT_SERVE,                    /* serve from the image */
	FR_ACT_PASS,                     /* read the source */
	FR_ACT_COMPARE,                  /* read the source, and queue a comparison */
};

/* A file is opened (or an image loaded) and has identity `now`.
 * *news is set when the status changed (tell the operator once). */
enum fr_action fr_open(struct fr_state *s, const struct yolo_file_ident *now, bool *news);

/* May the image serve a read of a file with identity `now`? */
bool fr_may_serve(const struct fr_state *s, const struct yolo_file_ident *now);

enum fr_outcome {
	FR_OUT_ACCEPTED,                 /* all blocks equal: served again */
	FR_OUT_STALE,                    /* a block differs: not served */
	FR_OUT_RETRY,                    /* the file changed meanwhile: judge it again */
	FR_OUT_IGNORED,                  /* no longer wanted (disabled, already decided) */
};

/* A comparison finished: it began with the source at `start` and the
 * state at generation `gen`, ended at `end`, and found the blocks `equal`. */
enum fr_outcome fr_compared(struct fr_state *s, const struct yolo_file_ident *start,
			    const struct yolo_file_ident *end, uint64_t gen, bool equal);

/* The file was changed through the mount, from `before` to `after` (NULL:
 * not known); `content` when its bytes may have changed (the caller drops
 * the blocks concerned), else only attributes.  @return true when the
 * image keeps serving it. */
bool fr_changed_through_mount(struct fr_state *s, const struct yolo_file_ident *before,
			      const struct yolo_file_ident *after, bool content);

/* ---- the server's record of one file of one image ---- */

/* Bad image blocks after which a file stops being served from its image. */
#define FR_BAD_BLOCK_LIMIT 8

struct fr_file {
	/* Readers (serving) take it shared from their identity check until
	 * their data is gathered; changes through the mount, judgements and
	 * comparison results take it exclusively, so a reply is entirely
	 * from before or entirely from after a change. */
	pthread_rwlock_t lock;
	struct fr_state st;              /* protected by lock */
	struct yolo_file_ident before;   /* stashed between change_begin and change_end */
	bool before_known;
	/* Blocks not to serve (dropped by a change, or bad), over the file's
	 * index entries.  Set under either lock mode (a bad block is found
	 * while serving), so atomic; only ever set. */
	_Atomic uint64_t *dropped;
	uint32_t nblocks;
	atomic_uint bad_blocks;
	atomic_bool disabled;            /* too many bad blocks: st.status follows */
	atomic_bool read_mismatch_logged;
};

/* @return 0 or -ENOMEM. */
int fr_file_init(struct fr_file *f, const struct yolo_file *yf);
void fr_file_destroy(struct fr_file *f);

enum fr_action fr_file_open(struct fr_file *f, const struct yolo_file_ident *now, bool *news);

/* Serving a read: take the lock shared; @return whether the image may
 * serve a file now at `now`.  Always pair with fr_file_read_end. */
bool fr_file_read_begin(struct fr_file *f, const struct yolo_file_ident *now);
void fr_file_read_end(struct fr_file *f);
/* Has block-index entry `i` (of the file's) been dropped?  Lock held. */
bool fr_file_dropped(const struct fr_file *f, uint32_t i);

/* A change through the mount: begin takes the lock exclusively and drops
 * entries [first, last) (none for an attribute change); end records the
 * new identity and unlocks.  `before` may be NULL when it is not known
 * (the change is then judged at the next open). */
void fr_file_change_begin(struct fr_file *f, const struct yolo_file_ident *before,
			  uint32_t first, uint32_t last);
/* `after` NULL: not known (the file is judged again at the next open). */
bool fr_file_change_end(struct fr_file *f, const struct yolo_file_ident *after, bool content);

/* Comparison bracket: begin records `start` as the identity compared and
 * returns the generation, or false when no comparison is wanted now. */
bool fr_file_compare_begin(struct fr_file *f, const struct yolo_file_ident *start, uint64_t *gen);
enum fr_outcome fr_file_compared(struct fr_file *f, const struct yolo_file_ident *start,
				 const struct yolo_file_ident *end, uint64_t gen, bool equal);

/* A bad image block of entry `i`: dropped, and after FR_BAD_BLOCK_LIMIT of
 * them the file is disabled.  @return true when this call disabled it. */
bool fr_file_bad_block(struct fr_file *f, uint32_t i);

#endif /* YOLO_FRESHNESS_H */
