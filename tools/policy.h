/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention policies of `cairn forget`: which snapshots to keep, and why. */
#ifndef CAIRN_POLICY_H
#define CAIRN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/store.h"

/* Why a snapshot is kept: a bit per rule that selected it. */
enum policy_reason {
	POLICY_LAST = 1u << 0,
	POLICY_HOURLY = 1u << 1,
	POLICY_DAILY = 1u << 2,
	POLICY_WEEKLY = 1u << 3,
	POLICY_MONTHLY = 1u << 4,
	POLICY_YEARLY = 1u << 5,
	POLICY_WITHIN = 1u << 6,
	POLICY_TAG = 1u << 7,
};
/* The counted rules, in the order of the bits above. */
enum { POLICY_NBUCKETS = 6 };
#define POLICY_UNLIMITED (-1)

/* A calendar duration: "2y5m7d3h" is 2 years, 5 months, 7 days and 3 hours. */
struct policy_duration {
	int years, months, days, hours;
};

struct policy {
	/* Per counted rule (last, hourly, daily, weekly, monthly, yearly): how many to
	 * keep; 0 off, POLICY_UNLIMITED for all. */
	int keep[POLICY_NBUCKETS];
	bool has_within;
	struct policy_duration within; /* keep everything newer than now - within */
	/* keep snapshots with every tag of any of these "a,b" groups (snapsel_has_tags) */
	const char *const *tags;
	size_t ntags;
};

/* Parse "1y6m", "7d", "12h" (each unit at most once, in any order). -EINVAL. */
int policy_parse_duration(const char *s, struct policy_duration *out);
/* True when no rule is set: forget refuses to run a policy that removes everything. */
bool policy_is_empty(const struct policy *p);

/* One snapshot to judge. reasons is the result: 0 means remove. */
struct policy_item {
	int64_t time_ns;
	char *const *tags;
	size_t ntags;
	unsigned reasons;
};
/*
 * Apply p to the snapshots of one group, sorted newest first (restic's rules).
 * A counted rule walks from the newest snapshot and keeps the newest one of each
 * distinct period (local time: hour, day, ISO week, month, year; "last": every
 * snapshot; the hour a fall-back repeats is two hours) until it has kept its count of periods.
 * --keep-within keeps every snapshot at or after now minus the duration (years, months and days on
 * the local calendar, hours as real hours; always before now). now is Unix seconds, explicit so
 * that tests use a fixed clock. Returns the number kept.
 */
size_t policy_apply(const struct policy *p, struct policy_item *items, size_t n, int64_t now);
/* "last, daily, tag" into buf (empty for 0). */
void policy_reasons_str(unsigned reasons, char *buf, size_t size);
/* Name of one reason bit ("last", "hourly", ...). */
const char *policy_reason_name(unsigned bit);

/* Grouping (--group-by): snapshots are judged per group of equal keys. */
enum policy_group_key {
	POLICY_GROUP_HOST = 1u << 0,
	POLICY_GROUP_PATHS = 1u << 1,
	POLICY_GROUP_TAGS = 1u << 2,
};
/* "host,paths,tags", any subset, or "" for a single group. -EINVAL. */
int policy_parse_group_by(const char *s, unsigned *out);
/* group_out[i] gets the group number of list[i]; groups are numbered 0.. in the
 * order of their first snapshot. Returns the number of groups, or -ENOMEM. */
int policy_group(struct cairn_snapshot *const *list, size_t n, unsigned by, size_t *group_out);

#endif
