/* image_ns.c - the namespace section of a boot image (YOLO_EXT_NAMESPACE):
 * what a boot asked of the namespace (names looked up, directories listed,
 * symlinks read, xattrs asked for), built for the image and trace writers
 * (which use this file, never the other way round) and validated by the
 * reader like every other section of an untrusted image. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "image_i.h"

/* ---- building ---- */

/* A node's key: its parent and its name in the parent. */
struct ns_key {
	uint32_t parent;
	const char *name;
};

static uint64_t key_hash(uint32_t parent, const char *name)
{
	return XXH3_64bits_withSeed(name, strlen(name), parent);
}

static bool bnode_is(const void *ctx, uint64_t i, const void *key)
{
	const struct yolo_ns_bnode *n = &((const struct yolo_ns_builder *)ctx)->nodes[i];
	const struct ns_key *k = key;
	return n->parent == k->parent && !strcmp(n->name, k->name);
}

/* The node for (parent, name), added if new.  @return its index or -errno. */
static int64_t node_for(struct yolo_ns_builder *b, uint32_t parent, const char *name)
{
	uint64_t hash = key_hash(parent, name), found;
	if (yhash_find(&b->index, hash, bnode_is, b, &(struct ns_key){ parent, name }, &found))
		return (int64_t)found;
	if (b->n >= YOLO_NS_MAX_NODES)
		return -EFBIG;
	if (b->n == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 64;
		struct yolo_ns_bnode *v = realloc(b->nodes, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->nodes = v;
		b->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	if (yhash_add(&b->index, hash, b->n) < 0) {
		free(copy);
		return -ENOMEM;
	}
	b->nodes[b->n] = (struct yolo_ns_bnode){ .parent = parent, .name = copy };
	b->strings += strlen(name);
	return b->n++;
}

int yolo_ns_builder_add(struct yolo_ns_builder *b, const char *relpath, uint16_t flags,
			uint32_t *node)
{
	if (flags & ~YOLO_NS_FLAGS_KNOWN)
		return -EINVAL;
	if (relpath[0] && !yolo_path_is_safe(relpath, strlen(relpath)))
		return -EINVAL;
	int64_t cur = node_for(b, 0, "");        /* the root, node 0 */
	const char *p = relpath;
	while (cur >= 0 && *p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		char name[YOLO_NS_MAX_NAME + 1];
		if (len > YOLO_NS_MAX_NAME)
			return -ENAMETOOLONG;
		memcpy(name, p, len);
		name[len] = '\0';
		cur = node_for(b, (uint32_t)cur, name);
		p += len + (slash ? 1 : 0);
	}
	if (cur < 0)
		return (int)cur;
	b->nodes[cur].flags |= flags;
	*node = (uint32_t)cur;
	return 0;
}

int yolo_ns_builder_add_xattr(struct yolo_ns_builder *b, uint32_t node, const char *name)
{
	size_t len = strlen(name);
	if (node >= b->n || len == 0 || len > YOLO_NS_MAX_NAME)
		return -EINVAL;
	for (uint32_t i = 0; i < b->nx; i++)     /* few per node: a scan is enough */
		if (b->xattrs[i].node == node && !strcmp(b->xattrs[i].name, name))
			return 0;
	if (b->nx >= YOLO_NS_MAX_XATTRS)
		return -EFBIG;
	if (b->nx == b->xcap) {
		uint32_t cap = b->xcap ? b->xcap * 2 : 64;
		struct yolo_ns_bxattr *v = realloc(b->xattrs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->xattrs = v;
		b->xcap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	b->xattrs[b->nx++] = (struct yolo_ns_bxattr){ .node = node, .name = copy };
	b->strings += len;
	return 0;
}

int yolo_ns_builder_serialize(const struct yolo_ns_builder *b, uint8_t **out, uint64_t *len)
{
	uint64_t size = sizeof(struct yolo_disk_ns_header) +
			(uint64_t)b->n * sizeof(struct yolo_disk_ns_node) +
			(uint64_t)b->nx * sizeof(struct yolo_disk_ns_xattr) + b->strings;
	uint8_t *buf = calloc(1, size + 1);
	if (!buf)
		return -ENOMEM;
	struct yolo_disk_ns_header h;
	memset(&h, 0, sizeof(h));
	put_le32(&h.node_count, b->n);
	put_le32(&h.xattr_count, b->nx);
	put_le64(&h.strings_size, b->strings);
	memcpy(buf, &h, sizeof(h));
	uint8_t *nodes = buf + sizeof(h);
	uint8_t *xattrs = nodes + (uint64_t)b->n * sizeof(struct yolo_disk_ns_node);
	uint8_t *strs = xattrs + (uint64_t)b->nx * sizeof(struct yolo_disk_ns_xattr);
	uint32_t at = 0;
	for (uint32_t i = 0; i < b->n; i++) {
		struct yolo_disk_ns_node d;
		memset(&d, 0, sizeof(d));
		size_t l = strlen(b->nodes[i].name);
		put_le32(&d.parent, b->nodes[i].parent);
		put_le32(&d.name_off, at);
		put_le16(&d.name_len, (uint16_t)l);
		put_le16(&d.flags, b->nodes[i].flags);
		memcpy(nodes + (uint64_t)i * sizeof(d), &d, sizeof(d));
		memcpy(strs + at, b->nodes[i].name, l);
		at += (uint32_t)l;
	}
	for (uint32_t i = 0; i < b->nx; i++) {
		struct yolo_disk_ns_xattr d;
		memset(&d, 0, sizeof(d));
		size_t l = strlen(b->xattrs[i].name);
		put_le32(&d.node, b->xattrs[i].node);
		put_le32(&d.name_off, at);
		put_le16(&d.name_len, (uint16_t)l);
		memcpy(xattrs + (uint64_t)i * sizeof(d), &d, sizeof(d));
		memcpy(strs + at, b->xattrs[i].name, l);
		at += (uint32_t)l;
	}
	*out = buf;
	*len = size;
	return 0;
}

void yolo_ns_builder_free(struct yolo_ns_builder *b)
{
	for (uint32_t i = 0; i < b->n; i++)
		free(b->nodes[i].name);
	for (uint32_t i = 0; i < b->nx; i++)
		free(b->xattrs[i].name);
	free(b->nodes);
	free(b->xattrs);
	yhash_free(&b->index);
	memset(b, 0, sizeof(*b));
}

/* ---- reading ---- */

#define CORRUPT(...) yolo_fail(err, -EUCLEAN, __VA_ARGS__)

/* Is [p, p+len) an acceptable name (of a node when `node`, else of an
 * xattr)? */
static bool name_ok(const uint8_t *p, size_t len, bool node)
{
	if (len == 0 || len > YOLO_NS_MAX_NAME || memchr(p, '\0', len))
		return false;
	if (!node)
		return true;
	if (memchr(p, '/', len))
		return false;
	return !(len == 1 && p[0] == '.') && !(len == 2 && p[0] == '.' && p[1] == '.');
}

static bool node_is(const void *ctx, uint64_t i, const void *key)
{
	const struct yolo_ns_node *n = &((const struct yolo_ns_table *)ctx)->nodes[i];
	const struct ns_key *k = key;
	return n->parent == k->parent && !strcmp(n->name, k->name);
}

int yolo_ns_parse(struct yolo_ns_table *t, const uint8_t *buf, uint64_t size, const char *name,
		  struct yolo_err *err)
{
	struct yolo_disk_ns_header h;
	if (size < sizeof(h))
		return CORRUPT("%s: namespace section of %llu bytes is too short", name,
			       (unsigned long long)size);
	memcpy(&h, buf, sizeof(h));
	uint32_t nn = get_le32(&h.node_count), nx = get_le32(&h.xattr_count);
	uint64_t ss = get_le64(&h.strings_size);
	if (get_le64(&h.reserved[0]) || get_le64(&h.reserved[1]))
		return CORRUPT("%s: namespace section: reserved fields are not zero", name);
	if (nn == 0 || nn > YOLO_NS_MAX_NODES || nx > YOLO_NS_MAX_XATTRS)
		return CORRUPT("%s: namespace section: %u nodes and %u xattrs (limits 1..%u, %u)",
			       name, nn, nx, YOLO_NS_MAX_NODES, YOLO_NS_MAX_XATTRS);
	uint64_t tables = (uint64_t)nn * sizeof(struct yolo_disk_ns_node) +
			  (uint64_t)nx * sizeof(struct yolo_disk_ns_xattr);
	if (size != sizeof(h) + tables + ss)
		return CORRUPT("%s: namespace section is %llu bytes, its counts say %llu", name,
			       (unsigned long long)size, (unsigned long long)(sizeof(h) + tables + ss));
	const uint8_t *nodes = buf + sizeof(h);
	const uint8_t *xattrs = nodes + (uint64_t)nn * sizeof(struct yolo_disk_ns_node);
	const uint8_t *strs = xattrs + (uint64_t)nx * sizeof(struct yolo_disk_ns_xattr);
	t->nodes = calloc(nn, sizeof(*t->nodes));
	t->xattrs = calloc(nx ? nx : 1, sizeof(*t->xattrs));
	t->names = malloc(ss + nn + nx + 1);     /* each name NUL-terminated */
	if (!t->nodes || !t->xattrs || !t->names)
		return yolo_fail(err, -ENOMEM, "%s: out of memory", name);
	char *out = t->names;
	uint64_t next = 0;               /* strings are used in order, each byte once */
	for (uint32_t i = 0; i < nn; i++) {
		struct yolo_disk_ns_node d;
		memcpy(&d, nodes + (uint64_t)i * sizeof(d), sizeof(d));
		uint32_t parent = get_le32(&d.parent), off = get_le32(&d.name_off);
		uint16_t len = get_le16(&d.name_len), flags = get_le16(&d.flags);
		if (get_le32(&d.reserved))
			return CORRUPT("%s: namespace node %u: reserved field is not zero", name, i);
		if (flags & ~YOLO_NS_FLAGS_KNOWN)
			return CORRUPT("%s: namespace node %u: unknown flags 0x%x", name, i, flags);
		if (i == 0 ? (parent != 0 || len != 0) : parent >= i)
			return CORRUPT("%s: namespace node %u: parent %u must come first (node 0 is the root)",
				       name, i, parent);
		if (off != next || len > ss - next || (i && !name_ok(strs + off, len, true)))
			return CORRUPT("%s: namespace node %u: bad name (offset %u, %u bytes)", name, i,
				       off, len);
		next += len;
		memcpy(out, strs + off, len);
		out[len] = '\0';
		t->nodes[i] = (struct yolo_ns_node){ .parent = parent, .name = out, .flags = flags };
		out += len + 1;
	}
	for (uint32_t i = 0; i < nx; i++) {
		struct yolo_disk_ns_xattr d;
		memcpy(&d, xattrs + (uint64_t)i * sizeof(d), sizeof(d));
		uint32_t node = get_le32(&d.node), off = get_le32(&d.name_off);
		uint16_t len = get_le16(&d.name_len);
		if (get_le16(&d.reserved16) || get_le32(&d.reserved32))
			return CORRUPT("%s: namespace xattr %u: reserved field is not zero", name, i);
		if (node >= nn)
			return CORRUPT("%s: namespace xattr %u: node %u out of range", name, i, node);
		if (off != next || len > ss - next || !name_ok(strs + off, len, false))
			return CORRUPT("%s: namespace xattr %u: bad name (offset %u, %u bytes)", name, i,
				       off, len);
		next += len;
		memcpy(out, strs + off, len);
		out[len] = '\0';
		t->xattrs[i] = (struct yolo_ns_xattr){ .node = node, .name = out };
		out += len + 1;
	}
	if (next != ss)
		return CORRUPT("%s: namespace strings have %llu bytes, names use %llu", name,
			       (unsigned long long)ss, (unsigned long long)next);
	/* A name appears once in a directory. */
	int ret = 0;
	struct yhash seen = { 0 };
	for (uint32_t i = 1; i < nn && ret == 0; i++) {
		const struct yolo_ns_node *x = &t->nodes[i];
		uint64_t hash = key_hash(x->parent, x->name), twin;
		if (yhash_find(&seen, hash, node_is, t, &(struct ns_key){ x->parent, x->name }, &twin))
			ret = CORRUPT("%s: namespace node %u repeats a name in its directory", name, i);
		else if (yhash_add(&seen, hash, i) < 0)
			ret = yolo_fail(err, -ENOMEM, "%s: out of memory", name);
	}
	yhash_free(&seen);
	if (ret == 0) {
		t->nnodes = nn;
		t->nxattrs = nx;
	}
	return ret;
}

void yolo_ns_table_free(struct yolo_ns_table *t)
{
	free(t->nodes);
	free(t->xattrs);
	free(t->names);
	memset(t, 0, sizeof(*t));
}

uint32_t yolo_image_ns_node_count(const struct yolo_image *img)
{
	return img->ns.nnodes;
}

const struct yolo_ns_node *yolo_image_ns_node(const struct yolo_image *img, uint32_t i)
{
	return i < img->ns.nnodes ? &img->ns.nodes[i] : NULL;
}

uint32_t yolo_image_ns_xattr_count(const struct yolo_image *img)
{
	return img->ns.nxattrs;
}

const struct yolo_ns_xattr *yolo_image_ns_xattr(const struct yolo_image *img, uint32_t i)
{
	return i < img->ns.nxattrs ? &img->ns.xattrs[i] : NULL;
}

/* ---- paths ---- */

int yolo_ns_node_path(const struct yolo_ns_table *t, uint32_t i, char *buf, size_t len)
{
	/* Up to the root twice (parents come first, so each walk ends): the
	 * length, then the names from the last one back, at any depth. */
	size_t at = 0;
	for (uint32_t j = i; j != 0; j = t->nodes[j].parent)
		at += strlen(t->nodes[j].name) + (t->nodes[j].parent != 0);
	if (at >= len)
		return -ENAMETOOLONG;
	buf[at] = '\0';
	for (uint32_t j = i; j != 0; j = t->nodes[j].parent) {
		size_t n = strlen(t->nodes[j].name);
		at -= n;
		memcpy(buf + at, t->nodes[j].name, n);
		if (t->nodes[j].parent != 0)
			buf[--at] = '/';
	}
	return 0;
}

int yolo_image_ns_path(const struct yolo_image *img, uint32_t i, char *buf, size_t len)
{
	if (i >= img->ns.nnodes)
		return -EINVAL;
	return yolo_ns_node_path(&img->ns, i, buf, len);
}
