/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* getxattr and listxattr: the xattrs of an entry, or for getxattr ENOSYS when the scan allows it.
 */
#include "xattr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "xscan.h"

/* The node of a request with xattrs, or NULL with the reply sent: ENOSYS (see
 * xscan.h), ESTALE, or for a node without xattrs what none means to op. */
static struct fs_node *xattr_node(fuse_req_t req, fuse_ino_t ino, bool list, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	/* Never for LISTXATTR: the kernel would answer it for the life of the
	 * mount, and cp -a would drop the xattrs of a later snapshot silently. */
	if (!list && fs_xscan_enosys(fs->xscan))
		return fuse_reply_err(req, ENOSYS), NULL;
	struct fs_node *n = fs_inodes_get(fs->inodes, ino);
	if (!n)
		return fuse_reply_err(req, ESTALE), NULL;
	if (n->kind == FS_ENTRY && n->has_xattrs)
		return n;
	if (!list)
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
	return NULL;
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = xattr_node(req, ino, false, size);
	if (!n)
		return;
	struct fs_cache_ent *t;
	const struct cairn_node *cn;
	int r = fs_entry_get(fs, n, &t, &cn);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	size_t len = strlen(name);
	const struct cairn_xattr *x = NULL;
	for (size_t i = 0; i < cn->nxattrs && !x; i++)
		if (cn->xattrs[i].name_len == len && memcmp(cn->xattrs[i].name, name, len) == 0)
			x = &cn->xattrs[i];
	if (!x)
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, x->value_len);
	else if (x->value_len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)x->value, x->value_len);
	fs_cache_put(fs->trees, t);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = xattr_node(req, ino, true, size);
	if (!n)
		return;
	struct fs_cache_ent *t;
	const struct cairn_node *cn;
	int r = fs_entry_get(fs, n, &t, &cn);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	size_t total = 0;
	for (size_t i = 0; i < cn->nxattrs; i++)
		total += cn->xattrs[i].name_len + 1;
	_cleanup_free_ char *buf = size == 0 || total > size ? NULL : malloc(total);
	if (size == 0) {
		fuse_reply_xattr(req, total);
	} else if (total > size) {
		fuse_reply_err(req, ERANGE);
	} else if (!buf) {
		fuse_reply_err(req, ENOMEM);
	} else {
		char *p = buf;
		for (size_t i = 0; i < cn->nxattrs; i++) {
			memcpy(p, cn->xattrs[i].name, cn->xattrs[i].name_len);
			p += cn->xattrs[i].name_len;
			*p++ = '\0';
		}
		fuse_reply_buf(req, buf, total);
	}
	fs_cache_put(fs->trees, t);
}
