/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A prune's pending deletions, prune/<32 hex> (FORMAT.md §13). Internal. */
#ifndef CAIRN_PRUNEREC_H
#define CAIRN_PRUNEREC_H

#include "cairn/store.h"

#define CAIRN_PRUNEREC_MAX (16u << 20)  /* bytes of one record */
#define CAIRN_PRUNEREC_MAX_WAIT 100000u /* locks waited for */
#define CAIRN_PRUNEREC_MAC_SIZE 32u     /* HMAC-SHA-256 */

/* Open struct; from _parse it owns its arrays. */
struct cairn_prunerec {
	char name[CAIRN_LOCK_NAME_SIZE]; /* object name (not encoded) */
	int64_t time;                    /* Unix seconds the record was first written */
	char host[256];
	bool wait_known; /* false: the prune was killed before it listed the locks */
	char (*wait)[CAIRN_LOCK_NAME_SIZE];
	size_t nwait;
	struct cairn_id *packs; /* to delete once the waited-for holders are gone */
	size_t npacks;
	bool has_mac;                         /* a last line "mac = <64 hex>" */
	uint8_t mac[CAIRN_PRUNEREC_MAC_SIZE]; /* HMAC-SHA-256(K_prune, name || text before it) */
	size_t mac_at;                        /* where that line starts */
	bool authentic;                       /* the MAC checks (pending.c; full keys only) */
};

/* The text of r, appended to out. -ENOMEM. */
int cairn_prunerec__format(const struct cairn_prunerec *r, struct cairn_buf *out);
/* Decode a record's text: the first line, known keys once each (host, time,
 * wait at most once; pack any number of times; mac last if at all), values
 * checked; unknown keys are skipped (a later version may add some). The MAC is
 * not checked here (pending.c has the key). -EBADMSG naming the line, -ENOMEM.
 * out->name is left as it was. Release with cairn_prunerec__release(). */
int cairn_prunerec__parse(struct cairn_prunerec *out, const char *text, size_t len);
void cairn_prunerec__release(struct cairn_prunerec *r);

#endif
