/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn notify: announce a failure to a webhook and/or by mail. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jobconf.h"
#include "notify.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn notify [--url URL] [--mail ADDR] [--job NAME] [--error TEXT]\n"
        "                    [--host NAME] [--exit-code N] [--if-unreported]\n"
        "                    [--format auto|generic|slack|teams]\n"
        "\n"
        "Announces a failure: POSTs a JSON message to a webhook and/or sends a mail\n"
        "through /usr/sbin/sendmail -t (CAIRN_SENDMAIL overrides the path). The generic\n"
        "message is {text, job, host, error, time, timestamp, status, exit_code,\n"
        "program}; Slack gets text and blocks, Teams an Adaptive Card.\n"
        "\n"
        "  --url URL          webhook to POST to (http:// or https://)\n"
        "  --format F         body format; auto (default): slack for hooks.slack.com,\n"
        "                     teams for *.webhook.office.com, *.logic.azure.com and\n"
        "                     *.powerplatform.com, generic for anything else; with\n"
        "                     --job, the job file's notify-format\n"
        "  --mail ADDR        mail recipient\n"
        "  --job NAME         the job that failed; without --url and --mail, the\n"
        "                     notify-url and notify-mail of its job file are used\n"
        "                     (CAIRN_CONFIG_DIR, default /etc/cairn; none: nothing sent)\n"
        "  --error TEXT       what went wrong (default: \"job failed\")\n"
        "  --host NAME        host name to report (default: this host)\n"
        "  --exit-code N      exit status of the failed run\n"
        "  --if-unreported    do nothing if 'cairn run NAME' already sent a\n"
        "                     notification for its last failure (for OnFailure= units)\n"
        "\n"
        "Exit status: 0 every notification was delivered, 1 one failed (connection\n"
        "refused, an HTTP status other than 2xx, sendmail failed), 2 bad usage.\n";

enum {
	OPT_URL = OPT_FIRST_COMMAND_OPT,
	OPT_MAIL,
	OPT_JOB,
	OPT_ERROR,
	OPT_HOST,
	OPT_EXIT_CODE,
	OPT_IF_UNREPORTED,
	OPT_FORMAT,
};

struct notify_opts {
	const char *url, *mail, *job;
	bool if_unreported;
	bool format_given;
	enum notify_format format;
	struct notify_msg msg;
};

static int handle(int c, const char *arg, void *payload)
{
	struct notify_opts *o = payload;
	long v;
	int r;
	switch (c) {
	case OPT_URL:
		o->url = arg;
		return 0;
	case OPT_MAIL:
		o->mail = arg;
		return 0;
	case OPT_JOB:
		o->job = o->msg.job = arg;
		return 0;
	case OPT_ERROR:
		o->msg.error = arg;
		return 0;
	case OPT_HOST:
		o->msg.host = arg;
		return 0;
	case OPT_EXIT_CODE:
		if ((r = cli_parse_int(arg, 0, 255, &v)) < 0)
			return r;
		o->msg.exit_code = (int)v;
		return 0;
	case OPT_IF_UNREPORTED:
		o->if_unreported = true;
		return 0;
	case OPT_FORMAT:
		o->format_given = true;
		return notify_format_parse(arg, &o->format);
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* Send to each configured target; every one is tried even if another failed. */
static int deliver(const char *url, enum notify_format f, const char *mail,
                   const struct notify_msg *m)
{
	int rc = 0;
	if (url && notify_webhook(url, f, m) < 0)
		rc = cli_fail(-EIO);
	if (mail && notify_mail(mail, m) < 0)
		rc = cli_fail(-EIO);
	return rc;
}

static int from_job(struct notify_opts *o)
{
	char path[4096];
	struct jobconf c;
	jobconf_init(&c);
	int r = jobconf_path(path, sizeof(path), o->job);
	if (r >= 0)
		r = jobconf_load(&c, path);
	if (r < 0)
		return cli_fail(r);
	/* The OnFailure= unit runs for every job; one without targets is left alone. */
	if (!c.notify_url && !c.notify_mail) {
		cairn_log(CAIRN_LOG_NOTICE, "%s has no notify-url or notify-mail: nothing sent",
		          path);
		jobconf_release(&c);
		return 0;
	}
	enum notify_format f = o->format;
	if (!o->format_given && c.notify_format)
		notify_format_parse(c.notify_format, &f); /* validated by jobconf_load */
	int rc = deliver(c.notify_url, f, c.notify_mail, &o->msg);
	jobconf_release(&c);
	return rc;
}

int cmd_notify(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "url", required_argument, NULL, OPT_URL },
		{ "mail", required_argument, NULL, OPT_MAIL },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "error", required_argument, NULL, OPT_ERROR },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "exit-code", required_argument, NULL, OPT_EXIT_CODE },
		{ "if-unreported", no_argument, NULL, OPT_IF_UNREPORTED },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ 0 },
	};
	struct notify_opts o = { .msg = { .exit_code = -1 } };
	int i = cli_parse(argc, argv, NULL, longopts, usage, handle, &o);

	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i < argc)
		return cli_usage_error("notify: unexpected argument '%s'", argv[i]);
	if (!o.url && !o.mail && !o.job)
		return cli_usage_error("notify: give --url, --mail or --job");
	if (o.url && strncmp(o.url, "http://", 7) != 0 && strncmp(o.url, "https://", 8) != 0)
		return cli_usage_error("notify: --url must be an http:// or https:// URL");
	if (o.if_unreported && o.job && notify_take_reported(o.job)) {
		log_info("job '%s' already reported its failure", o.job);
		return 0;
	}
	if (o.job)
		cairn_log_set_job(o.job);
	if (!o.url && !o.mail)
		return from_job(&o);
	return deliver(o.url, o.format, o.mail, &o.msg);
}
