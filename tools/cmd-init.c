/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn init: create a repository. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn init [-r REPO] [options]\n"
        "\n"
        "Creates an encrypted repository. The password comes from the usual sources\n"
        "(asked twice on a terminal).\n"
        "\n"
        "  --chunk-size MIN/AVG/MAX  content-defined chunk sizes (default 512K/1M/8M)\n"
        "  --compression N           default zstd level, 0 (off) to 19 (default 3)\n"
        "  --pack-size SIZE          target pack file size (default 16M)\n"
        "  --kdf-log2n N             scrypt cost log2(N), 10 to 20 (default: calibrated\n"
        "                            so that one derivation takes at least 100 ms)\n"
        "  --key-label TEXT          label of the first key (default user@host)\n";

enum { OPT_CHUNK = OPT_FIRST_COMMAND_OPT, OPT_COMPRESSION, OPT_PACK_SIZE, OPT_KDF, OPT_LABEL };

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
	struct cairn_init_opts *o = payload;
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
		o->pack_size = (uint32_t)size;
		return 0;
	case OPT_KDF:
		if ((r = cli_parse_int(arg, 10, 20, &v)) < 0)
			return r;
		o->kdf_log2n = (int)v;
		return 0;
	case OPT_LABEL:
		o->key_label = arg;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
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
		{ 0 },
	};
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION, .compression = -1 };
	const char *path;
	char *pw = NULL;
	size_t len = 0;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &o);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i < argc)
		return cli_usage_error("init: unexpected argument '%s'", argv[i]);
	int r = cli_repo_path(&path);
	if (r < 0)
		return cli_fail(r);
	o.storage = cli_storage_opts();
	if ((r = cli_password(&pw, &len, "Password for the new repository: ", true)) < 0)
		return cli_fail(r);
	r = cairn_repo_init(path, pw, len, &o);
	cli_password_free(pw, len);
	if (r == -EINVAL) /* the options (cairn/store.h) */
		return cli_usage_error("init: %s", cairn_err_msg());
	if (r < 0)
		return cli_fail(r);
	if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("created cairn repository at %s\n", path);
	return 0;
}
