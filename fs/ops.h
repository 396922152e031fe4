/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: the table of FUSE low-level operations a session runs. */
#ifndef CAIRN_FS_OPS_H
#define CAIRN_FS_OPS_H

#include "fs.h"

/* The session's userdata is the struct fs, set up by fs_open(). */
extern const struct fuse_lowlevel_ops fs_ops;

#endif
