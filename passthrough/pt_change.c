/* pt_change.c - the change bracket: every change of a regular file made
 * through the mount (contents or attributes) is announced to the hooks
 * before and after, and its result recorded as what the kernel caches, so
 * a front end that serves data from elsewhere (yolofs's boot images) can
 * stop serving what changed and tell a touch from a modification; an
 * attribute change of a regular file is also told with its state before
 * and after (attr_set). */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "pt_i.h"

/* Record the current state of an open file as what the kernel caches. */
static void note_cached(struct pt_inode *in, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return;
	pthread_mutex_lock(&in->mu);
	in->cache_known = true;
	in->csize = st.st_size;
	in->cmtime = st.st_mtim;
	in->cctime = st.st_ctim;
	pthread_mutex_unlock(&in->mu);
}

void pt_change_begin(struct pt_change *m, struct pt_fs *fs, struct pt_inode *in,
		     struct pt_fh *fh, enum pt_modify op, uint64_t off, uint64_t len)
{
	*m = (struct pt_change){ .fs = fs, .in = in, .op = op, .off = off, .len = len };
	/* A writer's file is never lazy; without one, the inode's own. */
	m->fd = fh ? pt_fh_fd(fh) : pt_fd(fs, in);
	m->fd_held = !fh && m->fd >= 0;
	if (fh) {
		m->ipriv = fh->ipriv;
	} else {
		pthread_mutex_lock(&in->mu);
		m->locked = true;
		m->ipriv = in->nopen ? in->ipriv : NULL;
	}
	if (fs->cfg.hooks.modify_begin)
		fs->cfg.hooks.modify_begin(fs->cfg.hooks.ctx, m->ipriv, op, off, len, m->fd);
}

void pt_change_end(struct pt_change *m, int fd, int64_t result)
{
	struct pt_fs *fs = m->fs;
	if (fs->cfg.hooks.modify_end)
		fs->cfg.hooks.modify_end(fs->cfg.hooks.ctx, m->ipriv, m->op, m->off, m->len, m->fd,
					 result);
	if (m->locked)
		pthread_mutex_unlock(&m->in->mu);
	if (m->fd_held)
		pt_fd_put(fs, m->in);
	/* The kernel applied this change to its own cache; remember the new
	 * state so the next open may keep it. */
	if (fd >= 0 && result >= 0)
		note_cached(m->in, fd);
}

/* Tell the attr_set hook about an attribute change of a regular file made
 * inside a PT_MOD_ATTR bracket (before: its stat just before). */
static void report_attr_set(struct pt_fs *fs, struct pt_inode *in, const struct stat *before)
{
	struct stat after;
	char rel[PATH_MAX];
	if (!fs->cfg.hooks.attr_set || pt_stat_inode(fs, in, &after) < 0)
		return;
	int fd = pt_fd(fs, in);
	if (fd < 0)
		return;
	int r = pt_path_of_open(fs, in, fd, rel, sizeof(rel));
	pt_fd_put(fs, in);
	if (r == 0)
		fs->cfg.hooks.attr_set(fs->cfg.hooks.ctx, rel, before, &after);
}

void pt_attr_change_begin(struct pt_attr_change *a, struct pt_fs *fs, struct pt_inode *in,
			  struct pt_fh *fh)
{
	a->reg = in->type == S_IFREG;
	a->known = false;
	if (!a->reg)
		return;
	pt_change_begin(&a->m, fs, in, fh, PT_MOD_ATTR, 0, 0);
	a->known = pt_stat_inode(fs, in, &a->before) == 0;
}

void pt_attr_change_end(struct pt_attr_change *a, int fd, int result)
{
	if (!a->reg)
		return;
	if (result == 0 && a->known)
		report_attr_set(a->m.fs, a->m.in, &a->before);
	pt_change_end(&a->m, fd, result);
}
