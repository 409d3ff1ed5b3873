/*
 * store_wal.c - the look at the SQLite database's WAL before it is opened:
 * what SQLite's own recovery will keep of a WAL left by a crash, and
 * whether what it drops had committed. It reads the -wal and -shm files
 * beside the database with plain I/O (SQLite is not called), writes
 * nothing but a copy of a damaged WAL beside it, and reports through the
 * log alone: the open goes ahead whatever it finds.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_wal.h"

/*
 * SQLite recovers a WAL left by a crash by itself (walIndexRecover): it
 * keeps the frames up to the last commit frame whose salts match the WAL
 * header and whose checksums chain, and silently drops the rest. When the
 * process crashed, what it drops never committed: a commit returns only
 * after its frames are written (and synced), and the frame being written
 * when the process died is left behind as half a frame at the end of the
 * file, or as a frame header over an older frame's page. A WAL that
 * journal_size_limit cut back ends inside an old frame too. Damage (a
 * flipped bit, a file cut short by hand or by a failing disk) drops
 * committed transactions.
 *
 * The -shm file tells the two apart: after each commit the writer updates
 * the wal-index header there (WalIndexHdr: two copies of 48 bytes at
 * offsets 0 and 48, each with a checksum over its first 40 bytes in
 * native byte order, isInit set, the WAL header's salts), and its mxFrame
 * is the last frame known committed. SQLite rebuilds that header when it
 * opens the database after a crash, so read it first. When a valid copy
 * for this WAL says more frames committed than recovery keeps, committed
 * transactions are lost: a warning, and a copy of the WAL kept beside it
 * (the next commits overwrite the dropped frames). Without such a header
 * (a system crash can leave the -shm stale; a copied database has none)
 * nothing says the dropped frames had committed: what is dropped goes to
 * the log at info. A garbage WAL header makes SQLite ignore the whole WAL,
 * which loses everything committed since the last checkpoint: an error,
 * and a copy.
 */
#define WAL_HDR	      32
#define WAL_FRAME_HDR 24
#define WAL_MAGIC     0x377f0682u
#define WAL_VERSION   3007000u /* also the wal-index header's iVersion */
#define SHM_HDR	      48       /* one WalIndexHdr */
/* The "deadman switch" byte of the -shm file (os_unix.c UNIX_SHM_DMS,
 * SQLite 3.40: UNIX_SHM_BASE (22 + SQLITE_SHM_NLOCK) * 4 = 120, which is
 * WALINDEX_LOCK_OFFSET, plus the SQLITE_SHM_NLOCK = 8 lock bytes). Every
 * connection holds a shared lock on it while it has the database open. */
#define SHM_DMS ((22 + SQLITE_SHM_NLOCK) * 4 + SQLITE_SHM_NLOCK)

enum wal_header {
	WAL_HEADER_OK,
	WAL_HEADER_GARBAGE, /* magic, page size or checksum: WAL ignored */
	WAL_HEADER_VERSION, /* a valid header of another format version */
};

struct wal_scan {
	long long bytes; /* size of the -wal file */
	enum wal_header header;
	uint32_t version;      /* the header's format version */
	uint32_t page;	       /* page size */
	unsigned char salt[8]; /* the header's salts, as stored (bytes
				  16..23; also of a garbage header) */
	long upto;	       /* frames the -shm records as committed; -1:
				  no valid wal-index header for this WAL */
	long kept;	       /* frames recovered: to the last valid commit */
	long dropped;	       /* frames of this WAL after them */
	long lost_commits;     /* commit frames among frames kept+1..upto */
	int lost_more;	       /* and some of those frames are missing */
	long long torn;	       /* bytes of a partial frame of this WAL at the
				  end (the frame being written), or 0 */
	long stale;	       /* frames (or a fragment) of an older WAL */
};

static uint32_t get32(const unsigned char *p, int big)
{
	if (big)
		return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		       (uint32_t)p[2] << 8 | p[3];
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | p[0];
}

/* SQLite's WAL checksum (walChecksumBytes) over n bytes, n % 8 == 0. */
static void wal_cksum(const unsigned char *p, size_t n, int big, uint32_t s[2])
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		s[0] += get32(p + i, big) + s[1];
		s[1] += get32(p + i + 4, big) + s[0];
	}
}

static int read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/*
 * Read the two wal-index headers at the start of the -shm file into hdrs
 * (2 * SHM_HDR bytes). 0 when read; -1 when there is no -shm or no header
 * in it; 1, with the process in *pid, when another process holds the DMS
 * lock: it has the database open and may be writing the WAL. The
 * descriptor is closed again, which drops the POSIX locks this process
 * holds on the file: this runs before the process opens the database.
 */
static int shm_read(const char *shm, unsigned char *hdrs, long *pid)
{
	struct flock fl;
	int fd, rv = -1;

	fd = open(shm, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = SHM_DMS;
	fl.l_len = 1;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
		*pid = (long)fl.l_pid;
		rv = 1;
	} else if (read_full(fd, hdrs, 2 * SHM_HDR) == 0) {
		rv = 0;
	}
	close(fd);
	return rv;
}

/* The frames the wal-index records as committed in the WAL with these
 * salts: the larger mxFrame of the two header copies that SQLite would
 * accept (walIndexTryHdr: isInit, iVersion, checksum) and that belong to
 * this WAL; -1 when neither does. */
static long shm_committed(const unsigned char *hdrs, const unsigned char *salt)
{
	long best = -1;

	for (int i = 0; i < 2; i++) {
		const unsigned char *h = hdrs + i * SHM_HDR;
		uint32_t v[SHM_HDR / 4], sum[2] = {0, 0};

		memcpy(v, h, sizeof(v));
		if (v[0] != WAL_VERSION || h[12] == 0)
			continue;
		for (int k = 0; k < 10; k += 2) {
			sum[0] += v[k] + sum[1];
			sum[1] += v[k + 1] + sum[0];
		}
		if (sum[0] != v[10] || sum[1] != v[11] ||
		    memcmp(h + 32, salt, 8) != 0)
			continue;
		if ((long)v[4] > best)
			best = (long)v[4];
	}
	return best;
}

/*
 * Read the WAL as SQLite's recovery (walIndexRecover) does: whole frames
 * count while their salts match the header's and their checksums chain;
 * the last commit frame among them ends what is kept. shm: the -shm
 * headers, or NULL. 0 and the scan, or -1 when there is nothing to look
 * at (no WAL, no frame, or it cannot be read: SQLite will say).
 */
static int wal_scan(const char *wal, const unsigned char *shm,
		    struct wal_scan *w)
{
	unsigned char hdr[WAL_HDR], *frame = NULL;
	uint32_t magic, sum[2] = {0, 0};
	struct stat sb;
	/* commits_upto: commit frames before frame upto */
	long n = 0, chain = 0, commits_kept = 0, commits_upto = 0;
	long long rest;
	size_t size;
	int fd, big, broken = 0, rv = -1;

	memset(w, 0, sizeof(*w));
	w->upto = -1;
	fd = open(wal, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* SQLite reads no header from a file of WAL_HDR bytes or less. */
	if (fstat(fd, &sb) != 0 || sb.st_size <= WAL_HDR ||
	    read_full(fd, hdr, sizeof(hdr)) != 0)
		goto out;
	rv = 0;
	w->bytes = (long long)sb.st_size;
	w->header = WAL_HEADER_GARBAGE;
	/* Also what a garbage header's copy is named after. */
	memcpy(w->salt, hdr + 16, 8);
	magic = get32(hdr, 1);
	w->page = get32(hdr + 8, 1);
	big = (int)(magic & 1);
	if ((magic & ~1u) != WAL_MAGIC || w->page < 512 || w->page > 65536 ||
	    (w->page & (w->page - 1)))
		goto out;
	wal_cksum(hdr, 24, big, sum);
	if (sum[0] != get32(hdr + 24, 1) || sum[1] != get32(hdr + 28, 1))
		goto out;
	w->version = get32(hdr + 4, 1);
	if (w->version != WAL_VERSION) {
		w->header = WAL_HEADER_VERSION;
		goto out;
	}
	w->header = WAL_HEADER_OK;
	if (shm)
		w->upto = shm_committed(shm, w->salt);
	size = WAL_FRAME_HDR + (size_t)w->page;
	frame = malloc(size);
	if (!frame) {
		rv = -1;
		goto out;
	}
	while (read_full(fd, frame, size) == 0) {
		int same = memcmp(frame + 8, w->salt, 8) == 0;
		int commit = get32(frame + 4, 1) != 0;

		n++;
		if (same && commit && n < w->upto)
			commits_upto++;
		if (!broken && same && get32(frame, 1) != 0) {
			uint32_t run[2] = {sum[0], sum[1]};

			wal_cksum(frame, 8, big, run);
			wal_cksum(frame + WAL_FRAME_HDR, w->page, big, run);
			if (run[0] == get32(frame + 16, 1) &&
			    run[1] == get32(frame + 20, 1)) {
				sum[0] = run[0];
				sum[1] = run[1];
				chain = n;
				if (commit) {
					w->kept = n;
					commits_kept = commits_upto;
				}
				continue;
			}
		}
		broken = 1;
		if (same)
			w->dropped++;
		else
			w->stale++; /* an older WAL's: not this one's */
	}
	/* Valid frames after the last commit: an unfinished transaction. */
	w->dropped += chain - w->kept;
	/* What follows the whole frames: the frame that was being written
	 * (its header has this WAL's salts), or a piece of an older one. */
	rest = w->bytes - WAL_HDR - (long long)n * (long long)size;
	if (rest > 0) {
		if (rest >= 16 &&
		    pread(fd, frame, 16, (off_t)(w->bytes - rest)) == 16 &&
		    memcmp(frame + 8, w->salt, 8) == 0) {
			w->torn = rest;
			n++;
			if (get32(frame + 4, 1) != 0 && n < w->upto)
				commits_upto++;
		} else {
			w->stale++;
		}
	}
	if (w->upto > w->kept) {
		/* Frame upto ends a transaction (mxFrame is a commit frame,
		 * whatever is left of it), and so do the commit frames read
		 * before it; frames missing before it may have too. */
		w->lost_commits = commits_upto - commits_kept + 1;
		w->lost_more = n < w->upto - 1;
	}
out:
	free(frame);
	close(fd);
	return rv;
}

/* Write all of n bytes. 0 or an errno. */
static int write_full(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno;
		if (w == 0)
			return EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rv = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s",
			 slash == path ? 1 : (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fsync(fd) != 0)
		rv = errno;
	close(fd);
	return rv;
}

/* Copy src to dst, which must not exist: through dst.tmp, synced, linked
 * into place, the directory synced. 0 or an errno. */
static int copy_file(const char *src, const char *dst)
{
	unsigned char buf[65536];
	char tmp[PATH_MAX + 80];
	int in, out = -1, rv = 0;
	ssize_t r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", dst) >= (int)sizeof(tmp))
		return ENAMETOOLONG;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		rv = errno;
		goto out;
	}
	while ((r = read(in, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rv = errno;
			goto out;
		}
		rv = write_full(out, buf, (size_t)r);
		if (rv)
			goto out;
	}
	if (fsync(out) != 0) {
		rv = errno;
		goto out;
	}
	if (close(out) != 0) {
		out = -1;
		rv = errno;
		goto out;
	}
	out = -1;
	/* link(), not rename(): an existing copy is never replaced. */
	if (link(tmp, dst) != 0) {
		rv = errno;
		goto out;
	}
	rv = fsync_dir_of(dst);
out:
	if (out >= 0)
		close(out);
	close(in);
	unlink(tmp);
	return rv;
}

/*
 * Where a copy of the WAL is kept: beside it, named after the WAL's
 * identity (the header's salts, which change every time SQLite starts the
 * WAL over, and its size), so that a WAL is copied once: a start that is
 * refused leaves the WAL as it was, and the next start must not copy it
 * again (a service manager restarting a refused daemon would fill the
 * disk).
 */
static void copy_name(const char *wal, const struct wal_scan *w, char *out,
		      size_t outlen)
{
	snprintf(out, outlen, "%s.damaged-%08x%08x-%lld", wal,
		 (unsigned)get32(w->salt, 1), (unsigned)get32(w->salt + 4, 1),
		 w->bytes);
}

/* Keep a copy of the WAL, once; note gets what happened. */
static void keep_copy(const char *wal, const struct wal_scan *w, char *note,
		      size_t notelen)
{
	char copy[PATH_MAX + 64];
	struct stat sb;
	int e;

	copy_name(wal, w, copy, sizeof(copy));
	if (stat(copy, &sb) == 0) {
		snprintf(note, notelen,
			 "a copy was kept at an earlier start in %s", copy);
		return;
	}
	e = copy_file(wal, copy);
	if (e)
		snprintf(note, notelen, "no copy kept (%s: %s)", copy,
			 strerror(e));
	else
		snprintf(note, notelen, "a copy is kept in %s", copy);
}

/* "; <note>" when an earlier start reported this WAL and kept a copy. */
static void earlier_copy(const char *wal, const struct wal_scan *w, char *note,
			 size_t notelen)
{
	char copy[PATH_MAX + 64];
	struct stat sb;

	note[0] = '\0';
	copy_name(wal, w, copy, sizeof(copy));
	if (stat(copy, &sb) == 0)
		snprintf(note, notelen,
			 "; an earlier start reported this WAL damaged and "
			 "kept a copy in %s",
			 copy);
}

/* Before SQLite opens path (resolved; name as configured): tell what its
 * WAL recovery will drop. */
void pr_store_wal_check(const char *name, const char *path)
{
	char wal[PATH_MAX], shm[PATH_MAX], note[PATH_MAX + 160], what[160];
	char keeps[64];
	unsigned char hdrs[2 * SHM_HDR];
	struct wal_scan w;
	long pid = 0;
	int have;

	if (snprintf(wal, sizeof(wal), "%s-wal", path) >= (int)sizeof(wal) ||
	    snprintf(shm, sizeof(shm), "%s-shm", path) >= (int)sizeof(shm))
		return;
	have = shm_read(shm, hdrs, &pid);
	if (have == 1) {
		/* Its WAL changes under us; SQLite does no recovery then. */
		pr_debug("store: %s: process %ld has the database open: its "
			 "WAL is not checked",
			 name, pid);
		return;
	}
	if (wal_scan(wal, have == 0 ? hdrs : NULL, &w) != 0)
		return;
	if (w.header == WAL_HEADER_VERSION) {
		pr_err("store: %s: the WAL has format version %u, not %u: "
		       "SQLite refuses to open the database (it is left as "
		       "it is)",
		       name, (unsigned)w.version, WAL_VERSION);
		return;
	}
	if (w.header == WAL_HEADER_GARBAGE) {
		keep_copy(wal, &w, note, sizeof(note));
		pr_err("store: %s: the WAL header is damaged: SQLite ignores "
		       "the whole WAL (%lld bytes), and what was committed "
		       "since the last checkpoint is lost; %s",
		       name, w.bytes, note);
		return;
	}
	if (w.upto > w.kept) {
		keep_copy(wal, &w, note, sizeof(note));
		pr_warn("store: %s: the WAL is damaged or cut short: its -shm "
			"index records %ld committed frames, SQLite's "
			"recovery keeps %ld; frames %ld-%ld are damaged or "
			"missing: %s%ld committed transaction%s %s lost; %s",
			name, w.upto, w.kept, w.kept + 1, w.upto,
			w.lost_more ? "at least " : "", w.lost_commits,
			w.lost_commits == 1 ? "" : "s",
			w.lost_commits == 1 && !w.lost_more ? "is" : "are",
			note);
		return;
	}
	if (!w.dropped && !w.torn) {
		if (w.stale)
			pr_debug("store: %s: the WAL ends in %ld frame(s) or "
				 "pieces of an earlier WAL, which SQLite "
				 "ignores",
				 name, w.stale);
		return;
	}
	if (w.dropped && w.torn)
		snprintf(what, sizeof(what),
			 "%ld frame(s) and a partial frame (%lld of %u bytes)",
			 w.dropped, w.torn, (unsigned)(WAL_FRAME_HDR + w.page));
	else if (w.dropped)
		snprintf(what, sizeof(what), "%ld frame(s)", w.dropped);
	else
		snprintf(what, sizeof(what),
			 "a partial frame (%lld of %u bytes)", w.torn,
			 (unsigned)(WAL_FRAME_HDR + w.page));
	if (w.kept > 0)
		snprintf(keeps, sizeof(keeps), "frames 1-%ld", w.kept);
	else
		snprintf(keeps, sizeof(keeps), "no frame");
	earlier_copy(wal, &w, note, sizeof(note));
	pr_info("store: %s: SQLite's WAL recovery keeps %s and discards the "
		"rest, %s; %s%s",
		name, keeps, what,
		w.upto >= 0 ? "the -shm index shows none of it had committed "
			      "(a write the process did not finish)"
			    : "no valid -shm index says whether any of it had "
			      "committed (as after a system crash, or for a "
			      "copied database)",
		note);
}
