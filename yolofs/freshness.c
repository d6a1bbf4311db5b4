/* freshness.c - the rule that decides whether a boot image may serve a
 * source file, and the per-file record the server keeps (see freshness.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "freshness.h"

enum fr_verdict fr_judge(const struct yolo_file_ident *accepted,
			 const struct yolo_file_ident *now, const char **why)
{
	const char *w = NULL;
	enum fr_verdict v = FR_COMPARE;
	if (accepted->size != now->size) {
		w = "size";
		v = FR_CHANGED;
	} else if (accepted->ino != now->ino) {
		w = "inode number";                  /* a copy, or replaced by one */
	} else if (accepted->mtime_ns != now->mtime_ns) {
		w = "mtime";
	} else if (accepted->ctime_ns == YOLO_CTIME_UNKNOWN) {
		w = "no change time recorded";       /* an older image */
	} else if (accepted->ctime_ns != now->ctime_ns) {
		w = "change time";                   /* a touch or an mtime set back */
	} else {
		v = FR_SERVE;
	}
	if (why)
		*why = w;
	return v;
}

void fr_state_init(struct fr_state *s, const struct yolo_file_ident *recorded)
{
	*s = (struct fr_state){ .status = FR_UNJUDGED, .accepted = *recorded };
}

enum fr_action fr_open(struct fr_state *s, const struct yolo_file_ident *now, bool *news)
{
	enum fr_status old = s->status;
	enum fr_action act = FR_ACT_PASS;
	if (s->status == FR_DISABLED) {
		*news = false;
		return FR_ACT_PASS;
	}
	switch (fr_judge(&s->accepted, now, &s->why)) {
	case FR_SERVE:
		s->status = FR_FRESH;
		act = FR_ACT_SERVE;
		break;
	case FR_CHANGED:
		s->status = FR_STALE;
		s->pending = *now;
		break;
	case FR_COMPARE:
		/* One comparison per identity: not again while it runs, and
		 * not again for an identity already found to differ. */
		if ((s->status == FR_COMPARING || s->status == FR_STALE) &&
		    yolo_ident_same(&s->pending, now))
			break;
		s->status = FR_COMPARING;
		s->pending = *now;
		act = FR_ACT_COMPARE;
		break;
	}
	*news = s->status != old || act == FR_ACT_COMPARE;
	return act;
}

bool fr_may_serve(const struct fr_state *s, const struct yolo_file_ident *now)
{
	return s->status == FR_FRESH && yolo_ident_same(&s->accepted, now);
}

enum fr_outcome fr_compared(struct fr_state *s, const struct yolo_file_ident *start,
			    const struct yolo_file_ident *end, uint64_t gen, bool equal)
{
	if (s->status != FR_COMPARING || !yolo_ident_same(&s->pending, start))
		return FR_OUT_IGNORED;
	/* What was compared must be what the file still is, with no change
	 * through the mount in between. */
	if (!yolo_ident_same(start, end) || gen != s->generation) {
		s->status = FR_UNJUDGED;
		return FR_OUT_RETRY;
	}
	if (!equal) {
		s->status = FR_STALE;
		s->why = "captured blocks differ from the source";
		return FR_OUT_STALE;
	}
	s->accepted = *start;
	s->status = FR_FRESH;
	return FR_OUT_ACCEPTED;
}

bool fr_changed_through_mount(struct fr_state *s, const struct yolo_file_ident *before,
			      const struct yolo_file_ident *after, bool content)
{
	s->generation++;
	if (s->status != FR_FRESH)
		return false;            /* not served anyway; judged again at open */
	if (!before || !after || !yolo_ident_same(before, &s->accepted) ||
	    (!content && (before->size != after->size || before->ino != after->ino))) {
		/* It had changed underneath before this change (or an
		 * attribute change changed more than attributes). */
		s->status = FR_UNJUDGED;
		s->why = "changed underneath the mount";
		return false;
	}
	s->accepted = *after;
	return true;
}

/* ---- the record ---- */

int fr_file_init(struct fr_file *f, const struct yolo_file *yf)
{
	memset(f, 0, sizeof(*f));
	f->nblocks = yf->block_count;
	f->dropped = calloc((f->nblocks + 63) / 64 + 1, sizeof(*f->dropped));
	if (!f->dropped)
		return -ENOMEM;
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	/* Writers through the mount must not starve behind a stream of reads. */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->lock, &a);
	pthread_rwlockattr_destroy(&a);
	fr_state_init(&f->st, &yf->ident);
	return 0;
}

void fr_file_destroy(struct fr_file *f)
{
	if (!f->dropped)
		return;
	pthread_rwlock_destroy(&f->lock);
	free((void *)f->dropped);
	f->dropped = NULL;
}

enum fr_action fr_file_open(struct fr_file *f, const struct yolo_file_ident *now, bool *news)
{
	pthread_rwlock_wrlock(&f->lock);
	if (atomic_load(&f->disabled) && f->st.status != FR_DISABLED) {
		f->st.status = FR_DISABLED;
		f->st.why = "too many bad image blocks";
	}
	enum fr_action act = fr_open(&f->st, now, news);
	pthread_rwlock_unlock(&f->lock);
	return act;
}

bool fr_file_read_begin(struct fr_file *f, const struct yolo_file_ident *now)
{
	pthread_rwlock_rdlock(&f->lock);
	return !atomic_load_explicit(&f->disabled, memory_order_relaxed) && fr_may_serve(&f->st, now);
}

void fr_file_read_end(struct fr_file *f)
{
	pthread_rwlock_unlock(&f->lock);
}

bool fr_file_dropped(const struct fr_file *f, uint32_t i)
{
	return (atomic_load_explicit(&f->dropped[i / 64], memory_order_relaxed) >> (i % 64)) & 1;
}

static bool drop(struct fr_file *f, uint32_t i)
{
	uint64_t bit = 1ull << (i % 64);
	return !(atomic_fetch_or_explicit(&f->dropped[i / 64], bit, memory_order_relaxed) & bit);
}

void fr_file_change_begin(struct fr_file *f, const struct yolo_file_ident *before,
			  uint32_t first, uint32_t last)
{
	pthread_rwlock_wrlock(&f->lock);
	f->before_known = before != NULL;
	if (before)
		f->before = *before;
	for (uint32_t i = first; i < last && i < f->nblocks; i++)
		drop(f, i);
}

bool fr_file_change_end(struct fr_file *f, const struct yolo_file_ident *after, bool content)
{
	bool kept = fr_changed_through_mount(&f->st, f->before_known ? &f->before : NULL, after,
					     content);
	pthread_rwlock_unlock(&f->lock);
	return kept;
}

bool fr_file_compare_begin(struct fr_file *f, const struct yolo_file_ident *start, uint64_t *gen)
{
	pthread_rwlock_wrlock(&f->lock);
	bool want = f->st.status == FR_COMPARING;
	if (want) {
		f->st.pending = *start;  /* what is compared is the file as it is now */
		*gen = f->st.generation;
	}
	pthread_rwlock_unlock(&f->lock);
	return want;
}

enum fr_outcome fr_file_compared(struct fr_file *f, const struct yolo_file_ident *start,
				 const struct yolo_file_ident *end, uint64_t gen, bool equal)
{
	pthread_rwlock_wrlock(&f->lock);
	enum fr_outcome o = fr_compared(&f->st, start, end, gen, equal);
	if (o == FR_OUT_ACCEPTED)
		atomic_store(&f->read_mismatch_logged, false);
	pthread_rwlock_unlock(&f->lock);
	return o;
}

bool fr_file_bad_block(struct fr_file *f, uint32_t i)
{
	if (i < f->nblocks)
		drop(f, i);
	if (atomic_fetch_add(&f->bad_blocks, 1) + 1 != FR_BAD_BLOCK_LIMIT)
		return false;
	atomic_store(&f->disabled, true);
	return true;
}
