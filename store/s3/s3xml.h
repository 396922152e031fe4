/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The XML replies of S3 (untrusted network bytes), parsed by expat under limits. */
#ifndef CAIRN_S3XML_H
#define CAIRN_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * expat checks the syntax (XML 1.0, UTF-8) and decodes the predefined entities,
 * character references and CDATA sections. A DOCTYPE is refused, so there are no
 * external or custom entities to expand. Every parser returns -EBADMSG with a
 * message naming the offset for malformed input or input over the limits below,
 * -ENOMEM, and leaves its output untouched on failure.
 */
#define CAIRN_S3XML_MAX_SIZE (16u << 20) /* bytes of one reply */
#define CAIRN_S3XML_MAX_DEPTH 16
#define CAIRN_S3XML_MAX_NAME 63        /* element name bytes */
#define CAIRN_S3XML_MAX_TEXT 65536     /* decoded bytes of one element's text */
#define CAIRN_S3XML_MAX_ITEMS 10000    /* Contents or Upload entries per page */
#define CAIRN_S3XML_MAX_MEM (4u << 20) /* bytes expat may hold while parsing a reply */

/* The element events of a document, for callers that need other elements. */
enum cairn_s3xml_ev_type { CAIRN_S3XML_OPEN, CAIRN_S3XML_TEXT, CAIRN_S3XML_CLOSE };
struct cairn_s3xml_ev {
	enum cairn_s3xml_ev_type type;
	int depth;          /* 1 for the root element */
	const char *name;   /* local name, namespace prefix removed */
	const char *parent; /* "" for the root */
	const char *text;   /* TEXT only: decoded, NUL-terminated (may contain NULs) */
	size_t len;
};
/* Calls cb for each element: OPEN, then TEXT once if the element has no child
 * elements (possibly empty text), then CLOSE. A negative return from cb stops the
 * walk and is returned. Pointers are valid during the call only. */
int cairn_s3xml_walk(const void *data, size_t len,
                     int (*cb)(const struct cairn_s3xml_ev *ev, void *payload), void *payload);

/* The root element's local name; out holds CAIRN_S3XML_MAX_NAME + 1 bytes. */
int cairn_s3xml_root(char *out, const void *data, size_t len);

/* <Error><Code>..</Code><Message>..</Message></Error>: code and message are
 * truncated to fit. A reply whose root is not Error is -EBADMSG. */
struct cairn_s3xml_error {
	char code[64];
	char message[256];
};
int cairn_s3xml_parse_error(struct cairn_s3xml_error *out, const void *data, size_t len);

/* ListObjectsV2 (<ListBucketResult>). Caller releases with cairn_s3xml_list_release(). */
struct cairn_s3xml_object {
	char *key; /* non-empty */
	uint64_t size;
	char etag[129]; /* without quotes; "" if absent */
	int64_t mtime;  /* LastModified, Unix seconds; 0 if absent */
};
struct cairn_s3xml_list {
	struct cairn_s3xml_object *objs;
	size_t n;
	bool truncated;
	char *next_token; /* NextContinuationToken, NULL if absent */
};
int cairn_s3xml_parse_list(struct cairn_s3xml_list *out, const void *data, size_t len);
void cairn_s3xml_list_release(struct cairn_s3xml_list *l);

/* An ISO 8601 UTC time as S3 writes it ("2026-12-06T19:38:59.000Z", fraction
 * optional) into Unix seconds. -EBADMSG. */
int cairn_s3xml_parse_time(const char *s, int64_t *out);

/* ListMultipartUploads (<ListMultipartUploadsResult>). */
struct cairn_s3xml_upload {
	char *key;
	char *upload_id;
	int64_t initiated; /* Unix seconds; 0 if absent */
};
struct cairn_s3xml_uploads {
	struct cairn_s3xml_upload *u;
	size_t n;
	bool truncated;
	char *next_key_marker; /* NULL if absent */
	char *next_upload_id_marker;
};
int cairn_s3xml_parse_uploads(struct cairn_s3xml_uploads *out, const void *data, size_t len);
void cairn_s3xml_uploads_release(struct cairn_s3xml_uploads *u);

/* <InitiateMultipartUploadResult><UploadId>: *out is malloc'd, caller frees. */
int cairn_s3xml_parse_upload_id(char **out, const void *data, size_t len);

/* <CompleteMultipartUploadResult><ETag>, unquoted; "" when empty (Ceph RGW). */
int cairn_s3xml_parse_complete(char etag[129], const void *data, size_t len);

/* <VersioningConfiguration><Status>: "Enabled", "Suspended" or "" (never enabled). */
int cairn_s3xml_parse_versioning(char status[16], const void *data, size_t len);

/* <ObjectLockConfiguration>: enabled, default retention mode and period if any. */
struct cairn_s3xml_lock {
	bool enabled;
	char mode[16]; /* "GOVERNANCE", "COMPLIANCE" or "" */
	uint32_t days, years;
};
int cairn_s3xml_parse_lock(struct cairn_s3xml_lock *out, const void *data, size_t len);

#endif
