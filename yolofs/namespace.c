/* namespace.c - answers to namespace questions, read from the source when
 * an image is loaded (priming) and kept fresh with inotify and the mount
 * table (see namespace.h); and the hub that reports to every ns of the
 * process.
 *
 * Locking: an ns's `lock` protects its tables and every answer; readers
 * (FUSE workers) hold it shared while they copy an answer out.  A primed
 * answer is only stored if no report that concerns the ns was applied
 * between reading it from the source and storing it (`reports` did not
 * move); a report applied later drops it.
 *
 * No window: the kernel queues a report inside the system call that makes
 * the change, before it returns.  So an answer is only given while
 * (settled()): no byte is queued on the hub's one inotify descriptor
 * (FIONREAD), no batch is being handled by the hub's reader (`handling`,
 * counted before the read), the mount table has not changed since the
 * reader read it, and the ns is started; otherwise the source is asked.  A
 * change that happened before a question was asked is therefore always
 * seen.  A report queued for any ns blocks answers in every ns until
 * handled: conservative, and correct.
 *
 * One hub, many ns: the hub has one inotify instance, one reader thread
 * and one watch on the mount table.  The reader reads a batch and, for
 * each ns told about reports (from ns_create until ns_stop, and from
 * ns_start on), takes its write lock and applies every event of the batch
 * to it: the ns's `owned` watches decide whether an event concerns it
 * (events for watches it does not hold are ignored), and only then is its
 * `reports` moved.  An inode watched by two ns of the hub (a hard link
 * between two layer directories, one directory served twice) has one
 * watch: inotify_add_watch gives the same wd to both (masks are per object
 * type, so the same mask), and both are told, IN_IGNORED included.
 * The hub counts the ns owning each watch, and ns_destroy removes only
 * those it was the last to own.  A watch is added and recorded as owned
 * under the ns's write lock, so the reader cannot apply a report of it
 * before the ns knows the watch is its own (a prime in progress then sees
 * `reports` move); if another ns's destroy removes it meanwhile, its
 * IN_IGNORED is a report to this ns like any other.  A lost report
 * (IN_Q_OVERFLOW) drops every answer of every ns.  The mount table is read
 * once per change, parsed into entries, and each ns works out the mounts
 * below its own source from them.
 *
 * Lock order: the hub's `lock` (the list of ns, whether each is told, the
 * mount table as last read, each ns's kernel drops), then an ns's `lock`,
 * then the hub's `refs_lock` (the counts of owners).
 * The reader holds the hub's lock for a whole batch, so ns_stop and
 * ns_destroy, which take it, return once no dispatch to the ns is under
 * way.  kernel_changed is called with the hub's lock held and no ns lock:
 * the kernel may wait for a request before it drops an entry, and a
 * request takes only its ns's lock (never the hub's); what waits is the
 * creation and removal of other ns, for that batch.
 *
 * The kernel keeps what it was answered (pt_config.answer_timeout, long):
 * every answer dropped also drops the kernel's copy of that object and of
 * its entry in its directory (ns_set_kernel), once the reader has released
 * the ns's lock.  Between a change on the source and that drop the kernel
 * may still use its copy: the time the reader takes to wake and handle the
 * report (microseconds), against the whole attribute timeout before. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hashmap.h"
#include "log.h"
#include "namespace.h"

/* Which answers of a node are good now. */
enum {
	A_STAT = 1 << 0,                 /* st */
	A_ABSENT = 1 << 1,               /* it does not exist */
	A_LISTING = 1 << 2,              /* listing */
	A_LINK = 1 << 3,                 /* link */
	A_XLIST = 1 << 4,                /* xlist */
};

struct xanswer {
	char *name;
	char *value;
	ssize_t len;                     /* -ENODATA: absent */
};

struct node {
	char *path;
	unsigned answers;
	struct stat st;
	struct pt_ns_entry *listing;     /* one block: entries, then their names */
	size_t nlisting, listing_size;
	char *link;
	size_t link_len;
	char *xlist;
	size_t xlist_len;
	struct xanswer *xattrs;          /* good while A_STAT is */
	size_t nxattrs;
	struct pt_fhid id;               /* the object the answers are about (len 0: none) */
	int wd;                          /* inotify watch on it, or -1 */
};

/* /proc/self/mountinfo as read once, split into its mounts. */
struct mount_entry {
	int id, parent;
	const char *point;               /* in text, unescaped */
};
struct mount_table {
	char *text;
	struct mount_entry *v;
	size_t n;
};

struct ns_hub {
	int ifd;                         /* the one inotify instance */
	int quit_fd;                     /* eventfd: stops the reader */
	pthread_t reader;
	bool running;
	atomic_uint handling;            /* batches read (or being read) and not yet applied */

	/* Mounts and umounts below a source change what its paths name, and
	 * inotify reports none of them: the mount table is watched.  Polling
	 * it consumes its change event, so whoever sees one (the reader, or a
	 * question in settled()) sets mounts_dirty, and the reader, kicked,
	 * reads the table and each ns drops what the change covers. */
	int mounts_fd;                   /* /proc/self/mountinfo */
	int kick_fd;                     /* eventfd: the reader has a mount change to read */
	atomic_bool mounts_dirty;

	pthread_mutex_t lock;            /* the list, each ns's `told` and drops, `table` */
	struct ns **list;                /* every ns made over the hub */
	size_t nlist, list_cap;
	struct mount_table table;        /* as last read */

	/* How many ns own each watch (items: wd << 32 | count): the last
	 * to let go removes it.  Taken last, after any ns's lock. */
	pthread_mutex_t refs_lock;
	struct yhash refs;
};

struct ns {
	struct ns_hub *hub;
	int source_fd;                   /* borrowed */
	struct stats *stats;
	bool told;                       /* the reader applies reports to it (hub's lock) */
	bool was_stopped;                /* reports were missed: ns_start drops everything */
	atomic_bool answering;           /* started */
	atomic_uint_fast64_t reports;    /* batches of reports (or mount changes) that concerned it */

	char *source_path;               /* the source root in the mount table */
	int source_mnt;                  /* its mount's id */
	struct ns_submount *mounts;      /* the mounts below the source (hub's lock) */
	size_t nmounts;

	pthread_rwlock_t lock;           /* protects the tables and the answers */
	struct yhash nodes;              /* path -> node (items: node pointers) */
	/* Watched nodes by watch: several share one when they are links to
	 * one object. */
	struct yhash by_wd;
	/* Every watch this ns added and the kernel has not removed (items:
	 * wds): by_wd's, and those of primes in progress or that raced. */
	struct yhash owned;

	/* What the kernel keeps of dropped answers, dropped by kernel_changed
	 * after the ns's lock is released (the kernel takes a directory's lock
	 * to drop an entry, and a request holding it may wait for ours).  Hub's
	 * lock. */
	void (*kernel_changed)(void *ctx, dev_t dev, ino_t ino, const char *name);
	void *kernel_ctx;
	struct kernel_drop *drops;
	size_t ndrops, drops_cap;
	bool drops_lost;                 /* out of memory: the kernel drops everything */
};

struct kernel_drop {
	dev_t dev;
	ino_t ino;
	char *name;                      /* NULL: the object itself */
};

static struct ylog_limit watch_limit, remote_limit;

/* IN_OPEN: a write through a shared mapping is never reported (nor is the
 * mtime it moves), but the writer's open is: from then on the file is asked
 * of the source.  A directory being opened (a listing) changes nothing. */
#define WATCH_DIR (IN_ATTRIB | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | \
		   IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_OPEN | IN_ONLYDIR)
#define WATCH_FILE (IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE | IN_OPEN | IN_DELETE_SELF | \
		    IN_MOVE_SELF)

static uint64_t hash_path(const char *p)
{
	uint64_t h = 14695981039346656037ull;    /* FNV-1a */
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

/* ---- the tables (lock held) ---- */

static struct node *node_of(uint64_t item)
{
	return (struct node *)(uintptr_t)item;
}

static bool path_is(const void *ctx, uint64_t item, const void *path)
{
	(void)ctx;
	return !strcmp(node_of(item)->path, path);
}

static struct node *find(struct ns *ns, const char *path)
{
	uint64_t item;
	return yhash_find(&ns->nodes, hash_path(path), path_is, NULL, path, &item) ?
	       node_of(item) : NULL;
}

static void forget_answers(struct node *n)
{
	free(n->listing);
	free(n->link);
	free(n->xlist);
	for (size_t i = 0; i < n->nxattrs; i++) {
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	n->listing = NULL;
	n->link = n->xlist = NULL;
	n->xattrs = NULL;
	n->nlisting = n->nxattrs = 0;
	n->answers = 0;
	n->id.len = 0;
}

/* The node for `path`, added if new (taking `path`).  NULL on ENOMEM. */
static struct node *get(struct ns *ns, char *path)
{
	struct node *n = find(ns, path);
	if (n) {
		free(path);
		return n;
	}
	if (!(n = calloc(1, sizeof(*n))) ||
	    yhash_add(&ns->nodes, hash_path(path), (uintptr_t)n) < 0) {
		free(n);
		free(path);
		return NULL;
	}
	n->path = path;
	n->wd = -1;
	return n;
}

static void queue_kernel_drop(struct ns *ns, dev_t dev, ino_t ino, const char *name)
{
	if (!ns->kernel_changed || ns->drops_lost)
		return;
	if (ns->ndrops == ns->drops_cap) {
		size_t cap = ns->drops_cap ? ns->drops_cap * 2 : 64;
		struct kernel_drop *v = realloc(ns->drops, cap * sizeof(*v));
		if (!v) {
			ns->drops_lost = true;
			return;
		}
		ns->drops = v;
		ns->drops_cap = cap;
	}
	struct kernel_drop *d = &ns->drops[ns->ndrops];
	*d = (struct kernel_drop){ .dev = dev, .ino = ino };
	if (name && !(d->name = strdup(name))) {
		ns->drops_lost = true;
		return;
	}
	ns->ndrops++;
}

/* The node of `path`'s directory (NULL for the root or when not known),
 * and in *name where `path`'s last component starts. */
static struct node *find_parent(struct ns *ns, const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	char parent[PATH_MAX];
	*name = slash ? slash + 1 : path;
	if (!path[0])
		return NULL;
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 0, path);
	return find(ns, parent);
}

/* The kernel may keep what it was told about `n`, by an answer or by the
 * source after one was dropped (timeout=): its attributes and its entry in
 * its directory (`st` stays known after the answers go). */
static void queue_node_drop(struct ns *ns, struct node *n)
{
	const char *name;
	struct node *p = find_parent(ns, n->path, &name);
	if (n->st.st_ino)
		queue_kernel_drop(ns, n->st.st_dev, n->st.st_ino, NULL);
	if (p && p->st.st_ino)
		queue_kernel_drop(ns, p->st.st_dev, p->st.st_ino, name);
}

/* Drop the kernel's copies queued (lock not held). */
static void flush_kernel_drops(struct ns *ns)
{
	if (ns->drops_lost) {
		ylog(YLOG_WARN, "namespace: out of memory: the kernel drops everything it keeps");
		ns->kernel_changed(ns->kernel_ctx, 0, 0, NULL);
		ns->drops_lost = false;
	}
	for (size_t i = 0; i < ns->ndrops; i++) {
		struct kernel_drop *d = &ns->drops[i];
		if (d->dev || d->ino)
			ns->kernel_changed(ns->kernel_ctx, d->dev, d->ino, d->name);
		free(d->name);
	}
	ns->ndrops = 0;
}

static void forget_counted(struct ns *ns, struct node *n)
{
	if (n->answers)
		stats_add(&ns->stats->ns_dropped, 1);
	forget_answers(n);
}

static void count_drop(struct ns *ns, struct node *n)
{
	queue_node_drop(ns, n);
	forget_counted(ns, n);
}

/* Drop what is known about `path` (and, `below`, every path under it)
 * and about its directory's listing. */
static void drop_path(struct ns *ns, const char *path, bool below)
{
	struct node *n = find(ns, path);
	if (n)
		count_drop(ns, n);
	size_t len = strlen(path);
	uint64_t item;
	for (uint32_t pos = 0; below && yhash_next(&ns->nodes, &pos, &item);) {
		struct node *x = node_of(item);
		if (len == 0 ? x->path[0] != '\0' :
		    !strncmp(x->path, path, len) && x->path[len] == '/')
			count_drop(ns, x);
	}
	const char *name;
	struct node *p = find_parent(ns, path, &name);
	if (p && (p->answers & A_LISTING)) {
		stats_add(&ns->stats->ns_dropped, 1);
		p->answers &= ~A_LISTING;
	}
}

static void drop_all(struct ns *ns)
{
	uint64_t item;
	/* All the kernel's copies first: an entry is named by its directory's
	 * answer, which the second walk may drop before the entry's. */
	for (uint32_t pos = 0; yhash_next(&ns->nodes, &pos, &item);)
		queue_node_drop(ns, node_of(item));
	for (uint32_t pos = 0; yhash_next(&ns->nodes, &pos, &item);)
		forget_counted(ns, node_of(item));
}

/* ---- nodes by watch (lock held) ---- */

static bool watch_is(const void *ctx, uint64_t item, const void *wd)
{
	(void)ctx;
	return node_of(item)->wd == *(const int *)wd;
}

static void wd_unlink(struct ns *ns, struct node *n)
{
	if (n->wd < 0)
		return;
	yhash_remove(&ns->by_wd, (uint64_t)n->wd, (uintptr_t)n);
	n->wd = -1;
}

/* File `n` (not filed) under watch `wd`.  @return false on ENOMEM. */
static bool wd_link(struct ns *ns, struct node *n, int wd)
{
	if (yhash_add(&ns->by_wd, (uint64_t)wd, (uintptr_t)n) < 0)
		return false;
	n->wd = wd;
	return true;
}

static bool owns(const struct ns *ns, int wd)
{
	uint64_t key = (uint64_t)wd, item;
	return yhash_find(&ns->owned, key, yhash_item_is, NULL, &key, &item);
}

static bool ref_is(const void *ctx, uint64_t item, const void *wd)
{
	(void)ctx;
	return (int)(item >> 32) == *(const int *)wd;
}

/* Add `delta` (+1 or -1) to the count of ns owning `wd`.  @return the
 * count now; 0 after +1: out of memory (nothing changed). */
static uint32_t ref_watch(struct ns_hub *hub, int wd, int delta)
{
	uint64_t old = 0, key = (uint64_t)(uint32_t)wd;
	pthread_mutex_lock(&hub->refs_lock);
	bool known = yhash_find(&hub->refs, key, ref_is, NULL, &wd, &old);
	uint32_t was = (uint32_t)old, count = !known && delta < 0 ? 0 : was + (uint32_t)delta;
	/* The new count first, then the old one goes (removed by value); out
	 * of memory, a count going down stays (the watch is kept). */
	if (count > 0 && yhash_add(&hub->refs, key, key << 32 | count) < 0)
		count = delta > 0 ? 0 : was;
	else if (known)
		yhash_remove(&hub->refs, key, old);
	pthread_mutex_unlock(&hub->refs_lock);
	return count;
}

/* Record watch `wd` as this ns's (its lock held for writing).  @return
 * false on ENOMEM. */
static bool own(struct ns *ns, int wd)
{
	if (owns(ns, wd))
		return true;
	if (yhash_add(&ns->owned, (uint64_t)wd, (uint64_t)wd) < 0)
		return false;
	if (ref_watch(ns->hub, wd, 1) == 0) {
		yhash_remove(&ns->owned, (uint64_t)wd, (uint64_t)wd);
		return false;
	}
	return true;
}

/* ---- inotify reports ---- */

/* Apply report `ev` to `ns`.  @return whether it may concern an answer. */
static bool handle_report(struct ns *ns, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		drop_all(ns);
		return true;
	}
	if ((ev->mask & (IN_OPEN | IN_ISDIR)) == (IN_OPEN | IN_ISDIR))
		return false;
	if (!owns(ns, ev->wd))
		return false;            /* another ns's watch */
	/* Several nodes share a watch when they are links to one file. */
	uint64_t item;
	for (uint32_t pos = 0;
	     yhash_find_next(&ns->by_wd, (uint64_t)ev->wd, watch_is, NULL, &ev->wd, &pos, &item);) {
		struct node *x = node_of(item);
		if (ev->len && ev->name[0]) {
			char child[PATH_MAX];
			snprintf(child, sizeof(child), "%s%s%s", x->path, x->path[0] ? "/" : "",
				 ev->name);
			drop_path(ns, child, true);
			if (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO))
				count_drop(ns, x);   /* the directory's times and link count */
		} else {
			bool gone = ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED);
			drop_path(ns, x->path, gone);
		}
	}
	/* The watch is gone: its nodes are unwatched (after the walk, which a
	 * removal would end). */
	if (ev->mask & IN_IGNORED) {
		while (yhash_find(&ns->by_wd, (uint64_t)ev->wd, watch_is, NULL, &ev->wd, &item))
			wd_unlink(ns, node_of(item));
		if (yhash_remove(&ns->owned, (uint64_t)ev->wd, (uint64_t)ev->wd))
			ref_watch(ns->hub, ev->wd, -1);
	}
	return true;
}

/* Apply a batch of reports to `ns` (hub's lock held). */
static void apply_batch(struct ns *ns, const char *buf, size_t len)
{
	bool relevant = false;
	pthread_rwlock_wrlock(&ns->lock);
	for (const char *at = buf; at < buf + len;) {
		const struct inotify_event *ev = (const struct inotify_event *)at;
		relevant |= handle_report(ns, ev);
		at += sizeof(*ev) + ev->len;
	}
	if (relevant)
		atomic_fetch_add(&ns->reports, 1);
	pthread_rwlock_unlock(&ns->lock);
}

/* ---- the mount table ---- */

/* Undo the mount table's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* The whole of /proc/self/mountinfo (NUL-terminated, malloc'd), or NULL. */
static char *read_mount_table(int fd)
{
	size_t len = 0, cap = 64 * 1024;
	char *buf = malloc(cap);
	if (!buf || lseek(fd, 0, SEEK_SET) < 0) {
		free(buf);
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

void ns_free_mounts(struct ns_submount *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].rel);
	free(v);
}

/* Split mount table text `table` (changed in place) into its mounts.
 * *out: malloc'd, *n entries pointing into table.  @return 0 or -ENOMEM. */
static int split_table(char *table, struct mount_entry **out, size_t *nout)
{
	struct mount_entry *all = NULL;
	size_t n = 0, cap = 0;
	for (char *line = table, *next; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? (*next = '\0', next + 1) : line + strlen(line);
		int id, parent, at = 0;
		if (sscanf(line, "%d %d %*s %*s %n", &id, &parent, &at) != 2 || !at)
			continue;
		char *point = line + at, *end = strchr(point, ' ');
		if (end)
			*end = '\0';
		unescape(point);
		if (n == cap) {
			cap = cap ? cap * 2 : 128;
			void *na = realloc(all, cap * sizeof(*all));
			if (!na) {
				free(all);
				return -ENOMEM;
			}
			all = na;
		}
		all[n++] = (struct mount_entry){ .id = id, .parent = parent, .point = point };
	}
	*out = all;
	*nout = n;
	return 0;
}

/* The mounts of `all` that change what the source's paths name (see
 * ns_parse_mounts).  Cheap for a source with none: one prefix test per
 * mount.  @return 0 or -ENOMEM. */
static int mounts_below(const struct mount_entry *all, size_t n, const char *source_path,
			int source_mnt, struct ns_submount **out, size_t *nout)
{
	size_t plen = strlen(source_path), ncand = 0;
	const struct mount_entry **cand = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *p = all[i].point;
		bool below = plen == 1 ? p[1] != '\0' :
			     !strncmp(p, source_path, plen) && p[plen] == '/';
		if (!below)
			continue;
		if (!cand && !(cand = malloc(n * sizeof(*cand))))
			return -ENOMEM;
		cand[ncand++] = &all[i];
	}
	struct ns_submount *v = calloc(ncand + 1, sizeof(*v));
	size_t nv = 0;
	bool grew = v != NULL;
	/* Parents usually come first in the table, not always: repeat until
	 * no mount is added. */
	while (grew) {
		grew = false;
		for (size_t i = 0; i < ncand; i++) {
			bool known = false, on_source = cand[i]->parent == source_mnt;
			for (size_t k = 0; k < nv; k++) {
				known |= v[k].id == cand[i]->id;
				on_source |= v[k].id == cand[i]->parent;
			}
			if (known || !on_source)
				continue;
			const char *p = cand[i]->point;
			if (!(v[nv].rel = strdup(p + (plen == 1 ? 1 : plen + 1)))) {
				ns_free_mounts(v, nv);
				v = NULL;
				break;
			}
			v[nv++].id = cand[i]->id;
			grew = true;
		}
	}
	free(cand);
	if (!v)
		return -ENOMEM;
	*out = v;
	*nout = nv;
	return 0;
}

int ns_parse_mounts(char *table, const char *source_path, int source_mnt,
		    struct ns_submount **out, size_t *nout)
{
	struct mount_entry *all;
	size_t n;
	int ret = split_table(table, &all, &n);
	if (ret < 0)
		return ret;
	ret = mounts_below(all, n, source_path, source_mnt, out, nout);
	free(all);
	return ret;
}

static void free_table(struct mount_table *t)
{
	free(t->text);
	free(t->v);
	*t = (struct mount_table){ 0 };
}

/* Read and split the mount table now.  @return 0 or -errno. */
static int read_table(struct ns_hub *hub, struct mount_table *t)
{
	if (!(t->text = read_mount_table(hub->mounts_fd)))
		return -ENOMEM;
	int ret = split_table(t->text, &t->v, &t->n);
	if (ret < 0) {
		free(t->text);
		t->text = NULL;
	}
	return ret;
}

/* The mounts below ns's source in the hub's table (hub's lock held).
 * @return 0 or -errno. */
static int source_mounts(struct ns *ns, struct ns_submount **out, size_t *nout)
{
	const struct mount_table *t = &ns->hub->table;
	return mounts_below(t->v, t->n, ns->source_path, ns->source_mnt, out, nout);
}

static bool has_mount(const struct ns_submount *v, size_t n, const struct ns_submount *m)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == m->id && !strcmp(v[i].rel, m->rel))
			return true;
	return false;
}

/* Drop what a mount or umount below the source covers, the hub's table
 * just read (`read_ok` false: it could not be, and everything goes).  Hub's
 * lock held. */
static void apply_mounts(struct ns *ns, bool read_ok)
{
	struct ns_submount *now = NULL;
	size_t n = 0;
	bool known = read_ok && source_mounts(ns, &now, &n) == 0, changed = !known;
	pthread_rwlock_wrlock(&ns->lock);
	if (!known)
		drop_all(ns);
	for (size_t i = 0; i < n; i++) {
		if (!has_mount(ns->mounts, ns->nmounts, &now[i])) {
			drop_path(ns, now[i].rel, true);
			changed = true;
		}
	}
	for (size_t i = 0; known && i < ns->nmounts; i++) {
		if (!has_mount(now, n, &ns->mounts[i])) {
			drop_path(ns, ns->mounts[i].rel, true);
			changed = true;
		}
	}
	if (changed)
		atomic_fetch_add(&ns->reports, 1);
	pthread_rwlock_unlock(&ns->lock);
	if (known) {
		ns_free_mounts(ns->mounts, ns->nmounts);
		ns->mounts = now;
		ns->nmounts = n;
	}
}

/* Has the mount table changed since it was last read?  Polling consumes
 * the change, so whoever sees it leaves it to the reader. */
static bool mounts_changed(struct ns_hub *hub)
{
	struct pollfd p = { .fd = hub->mounts_fd, .events = POLLPRI };
	if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLPRI | POLLERR)))
		return false;
	uint64_t one = 1;
	atomic_store(&hub->mounts_dirty, true);
	if (write(hub->kick_fd, &one, sizeof(one)) < 0)
		ylog(YLOG_DEBUG, "namespace: cannot wake the reader: %s", strerror(errno));
	return true;
}

/* ---- the hub's reader ---- */

/* The mount table read again (`t`; `read_ok` false: it could not be):
 * every ns told drops what the change covers.  Hub's lock held. */
static void hub_apply_mounts(struct ns_hub *hub, struct mount_table *t, bool read_ok)
{
	if (read_ok) {
		free_table(&hub->table);
		hub->table = *t;
	} else {
		ylog(YLOG_WARN, "namespace: cannot read the mount table; every answer is asked of "
		     "the source again");
	}
	for (size_t i = 0; i < hub->nlist; i++)
		if (hub->list[i]->told)
			apply_mounts(hub->list[i], read_ok);
}

/* Apply a batch of inotify reports to every ns told.  Hub's lock held. */
static void hub_apply_batch(struct ns_hub *hub, const char *buf, size_t len)
{
	for (const char *at = buf; at < buf + len;) {
		const struct inotify_event *ev = (const struct inotify_event *)at;
		if (ev->mask & IN_Q_OVERFLOW)
			ylog(YLOG_WARN, "namespace: inotify reports were lost; every answer is asked "
			     "of the source again");
		at += sizeof(*ev) + ev->len;
	}
	for (size_t i = 0; i < hub->nlist; i++)
		if (hub->list[i]->told)
			apply_batch(hub->list[i], buf, len);
}

/* After a batch: the kernel's copies of what was dropped go (hub's lock
 * held, no ns lock). */
static void hub_flush(struct ns_hub *hub)
{
	for (size_t i = 0; i < hub->nlist; i++)
		if (hub->list[i]->told)
			flush_kernel_drops(hub->list[i]);
}

static void *hub_reader(void *arg)
{
	struct ns_hub *hub = arg;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		struct pollfd p[4] = { { .fd = hub->ifd, .events = POLLIN },
				       { .fd = hub->quit_fd, .events = POLLIN },
				       { .fd = hub->mounts_fd, .events = POLLPRI },
				       { .fd = hub->kick_fd, .events = POLLIN } };
		if (poll(p, 4, -1) < 0)
			continue;
		if (p[1].revents)
			return NULL;
		if ((p[2].revents & (POLLPRI | POLLERR)) || p[3].revents) {
			/* In this order: a change a question sees once the
			 * table is being read sets mounts_dirty again and kicks. */
			uint64_t kicks;
			struct mount_table t = { 0 };
			atomic_fetch_add(&hub->handling, 1);
			if (read(hub->kick_fd, &kicks, sizeof(kicks)) < 0)
				kicks = 0;       /* not kicked: the table's own event */
			atomic_store(&hub->mounts_dirty, false);
			bool read_ok = read_table(hub, &t) == 0;
			pthread_mutex_lock(&hub->lock);
			hub_apply_mounts(hub, &t, read_ok);
			atomic_fetch_sub(&hub->handling, 1);
			hub_flush(hub);
			pthread_mutex_unlock(&hub->lock);
		}
		if (!p[0].revents)
			continue;
		atomic_fetch_add(&hub->handling, 1);     /* before the queue empties */
		ssize_t len = read(hub->ifd, buf, sizeof(buf));
		pthread_mutex_lock(&hub->lock);
		if (len > 0)
			hub_apply_batch(hub, buf, (size_t)len);
		/* Answers may be given again once every ns has applied the
		 * batch; the kernel's copies are dropped after. */
		atomic_fetch_sub(&hub->handling, 1);
		hub_flush(hub);
		pthread_mutex_unlock(&hub->lock);
	}
}

/* Nothing is queued or being handled in the hub, the mount table has not
 * changed, and the ns is started (its lock held shared, so no report can
 * be applied to it meanwhile): its answers reflect every change made so
 * far. */
static bool settled(struct ns *ns)
{
	struct ns_hub *hub = ns->hub;
	int queued = 0;
	if (!atomic_load(&ns->answering))
		return false;
	if (ioctl(hub->ifd, FIONREAD, &queued) < 0 || queued > 0)
		return false;
	if (atomic_load(&hub->mounts_dirty) || mounts_changed(hub))
		return false;
	return atomic_load(&hub->handling) == 0;
}

/* ---- priming: reading the answers an image asks for ---- */

/* What was read about one path, to be stored if no report came between. */
struct primed {
	unsigned answers;
	struct stat st;
	struct pt_ns_entry *listing;
	size_t nlisting, listing_size;
	char *link;
	size_t link_len;
	char *xlist;
	size_t xlist_len;
	struct xanswer *xattrs;
	size_t nxattrs;
	struct pt_fhid id;
	int wd;
};

/* The listing of the directory open as O_PATH `fd`: "." and ".." included,
 * names in the same block.  @return 0 or -errno. */
static int read_listing(int fd, struct primed *l)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	size_t n = 0, names = 0, cap = 0;
	struct { char *name; ino_t ino; unsigned char type; } *v = NULL;
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d))) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			void *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				ret = -ENOMEM;
				break;
			}
			v = nv;
		}
		if (!(v[n].name = strdup(de->d_name))) {
			ret = -ENOMEM;
			break;
		}
		v[n].ino = de->d_ino;
		v[n].type = de->d_type;
		names += strlen(de->d_name) + 1;
		n++;
	}
	closedir(d);
	if (ret == 0) {
		l->listing_size = n * sizeof(struct pt_ns_entry) + names;
		l->listing = malloc(l->listing_size + 1);
		if (!l->listing)
			ret = -ENOMEM;
	}
	if (ret == 0) {
		char *s = (char *)(l->listing + n);
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(v[i].name) + 1;
			memcpy(s, v[i].name, len);
			l->listing[i] = (struct pt_ns_entry){ s, v[i].ino, v[i].type };
			s += len;
		}
		l->nlisting = n;
		l->answers |= A_LISTING;
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return ret;
}

/* xattr `name` (list when NULL) of the object at O_PATH `fd`, malloc'd. */
static ssize_t read_xattr(int fd, const char *name, char **out)
{
	char pp[64];
	snprintf(pp, sizeof(pp), "/proc/self/fd/%d", fd);
	*out = NULL;
	for (;;) {
		ssize_t len = name ? getxattr(pp, name, NULL, 0) : listxattr(pp, NULL, 0);
		if (len < 0)
			return -errno;
		char *buf = malloc((size_t)len + 1);
		if (!buf)
			return -ENOMEM;
		ssize_t got = name ? getxattr(pp, name, buf, (size_t)len) : listxattr(pp, buf, (size_t)len);
		if (got >= 0) {
			*out = buf;
			return got;
		}
		free(buf);
		if (errno != ERANGE)    /* it grew meanwhile: again */
			return -errno;
	}
}

static void free_primed(struct primed *l)
{
	struct node tmp = { .listing = l->listing, .link = l->link, .xlist = l->xlist,
			    .xattrs = l->xattrs, .nxattrs = l->nxattrs };
	forget_answers(&tmp);
	memset(l, 0, sizeof(*l));
	l->wd = -1;
}

/* inotify reports changes made on this machine only: a network file system
 * (NFS shared between compute nodes) changed by another node would never
 * report.  Only local disk file systems are answered for. */
static bool reports_every_change(int dirfd)
{
	struct statfs sf;
	if (fstatfs(dirfd, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case 0xEF53:                     /* ext2/3/4 */
	case 0x58465342:                 /* xfs */
	case 0x9123683E:                 /* btrfs */
	case 0xF2F52010:                 /* f2fs */
	case 0x01021994:                 /* tmpfs */
		return true;
	}
	ylog_limited(&remote_limit, YLOG_INFO, "namespace: the source holds a file system of type "
		     "0x%lx, which may change without inotify reports (network, FUSE, overlay): "
		     "its entries are asked of the source", (unsigned long)sf.f_type);
	return false;
}

/* Watch the object at `path`, recording the watch as this ns's own before
 * the reader can apply a report of it to this ns (its lock is held):
 * a report between here and storing the answers moves `reports`.
 * @return the wd, or -1 with errno set. */
static int watch(struct ns *ns, const char *path, uint32_t mask)
{
	pthread_rwlock_wrlock(&ns->lock);
	int wd = inotify_add_watch(ns->hub->ifd, path, mask);
	if (wd >= 0 && !own(ns, wd)) {
		/* Its reports would not reach this ns: the watch stays for
		 * whoever else holds it, and this object is asked of the source. */
		wd = -1;
		errno = ENOMEM;
	}
	pthread_rwlock_unlock(&ns->lock);
	return wd;
}

/* Read the answers about the object `name` in the directory open as `dirfd`
 * (the source root when name is NULL), watching it first: a directory for
 * its entries, and every object itself, so that a change through any of
 * its names (hard links made at any time), a file handle or another mount
 * is reported.  Its file handle names the very object the answers are
 * about.  *fd_out: its O_PATH descriptor when it is a directory (children
 * need it), else -1. */
static void prime_one(struct ns *ns, int dirfd, const char *name, uint16_t flags,
		      const char *const *xnames, size_t nx, struct primed *l, int *fd_out)
{
	*fd_out = -1;
	int fd = name ? openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)
		      : openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			l->answers = A_ABSENT;   /* the watched directory reports a creation */
		return;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	bool dir = S_ISDIR(st.st_mode);
	if (dir && !reports_every_change(fd)) {
		close(fd);
		return;                  /* nothing about it or below is kept */
	}
	/* The magic link leads to the object itself, a symlink included. */
	char pp[64];
	snprintf(pp, sizeof(pp), "/proc/self/fd/%d", fd);
	l->wd = watch(ns, pp, dir ? WATCH_DIR : WATCH_FILE);
	if (l->wd < 0) {
		ylog_limited(&watch_limit, YLOG_WARN, "namespace: cannot watch an object (%s; see "
			     "/proc/sys/fs/inotify/max_user_watches): it and its entries are asked "
			     "of the source", strerror(errno));
		close(fd);
		return;                  /* unwatched: nothing about it or below is kept */
	}
	pt_fhid_of(fd, &l->id);
	/* Read after the watch is in place: later changes are reported. */
	if (fstat(fd, &l->st) < 0) {
		close(fd);
		return;
	}
	l->answers |= A_STAT;
	if ((flags & YOLO_NS_READDIR) && dir)
		read_listing(fd, l);
	if ((flags & YOLO_NS_READLINK) && S_ISLNK(l->st.st_mode)) {
		char buf[PATH_MAX];
		ssize_t n = readlinkat(fd, "", buf, sizeof(buf));
		if (n >= 0 && (l->link = malloc((size_t)n + 1))) {
			memcpy(l->link, buf, (size_t)n);
			l->link_len = (size_t)n;
			l->answers |= A_LINK;
		}
	}
	if (!S_ISLNK(l->st.st_mode)) {   /* the core reports no xattrs for symlinks */
		if (flags & YOLO_NS_LISTXATTR) {
			ssize_t n = read_xattr(fd, NULL, &l->xlist);
			if (n >= 0) {
				l->xlist_len = (size_t)n;
				l->answers |= A_XLIST;
			}
		}
		l->xattrs = calloc(nx + 1, sizeof(*l->xattrs));
		for (size_t i = 0; l->xattrs && i < nx; i++) {
			char *v;
			ssize_t n = read_xattr(fd, xnames[i], &v);
			if (n < 0 && n != -ENODATA)
				continue;        /* unknown: asked of the source */
			struct xanswer *x = &l->xattrs[l->nxattrs];
			if (!(x->name = strdup(xnames[i]))) {
				free(v);
				break;
			}
			x->value = v;
			x->len = n;
			l->nxattrs++;
		}
	}
	if (dir)
		*fd_out = fd;
	else
		close(fd);
}

/* Store `l` as the answers about `path` (taken), unless a report was
 * handled since `reports0`. */
static bool store(struct ns *ns, char *path, struct primed *l, uint64_t reports0)
{
	pthread_rwlock_wrlock(&ns->lock);
	bool ok = atomic_load(&ns->reports) == reports0;
	struct node *n = ok ? get(ns, path) : NULL;
	if (!ok)
		free(path);
	if (n) {
		forget_answers(n);
		n->answers = l->answers;
		n->st = l->st;
		n->listing = l->listing;
		n->nlisting = l->nlisting;
		n->listing_size = l->listing_size;
		n->link = l->link;
		n->link_len = l->link_len;
		n->xlist = l->xlist;
		n->xlist_len = l->xlist_len;
		n->xattrs = l->xattrs;
		n->nxattrs = l->nxattrs;
		n->id = l->id;
		if (l->wd >= 0 && n->wd != l->wd) {
			wd_unlink(ns, n);
			if (!wd_link(ns, n, l->wd))
				forget_answers(n);       /* its reports could not be matched */
		}
		memset(l, 0, sizeof(*l));
	}
	pthread_rwlock_unlock(&ns->lock);
	return n != NULL;
}

uint32_t ns_prime(struct ns *ns, const struct yolo_image *img)
{
	uint32_t nn = yolo_image_ns_node_count(img), nxq = yolo_image_ns_xattr_count(img), kept = 0;
	if (!nn)
		return 0;
	int *fds = malloc(nn * sizeof(*fds));
	uint32_t *last_child = calloc(nn, sizeof(*last_child));
	char **paths = calloc(nn, sizeof(*paths));
	const char **xnames = malloc((nxq + 1) * sizeof(*xnames));
	if (!fds || !last_child || !paths || !xnames)
		goto out;
	for (uint32_t i = 0; i < nn; i++) {
		fds[i] = -1;
		if (i)
			last_child[yolo_image_ns_node(img, i)->parent] = i;
	}
	for (uint32_t i = 0; i < nn; i++) {
		const struct yolo_ns_node *q = yolo_image_ns_node(img, i);
		int dirfd = i ? fds[q->parent] : ns->source_fd;
		if (i && (!paths[q->parent] || dirfd < 0))
			continue;        /* its directory is unknown or unwatched */
		const char *pp = i ? paths[q->parent] : "";
		if (asprintf(&paths[i], "%s%s%s", pp, *pp ? "/" : "", i ? q->name : "") < 0) {
			paths[i] = NULL;
			continue;
		}
		size_t nx = 0;
		for (uint32_t x = 0; x < nxq; x++)   /* few: a scan per node is enough */
			if (yolo_image_ns_xattr(img, x)->node == i)
				xnames[nx++] = yolo_image_ns_xattr(img, x)->name;
		struct primed l = { .wd = -1 };
		uint64_t reports0 = atomic_load(&ns->reports);
		prime_one(ns, dirfd, i ? q->name : NULL, q->flags, xnames, nx, &l, &fds[i]);
		char *key = strdup(paths[i]);
		if (l.answers && key && store(ns, key, &l, reports0))
			kept++;
		else if (key && l.answers)
			fds[i] = fds[i] >= 0 ? (close(fds[i]), -1) : -1;   /* raced: its children unknown */
		free_primed(&l);
		/* A directory's descriptor is held only until its last child is
		 * read: a tree of any size needs few at a time. */
		uint32_t p = q->parent;
		if (i && last_child[p] == i && fds[p] >= 0) {
			close(fds[p]);
			fds[p] = -1;
		}
		if (!last_child[i] && fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
out:
	for (uint32_t i = 0; fds && i < nn; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (uint32_t i = 0; paths && i < nn; i++)
		free(paths[i]);
	free(fds);
	free(last_child);
	free(paths);
	free(xnames);
	atomic_store(&ns->stats->ns_known_paths, ns->nodes.count);
	return kept;
}

/* ---- answering ---- */

static int hook_lookup(void *ctx, const char *path, struct stat *st, struct pt_fhid *id)
{
	struct ns *ns = ctx;
	int ret = PT_NS_UNKNOWN;
	pthread_rwlock_rdlock(&ns->lock);
	struct node *n = settled(ns) ? find(ns, path) : NULL;
	if (n && (n->answers & A_STAT) && n->id.len) {
		*st = n->st;
		*id = n->id;
		ret = 1;
	} else if (n && (n->answers & A_ABSENT)) {
		ret = -ENOENT;
	}
	pthread_rwlock_unlock(&ns->lock);
	stats_add(ret == PT_NS_UNKNOWN ? &ns->stats->ns_unknown : &ns->stats->ns_answered, 1);
	return ret;
}

/* Copy `len` bytes of `src` into buf (size 0: the size only). */
static ssize_t copy_out(const char *src, size_t len, void *buf, size_t size)
{
	if (size == 0)
		return (ssize_t)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, src, len);
	return (ssize_t)len;
}

/* The node of `path` if the answers are good now and about the object `id`. */
static struct node *find_object(struct ns *ns, const char *path, const struct pt_fhid *id)
{
	struct node *n = settled(ns) ? find(ns, path) : NULL;
	return n && pt_fhid_equal(&n->id, id) ? n : NULL;
}

static ssize_t hook_xattr(void *ctx, const char *path, const struct pt_fhid *id, const char *name,
			  void *buf, size_t size)
{
	struct ns *ns = ctx;
	ssize_t ret = PT_NS_UNKNOWN;
	pthread_rwlock_rdlock(&ns->lock);
	struct node *n = find_object(ns, path, id);
	if (n && !name && (n->answers & A_XLIST)) {
		ret = copy_out(n->xlist, n->xlist_len, buf, size);
	} else if (n && name && (n->answers & A_STAT)) {
		for (size_t i = 0; i < n->nxattrs; i++) {
			if (strcmp(n->xattrs[i].name, name))
				continue;
			ret = n->xattrs[i].len < 0 ? n->xattrs[i].len :
			      copy_out(n->xattrs[i].value, (size_t)n->xattrs[i].len, buf, size);
			break;
		}
	}
	pthread_rwlock_unlock(&ns->lock);
	stats_add(ret == PT_NS_UNKNOWN ? &ns->stats->ns_unknown : &ns->stats->ns_answered, 1);
	return ret;
}

static ssize_t hook_readlink(void *ctx, const char *path, const struct pt_fhid *id, char *buf,
			     size_t size)
{
	struct ns *ns = ctx;
	ssize_t ret = PT_NS_UNKNOWN;
	pthread_rwlock_rdlock(&ns->lock);
	struct node *n = find_object(ns, path, id);
	if (n && (n->answers & A_LINK))
		ret = n->link_len < size ? copy_out(n->link, n->link_len, buf, size) : -ENAMETOOLONG;
	pthread_rwlock_unlock(&ns->lock);
	stats_add(ret == PT_NS_UNKNOWN ? &ns->stats->ns_unknown : &ns->stats->ns_answered, 1);
	return ret;
}

static int hook_listing(void *ctx, const char *path, const struct pt_fhid *id,
			struct pt_ns_entry **entries, size_t *count)
{
	struct ns *ns = ctx;
	int ret = PT_NS_UNKNOWN;
	pthread_rwlock_rdlock(&ns->lock);
	struct node *n = find_object(ns, path, id);
	if (n && (n->answers & A_LISTING)) {
		struct pt_ns_entry *copy = malloc(n->listing_size + 1);
		if (copy) {
			/* One block: entries, then names; rebase the name pointers. */
			memcpy(copy, n->listing, n->listing_size);
			for (size_t i = 0; i < n->nlisting; i++)
				copy[i].name = (char *)copy + ((const char *)n->listing[i].name -
							      (const char *)n->listing);
			*entries = copy;
			*count = n->nlisting;
			ret = 0;
		}
	}
	pthread_rwlock_unlock(&ns->lock);
	stats_add(ret == PT_NS_UNKNOWN ? &ns->stats->ns_unknown : &ns->stats->ns_answered, 1);
	return ret;
}

struct pt_ns_hooks ns_hooks(struct ns *ns)
{
	return (struct pt_ns_hooks){
		.ctx = ns,
		.lookup = hook_lookup,
		.xattr = hook_xattr,
		.readlink = hook_readlink,
		.listing = hook_listing,
	};
}

/* ---- life ---- */

/* The id of the mount `fd` is on (its fdinfo's mnt_id), or -1. */
static int mount_id_of(int fd)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (f >= 0)
		close(f);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *m = strstr(buf, "mnt_id:");
	return m ? atoi(m + 7) : -1;
}

static void close_hub_fds(struct ns_hub *hub)
{
	int fds[] = { hub->ifd, hub->quit_fd, hub->mounts_fd, hub->kick_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int ns_hub_create(struct ns_hub **out)
{
	struct ns_hub *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return -ENOMEM;
	hub->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	hub->quit_fd = eventfd(0, EFD_CLOEXEC);
	hub->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	hub->mounts_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	int ret = hub->ifd < 0 || hub->quit_fd < 0 || hub->kick_fd < 0 || hub->mounts_fd < 0 ?
		  -errno : 0;
	if (ret == 0)
		ret = read_table(hub, &hub->table);
	if (ret < 0) {
		close_hub_fds(hub);
		free(hub);
		return ret;
	}
	pthread_mutex_init(&hub->lock, NULL);
	pthread_mutex_init(&hub->refs_lock, NULL);
	*out = hub;
	return 0;
}

int ns_hub_start(struct ns_hub *hub)
{
	int ret = pthread_create(&hub->reader, NULL, hub_reader, hub);
	if (ret)
		return -ret;
	hub->running = true;
	return 0;
}

void ns_hub_destroy(struct ns_hub *hub)
{
	if (!hub)
		return;
	uint64_t one = 1;
	if (hub->running && write(hub->quit_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(hub->reader, NULL);
	close_hub_fds(hub);
	free_table(&hub->table);
	free(hub->list);
	yhash_free(&hub->refs);
	pthread_mutex_destroy(&hub->lock);
	pthread_mutex_destroy(&hub->refs_lock);
	free(hub);
}

int ns_create(struct ns **out, struct ns_hub *hub, int source_fd, struct stats *stats)
{
	struct ns *ns = calloc(1, sizeof(*ns));
	char pp[64], path[PATH_MAX];
	if (!ns)
		return -ENOMEM;
	ns->hub = hub;
	ns->source_fd = source_fd;
	ns->stats = stats;
	snprintf(pp, sizeof(pp), "/proc/self/fd/%d", source_fd);
	ssize_t n = readlink(pp, path, sizeof(path) - 1);
	int ret = n <= 0 ? -errno : 0;
	if (ret == 0) {
		path[n] = '\0';
		ns->source_mnt = mount_id_of(source_fd);
		ns->source_path = strdup(path);
		ret = !ns->source_path ? -ENOMEM : ns->source_mnt < 0 ? -ENOENT : 0;
	}
	pthread_mutex_lock(&hub->lock);
	if (ret == 0 && hub->nlist == hub->list_cap) {
		size_t cap = hub->list_cap ? hub->list_cap * 2 : 8;
		struct ns **v = realloc(hub->list, cap * sizeof(*v));
		if (v) {
			hub->list = v;
			hub->list_cap = cap;
		} else {
			ret = -ENOMEM;
		}
	}
	if (ret == 0)
		ret = source_mounts(ns, &ns->mounts, &ns->nmounts);
	if (ret == 0) {
		pthread_rwlock_init(&ns->lock, NULL);
		ns->told = true;         /* answers primed before ns_start stay fresh */
		hub->list[hub->nlist++] = ns;
	}
	pthread_mutex_unlock(&hub->lock);
	if (ret < 0) {
		free(ns->source_path);
		free(ns);
		return ret;
	}
	*out = ns;
	return 0;
}

void ns_set_kernel(struct ns *ns, void (*changed)(void *ctx, dev_t dev, ino_t ino,
						     const char *name), void *ctx)
{
	pthread_mutex_lock(&ns->hub->lock);
	ns->kernel_changed = changed;
	ns->kernel_ctx = ctx;
	pthread_mutex_unlock(&ns->hub->lock);
}

int ns_start(struct ns *ns)
{
	int ret = 0;
	pthread_mutex_lock(&ns->hub->lock);
	if (ns->was_stopped) {
		/* Reports were not applied meanwhile: what is known may be
		 * stale, and so may what the kernel keeps; a prime under way
		 * must not store what it read before. */
		struct ns_submount *now;
		size_t n;
		ret = source_mounts(ns, &now, &n);
		pthread_rwlock_wrlock(&ns->lock);
		drop_all(ns);
		atomic_fetch_add(&ns->reports, 1);
		pthread_rwlock_unlock(&ns->lock);
		flush_kernel_drops(ns);
		if (ret == 0) {
			ns_free_mounts(ns->mounts, ns->nmounts);
			ns->mounts = now;
			ns->nmounts = n;
		}
	}
	if (ret == 0) {
		ns->was_stopped = false;
		ns->told = true;
		atomic_store(&ns->answering, true);
	}
	pthread_mutex_unlock(&ns->hub->lock);
	return ret;
}

void ns_stop(struct ns *ns)
{
	/* The reader dispatches with the hub's lock held: once taken, none
	 * to this ns is under way, and none starts. */
	pthread_mutex_lock(&ns->hub->lock);
	atomic_store(&ns->answering, false);
	ns->told = false;
	ns->was_stopped = true;
	pthread_mutex_unlock(&ns->hub->lock);
}

void ns_destroy(struct ns *ns)
{
	if (!ns)
		return;
	struct ns_hub *hub = ns->hub;
	ns_stop(ns);
	pthread_mutex_lock(&hub->lock);
	for (size_t i = 0; i < hub->nlist; i++) {
		if (hub->list[i] == ns) {
			hub->list[i] = hub->list[--hub->nlist];
			break;
		}
	}
	pthread_mutex_unlock(&hub->lock);
	/* A watch another ns holds is the same watch (one per inode): the
	 * last owner removes it.  Its IN_IGNORED concerns only an ns that
	 * took the watch meanwhile, which drops what it read through it. */
	uint64_t wd;
	for (uint32_t pos = 0; yhash_next(&ns->owned, &pos, &wd);)
		if (ref_watch(hub, (int)wd, -1) == 0)
			inotify_rm_watch(hub->ifd, (int)wd);
	uint64_t item;
	for (uint32_t pos = 0; yhash_next(&ns->nodes, &pos, &item);) {
		forget_answers(node_of(item));
		free(node_of(item)->path);
		free(node_of(item));
	}
	yhash_free(&ns->nodes);
	yhash_free(&ns->by_wd);
	yhash_free(&ns->owned);
	for (size_t i = 0; i < ns->ndrops; i++)
		free(ns->drops[i].name);
	free(ns->drops);
	ns_free_mounts(ns->mounts, ns->nmounts);
	free(ns->source_path);
	pthread_rwlock_destroy(&ns->lock);
	free(ns);
}
