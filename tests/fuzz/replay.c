/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzz target over every file of its corpus directories when not built
 * with libFuzzer, so the corpus is a regression test in every build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	struct cairn_buf b = CAIRN_BUF_INIT;
	if (cairn_file_slurp(path, 64u << 20, &b) < 0) {
		fprintf(stderr, "cannot read '%s': %s\n", path, cairn_err_msg());
		return -1;
	}
	/* Copy into an exact-size allocation so ASan sees reads past the end. */
	uint8_t *copy = malloc(b.len ? b.len : 1);
	if (!copy)
		return -1;
	if (b.len)
		memcpy(copy, b.data, b.len);
	LLVMFuzzerTestOneInput(copy, b.len);
	free(copy);
	cairn_buf_release(&b);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			files++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[4096];
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (run_file(path) < 0)
				return 1;
			files++;
		}
		if (d)
			closedir(d);
	}
	printf("replayed %d inputs\n", files);
	return files > 0 ? 0 : 1;
}
