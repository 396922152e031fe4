/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Failure notifications: a JSON POST to a webhook (Slack, Teams, generic) and
 * mail through the local sendmail. */
#ifndef CAIRN_NOTIFY_H
#define CAIRN_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/util.h"

/* What happened. Strings are borrowed; NULL fields are left out or defaulted. */
struct notify_msg {
	const char *job;   /* job name (cairn run NAME) */
	const char *host;  /* NULL: this host's name */
	const char *error; /* what failed; NULL: "job failed" */
	int64_t time;      /* Unix seconds; 0: now */
	int exit_code;     /* of the failed run; < 0: not known (left out) */
};

/* The shape of a webhook body. AUTO picks by the URL's host: hooks.slack.com is
 * Slack; *.webhook.office.com, outlook.office(365).com, *.logic.azure.com and
 * *.powerplatform.com (Teams connectors and Workflows) are Teams; anything else
 * gets the generic body. */
enum notify_format { NOTIFY_AUTO, NOTIFY_GENERIC, NOTIFY_SLACK, NOTIFY_TEAMS };
/* "auto", "generic", "slack" or "teams"; -EINVAL otherwise (message set). */
int notify_format_parse(const char *s, enum notify_format *out);
/* f itself, or for NOTIFY_AUTO the format url's host calls for. */
enum notify_format notify_format_for(const char *url, enum notify_format f);

/*
 * The generic JSON body, appended to out:
 *   {"text": "<one line for chat tools>", "job": ..., "host": ..., "error": ...,
 *    "time": "2024-05-01T12:00:00Z", "timestamp": 1714564800, "status": "failure",
 *    "exit_code": 1, "program": "cairn 0.1.0"}
 * "text" is what Slack and Teams incoming webhooks display. -ENOMEM.
 */
int notify_json(struct cairn_buf *out, const struct notify_msg *m);
/* The body in format f (AUTO is taken as GENERIC), appended to out:
 *   SLACK: {"text": <summary>, "blocks": [header section, fields section (job, host,
 *          exit code, time), error section]}, text escaped for Slack's mrkdwn
 *          (& < > as entities);
 *   TEAMS: {"type": "message", "attachments": [{"contentType":
 *          "application/vnd.microsoft.card.adaptive", "content": an AdaptiveCard
 *          1.4 with a title TextBlock, a FactSet (Job, Host, Exit code, Time) and
 *          the error in a wrapped TextBlock}]}, which both the Teams Workflows
 *          and the older connector webhooks accept.
 * -ENOMEM. */
int notify_body(struct cairn_buf *out, enum notify_format f, const struct notify_msg *m);

/* POST the body in format notify_format_for(url, f) to url with Content-Type:
 * application/json (libcurl; main has called curl_global_init). Transport failures, 5xx and 429 are
 * retried twice, after 1 and 2 s. -EIO the server cannot be reached, -EPROTO it answered with a
 * status other than 2xx (the message has the status and the start of the body; the URL's path is
 * left out of messages, since webhook URLs carry tokens). */
int notify_webhook(const char *url, enum notify_format f, const struct notify_msg *m);

/* Send a mail to addr through `sendmail -t -i` ($CAIRN_SENDMAIL, default
 * /usr/sbin/sendmail). -EINVAL a malformed address, -ENOENT no sendmail, -EIO it
 * failed. */
int notify_mail(const char *addr, const struct notify_msg *m);

/*
 * "Reported" markers keep one failure from being announced twice: cairn run
 * marks its job after it has sent a notification itself, and the systemd
 * OnFailure= unit (`cairn notify --if-unreported`) then stays quiet. The marker is
 * $CAIRN_STATE_DIR/NAME.reported (default /var/lib/cairn). Failing to write it
 * costs a duplicate message at worst, so these only log at debug level.
 */
void notify_mark_reported(const char *job, bool reported);
/* True if job's marker exists; it is removed (one marker, one skipped message). */
bool notify_take_reported(const char *job);

#endif
