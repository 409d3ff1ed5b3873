/*
 * replay.c - run a libFuzzer target's LLVMFuzzerTestOneInput() over files,
 * without libFuzzer. `make check` builds every target with this main()
 * (gcc, and the sanitizers when configured with them) and
 * tests/check_fuzz_replay.sh feeds it the seed corpus and every reproducer
 * kept in tests/fuzz/corpus/<target>/, so a fixed crash stays fixed even
 * on machines without clang.
 *
 *   replay_TARGET PATH...     each PATH a file or a directory of files
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long replayed;

/* Run one input; -1 when the file cannot be read. */
static int replay_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *data;
	long len;

	if (!fp) {
		perror(path);
		return -1;
	}
	if (fseek(fp, 0, SEEK_END) || (len = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET)) {
		perror(path);
		fclose(fp);
		return -1;
	}
	/* A private copy of exactly len bytes, as libFuzzer hands it over,
	 * so that ASan sees any read past the end. */
	data = malloc(len ? (size_t)len : 1);
	if (!data || fread(data, 1, (size_t)len, fp) != (size_t)len) {
		fprintf(stderr, "%s: read failed\n", path);
		free(data);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(data, (size_t)len);
	free(data);
	replayed++;
	return 0;
}

static int replay_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	int n, i, rc = 0;

	if (stat(path, &st)) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	/* Sorted, so that a failure names the same file every run. */
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		perror(path);
		return -1;
	}
	for (i = 0; i < n; i++) {
		char sub[4096];

		if (names[i]->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", path,
				 names[i]->d_name);
			if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) &&
			    replay_file(sub))
				rc = -1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i]))
			rc = 1;
	printf("%s: %ld inputs replayed\n", argv[0], replayed);
	return rc;
}
