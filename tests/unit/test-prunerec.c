/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prune records (FORMAT.md §13): round trips, unknown keys, corruption. */
#include "check.h"

#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "prunerec.h"

static const char lockname[] = "0123456789abcdef0123456789abcdef";

static void test_prunerec__round_trip(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_id packs[2] = { { { 1 } }, { { 2 } } };
	char wait[2][CAIRN_LOCK_NAME_SIZE];
	memcpy(wait[0], lockname, sizeof(lockname));
	memcpy(wait[1], "ffffffffffffffffffffffffffffffff", 33);
	struct cairn_prunerec r = { .time = 1714557600,
		                    .wait_known = true,
		                    .wait = wait,
		                    .nwait = 2,
		                    .packs = packs,
		                    .npacks = 2 };
	snprintf(r.host, sizeof(r.host), "backup01");
	CHECK_OK(cairn_prunerec__format(&r, &b));
	struct cairn_prunerec got = { .name = "00000000000000000000000000000007" };
	CHECK_OK(cairn_prunerec__parse(&got, (const char *)b.data, b.len));
	CHECK_EQ(got.time, 1714557600);
	CHECK(strcmp(got.host, "backup01") == 0 && got.wait_known && got.nwait == 2);
	CHECK(strcmp(got.wait[1], "ffffffffffffffffffffffffffffffff") == 0);
	CHECK(got.npacks == 2 && memcmp(&got.packs[1], &packs[1], sizeof(packs[1])) == 0);
	CHECK(strcmp(got.name, "00000000000000000000000000000007") == 0); /* kept */
	cairn_prunerec__release(&got);

	/* Waiting for nobody, and not yet known whom to wait for. */
	r.nwait = 0;
	b.len = 0;
	CHECK_OK(cairn_prunerec__format(&r, &b));
	CHECK(strstr((const char *)b.data, "wait =\n") != NULL);
	CHECK_OK(cairn_prunerec__parse(&got, (const char *)b.data, b.len));
	CHECK(got.wait_known && got.nwait == 0);
	cairn_prunerec__release(&got);
	r.wait_known = false;
	b.len = 0;
	CHECK_OK(cairn_prunerec__format(&r, &b));
	CHECK_OK(cairn_prunerec__parse(&got, (const char *)b.data, b.len));
	CHECK(!got.wait_known);
	cairn_prunerec__release(&got);
}

/* The MAC line: where the text it covers ends, and only as the last line. */
static void test_prunerec__mac(void)
{
	static const char head[] = "cairn-prune 1\ntime = 5\nhost = h\n";
	char text[256];
	struct cairn_prunerec r = { 0 };
	snprintf(text, sizeof(text), "%smac = %064d\n", head, 7);
	CHECK_OK(cairn_prunerec__parse(&r, text, strlen(text)));
	CHECK(r.has_mac && r.mac_at == strlen(head) && r.mac[31] == 0x07 && !r.authentic);
	cairn_prunerec__release(&r);
	snprintf(text, sizeof(text), "%smac = %064d\npack = %064d\n", head, 7, 1);
	CHECK(cairn_prunerec__parse(&r, text, strlen(text)) == -EBADMSG);
	snprintf(text, sizeof(text), "%smac = %063d\n", head, 7);
	CHECK(cairn_prunerec__parse(&r, text, strlen(text)) == -EBADMSG);
	snprintf(text, sizeof(text), "%s", head);
	CHECK_OK(cairn_prunerec__parse(&r, text, strlen(text)));
	CHECK(!r.has_mac);
	cairn_prunerec__release(&r);
}

static void test_prunerec__unknown_keys_and_errors(void)
{
	struct cairn_prunerec got = { 0 };
	const char *ok = "cairn-prune 1\ntime = 5\nhost = h\nlater = whatever it says\n";
	CHECK_OK(cairn_prunerec__parse(&got, ok, strlen(ok)));
	CHECK(got.npacks == 0 && !got.wait_known);
	cairn_prunerec__release(&got);
	static const char *const bad[] = {
		"",
		"cairn-prune 2\ntime = 5\nhost = h\n",
		"cairn-prune 1\nhost = h\n",         /* no time */
		"cairn-prune 1\ntime = 5\n",         /* no host */
		"cairn-prune 1\ntime = 5\nhost = h", /* cut */
		"cairn-prune 1\ntime = -5\nhost = h\n",
		"cairn-prune 1\ntime = 5x\nhost = h\n",
		"cairn-prune 1\ntime = 5\ntime = 6\nhost = h\n",  /* twice */
		"cairn-prune 1\ntime = 5\nhost = h\npack = 12\n", /* short pack */
		"cairn-prune 1\ntime = 5\nhost = h\nwait = 0123\n",
		"cairn-prune 1\ntime = 5\nhost = h\nwait = 0123456789abcdef0123456789abcdeg\n",
		"cairn-prune 1\ntime = 5\nhost = h\nno separator\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_ERR(cairn_prunerec__parse(&got, bad[i], strlen(bad[i])), -EBADMSG);
		CHECK(got.packs == NULL && got.wait == NULL);
	}
}

int main(void)
{
	RUN(test_prunerec__round_trip);
	RUN(test_prunerec__unknown_keys_and_errors);
	RUN(test_prunerec__mac);
	return 0;
}
