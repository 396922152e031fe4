/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the frame of a pack file (FORMAT.md §6.1) under fixed keys.
 *
 * The input is a whole pack file. Its last 12 bytes go to
 * cairn_pack__parse_trailer(); then the file, put in a memfd, goes through
 * cairn_pack__read_entries(): magic, trailer, the header read and decrypted,
 * and its plaintext parsed. Random bytes rarely pass the GCM tag, so the seed
 * corpus holds real packs sealed with these keys. */
#include "pack.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz-keys.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_file(const uint8_t *data, size_t size)
{
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	_cleanup_close_ int fd = memfd_create("fuzz-pack", MFD_CLOEXEC);
	size_t n = 0;

	if (fd < 0 || cairn_write_all(fd, data, size) < 0)
		return;
	if (cairn_pack__read_entries(fd, size, fuzz_keys(), "fuzz", &e, &n) < 0)
		return;
	/* an accepted pack: its entries tile the file up to the header */
	if (n == 0 || e[0].offset != CAIRN_PACK_MAGIC_SIZE)
		__builtin_trap();
	uint64_t end = e[n - 1].offset + (uint64_t)e[n - 1].stored_len;
	uint32_t hlen = cairn_get_le32(data + size - CAIRN_PACK_TRAILER_SIZE);
	if (end + hlen + CAIRN_PACK_TRAILER_SIZE != size)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t hlen = 0;

	if (size >= CAIRN_PACK_TRAILER_SIZE &&
	    cairn_pack__parse_trailer(data + size - CAIRN_PACK_TRAILER_SIZE, size, &hlen) >= 0 &&
	    (uint64_t)hlen + CAIRN_PACK_MAGIC_SIZE + CAIRN_PACK_TRAILER_SIZE > size)
		__builtin_trap();
	read_file(data, size);
	return 0;
}
