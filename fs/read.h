/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: reading files, and the cache of the extent maps of files being read. */
#ifndef CAIRN_FS_READ_H
#define CAIRN_FS_READ_H

#include "fs.h"

/* The loader of fs->files, keyed by inode number; payload: the struct fs. */
extern const struct fs_cache_ops fs_file_ops;

/* The operations, for fs_ops (ops.c). */
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);

#endif
