/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn status: how far a repository meets the 3-2-1-1-0 rule. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "jobconf.h"
#include "status.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn status [--json] [--job NAME] [--s3 s3://BUCKET[/PREFIX]]\n"
        "                    [--s3-endpoint URL] [--offline] [--check-max-age DAYS]\n"
        "\n"
        "Reports how far the repository meets the 3-2-1-1-0 rule:\n"
        "  3 copies    the source, the repository, and a synced S3 copy (with how many\n"
        "              snapshots it is behind and the age of its newest snapshot)\n"
        "  2 media     local or network disk, and an object store\n"
        "  1 offsite   an S3 copy, or the repository itself in a bucket\n"
        "  1 immutable that bucket has S3 Object Lock or versioning (asked from the\n"
        "              bucket; for a repository in a bucket, with how many write-only\n"
        "              keys hosts back up, see cairn key add --write-only)\n"
        "  0 errors    the last 'cairn check --read-data' (or a subset) read data,\n"
        "              found no damage, and is at most DAYS old\n"
        "\n"
        "  --json                one JSON object instead of the table\n"
        "  --job NAME            take the repository, password file, S3 target and\n"
        "                        endpoint from the job file (cairn.conf(5))\n"
        "  --s3 URL              the S3 copy made by 'cairn sync URL'\n"
        "  --s3-endpoint URL     its endpoint, as given to sync\n"
        "  --offline             do not ask the bucket (immutability is then unknown)\n"
        "  --check-max-age DAYS  an older data check does not count (default 35)\n"
        "\n"
        "The S3 copy is known from the state 'cairn sync' keeps in the local index.\n"
        "Exit status: 0 every rule is met, 1 a rule is not met or its state is unknown\n"
        "(or the report failed), 2 bad usage.\n";

enum {
	OPT_JOB = OPT_FIRST_COMMAND_OPT,
	OPT_S3,
	OPT_OFFLINE,
	OPT_MAX_AGE,
};

struct status_opts {
	const char *job;
	struct status_report *rep;
};

static int handle(int c, const char *arg, void *payload)
{
	struct status_opts *o = payload;
	struct status_report *rep = o->rep;
	switch (c) {
	case OPT_JSON:
		rep->json = true;
		return 0;
	case OPT_JOB:
		o->job = arg;
		return 0;
	case OPT_S3:
		return status_set_s3(rep, arg);
	case OPT_OFFLINE:
		rep->offline = true;
		return 0;
	case OPT_MAX_AGE:
		return cli_parse_int(arg, 1, 36500, &rep->max_age_days);
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* ---- output ------------------------------------------------------------- */

static void print_text(const struct status_report *rep)
{
	char age[32] = "never";
	int missed = 0;
	if (rep->snapshots)
		status_fmt_age(age, sizeof(age), status_age_of_ns(rep, rep->newest_ns));
	printf("repository %s: %zu %s, newest %s\n", rep->repo, rep->snapshots,
	       cli_plural(rep->snapshots, "snapshot", "snapshots"), age);
	for (int i = 0; i < RULE_N; i++) {
		printf("%-12s %-4s ", status_rule_titles[i], rep->met[i] ? "yes" : "no");
		cairn_text_str(stdout, rep->why[i], strlen(rep->why[i])); /* may quote errors */
		fputc('\n', stdout);
		missed += !rep->met[i];
	}
	if (missed)
		printf("%d of %d rules not met\n", missed, RULE_N);
	else
		printf("all rules met\n");
}

static void json_kv_str(const char *key, const char *v)
{
	printf("\"%s\":", key);
	if (v)
		cli_json_str(stdout, v, strlen(v));
	else
		fputs("null", stdout);
}

static void print_json_s3(const struct status_report *rep)
{
	const struct s3_copy *s3 = &rep->s3;
	fputs(",\"s3\":", stdout);
	if (!s3->url) {
		fputs("null", stdout);
		return;
	}
	fputc('{', stdout);
	json_kv_str("target", s3->url);
	printf(",\"known\":%s,", s3->known ? "true" : "false");
	json_kv_str("error", s3->known ? NULL : s3->why);
	printf(",\"uploaded_snapshots\":%zu,\"behind_snapshots\":%zu", s3->uploaded, s3->behind);
	if (s3->newest_ns)
		printf(",\"newest_uploaded_age_seconds\":%lld",
		       (long long)status_age_of_ns(rep, s3->newest_ns));
	printf(",\"immutability\":\"%s\",", status_imm_names[s3->imm]);
	json_kv_str("immutability_detail", s3->imm_detail);
	fputc('}', stdout);
}

/* The repository's own bucket, when it is an s3:// one (null otherwise). */
static void print_json_repo_s3(const struct status_report *rep)
{
	const struct s3_repo *s = &rep->repo_s3;
	fputs(",\"repository_s3\":", stdout);
	if (!s->remote) {
		fputs("null", stdout);
		return;
	}
	printf("{\"immutability\":\"%s\",", status_imm_names[s->imm]);
	json_kv_str("immutability_detail", s->imm_detail);
	printf(",\"write_only_keys\":%zu}", s->write_only_keys);
}

static void print_json_check(const struct status_report *rep)
{
	const struct data_check *ck = &rep->check;
	fputs(",\"check\":", stdout);
	if (!ck->present) {
		fputs("null", stdout);
		return;
	}
	printf("{\"time\":%lld,\"age_seconds\":%lld,\"ok\":%s,\"errors\":%lu,", (long long)ck->time,
	       (long long)(rep->now - ck->time), ck->ok ? "true" : "false", ck->errors);
	json_kv_str("read_data", ck->mode);
	fputc(',', stdout);
	json_kv_str("subset", ck->subset[0] ? ck->subset : NULL);
	if (ck->share_known)
		printf(",\"packs\":%llu,\"packs_read\":%llu,\"bytes\":%llu,\"bytes_read\":%llu",
		       ck->packs, ck->packs_read, ck->bytes, ck->bytes_read);
	printf(",\"later_check_failed\":%s,\"read_nothing\":%s}",
	       ck->newer_failed ? "true" : "false", ck->read_nothing ? "true" : "false");
}

static void print_json(const struct status_report *rep)
{
	bool all = true;
	fputc('{', stdout);
	json_kv_str("repository", rep->repo);
	printf(",\"snapshots\":%zu", rep->snapshots);
	if (rep->snapshots)
		printf(",\"newest_snapshot_age_seconds\":%lld",
		       (long long)status_age_of_ns(rep, rep->newest_ns));
	printf(",\"media\":[\"%s\"%s]", rep->network_fs ? "network-disk" : "local-disk",
	       status_s3_counts(rep) || status_repo_counts(rep) ? ",\"object-store\"" : "");
	print_json_repo_s3(rep);
	print_json_s3(rep);
	print_json_check(rep);
	fputs(",\"rules\":{", stdout);
	for (int i = 0; i < RULE_N; i++) {
		printf("%s\"%s\":{\"met\":%s,", i ? "," : "", status_rule_names[i],
		       rep->met[i] ? "true" : "false");
		json_kv_str("detail", rep->why[i]);
		fputc('}', stdout);
		all &= rep->met[i];
	}
	printf("},\"all_met\":%s}\n", all ? "true" : "false");
}

/* ---- the command -------------------------------------------------------- */

static int report(struct status_report *rep)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	int r = cli_open_repo(&repo, &ro);
	if (r < 0)
		return cli_fail(r);
	rep->repo = cairn_repo_path(repo);
	if ((r = status_evaluate(repo, rep)) < 0)
		return cli_fail(r);
	if (rep->json)
		print_json(rep);
	else
		print_text(rep);
	for (int i = 0; i < RULE_N; i++)
		if (!rep->met[i])
			return EXIT_ERROR;
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "s3", required_argument, NULL, OPT_S3 },
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "check-max-age", required_argument, NULL, OPT_MAX_AGE },
		{ 0 },
	};
	struct status_report rep;
	struct status_opts o = { .rep = &rep };
	status_init(&rep);
	struct jobconf c;
	int i = cli_parse(argc, argv, NULL, longopts, usage, handle, &o);

	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i < argc)
		return cli_usage_error("status: unexpected argument '%s'", argv[i]);
	jobconf_init(&c);
	int r = o.job ? status_apply_job(o.job, &c, &rep) : 0;
	int rc = r < 0 ? cli_fail(r) : report(&rep);
	jobconf_release(&c);
	return rc;
}
