/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which backend a repository URL names (docs/DESIGN.md "Storage"): above the
 * backends, which know only storage.c. */
#include "storage.h"

#include <errno.h>
#include <string.h>

int cairn_storage_open(cairn_storage **out, const char *url, const struct cairn_storage_opts *o)
{
	static const struct cairn_storage_opts defaults = {
		.version = CAIRN_STORAGE_OPTS_VERSION,
		.s3 = { .version = CAIRN_S3_OPTS_VERSION },
	};
	if (!url || !*url)
		return cairn_err_set(-EINVAL, "no repository given");
	if (cairn_storage_is_url(url))
		return cairn_storage__s3_open(out, url, o ? o : &defaults);
	if (strstr(url, "://"))
		return cairn_err_set(-EINVAL, "'%s': only s3:// URLs and directories are supported",
		                     url);
	return cairn_storage__local_open(out, url);
}
