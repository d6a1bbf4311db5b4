/* pt_record.c - the session record: what a successor daemon needs to take
 * the kernel's FUSE session over (an upgrade in place, or a restart after a
 * crash), kept current in a memfd, shared memory that outlives the process
 * (handed across exec, and kept by systemd's descriptor store):
 *  - the kernel's INIT request and the reply it got, so the successor
 *    negotiates nothing again and can check it would have answered alike;
 *  - one slot per node id the kernel holds: lookup count, parent and name,
 *    identity (dev, ino, file handle), passthrough backing id;
 *  - one slot per open handle: its node, open flags, whether the kernel
 *    does its I/O (passthrough), and its descriptor number across exec.
 * A slot is written before the reply that gives the kernel its id, so the
 * record never lacks what the kernel holds; it may hold more (a lookup
 * whose reply never went out, a forget never read): a successor then only
 * keeps a node longer.  Slots are fixed-size and reused through free
 * lists; the file grows (sparse) as the tables do, inside one reserved
 * mapping, so slot addresses never move. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pt_i.h"
#include "yolo_err.h"

#define REC_MAGIC "YOLOSES1"
#define REC_VERSION 1u
#define REC_HEADER_SIZE 4096u
#define REC_RESERVE (1ull << 36)          /* address space: 64 GiB, never all used */
#define REC_HANDLES_OFF (1ull << 35)      /* nodes below, handles above */
#define REC_GROW (1u << 20)
#define REC_INIT_MAX 256u

/* At offset 0.  Fixed-width fields; the version changes with any layout. */
struct rec_header {
	char magic[8];
	uint32_t version;
	uint32_t node_size, handle_size;  /* sizeof the slots below, checked */
	uint32_t init_in_len, init_out_len;
	uint32_t incomplete;              /* a slot could not be written: not resumable */
	_Atomic uint64_t node_hwm;        /* slots in use are below these indexes */
	_Atomic uint64_t handle_hwm;
	_Atomic uint64_t next_nodeid;     /* ids given so far: never given again */
	_Atomic uint64_t next_handle;
	uint8_t init_in[REC_INIT_MAX];    /* fuse_in_header + fuse_init_in, as read */
	uint8_t init_out[REC_INIT_MAX];   /* fuse_out_header + fuse_init_out, as sent */
	uint8_t user[PT_RECORD_USER_MAX]; /* the front end's own (pt_record_user) */
};
_Static_assert(sizeof(struct rec_header) <= REC_HEADER_SIZE, "record header fits its page");

struct rec_node {
	_Atomic uint64_t nodeid;          /* 0: a free slot */
	uint64_t parent;                  /* node id (FUSE_ROOT_ID: the root), 0: none */
	uint64_t nlookup;
	uint64_t dev, ino;
	uint32_t type;                    /* st_mode & S_IFMT */
	int32_t backing_id;               /* 0: none */
	int32_t fd;                       /* across exec: the descriptor of a node without handle */
	int32_t fhid_type;
	uint16_t fhid_len, name_len;
	uint32_t reserved0;
	uint8_t fhid[PT_FHID_MAX];
	char name[NAME_MAX + 1];
};
_Static_assert(sizeof(struct rec_node) == 448, "node slot layout");

struct rec_handle {
	_Atomic uint64_t id;              /* 0: a free slot */
	uint64_t nodeid;
	int32_t flags;                    /* open(2) flags */
	uint8_t is_dir, backed, answered, reserved0;
	int32_t fd;                       /* across exec: its descriptor, else -1 */
	uint32_t reserved1;
};
_Static_assert(sizeof(struct rec_handle) == 32, "handle slot layout");

/* Slot indexes free for reuse (under the table lock of their kind). */
struct free_slots {
	uint64_t *v;
	size_t n, cap;
};

struct pt_record {
	int fd;
	unsigned char *base;              /* REC_RESERVE bytes mapped */
	pthread_mutex_t grow_lock;        /* protects size (a leaf lock) */
	uint64_t size;                    /* of the file */
	struct free_slots free_nodes;     /* under fs->itable_lock */
	struct free_slots free_handles;   /* under fs->handles_lock */
};

static struct rec_header *header(const struct pt_record *r)
{
	return (struct rec_header *)r->base;
}

static struct rec_node *node_slot(const struct pt_record *r, uint64_t i)
{
	return (struct rec_node *)(r->base + REC_HEADER_SIZE) + i;
}

static struct rec_handle *handle_slot(const struct pt_record *r, uint64_t i)
{
	return (struct rec_handle *)(r->base + REC_HANDLES_OFF) + i;
}

/* Make the file cover [0, end).  @return 0 or -errno. */
static int cover(struct pt_record *r, uint64_t end)
{
	int ret = 0;
	pthread_mutex_lock(&r->grow_lock);
	if (end > r->size) {
		uint64_t size = (end + REC_GROW - 1) / REC_GROW * REC_GROW;
		if (ftruncate(r->fd, (off_t)size) < 0)
			ret = -errno;
		else
			r->size = size;
	}
	pthread_mutex_unlock(&r->grow_lock);
	return ret;
}

static void mark_incomplete(struct pt_record *r, const char *what, int err)
{
	if (!header(r)->incomplete)
		ylog(YLOG_ERR, "session record: cannot record %s (%s): a successor cannot take "
		     "this session over", what, strerror(-err));
	header(r)->incomplete = 1;
}

/* A free slot index of a table whose slots are `size` bytes from `off`,
 * the file grown to hold it.  @return 0 or -errno. */
static int slot_take(struct pt_record *r, struct free_slots *fr, _Atomic uint64_t *hwm,
		     uint64_t off, size_t size, uint64_t *out)
{
	if (fr->n) {
		*out = fr->v[--fr->n];
		return 0;
	}
	uint64_t i = atomic_load(hwm);
	int ret = cover(r, off + (i + 1) * size);
	if (ret < 0)
		return ret;
	atomic_store(hwm, i + 1);
	*out = i;
	return 0;
}

static void slot_give(struct free_slots *fr, uint64_t i)
{
	if (fr->n == fr->cap) {
		size_t cap = fr->cap ? fr->cap * 2 : 256;
		uint64_t *v = realloc(fr->v, cap * sizeof(*v));
		if (!v)
			return;          /* the slot stays unused: only space lost */
		fr->v = v;
		fr->cap = cap;
	}
	fr->v[fr->n++] = i;
}

int pt_record_open(struct pt_fs *fs, int fd)
{
	struct pt_record *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	bool fresh = fd < 0;
	if (fresh && (fd = memfd_create("yolofs-session", MFD_CLOEXEC)) < 0) {
		int saverr = errno;
		free(r);
		return -saverr;
	}
	r->fd = fd;
	pthread_mutex_init(&r->grow_lock, NULL);
	struct stat st;
	int ret = fstat(fd, &st) < 0 ? -errno : 0;
	r->size = ret == 0 ? (uint64_t)st.st_size : 0;
	if (ret == 0 && fresh)
		ret = cover(r, REC_HEADER_SIZE);
	if (ret == 0 && r->size < REC_HEADER_SIZE)
		ret = -EUCLEAN;
	if (ret == 0) {
		r->base = mmap(NULL, REC_RESERVE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			       fd, 0);
		if (r->base == MAP_FAILED)
			ret = -errno;
	}
	if (ret < 0) {
		if (fresh)
			close(fd);
		pthread_mutex_destroy(&r->grow_lock);
		free(r);
		return ret;
	}
	struct rec_header *h = header(r);
	if (fresh) {
		memcpy(h->magic, REC_MAGIC, sizeof(h->magic));
		h->version = REC_VERSION;
		h->node_size = sizeof(struct rec_node);
		h->handle_size = sizeof(struct rec_handle);
	}
	fs->record = r;
	return 0;
}

int pt_record_check(struct pt_fs *fs, struct yolo_err *err)
{
	const struct rec_header *h = header(fs->record);
	if (memcmp(h->magic, REC_MAGIC, sizeof(h->magic)) != 0)
		return yolo_fail(err, -EPROTO, "not a yolofs session record");
	if (h->version != REC_VERSION || h->node_size != sizeof(struct rec_node) ||
	    h->handle_size != sizeof(struct rec_handle))
		return yolo_fail(err, -EPROTO, "session record version %u (this yolofs reads %u)",
				 h->version, REC_VERSION);
	if (h->incomplete)
		return yolo_fail(err, -EPROTO, "the session record is incomplete (the old daemon "
				 "could not record everything)");
	if (!h->init_in_len || h->init_in_len > REC_INIT_MAX || !h->init_out_len ||
	    h->init_out_len > REC_INIT_MAX)
		return yolo_fail(err, -EPROTO, "the session record holds no INIT");
	uint64_t hwm = atomic_load(&h->node_hwm), hhwm = atomic_load(&h->handle_hwm);
	if (REC_HEADER_SIZE + hwm * sizeof(struct rec_node) > fs->record->size ||
	    hwm * sizeof(struct rec_node) > REC_HANDLES_OFF - REC_HEADER_SIZE ||
	    (hhwm && REC_HANDLES_OFF + hhwm * sizeof(struct rec_handle) > fs->record->size))
		return yolo_fail(err, -EUCLEAN, "the session record is truncated");
	return 0;
}

void pt_record_close(struct pt_fs *fs)
{
	struct pt_record *r = fs->record;
	if (!r)
		return;
	munmap(r->base, REC_RESERVE);
	close(r->fd);
	pthread_mutex_destroy(&r->grow_lock);
	free(r->free_nodes.v);
	free(r->free_handles.v);
	free(r);
	fs->record = NULL;
}

int pt_record_fd(const struct pt_fs *fs)
{
	return fs->record ? fs->record->fd : -1;
}

/* ---- INIT ---- */

void pt_record_init(struct pt_fs *fs, bool request, const void *bytes, size_t len)
{
	struct rec_header *h = header(fs->record);
	if (len > REC_INIT_MAX) {
		mark_incomplete(fs->record, "INIT", -E2BIG);
		return;
	}
	memcpy(request ? h->init_in : h->init_out, bytes, len);
	*(request ? &h->init_in_len : &h->init_out_len) = (uint32_t)len;
}

const void *pt_record_init_bytes(const struct pt_fs *fs, bool request, size_t *len)
{
	const struct rec_header *h = header(fs->record);
	*len = request ? h->init_in_len : h->init_out_len;
	return request ? h->init_in : h->init_out;
}

void *pt_record_user(struct pt_fs *fs)
{
	return header(fs->record)->user;
}

/* ---- nodes (under fs->itable_lock) ---- */

static void write_name(struct rec_node *s, const struct pt_inode *in)
{
	size_t len = in->name ? strlen(in->name) : 0;
	if (len > NAME_MAX)
		len = NAME_MAX;
	s->name_len = 0;                  /* a torn name reads as none */
	memcpy(s->name, in->name ? in->name : "", len);
	s->name[len] = '\0';
	s->parent = in->parent ? in->parent->nodeid : 0;
	atomic_thread_fence(memory_order_release);
	s->name_len = (uint16_t)len;
}

void pt_record_node_new(struct pt_fs *fs, struct pt_inode *in)
{
	struct pt_record *r = fs->record;
	struct rec_header *h = header(r);
	uint64_t i;
	in->slot = PT_NO_SLOT;
	int ret = slot_take(r, &r->free_nodes, &h->node_hwm, REC_HEADER_SIZE,
			    sizeof(struct rec_node), &i);
	if (ret < 0) {
		mark_incomplete(r, "a node", ret);
		return;
	}
	struct rec_node *s = node_slot(r, i);
	s->dev = in->dev;
	s->ino = in->ino;
	s->type = in->type;
	s->nlookup = in->nlookup;
	s->backing_id = 0;
	s->fd = -1;
	s->fhid_len = in->fhid ? (uint16_t)in->fhid->len : 0;
	s->fhid_type = in->fhid ? in->fhid->type : 0;
	if (in->fhid)
		memcpy(s->fhid, in->fhid->bytes, in->fhid->len);
	write_name(s, in);
	atomic_store(&h->next_nodeid, fs->next_nodeid);
	atomic_store_explicit(&s->nodeid, in->nodeid, memory_order_release);
	in->slot = i;
}

void pt_record_node_lookups(struct pt_fs *fs, const struct pt_inode *in)
{
	if (in->slot != PT_NO_SLOT)
		node_slot(fs->record, in->slot)->nlookup = in->nlookup;
}

void pt_record_node_moved(struct pt_fs *fs, const struct pt_inode *in)
{
	if (in->slot != PT_NO_SLOT)
		write_name(node_slot(fs->record, in->slot), in);
}

void pt_record_node_gone(struct pt_fs *fs, struct pt_inode *in)
{
	if (in->slot == PT_NO_SLOT)
		return;
	atomic_store(&node_slot(fs->record, in->slot)->nodeid, 0);
	slot_give(&fs->record->free_nodes, in->slot);
	in->slot = PT_NO_SLOT;
}

/* Under in->mu: the backing id is written by the open path only. */
void pt_record_node_backing(struct pt_fs *fs, const struct pt_inode *in)
{
	if (in->slot != PT_NO_SLOT)
		node_slot(fs->record, in->slot)->backing_id = in->backing_id;
}

void pt_record_node_fd(struct pt_fs *fs, const struct pt_inode *in, int fd)
{
	if (in->slot != PT_NO_SLOT)
		node_slot(fs->record, in->slot)->fd = fd;
}

bool pt_record_node_at(const struct pt_fs *fs, uint64_t i, struct pt_record_node *out)
{
	const struct pt_record *r = fs->record;
	if (i >= atomic_load(&header(r)->node_hwm))
		return false;
	const struct rec_node *s = node_slot(r, i);
	*out = (struct pt_record_node){ .nodeid = atomic_load(&s->nodeid) };
	if (!out->nodeid)
		return true;
	out->parent = s->parent;
	out->nlookup = s->nlookup;
	out->dev = (dev_t)s->dev;
	out->ino = (ino_t)s->ino;
	out->type = s->type;
	out->backing_id = s->backing_id;
	out->fd = s->fd;
	out->fhid.type = s->fhid_type;
	out->fhid.len = s->fhid_len <= PT_FHID_MAX ? s->fhid_len : 0;
	memcpy(out->fhid.bytes, s->fhid, out->fhid.len);
	size_t len = s->name_len <= NAME_MAX ? s->name_len : 0;
	memcpy(out->name, s->name, len);
	out->name[len] = '\0';
	out->slot = i;
	return true;
}

void pt_record_free_unused(struct pt_fs *fs)
{
	struct pt_record *r = fs->record;
	uint64_t hwm = atomic_load(&header(r)->node_hwm);
	for (uint64_t i = hwm; i-- > 0;)
		if (!atomic_load(&node_slot(r, i)->nodeid))
			slot_give(&r->free_nodes, i);
	hwm = atomic_load(&header(r)->handle_hwm);
	for (uint64_t i = hwm; i-- > 0;)
		if (!atomic_load(&handle_slot(r, i)->id))
			slot_give(&r->free_handles, i);
	if (atomic_load(&header(r)->next_nodeid) > fs->next_nodeid)
		fs->next_nodeid = atomic_load(&header(r)->next_nodeid);
	if (atomic_load(&header(r)->next_handle) > fs->next_handle)
		fs->next_handle = atomic_load(&header(r)->next_handle);
}

/* ---- handles (under fs->handles_lock) ---- */

void pt_record_handle_new(struct pt_fs *fs, struct pt_handle *h, const struct pt_record_handle *v)
{
	struct pt_record *r = fs->record;
	uint64_t i;
	h->slot = PT_NO_SLOT;
	int ret = slot_take(r, &r->free_handles, &header(r)->handle_hwm, REC_HANDLES_OFF,
			    sizeof(struct rec_handle), &i);
	if (ret < 0) {
		mark_incomplete(r, "an open handle", ret);
		return;
	}
	struct rec_handle *s = handle_slot(r, i);
	s->nodeid = v->nodeid;
	s->flags = v->flags;
	s->is_dir = v->is_dir;
	s->backed = v->backed;
	s->answered = v->answered;
	s->fd = -1;
	atomic_store(&header(r)->next_handle, fs->next_handle);
	atomic_store_explicit(&s->id, h->id, memory_order_release);
	h->slot = i;
}

void pt_record_handle_gone(struct pt_fs *fs, struct pt_handle *h)
{
	if (h->slot == PT_NO_SLOT)
		return;
	atomic_store(&handle_slot(fs->record, h->slot)->id, 0);
	slot_give(&fs->record->free_handles, h->slot);
	h->slot = PT_NO_SLOT;
}

void pt_record_handle_fd(struct pt_fs *fs, const struct pt_handle *h, int fd)
{
	if (h->slot != PT_NO_SLOT)
		handle_slot(fs->record, h->slot)->fd = fd;
}

bool pt_record_handle_at(const struct pt_fs *fs, uint64_t i, struct pt_record_handle *out)
{
	const struct pt_record *r = fs->record;
	if (i >= atomic_load(&header(r)->handle_hwm))
		return false;
	const struct rec_handle *s = handle_slot(r, i);
	*out = (struct pt_record_handle){
		.id = atomic_load(&s->id), .nodeid = s->nodeid, .flags = s->flags,
		.is_dir = s->is_dir, .backed = s->backed, .answered = s->answered,
		.fd = s->fd, .slot = i,
	};
	return true;
}
