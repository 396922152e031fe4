/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for store/s3/s3xml.c: every S3 reply parser over the same bytes
 * (expat's syntax, our limits and the typed extractors on its events). */
#include "s3xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	size_t *n = payload;
	/* Invariants the extractors rely on. */
	if (ev->depth < 1 || ev->depth > CAIRN_S3XML_MAX_DEPTH || !ev->name[0] ||
	    strlen(ev->name) > CAIRN_S3XML_MAX_NAME)
		__builtin_trap();
	if (ev->type == CAIRN_S3XML_TEXT && (ev->len > CAIRN_S3XML_MAX_TEXT || ev->text[ev->len]))
		__builtin_trap();
	(*n)++;
	return 0;
}

static void check_list(const uint8_t *data, size_t size)
{
	struct cairn_s3xml_list l;
	if (cairn_s3xml_parse_list(&l, data, size) < 0)
		return;
	if (l.n > CAIRN_S3XML_MAX_ITEMS || (l.truncated && !l.next_token))
		__builtin_trap();
	for (size_t i = 0; i < l.n; i++)
		if (!l.objs[i].key[0] || strlen(l.objs[i].etag) > 128)
			__builtin_trap();
	cairn_s3xml_list_release(&l);
}

static void check_uploads(const uint8_t *data, size_t size)
{
	struct cairn_s3xml_uploads u;
	if (cairn_s3xml_parse_uploads(&u, data, size) < 0)
		return;
	for (size_t i = 0; i < u.n; i++)
		if (!u.u[i].key || !u.u[i].upload_id[0])
			__builtin_trap();
	cairn_s3xml_uploads_release(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char root[CAIRN_S3XML_MAX_NAME + 1], etag[129], status[16];
	struct cairn_s3xml_error e;
	struct cairn_s3xml_lock lock;
	char *id = NULL;
	size_t events = 0;

	(void)cairn_s3xml_walk(data, size, count_cb, &events);
	(void)cairn_s3xml_root(root, data, size);
	if (cairn_s3xml_parse_error(&e, data, size) >= 0 &&
	    (!e.code[0] || strlen(e.code) >= sizeof(e.code)))
		__builtin_trap();
	check_list(data, size);
	check_uploads(data, size);
	if (cairn_s3xml_parse_upload_id(&id, data, size) >= 0 && !id[0])
		__builtin_trap();
	free(id);
	(void)cairn_s3xml_parse_complete(etag, data, size);
	(void)cairn_s3xml_parse_versioning(status, data, size);
	(void)cairn_s3xml_parse_lock(&lock, data, size);
	return 0;
}
