/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn init: create a repository. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn init [-r REPO] [options]\n"
        "\n"
        "Creates an encrypted repository in a directory that is absent or empty, or\n"
        "under an S3 prefix that holds nothing at all. The password comes from the\n"
        "usual sources, or is asked twice on a terminal. When it is to come from a\n"
        "password file (--password-file, CAIRN_PASSWORD_FILE) that does not exist yet,\n"
        "init asks on the terminal and writes the file (mode 0600). A new password has\n"
        "at least 8 characters.\n"
        "\n"
        "  --chunk-size MIN/AVG/MAX  content-defined chunk sizes (default 512K/1M/8M)\n"
        "  --compression N           default zstd level, 0 (off) to 19 (default 3)\n"
        "  --pack-size SIZE          target pack file size (default 16M)\n"
        "  --kdf-log2n N             scrypt cost log2(N), 10 to 20 (default: calibrated\n"
        "                            so that one derivation takes at least 100 ms)\n"
        "  --key-label TEXT          label of the first key (default user@host; 1 to 255\n"
        "                            bytes, no control characters)\n"
        "  --insecure-password       accept a password shorter than 8 characters\n"
        "\n"
        "Keep a copy of the password somewhere else: without it, nobody can read the\n"
        "backups.\n";

enum {
	OPT_CHUNK = OPT_FIRST_COMMAND_OPT,
	OPT_COMPRESSION,
	OPT_PACK_SIZE,
	OPT_KDF,
	OPT_LABEL,
	OPT_INSECURE,
};

struct init_args {
	struct cairn_init_opts o;
	bool insecure;
};

static int parse_chunk(const char *arg, struct cairn_chunk_params *p)
{
	char a[32], b[32], c[32];
	uint64_t v[3];
	if (sscanf(arg, "%31[^/]/%31[^/]/%31s", a, b, c) != 3)
		return cairn_err_set(-EINVAL, "--chunk-size wants MIN/AVG/MAX, e.g. 512K/1M/8M");
	if (cli_parse_size(a, &v[0]) < 0 || cli_parse_size(b, &v[1]) < 0 ||
	    cli_parse_size(c, &v[2]) < 0)
		return -EINVAL;
	for (int i = 0; i < 3; i++)
		if (v[i] > UINT32_MAX)
			return cairn_err_set(-EINVAL, "chunk size '%s' is too large", arg);
	struct cairn_chunk_params k = { (uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2] };
	/* The chunker knows which sizes work: ask it now, before the password. */
	static const uint8_t gear_key[32];
	cairn_chunker *chunker = NULL;
	int r = cairn_chunker_new(&chunker, &k, gear_key);
	cairn_chunker_free(chunker);
	if (r < 0)
		return r;
	*p = k;
	return 0;
}

static int handle(int c, const char *arg, void *payload)
{
	struct init_args *a = payload;
	struct cairn_init_opts *o = &a->o;
	uint64_t size;
	long v;
	int r;

	switch (c) {
	case OPT_CHUNK:
		return parse_chunk(arg, &o->chunk);
	case OPT_COMPRESSION:
		if ((r = cli_parse_int(arg, 0, 19, &v)) < 0)
			return r;
		o->compression = (int)v;
		return 0;
	case OPT_PACK_SIZE:
		if ((r = cli_parse_size(arg, &size)) < 0)
			return r;
		if (size > UINT32_MAX)
			return cairn_err_set(-EINVAL, "pack size '%s' is too large", arg);
		if (size == 0) /* 0 means "the default" inside: not what was asked */
			return cairn_err_set(-EINVAL, "pack size '%s' is too small", arg);
		o->pack_size = (uint32_t)size;
		return 0;
	case OPT_KDF:
		if ((r = cli_parse_int(arg, 10, 20, &v)) < 0)
			return r;
		o->kdf_log2n = (int)v;
		return 0;
	case OPT_LABEL:
		o->key_label = arg;
		return cli_check_label("a key label", arg, 255);
	case OPT_INSECURE:
		a->insecure = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* Write the password to a new file, durably: a repository whose password was
 * never written down is lost. A missing directory is made, for its owner only. */
static int write_password_file(const char *path, const char *pw, size_t len)
{
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return cairn_err_set(-ENOMEM, "out of memory");
	int r = cairn_mkdir_p(dirname(dir), 0700);
	if (r < 0)
		return cairn_err_wrap(r, "cannot create password file '%s'", path);
	_cleanup_close_ int fd =
	        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	r = fd < 0 ? -errno : 0;
	if (r >= 0 &&
	    ((r = cairn_write_all(fd, pw, len)) < 0 || (r = cairn_write_all(fd, "\n", 1)) < 0 ||
	     (r = fsync(fd) < 0 ? -errno : 0) < 0))
		(void)unlink(path);
	if (r < 0)
		return cairn_err_set(r, "cannot create password file '%s': %s", path, strerror(-r));
	return 0;
}

/* The new repository's password. One meant to come from a file that does not
 * exist yet is asked on the terminal and written there (*created). */
static int new_password(char **pw, size_t *len, bool insecure, const char **created)
{
	const char *file = cli_password_file();
	struct stat st;
	int r;

	*created = NULL;
	if (!file || lstat(file, &st) == 0 || errno != ENOENT) {
		r = cli_password(pw, len, "Password for the new repository: ", true);
	} else {
		r = cli_new_password(pw, len, NULL);
		if (r == -ENOTTY)
			return cairn_err_set(
			        -ENOENT,
			        "password file '%s' does not exist: write the password "
			        "on its first line (mode 0600), or run 'cairn init' on "
			        "a terminal to be asked for one",
			        file);
		*created = r >= 0 ? file : NULL;
	}
	if (r >= 0)
		r = cli_check_new_password(*pw, *len, insecure);
	if (r >= 0 && *created)
		r = write_password_file(file, *pw, *len);
	if (r < 0) {
		cli_password_free(*pw, *len);
		*pw = NULL;
		*created = NULL;
	}
	return r;
}

int cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "compression", required_argument, NULL, OPT_COMPRESSION },
		{ "pack-size", required_argument, NULL, OPT_PACK_SIZE },
		{ "kdf-log2n", required_argument, NULL, OPT_KDF },
		{ "key-label", required_argument, NULL, OPT_LABEL },
		{ "insecure-password", no_argument, NULL, OPT_INSECURE },
		{ 0 },
	};
	struct init_args a = { .o = { .version = CAIRN_INIT_OPTS_VERSION, .compression = -1 } };
	const char *path, *created;
	char *pw = NULL;
	size_t len = 0;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i < argc)
		return cli_usage_error("init: unexpected argument '%s'", argv[i]);
	int r = cli_repo_path(&path);
	if (r < 0)
		return cli_fail(r);
	a.o.storage = cli_storage_opts();
	if ((r = new_password(&pw, &len, a.insecure, &created)) < 0)
		return cli_fail(r);
	r = cairn_repo_init(path, pw, len, &a.o);
	cli_password_free(pw, len);
	if (r < 0 && created)
		(void)unlink(created); /* the password of no repository */
	if (r == -EINVAL)              /* the options (cairn/store.h) */
		return cli_usage_error("init: %s", cairn_err_msg());
	if (r < 0)
		return cli_fail(r);
	if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("created cairn repository at %s\n", path);
	if (created && cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("wrote its password to '%s' (mode 0600): keep a copy somewhere else, "
		       "without it nobody can read the backups\n",
		       created);
	return 0;
}
