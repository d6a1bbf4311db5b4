/* eiofs.c - test helper: a one-file FUSE file system whose disk fails.
 *
 *   eiofs SIZE BAD_OFF BAD_LEN MOUNTPOINT
 *
 * MOUNTPOINT/disk is SIZE bytes of a fixed pattern (byte i is
 * (i * 7 + i / 4096) & 0xff), with mtime, ctime and inode number fixed
 * (use_ino: a boot image of it stays fresh across remounts).  A read that
 * starts inside [BAD_OFF, BAD_OFF+BAD_LEN) fails with EIO; one that starts
 * before it and runs into it returns only the bytes before it (a short
 * read, as a disk that fails part way does).  direct_io, so the kernel
 * passes these results on unchanged.  Runs in the foreground until
 * unmounted.  The project uses it as a source under yolofs to see that a
 * source I/O error reaches the reader as EIO, never as an early end of
 * file. */
#include "config.h"

#include <errno.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t size, bad_off, bad_len;

static int e_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	memset(st, 0, sizeof(*st));
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = 1700000000;
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/disk") != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_ino = 2;
	return 0;
}

static int e_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "disk", NULL, 0, 0);
	return 0;
}

static int e_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/disk") != 0)
		return -ENOENT;
	fi->direct_io = 1;
	return 0;
}

static int e_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
	uint64_t o = (uint64_t)off;
	if (o >= size)
		return 0;
	if (o + len > size)
		len = size - o;
	if (o >= bad_off && o < bad_off + bad_len)
		return -EIO;
	if (o < bad_off && o + len > bad_off)
		len = bad_off - o;
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(((o + i) * 7 + (o + i) / 4096) & 0xff);
	return (int)len;
}

static void *e_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;                /* st_ino as given */
	return NULL;
}

static const struct fuse_operations e_ops = {
	.getattr = e_getattr,
	.readdir = e_readdir,
	.init = e_init,
	.open = e_open,
	.read = e_read,
};

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: eiofs SIZE BAD_OFF BAD_LEN MOUNTPOINT\n");
		return 1;
	}
	size = strtoull(argv[1], NULL, 0);
	bad_off = strtoull(argv[2], NULL, 0);
	bad_len = strtoull(argv[3], NULL, 0);
	char *fargv[] = { argv[0], "-f", "-o", "allow_other", argv[4], NULL };
	return fuse_main(5, fargv, &e_ops, NULL);
}
