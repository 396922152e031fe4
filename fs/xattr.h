/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: the extended attributes of entries inside snapshots. */
#ifndef CAIRN_FS_XATTR_H
#define CAIRN_FS_XATTR_H

#include "fs.h"

/* The operations, for fs_ops (ops.c): ENOSYS once the scan allows it (xscan.h). */
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

#endif
