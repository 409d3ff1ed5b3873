/*
 * fuzz_config.c - the config parser: the input is written to an
 * anonymous in-memory file (memfd) and loaded with pr_config_load()
 * through /proc/self/fd/N.
 */
#define _GNU_SOURCE
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	pr_log_set_level(PR_LOG_ERROR);
	fd = memfd_create("prfuzz.conf", 0);
	if (fd < 0) {
		perror("fuzz: memfd_create");
		exit(1);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pr_config *cfg = NULL;
	char err[512];

	if (ftruncate(fd, 0) != 0 ||
	    pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	err[0] = '\0';
	if (pr_config_load(path, &cfg, err, sizeof(err)) == 0)
		pr_config_free(cfg);
	else if (!memchr(err, '\0', sizeof(err)))
		abort();
	return 0;
}
