/*
 * faultfs.c - an LD_PRELOAD shim that makes file writes fail on demand,
 * for the storage fault tests (tests/check_storage_faults.c). The tests
 * run as root, where a chmod does not make a file read-only, and a full
 * disk cannot be made on demand; this shim stands between the daemon
 * (SQLite's unix VFS) and libc instead.
 *
 * Environment:
 *   FAULTFS_PATH     only files whose path starts with this prefix are
 *                    touched (the descriptors opened under it are tracked)
 *   FAULTFS_CONTROL  a control file. While it is missing or empty, every
 *                    call goes through. While it holds a line
 *                      MODE [OP...]
 *                    the calls named by OP fail with MODE's errno on the
 *                    tracked files. MODE is erofs, eio or enospc; OP is
 *                    open (an open for writing or creating), write
 *                    (write, pwrite, pwrite64: what SQLite 3.40 uses),
 *                    sync (fsync, fdatasync) or trunc (ftruncate). Without
 *                    OPs: write, sync and trunc, plus open for erofs.
 *                    Writes SQLite makes through mmap (the -shm file) are
 *                    not seen.
 *                    Or, to crash the daemon the way a kill -9 in the
 *                    middle of a commit does:
 *                      kill commit [reuse]
 *                    kills the process (SIGKILL) between the two writes
 *                    of the next commit frame SQLite writes to a tracked
 *                    -wal file: after the frame's header, before its
 *                    page. With reuse, only a commit frame of a WAL
 *                    that SQLite started over in place (its header
 *                    rewritten while older frames follow).
 *
 * The control file is read at every call on a tracked descriptor (SQLite
 * makes a handful per commit), so a test flips a fault by writing or
 * removing the file, without signalling the daemon. Built without the
 * sanitizers: it is preloaded before them (the daemon then needs
 * ASAN_OPTIONS=verify_asan_link_order=0).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <signal.h>
#include <unistd.h>

#define MAX_FD 65536

enum { OP_OPEN = 1, OP_WRITE = 2, OP_SYNC = 4, OP_TRUNC = 8 };

/* Descriptors opened under FAULTFS_PATH (2: a -wal file); set and
 * cleared atomically. */
static unsigned char tracked[MAX_FD];
/* kill commit: a WAL was started over in place / a commit frame's header
 * was written, its page comes next. */
static int wal_restarted, commit_armed;

/* Raw system calls, so that reading the control file never comes back
 * into this shim. */
static int raw_open(const char *path, int flags, mode_t mode)
{
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static int raw_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static int under_prefix(const char *path)
{
	const char *prefix = getenv("FAULTFS_PATH");
	size_t n;

	if (!prefix || !*prefix || !path)
		return 0;
	n = strlen(prefix);
	return strncmp(path, prefix, n) == 0;
}

/* The control file's line into buf; its length, or 0. */
static ssize_t read_control(char *buf, size_t len)
{
	const char *ctl = getenv("FAULTFS_CONTROL");
	ssize_t n;
	int fd;

	if (!ctl || !*ctl)
		return 0;
	fd = raw_open(ctl, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	n = syscall(SYS_read, fd, buf, len - 1);
	raw_close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return n;
}

/* The errno the control file asks for op, or 0. */
static int fault_for(int op)
{
	char buf[128], *save = NULL, *word;
	int err = 0, ops = 0;

	if (!read_control(buf, sizeof(buf)))
		return 0;
	word = strtok_r(buf, " \t\r\n", &save);
	if (!word)
		return 0;
	if (strcmp(word, "erofs") == 0)
		err = EROFS;
	else if (strcmp(word, "eio") == 0)
		err = EIO;
	else if (strcmp(word, "enospc") == 0)
		err = ENOSPC;
	else
		return 0;
	while ((word = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
		if (strcmp(word, "open") == 0)
			ops |= OP_OPEN;
		else if (strcmp(word, "write") == 0)
			ops |= OP_WRITE;
		else if (strcmp(word, "sync") == 0)
			ops |= OP_SYNC;
		else if (strcmp(word, "trunc") == 0)
			ops |= OP_TRUNC;
	}
	if (!ops)
		ops = OP_WRITE | OP_SYNC | OP_TRUNC |
		      (err == EROFS ? OP_OPEN : 0);
	return ops & op ? err : 0;
}

/* 0, or 1 for "kill commit", 2 for "kill commit reuse". */
static int kill_mode(void)
{
	char buf[128], *save = NULL, *word;
	int mode = 0;

	if (!read_control(buf, sizeof(buf)))
		return 0;
	word = strtok_r(buf, " \t\r\n", &save);
	if (!word || strcmp(word, "kill") != 0)
		return 0;
	word = strtok_r(NULL, " \t\r\n", &save);
	if (!word || strcmp(word, "commit") != 0)
		return 0;
	mode = 1;
	word = strtok_r(NULL, " \t\r\n", &save);
	if (word && strcmp(word, "reuse") == 0)
		mode = 2;
	return mode;
}

static int is_tracked(int fd)
{
	return fd >= 0 && fd < MAX_FD &&
	       __atomic_load_n(&tracked[fd], __ATOMIC_RELAXED);
}

static void track(int fd, const char *path)
{
	size_t n = path ? strlen(path) : 0;
	unsigned char v = (unsigned char)under_prefix(path);

	if (v && n > 4 && strcmp(path + n - 4, "-wal") == 0)
		v = 2;
	if (fd >= 0 && fd < MAX_FD)
		__atomic_store_n(&tracked[fd], v, __ATOMIC_RELAXED);
}

/*
 * kill commit: SQLite writes a WAL frame as two pwrites, its 24-byte
 * header (the commit flag in bytes 4..7), then its page; a new or
 * restarted WAL's 32-byte header goes first, at offset 0.
 */
static void maybe_kill(int fd, const void *buf, size_t n, off_t off)
{
	const unsigned char *p = buf;
	struct stat sb;
	int mode;

	if (fd < 0 || fd >= MAX_FD ||
	    __atomic_load_n(&tracked[fd], __ATOMIC_RELAXED) != 2)
		return;
	mode = kill_mode();
	if (!mode)
		return;
	if (n == 32 && off == 0) {
		if (fstat(fd, &sb) == 0 && sb.st_size > 32)
			__atomic_store_n(&wal_restarted, 1, __ATOMIC_RELAXED);
		return;
	}
	if (n == 24) {
		if ((p[4] | p[5] | p[6] | p[7]) &&
		    (mode == 1 ||
		     __atomic_load_n(&wal_restarted, __ATOMIC_RELAXED)))
			__atomic_store_n(&commit_armed, 1, __ATOMIC_RELAXED);
		return;
	}
	if (__atomic_load_n(&commit_armed, __ATOMIC_RELAXED))
		kill(getpid(), SIGKILL);
}

/* A fault on a tracked descriptor: errno set, 1 returned. */
static int fail_fd(int fd, int op)
{
	int err;

	if (!is_tracked(fd))
		return 0;
	err = fault_for(op);
	if (!err)
		return 0;
	errno = err;
	return 1;
}

/* An open for writing under the prefix while open faults are on. */
static int fail_open(const char *path, int flags)
{
	int err;

	if (!(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) ||
	    !under_prefix(path))
		return 0;
	err = fault_for(OP_OPEN);
	if (!err)
		return 0;
	errno = err;
	return 1;
}

/* The next definition of name (libc's, or a sanitizer's interceptor). */
#define REAL(name)                                                             \
	static __typeof__(name) *real_##name;                                  \
	if (!real_##name)                                                      \
	real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static mode_t open_mode(int flags, va_list ap)
{
	if (flags & (O_CREAT | __O_TMPFILE))
		return (mode_t)va_arg(ap, int);
	return 0;
}

/* open, open64, openat and openat64 differ only in their parameters:
 * each fails under a fault, else opens and tracks the descriptor. */
#define OPEN_LIKE(name, params, args)                                          \
	int name params;                                                       \
	int name params                                                        \
	{                                                                      \
		REAL(name);                                                    \
		va_list ap;                                                    \
		mode_t mode;                                                   \
		int fd;                                                        \
                                                                               \
		va_start(ap, flags);                                           \
		mode = open_mode(flags, ap);                                   \
		va_end(ap);                                                    \
		if (fail_open(path, flags))                                    \
			return -1;                                             \
		fd = real_##name args;                                         \
		track(fd, path);                                               \
		return fd;                                                     \
	}

OPEN_LIKE(open, (const char *path, int flags, ...), (path, flags, mode))
OPEN_LIKE(open64, (const char *path, int flags, ...), (path, flags, mode))
OPEN_LIKE(openat, (int dirfd, const char *path, int flags, ...),
	  (dirfd, path, flags, mode))
OPEN_LIKE(openat64, (int dirfd, const char *path, int flags, ...),
	  (dirfd, path, flags, mode))

int close(int fd)
{
	REAL(close);

	if (fd >= 0 && fd < MAX_FD)
		__atomic_store_n(&tracked[fd], 0, __ATOMIC_RELAXED);
	return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(write);

	if (fail_fd(fd, OP_WRITE))
		return -1;
	return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite);

	maybe_kill(fd, buf, n, off);
	if (fail_fd(fd, OP_WRITE))
		return -1;
	return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	REAL(pwrite64);

	maybe_kill(fd, buf, n, (off_t)off);
	if (fail_fd(fd, OP_WRITE))
		return -1;
	return real_pwrite64(fd, buf, n, off);
}

int fsync(int fd)
{
	REAL(fsync);

	if (fail_fd(fd, OP_SYNC))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync);

	if (fail_fd(fd, OP_SYNC))
		return -1;
	return real_fdatasync(fd);
}

int ftruncate(int fd, off_t len)
{
	REAL(ftruncate);

	if (fail_fd(fd, OP_TRUNC))
		return -1;
	return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
	REAL(ftruncate64);

	if (fail_fd(fd, OP_TRUNC))
		return -1;
	return real_ftruncate64(fd, len);
}
