/*
 * check_abuse.c - the relay under abuse, against a real pushrelayd on
 * loopback: 10,000 idle connections (HTTP/1.1 and h2c that sent only the
 * preface), running out of descriptors, slowloris, huge request heads over
 * HTTP/1.1 and HTTP/2, deep JSON, megabyte strings and a flood of bad API
 * keys. Each case checks the status the abuser gets, that a normal client
 * is served promptly while the abuse is held, and that the daemon's
 * resident memory stays within a per-connection or per-request bound.
 *
 * Every daemon here runs with a small ASan quarantine (see main()): with
 * the default 256 MiB, freed memory is not reused for a long while and RSS
 * would measure the quarantine, not the relay.
 *
 * Measurements are printed to stderr ("abuse: ...") for the record.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MIB	   (1024L * 1024L)

/* A normal client's request while abuse is held must take less. */
#define PROMPT 2.0

static struct th_daemon d;

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start(const char *extra_server, const char *extra)
{
	ck_assert_msg(th_daemon_start(&d, extra_server, extra) == 0,
		      "pushrelayd did not start; log: %s", d.log);
}

/* Raise our descriptor limit to the hard one; returns it. Daemons started
 * afterwards inherit it. */
static long raise_nofile(void)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

/* CPU seconds (user + system) a process has used. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	/* After the name: state, then fields 4..13, then utime and stime. */
	ck_assert_int_eq(sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
				"%lu %lu",
				&ut, &st),
			 2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A sample of the Prometheus text at /metrics (the line "NAME VALUE"). */
static long metric(const char *name)
{
	struct th_resp r;
	char key[256];
	const char *p;
	long v = -1;

	if (th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r) == 0 &&
	    r.status == 200) {
		snprintf(key, sizeof(key), "\n%s ", name);
		p = strstr(r.body, key);
		v = p ? strtol(p + strlen(key), NULL, 10) : 0;
	}
	th_resp_free(&r);
	return v;
}

/* Open connections besides the /metrics request asking. */
static long open_conns(void)
{
	return metric("pushrelay_connections") - 1;
}

/* Wait until the daemon holds `want` connections (besides our scrape). */
static long wait_conns(long want, double timeout)
{
	double end = now_s() + timeout;
	long n;

	for (;;) {
		n = open_conns();
		if (n == want || now_s() >= end)
			return n;
		usleep(50000);
	}
}

/* A normal client: GET /healthz on a fresh connection; returns seconds. */
static double normal_get(enum th_mode mode)
{
	struct th_resp r;
	double t0 = now_s(), dt;

	ck_assert_int_eq(
	    th_request(&d, mode, "GET", "/healthz", NULL, NULL, &r), 0);
	dt = now_s() - t0;
	ck_assert_msg(r.status == 200, "normal client got %ld", r.status);
	th_resp_free(&r);
	ck_assert_msg(dt < PROMPT, "normal client waited %.3fs", dt);
	return dt;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sa;
}

/*
 * Open n connections with nonblocking connects, in batches, and send
 * hello on each when given. With pace, each batch waits until the daemon
 * has accepted the previous one, so the listen backlog never overflows
 * (an overflow costs a SYN retransmit, a second). Returns how many
 * connected.
 */
static int open_flood(int port, int *fds, int n, const char *hello, int pace)
{
	struct sockaddr_in sa = loopback(port);
	long base = pace ? open_conns() : 0;
	int ok = 0;

	for (int i = 0; i < n;) {
		int batch = n - i < 200 ? n - i : 200;

		for (int k = 0; k < batch; k++) {
			int fd = socket(
			    AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);

			ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) !=
				0 &&
			    errno != EINPROGRESS)
				ck_abort_msg("connect: %s", strerror(errno));
			fds[i + k] = fd;
		}
		for (int k = 0; k < batch; k++) {
			struct pollfd p = {fds[i + k], POLLOUT, 0};
			socklen_t el = sizeof(int);
			int err = 0;

			if (poll(&p, 1, 5000) != 1 ||
			    getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &el) ||
			    err)
				continue;
			ok++;
			if (hello)
				send(p.fd, hello, strlen(hello), MSG_NOSIGNAL);
		}
		i += batch;
		if (pace)
			wait_conns(base + i, 5.0);
	}
	return ok;
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * What the peer said on fd, without waiting: returns the bytes read (the
 * first cap-1 kept in head, NUL-terminated) and sets *eof when the peer
 * closed (or reset) the connection.
 */
static size_t peek_peer(int fd, char *head, size_t cap, int *eof)
{
	size_t got = 0;
	char buf[4096];

	*eof = 0;
	head[0] = '\0';
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			if (got < cap - 1) {
				size_t take = (size_t)n < cap - 1 - got
						  ? (size_t)n
						  : cap - 1 - got;

				memcpy(head + got, buf, take);
				head[got + take] = '\0';
			}
			got += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET)
			*eof = 1;
		return got;
	}
}

/*
 * What became of flood connections: still open, closed without a word,
 * answered 503 and closed, or closed after something else. st[] (zeroed
 * by the caller, one byte per connection) remembers what each has said so
 * far, so a connection is read again only while it is open.
 */
struct fates {
	int open, silent, got503, other;
};

static struct fates fates_of(const int *fds, int n, char *st)
{
	struct fates f = {0, 0, 0, 0};

	for (int i = 0; i < n; i++) {
		char head[64];
		int eof;

		if (st[i] == 0 || st[i] == '5' || st[i] == 'x') {
			size_t got =
			    peek_peer(fds[i], head, sizeof(head), &eof);

			if (got && st[i] == 0)
				st[i] = strncmp(head, "HTTP/1.1 503 ", 13) == 0
					    ? '5'
					    : 'x';
			if (eof)
				st[i] = st[i] == 0     ? 'S'
					: st[i] == '5' ? 'F'
						       : 'X';
		}
		switch (st[i]) {
		case 'S': f.silent++; break;
		case 'F': f.got503++; break;
		case 'X': f.other++; break;
		default: f.open++; break;
		}
	}
	return f;
}

/* Wait (up to timeout s) until at most max_open of them are open. */
static struct fates settle(const int *fds, int n, char *st, int max_open,
			   double timeout)
{
	double end = now_s() + timeout;
	struct fates f = fates_of(fds, n, st);

	while (f.open > max_open && now_s() < end) {
		usleep(100000);
		f = fates_of(fds, n, st);
	}
	return f;
}

/* ---- 10,000 idle connections ------------------------------------------ */

/* Open the idle flood: n_quiet that say nothing, n_ka that ask once and
 * keep the connection, n_h2 that send only the h2 preface. */
static void idle_flood(int *fds, int n_quiet, int n_ka, int n_h2, long *rss)
{
	static const char ask[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";

	ck_assert_int_eq(open_flood(d.port, fds, n_quiet, NULL, 1), n_quiet);
	rss[0] = th_rss_kb(d.pid);
	ck_assert_int_eq(open_flood(d.port, fds + n_quiet, n_ka, ask, 1), n_ka);
	ck_assert_int_eq(
	    open_flood(d.port, fds + n_quiet + n_ka, n_h2, H2_PREFACE, 1),
	    n_h2);
	rss[1] = th_rss_kb(d.pid);
}

START_TEST(test_idle_flood)
{
	static int fds[10050];
	long hard = raise_nofile(), rss0, rss1[2], rss2, rss3[2], held;
	int n = 10000, n_h2, n_ka, n_quiet, extra[30];
	double t0, t_conn, lat1, lat2, per_quiet, per_h2;
	char conf[256], *st, st_extra[30] = {0};
	struct fates f;

	/* Our side and the daemon's each hold n descriptors, plus spares. */
	if (hard - 200 < n)
		n = (int)(hard - 200);
	ck_assert_msg(n >= 300, "RLIMIT_NOFILE hard limit %ld is too low",
		      hard);
	n_h2 = n / 5;
	n_ka = n / 20;
	n_quiet = n - n_h2 - n_ka;
	fprintf(stderr,
		"abuse: idle flood of %d connections (%d silent, %d idle "
		"keep-alive, %d h2c preface only), RLIMIT_NOFILE %ld\n",
		n, n_quiet, n_ka, n_h2, hard);
	snprintf(conf, sizeof(conf),
		 "max_connections = %d\nheader_timeout = 5\n"
		 "idle_timeout = 5\n",
		 n + 10);
	start(conf, NULL);
	ck_assert_int_eq(wait_conns(0, 5.0), 0);
	rss0 = th_rss_kb(d.pid);

	t0 = now_s();
	idle_flood(fds, n_quiet, n_ka, n_h2, rss1);
	t_conn = now_s() - t0;
	held = wait_conns(n, 5.0);
	ck_assert_msg(held == n, "the daemon holds %ld of %d", held, n);
	st = calloc((size_t)n, 1);
	ck_assert_ptr_nonnull(st);
	f = fates_of(fds, n, st);
	ck_assert_msg(f.open == n, "open %d silent %d 503 %d other %d", f.open,
		      f.silent, f.got503, f.other);

	/* Other clients are served meanwhile, over both protocols. */
	lat1 = normal_get(TH_H1);
	lat2 = normal_get(TH_H2C);

	/* Past max_connections: 503 and closed, at once. (Ten slots are
	 * free; the normal clients' may not be yet.) */
	ck_assert_int_eq(open_flood(d.port, extra, 30, NULL, 0), 30);
	f = settle(extra, 30, st_extra, 10, 5.0);
	ck_assert_msg(f.open <= 10 && f.got503 >= 17 && f.open + f.got503 == 30,
		      "open %d silent %d 503 %d other %d", f.open, f.silent,
		      f.got503, f.other);
	close_all(extra, 30);

	/* The timeouts close them all: the silent ones without a word, the
	 * keep-alive ones after their answer, the h2c ones after a GOAWAY. */
	f = settle(fds, n, st, 0, 15.0);
	ck_assert_int_eq(f.open, 0);
	ck_assert_int_eq(f.silent, n_quiet);
	ck_assert_int_eq(f.other, n_ka + n_h2);
	ck_assert_int_eq(wait_conns(0, 5.0), 0);
	rss2 = th_rss_kb(d.pid);
	close_all(fds, n);
	free(st);

	/* The memory comes back: a second flood reuses it. */
	idle_flood(fds, n_quiet, n_ka, n_h2, rss3);
	ck_assert_int_eq(wait_conns(n, 5.0), n);
	close_all(fds, n);
	ck_assert_int_eq(wait_conns(0, 10.0), 0);

	per_quiet = (double)(rss1[0] - rss0) / n_quiet;
	per_h2 = (double)(rss1[1] - rss1[0]) / (n_ka + n_h2);
	fprintf(stderr,
		"abuse: idle flood: connected in %.2fs, all held; RSS %ld KiB "
		"before, %ld held (%.2f KiB per silent connection, %.1f per "
		"keep-alive or h2c one), %ld after the timeouts closed them, "
		"%ld in a second flood; normal client %.1f ms (h1) %.1f ms "
		"(h2c)\n",
		t_conn, rss0, rss1[1], per_quiet, per_h2, rss2, rss3[1],
		lat1 * 1e3, lat2 * 1e3);
	/* A silent connection owns no buffers yet (a KiB under ASan), an h2c
	 * one an nghttp2 session (26 KiB under ASan). An input buffer
	 * allocated up front (16 KiB) would break either bound. */
	ck_assert_msg(per_quiet < 4.0, "%.2f KiB per silent connection",
		      per_quiet);
	ck_assert_msg(per_h2 < 36.0, "%.1f KiB per h2c or keep-alive one",
		      per_h2);
	/* Given back and reused, not grown again (allow 1/4 of the first
	 * flood's cost for allocator slack). */
	ck_assert_msg(rss3[1] - rss2 < (rss1[1] - rss0) / 4 + 4096,
		      "a second flood grew RSS from %ld to %ld KiB", rss2,
		      rss3[1]);
}
END_TEST

/* ---- running out of descriptors --------------------------------------- */

/* Start the daemon with a soft RLIMIT_NOFILE of limit (ours is kept). */
static void start_with_nofile(long limit, const char *extra_server)
{
	struct rlimit rl, low;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = (rlim_t)limit;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	start(extra_server, NULL);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* One keep-alive request on an open raw connection; returns seconds. */
static double keepalive_get(int fd)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
	char buf[2048];
	double t0 = now_s(), dt;

	ck_assert_int_eq(th_send(fd, req, sizeof(req) - 1), 0);
	th_recv_until(fd, buf, sizeof(buf), "}", 5.0);
	dt = now_s() - t0;
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
	ck_assert_msg(dt < PROMPT, "keep-alive client waited %.3fs", dt);
	return dt;
}

/* The descriptor the daemon keeps in reserve: its highest /dev/null. */
static int reserve_fd_of(pid_t pid)
{
	char dir[64], path[400], target[256];
	struct dirent *e;
	DIR *dp;
	int best = -1;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	ck_assert_ptr_nonnull(dp);
	for (e = readdir(dp); e; e = readdir(dp)) {
		ssize_t n;
		int fd = (int)strtol(e->d_name, NULL, 10);

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0 || fd <= 2)
			continue;
		target[n] = '\0';
		if (strcmp(target, "/dev/null") == 0 && fd > best)
			best = fd;
	}
	closedir(dp);
	return best;
}

static void set_nofile(pid_t pid, long soft)
{
	struct rlimit rl;

	ck_assert_int_eq(prlimit(pid, RLIMIT_NOFILE, NULL, &rl), 0);
	rl.rlim_cur = (rlim_t)soft;
	ck_assert_msg(prlimit(pid, RLIMIT_NOFILE, &rl, NULL) == 0,
		      "prlimit: %s", strerror(errno));
}

/* CPU share of the daemon over `secs` seconds, in percent. */
static double cpu_share(double secs)
{
	double c0 = cpu_s(d.pid), t0 = now_s();

	usleep((useconds_t)(secs * 1e6));
	return 100.0 * (cpu_s(d.pid) - c0) / (now_s() - t0);
}

START_TEST(test_out_of_descriptors)
{
	static int fds[1000];
	static char st[1000];
	const long limit = 256;
	int n = 1000, ka, rfd, extra[20], held_h2 = 0, warnings;
	char *log;
	double cpu1, cpu2, lat1, lat2;
	struct fates f1, f2;
	char st_extra[20];
	long rss0, rss1;

	/* Our side holds the whole flood. */
	if (raise_nofile() - 100 < n)
		n = (int)(raise_nofile() - 100) / 50 * 50;
	ck_assert_msg(n > 2 * limit, "RLIMIT_NOFILE too low for %d", n);
	/* The held connections stay until we close them. */
	start_with_nofile(limit, "header_timeout = 60\nidle_timeout = 60\n");
	ka = th_connect(d.port);
	ck_assert_int_ge(ka, 0);
	keepalive_get(ka);
	rss0 = th_rss_kb(d.pid);

	/* By turns 50 that say nothing and 50 that send only the h2
	 * preface: the daemon takes what its descriptors allow and sheds the
	 * rest with a 503. */
	for (int i = 0; i < n; i += 50)
		open_flood(d.port, fds + i, 50, i % 100 ? H2_PREFACE : NULL, 0);
	memset(st, 0, sizeof(st));
	f1 = settle(fds, n, st, (int)limit, 5.0);
	ck_assert_msg(f1.open > 0 && f1.open < limit &&
			  f1.got503 + f1.open == n,
		      "open %d silent %d 503 %d other %d", f1.open, f1.silent,
		      f1.got503, f1.other);
	for (int i = 0; i < n; i++)
		held_h2 += st[i] == 'x'; /* open, and heard SETTINGS */
	/* Out of descriptors is not a busy loop. */
	cpu1 = cpu_share(3.0);
	ck_assert_msg(cpu1 < 20.0, "the daemon used %.0f%% CPU at EMFILE",
		      cpu1);
	/* A client already connected is served; a new one hears 503. */
	lat1 = keepalive_get(ka);
	ck_assert_int_eq(open_flood(d.port, extra, 5, NULL, 0), 5);
	memset(st_extra, 0, sizeof(st_extra));
	f2 = settle(extra, 5, st_extra, 0, 5.0);
	ck_assert_int_eq(f2.got503, 5);
	close_all(extra, 5);
	rss1 = th_rss_kb(d.pid);
	/* What the held connections cost, no more (see the idle flood). */
	ck_assert_msg(rss1 - rss0 < f1.open * 36L, "RSS grew by %ld KiB",
		      rss1 - rss0);

	/* Even without its spare descriptor (a limit lowered under it, or
	 * another thread taking its number) the daemon must not spin. */
	rfd = reserve_fd_of(d.pid);
	ck_assert_int_gt(rfd, 2);
	set_nofile(d.pid, rfd);
	open_flood(d.port, extra, 20, NULL, 0);
	usleep(300000);
	cpu2 = cpu_share(3.0);
	ck_assert_msg(cpu2 < 20.0,
		      "the daemon used %.0f%% CPU at EMFILE without its spare "
		      "descriptor",
		      cpu2);
	close_all(extra, 20);

	/* Descriptors come back: the daemon serves new clients again, and
	 * sheds with 503 again when they run out (its spare is back). */
	set_nofile(d.pid, limit);
	close_all(fds, n);
	ck_assert_int_eq(wait_conns(1, 10.0), 1); /* the keep-alive one */
	lat2 = normal_get(TH_H1);
	normal_get(TH_H2C);
	open_flood(d.port, fds, n, NULL, 0);
	memset(st, 0, sizeof(st));
	f2 = settle(fds, n, st, (int)limit, 5.0);
	ck_assert_msg(f2.open > 0 && f2.open < limit &&
			  f2.got503 + f2.open == n,
		      "open %d silent %d 503 %d other %d", f2.open, f2.silent,
		      f2.got503, f2.other);
	close_all(fds, n);
	keepalive_get(ka);
	close(ka);
	/* Said in the log, but not once per client turned away. */
	log = th_read_file(d.log);
	ck_assert_ptr_nonnull(log);
	warnings = th_count(log, "Too many open files");
	free(log);
	ck_assert_msg(warnings >= 1 && warnings <= 3,
		      "%d EMFILE warnings for %d clients turned away", warnings,
		      f1.got503 + f2.got503);
	fprintf(stderr,
		"abuse: out of descriptors (RLIMIT_NOFILE %ld): %d held (%d "
		"h2c), %d shed with 503; daemon CPU %.1f%% over 3 s (%.1f%% "
		"with its "
		"spare fd %d lost); keep-alive client served in %.1f ms; new "
		"clients served again (%.1f ms) once connections closed; %d "
		"log warning(s); RSS %ld -> %ld KiB\n",
		limit, f1.open, held_h2, f1.got503, cpu1, cpu2, rfd, lat1 * 1e3,
		lat2 * 1e3, warnings, rss0, rss1);
}
END_TEST

/* ---- slowloris -------------------------------------------------------- */

START_TEST(test_slowloris)
{
	static int fds[500];
	static const char head[] =
	    "POST /v1/events HTTP/1.1\r\nHost: a\r\nX-Slow: ";
	int n = 500;
	long rss0, rss1 = 0, rss2;
	double worst = 0, t0, t408;
	int got408 = 0, eofs = 0;
	char *seen;

	if (raise_nofile() - 100 < n)
		n = (int)raise_nofile() - 100;
	start("header_timeout = 3\n", NULL);
	rss0 = th_rss_kb(d.pid);
	ck_assert_int_eq(open_flood(d.port, fds, n, head, 1), n);
	t0 = now_s();
	ck_assert_int_eq(wait_conns(n, 5.0), n);
	seen = calloc(n, 1);
	ck_assert_ptr_nonnull(seen);
	/* A header byte a second on each; a normal client each second. */
	while (eofs < n && now_s() - t0 < 10.0) {
		double lat;

		for (int i = 0; i < n; i++) {
			char buf[512];
			int eof;

			if (seen[i])
				continue;
			send(fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			peek_peer(fds[i], buf, sizeof(buf), &eof);
			if (strncmp(buf, "HTTP/1.1 408 ", 13) == 0 &&
			    strstr(buf, "request_timeout"))
				got408++;
			if (eof) {
				seen[i] = 1;
				eofs++;
			}
		}
		if (eofs == 0 && th_rss_kb(d.pid) > rss1)
			rss1 = th_rss_kb(d.pid); /* all held */
		lat = normal_get(TH_H1);
		if (lat > worst)
			worst = lat;
		usleep(1000000);
	}
	t408 = now_s() - t0;
	free(seen);
	ck_assert_msg(got408 == n && eofs == n, "%d of %d got 408, %d closed",
		      got408, n, eofs);
	/* Closed at the header timeout, not later. */
	ck_assert_msg(t408 < 3.0 + 3.0, "took %.1fs", t408);
	close_all(fds, n);
	ck_assert_int_eq(wait_conns(0, 5.0), 0);
	rss2 = th_rss_kb(d.pid);
	fprintf(stderr,
		"abuse: slowloris: %d connections got 408 and were closed "
		"within %.1fs (header_timeout 3); normal client worst %.1f ms; "
		"RSS %ld -> %ld -> %ld KiB\n",
		n, t408, worst * 1e3, rss0, rss1, rss2);
	ck_assert_msg(rss1 - rss0 < n * 8L, "RSS grew by %ld KiB", rss1 - rss0);
}
END_TEST

/* ---- huge request heads ----------------------------------------------- */

/*
 * Send prefix, then fill bytes of `c`, then suffix, without blocking on a
 * peer that stopped reading; stop early when the peer answers or closes.
 * Returns the bytes sent; the answer's first bytes go to ans.
 */
static size_t send_huge(int fd, const char *prefix, size_t fill, char c,
			const char *suffix, char *ans, size_t cap, int *eof)
{
	size_t plen = strlen(prefix), slen = strlen(suffix);
	size_t total = plen + fill + slen, sent = 0, got = 0;
	double end = now_s() + 20.0;
	char chunk[16384];

	memset(chunk, c, sizeof(chunk));
	ans[0] = '\0';
	*eof = 0;
	while (sent < total && now_s() < end) {
		struct pollfd p = {fd, POLLIN | POLLOUT, 0};
		const char *src;
		size_t len;
		ssize_t n;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			got = peek_peer(fd, ans, cap, eof);
			if (got || *eof)
				break;
		}
		if (!(p.revents & POLLOUT))
			continue;
		if (sent < plen) {
			src = prefix + sent;
			len = plen - sent;
		} else if (sent < plen + fill) {
			src = chunk;
			len = plen + fill - sent;
			if (len > sizeof(chunk))
				len = sizeof(chunk);
		} else {
			src = suffix + (sent - plen - fill);
			len = total - sent;
		}
		n = send(fd, src, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break; /* reset: the answer may still be readable */
		}
		sent += (size_t)n;
	}
	if (!got) {
		size_t n = th_recv_all(fd, ans, cap, 3.0, eof);

		(void)n;
	} else if (!*eof) {
		char rest[4096];
		size_t more = th_recv_all(fd, rest, sizeof(rest), 3.0, eof);

		(void)more;
	}
	return sent;
}

/* Build n small header lines "X-Hn: v\r\n" into a malloc'd string. */
static char *many_headers(int n)
{
	char *s = malloc((size_t)n * 24 + 1);
	size_t o = 0;

	ck_assert_ptr_nonnull(s);
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, 24, "X-H%d: v\r\n", i);
	s[o] = '\0';
	return s;
}

START_TEST(test_huge_heads_http1)
{
	char ans[4096], *lots, *big;
	int fd, eof, hold;
	long rss0, rss1;
	double lat;

	start(NULL, NULL); /* max_header_bytes 16k, max_headers 100 */
	rss0 = th_rss_kb(d.pid);

	/* An abuser holds a request head half sent; others are served. */
	hold = th_connect(d.port);
	ck_assert_int_ge(hold, 0);
	ck_assert_int_eq(th_send(hold, "GET /healthz HTTP/1.1\r\nX-Big: ", 30),
			 0);
	lat = normal_get(TH_H1);

	/* A header of 1 MiB: the first 64 KiB of it get the 431 and the
	 * close; the daemon does not wait for the rest. */
	big = malloc(64 * 1024);
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', 64 * 1024);
	ck_assert_int_eq(th_send(hold, big, 64 * 1024), 0);
	free(big);
	th_recv_all(hold, ans, sizeof(ans), 3.0, &eof);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 431 ", 13) == 0, "%s", ans);
	ck_assert_ptr_nonnull(strstr(ans, "headers_too_large"));
	ck_assert_int_eq(eof, 1);
	close(hold);

	/* 10,000 small headers: 431 at max_headers. */
	fd = th_connect(d.port);
	lots = many_headers(10000);
	send_huge(fd, "GET /healthz HTTP/1.1\r\nHost: a\r\n", 0, 'x', lots, ans,
		  sizeof(ans), &eof);
	free(lots);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 431 ", 13) == 0, "%s", ans);
	ck_assert_int_eq(eof, 1);
	close(fd);

	/* A 100 KB request-target: 414. */
	fd = th_connect(d.port);
	send_huge(fd, "GET /", 100 * 1024, 'u', " HTTP/1.1\r\nHost: a\r\n\r\n",
		  ans, sizeof(ans), &eof);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 414 ", 13) == 0, "%s", ans);
	ck_assert_ptr_nonnull(strstr(ans, "uri_too_long"));
	ck_assert_int_eq(eof, 1);
	close(fd);

	/* None of them is held: the daemon lets go within the linger. */
	ck_assert_int_eq(wait_conns(0, 5.0), 0);
	rss1 = th_rss_kb(d.pid);
	normal_get(TH_H1);
	fprintf(stderr,
		"abuse: huge heads over HTTP/1.1: 431, 431, 414; normal client "
		"%.1f ms; RSS %ld -> %ld KiB\n",
		lat * 1e3, rss0, rss1);
	ck_assert_msg(rss1 - rss0 < 4096, "RSS grew by %ld KiB", rss1 - rss0);
}
END_TEST

/* -- raw HTTP/2 frames -- */

static size_t h2_frame(uint8_t *out, uint8_t type, uint8_t flags,
		       uint32_t stream, const void *payload, size_t len)
{
	out[0] = (uint8_t)(len >> 16);
	out[1] = (uint8_t)(len >> 8);
	out[2] = (uint8_t)len;
	out[3] = type;
	out[4] = flags;
	out[5] = (uint8_t)(stream >> 24);
	out[6] = (uint8_t)(stream >> 16);
	out[7] = (uint8_t)(stream >> 8);
	out[8] = (uint8_t)stream;
	if (len)
		memcpy(out + 9, payload, len);
	return 9 + len;
}

/* HPACK integer with a 7-bit prefix (H bit clear). */
static size_t hpack_int(uint8_t *out, size_t v)
{
	size_t o = 0;

	if (v < 127) {
		out[o++] = (uint8_t)v;
		return o;
	}
	out[o++] = 127;
	v -= 127;
	while (v >= 128) {
		out[o++] = (uint8_t)(v % 128 + 128);
		v /= 128;
	}
	out[o++] = (uint8_t)v;
	return o;
}

/* A literal field without indexing, new name; value of vlen bytes of c
 * when value is NULL. */
static size_t hpack_lit(uint8_t *out, const char *name, const char *value,
			size_t vlen, char c)
{
	size_t o = 0, nlen = strlen(name);

	out[o++] = 0x00;
	o += hpack_int(out + o, nlen);
	memcpy(out + o, name, nlen);
	o += nlen;
	if (value)
		vlen = strlen(value);
	o += hpack_int(out + o, vlen);
	if (value)
		memcpy(out + o, value, vlen);
	else
		memset(out + o, c, vlen);
	return o + vlen;
}

/* Connect and send the client preface (magic + empty SETTINGS). */
static int h2_open(void)
{
	uint8_t buf[64];
	size_t n = sizeof(H2_PREFACE) - 1;
	int fd = th_connect(d.port);

	ck_assert_int_ge(fd, 0);
	memcpy(buf, H2_PREFACE, n);
	n += h2_frame(buf + n, 0x4, 0, 0, NULL, 0);
	ck_assert_int_eq(th_send(fd, buf, n), 0);
	return fd;
}

/*
 * Send the part [off, upto) of a header block for stream 1 as frames of
 * at most 16 KiB: HEADERS at offset 0, CONTINUATION after; END_HEADERS on
 * the frame that ends the block. Stops quietly when the peer has closed.
 * Returns the new offset.
 */
static size_t h2_send_block(int fd, const uint8_t *block, size_t len,
			    size_t off, size_t upto, int end_stream)
{
	uint8_t frame[9 + 16384];

	do {
		size_t n = upto - off > 16384 ? 16384 : upto - off;
		uint8_t flags = (uint8_t)((off + n == len ? 0x4 : 0) |
					  (off == 0 && end_stream ? 0x1 : 0));
		size_t fl = h2_frame(frame, off == 0 ? 0x1 : 0x9, flags, 1,
				     block + off, n);

		if (th_send(fd, frame, fl))
			break;
		off += n;
	} while (off < upto);
	return off;
}

/* What an HTTP/2 server said: the first :status and any GOAWAY code. */
struct h2_said {
	int status;
	long goaway; /* -1: none */
	int eof;
};

/* Decode a whole header block; returns its :status, or 0. */
static int block_status(nghttp2_hd_inflater *inf, const uint8_t *in,
			size_t left)
{
	int status = 0;

	while (left) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t used =
		    nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, left, 1);

		ck_assert_int_ge(used, 0);
		in += used;
		left -= (size_t)used;
		if ((flags & NGHTTP2_HD_INFLATE_EMIT) && nv.namelen == 7 &&
		    memcmp(nv.name, ":status", 7) == 0)
			status = (int)strtol((const char *)nv.value, NULL, 10);
		if (flags & NGHTTP2_HD_INFLATE_FINAL)
			break;
	}
	nghttp2_hd_inflate_end_headers(inf);
	return status;
}

/* Read frames until the peer closes or `timeout` s pass. */
static struct h2_said h2_read(int fd, double timeout)
{
	struct h2_said r = {0, -1, 0};
	nghttp2_hd_inflater *inf;
	uint8_t *buf = malloc(MIB), *block = malloc(MIB);
	size_t len = 0, blen = 0;
	double end = now_s() + timeout;

	ck_assert(buf && block);
	ck_assert_int_eq(nghttp2_hd_inflate_new(&inf), 0);
	while (now_s() < end && !r.eof) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf + len, (size_t)MIB - len, 0);
		if (n <= 0) {
			r.eof = 1;
			break;
		}
		len += (size_t)n;
		/* Whole frames: GOAWAY's code, the header blocks' :status. */
		while (len >= 9) {
			size_t fl =
			    (size_t)buf[0] << 16 | (size_t)buf[1] << 8 | buf[2];
			uint8_t type = buf[3], flags = buf[4];
			const uint8_t *pl = buf + 9;
			size_t skip = 0, pad = 0;

			if (len < 9 + fl)
				break;
			if (type == 0x7 && fl >= 8)
				r.goaway = (long)((uint32_t)pl[4] << 24 |
						  (uint32_t)pl[5] << 16 |
						  (uint32_t)pl[6] << 8 | pl[7]);
			if (type == 0x1 && (flags & 0x8))
				pad = pl[skip++];
			if (type == 0x1 && (flags & 0x20))
				skip += 5;
			if (type == 0x1 || type == 0x9) {
				memcpy(block + blen, pl + skip,
				       fl - skip - pad);
				blen += fl - skip - pad;
			}
			if ((type == 0x1 || type == 0x9) && (flags & 0x4)) {
				int st = block_status(inf, block, blen);

				if (!r.status)
					r.status = st;
				blen = 0;
			}
			memmove(buf, buf + 9 + fl, len - 9 - fl);
			len -= 9 + fl;
		}
	}
	nghttp2_hd_inflate_del(inf);
	free(buf);
	free(block);
	return r;
}

/* The request pseudo-headers into a header block. */
static size_t h2_req_head(uint8_t *out, const char *method, const char *path)
{
	size_t o = 0;

	o += hpack_lit(out + o, ":method", method, 0, 0);
	o += hpack_lit(out + o, ":scheme", "http", 0, 0);
	o += hpack_lit(out + o, ":authority", "a", 0, 0);
	o += hpack_lit(out + o, ":path", path, 0, 0);
	return o;
}

START_TEST(test_huge_heads_http2)
{
	const size_t path_len = 30 * 1024;
	uint8_t *block = malloc(2 * MIB);
	const char *many[210];
	char names[200][16];
	struct h2_said big, lots, cont, r;
	struct th_resp resp;
	size_t o, off;
	int fd;
	long rss0, rss1;
	double lat;

	ck_assert_ptr_nonnull(block);
	start(NULL, NULL); /* max_header_bytes 16k, max_headers 100 */
	rss0 = th_rss_kb(d.pid);

	/* Just over the limits: 431 on the stream, the connection lives.
	 * (check_daemon has a 431 for one big field.) */
	for (int i = 0; i < 200; i++) {
		snprintf(names[i], sizeof(names[i]), "X-H%d: v", i);
		many[i] = names[i];
	}
	many[200] = NULL;
	ck_assert_int_eq(
	    th_request(&d, TH_H2C, "GET", "/healthz", NULL, many, &resp), 0);
	ck_assert_int_eq(resp.status, 431);
	th_resp_free(&resp);

	/* A 30 KB :path (over max_header_bytes): 414 as over HTTP/1.1. */
	fd = h2_open();
	o = hpack_lit(block, ":method", "GET", 0, 0);
	o += hpack_lit(block + o, ":scheme", "http", 0, 0);
	o += hpack_lit(block + o, ":authority", "a", 0, 0);
	o += hpack_lit(block + o, ":path", NULL, path_len, 'u');
	block[o - path_len] = '/';
	h2_send_block(fd, block, o, 0, o, 1);
	r = h2_read(fd, 1.0);
	ck_assert_msg(r.status == 414, "status %d goaway %ld", r.status,
		      r.goaway);
	close(fd);

	/* One header of 1 MiB (HEADERS + 64 CONTINUATION), held after its
	 * first frame while others are served: past what nghttp2 decodes,
	 * GOAWAY and closed. */
	fd = h2_open();
	o = h2_req_head(block, "GET", "/healthz");
	o += hpack_lit(block + o, "x-big", NULL, (size_t)MIB, 'a');
	off = h2_send_block(fd, block, o, 0, 16384, 1);
	lat = normal_get(TH_H2C);
	h2_send_block(fd, block, o, off, o, 1);
	big = h2_read(fd, 5.0);
	ck_assert_msg(big.goaway > 0 && big.eof && big.status == 0,
		      "status %d goaway %ld eof %d", big.status, big.goaway,
		      big.eof);
	close(fd);

	/* 10,000 small headers: cut off as a header flood
	 * (ENHANCE_YOUR_CALM). */
	fd = h2_open();
	o = h2_req_head(block, "GET", "/healthz");
	for (int i = 0; i < 10000; i++) {
		char name[16];

		snprintf(name, sizeof(name), "x-h%d", i);
		o += hpack_lit(block + o, name, "v", 0, 0);
	}
	h2_send_block(fd, block, o, 0, o, 1);
	lots = h2_read(fd, 5.0);
	ck_assert_msg(lots.goaway == 0xb && lots.eof && lots.status == 0,
		      "status %d goaway %ld eof %d", lots.status, lots.goaway,
		      lots.eof);
	close(fd);

	/* A CONTINUATION flood: a HEADERS frame that never ends, followed
	 * by empty CONTINUATION frames. */
	fd = h2_open();
	{
		uint8_t frames[9 * 1024 + 64];
		size_t n;

		o = h2_req_head(block, "GET", "/healthz");
		n = h2_frame(frames, 0x1, 0x1, 1, block, o);
		th_send(fd, frames, n);
		for (int k = 0; k < 1024; k++)
			h2_frame(frames + 9 * (size_t)k, 0x9, 0, 1, NULL, 0);
		for (int i = 0; i < 100; i++)
			if (th_send(fd, frames, 9 * 1024))
				break;
	}
	cont = h2_read(fd, 5.0);
	ck_assert_msg(cont.goaway > 0 && cont.eof && cont.status == 0,
		      "status %d goaway %ld eof %d", cont.status, cont.goaway,
		      cont.eof);
	close(fd);

	/* Not held: every abuser is gone. */
	ck_assert_int_eq(wait_conns(0, 5.0), 0);
	normal_get(TH_H2C);
	rss1 = th_rss_kb(d.pid);
	free(block);
	fprintf(stderr,
		"abuse: huge heads over HTTP/2: 431 (200 headers), 414 (30 KB "
		":path), GOAWAY 0x%lx (1 MiB field), 0x%lx (10,000 fields), "
		"0x%lx (CONTINUATION flood), all closed; normal client %.1f "
		"ms; RSS %ld -> %ld KiB\n",
		big.goaway, lots.goaway, cont.goaway, lat * 1e3, rss0, rss1);
	ck_assert_msg(rss1 - rss0 < 8192, "RSS grew by %ld KiB", rss1 - rss0);
}
END_TEST

/* ---- deep JSON and megabyte strings ----------------------------------- */

static char ingest_key[128];

static void start_with_key(const char *extra_server, const char *extra)
{
	start(extra_server, extra);
	ck_assert_int_eq(
	    th_make_key(&d, "chat", "ingest", ingest_key, sizeof(ingest_key)),
	    0);
}

/* POST /v1/events with the ingest key; returns the parsed answer. */
static json_t *post_event(enum th_mode mode, const char *body, long *status)
{
	char auth[200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	json_t *doc;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ingest_key);
	ck_assert_int_eq(
	    th_request(&d, mode, "POST", "/v1/events", body, hdrs, &r), 0);
	*status = r.status;
	doc = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return doc;
}

static const char *err_str(json_t *doc, const char *what)
{
	return json_string_value(
	    json_object_get(json_object_get(doc, "error"), what));
}

/* A 400 invalid_json for nesting, naming the field (and index) when
 * expected (field NULL: none). */
static void expect_too_deep(const char *body, const char *field, long index)
{
	long st;
	json_t *doc = post_event(TH_H1, body, &st), *e;

	e = json_object_get(doc, "error");
	ck_assert_int_eq(st, 400);
	ck_assert_str_eq(err_str(doc, "code"), "invalid_json");
	ck_assert_msg(strstr(err_str(doc, "message"), "nested deeper than 32"),
		      "%s", err_str(doc, "message"));
	if (field)
		ck_assert_msg(err_str(doc, "field") &&
				  strcmp(err_str(doc, "field"), field) == 0,
			      "field %s", err_str(doc, "field"));
	else
		ck_assert_ptr_null(json_object_get(e, "field"));
	if (index >= 0)
		ck_assert_int_eq(
		    json_integer_value(json_object_get(e, "index")), index);
	else
		ck_assert_ptr_null(json_object_get(e, "index"));
	json_decref(doc);
}

/* {"id":..,"user":..,"payload":<n '['>[<inner>]<n ']' if closed>} */
static size_t deep_event(char *out, const char *id, size_t n, int closed,
			 const char *inner)
{
	size_t o = (size_t)snprintf(out, 64,
				    "{\"id\":\"%s\",\"user\":\"u\","
				    "\"payload\":",
				    id);

	memset(out + o, '[', n);
	o += n;
	o += (size_t)snprintf(out + o, 16, "%s", inner);
	if (closed) {
		memset(out + o, ']', n);
		o += n;
		out[o++] = '}';
	}
	out[o] = '\0';
	return o;
}

START_TEST(test_deep_json)
{
	const size_t depth = 100000;
	char *body = malloc(depth * 2 + 256), *ev;
	long st, rss0, rss1;
	double lat;
	json_t *doc;
	size_t o;

	ck_assert_ptr_nonnull(body);
	start_with_key(NULL, NULL);
	rss0 = th_rss_kb(d.pid);
	/* 100,000 '[' in the payload, closed and not, both protocols: the
	 * field is named, nothing recursed 100,000 deep (ASan would say). */
	for (int closed = 0; closed < 2; closed++) {
		deep_event(body, "deep", depth, closed, "");
		expect_too_deep(body, "payload", -1);
		doc = post_event(TH_H2C, body, &st);
		ck_assert_int_eq(st, 400);
		ck_assert_str_eq(err_str(doc, "field"), "payload");
		json_decref(doc);
	}
	/* One more, held half sent while others are served. */
	{
		char head[512], ans[4096];
		int fd = th_connect(d.port);
		size_t len = strlen(body);

		ck_assert_int_ge(fd, 0);
		snprintf(head, sizeof(head),
			 "POST /v1/events HTTP/1.1\r\nHost: a\r\n"
			 "Authorization: Bearer %s\r\nContent-Type: "
			 "application/json\r\nContent-Length: %zu\r\n\r\n",
			 ingest_key, len);
		ck_assert_int_eq(th_send(fd, head, strlen(head)), 0);
		ck_assert_int_eq(th_send(fd, body, len / 2), 0);
		lat = normal_get(TH_H1);
		ck_assert_int_eq(th_send(fd, body + len / 2, len - len / 2), 0);
		th_recv_until(fd, ans, sizeof(ans), "}}", 5.0);
		ck_assert_msg(strncmp(ans, "HTTP/1.1 400 ", 13) == 0 &&
				  strstr(ans, "\"field\":\"payload\""),
			      "%s", ans);
		close(fd);
	}
	/* In the second event of a batch: the field and the index. */
	o = (size_t)snprintf(body, 128,
			     "{\"events\":[{\"id\":\"a\",\"user\":\"u\","
			     "\"payload\":\"[[[[\"},");
	o += deep_event(body + o, "b", depth, 1, "");
	snprintf(body + o, 8, "]}");
	expect_too_deep(body, "events", 1);
	/* The whole body an array, 100,000 deep: no field to name. */
	memset(body, '[', depth);
	memset(body + depth, ']', depth);
	body[2 * depth] = '\0';
	expect_too_deep(body, NULL, -1);
	/* 31 arrays and a number: 33 levels with the scalar, found after
	 * parsing. */
	ev = body;
	deep_event(ev, "d33", 31, 1, "1");
	expect_too_deep(ev, "payload", -1);
	/* 30 and a number is 32: accepted. */
	deep_event(ev, "d32", 30, 1, "1");
	json_decref(post_event(TH_H1, ev, &st));
	ck_assert_int_eq(st, 202);
	/* In a batch, with the 33rd level a scalar (found after parsing):
	 * still the field and the index. */
	o = (size_t)snprintf(body, 128,
			     "{\"events\":[{\"id\":\"a\",\"user\":\"u\"},");
	o += deep_event(body + o, "b33", 29, 1, "1");
	snprintf(body + o, 8, "]}");
	expect_too_deep(body, "events", 1);
	/* Brackets after the top-level object are malformed JSON, not
	 * nesting in its last member. */
	o = (size_t)snprintf(body, 64, "{\"a\":1}");
	memset(body + o, '[', 40);
	body[o + 40] = '\0';
	doc = post_event(TH_H1, body, &st);
	ck_assert_int_eq(st, 400);
	ck_assert_msg(!strstr(err_str(doc, "message"), "nested"), "%s",
		      err_str(doc, "message"));
	json_decref(doc);
	free(body);

	ck_assert(th_alive(d.pid));
	normal_get(TH_H1);
	rss1 = th_rss_kb(d.pid);
	fprintf(stderr,
		"abuse: deep JSON: 400 invalid_json naming the field "
		"(\"payload\"; \"events\" index 1 in a batch) for 100,000 "
		"'[', closed or not, h1 and h2c; 33 levels refused, 32 taken; "
		"normal client %.1f ms; RSS %ld -> %ld KiB\n",
		lat * 1e3, rss0, rss1);
	ck_assert_msg(rss1 - rss0 < 8192, "RSS grew by %ld KiB", rss1 - rss0);
}
END_TEST

START_TEST(test_megabyte_strings)
{
	static const char *const fields[] = {"id", "user", "payload"};
	char *body = malloc(17 * MIB), ans[4096];
	long st, rss0, rss1, rss2;
	double lat;
	json_t *doc;
	int fd, eof;

	ck_assert_ptr_nonnull(body);
	/* Bodies up to 2 MiB are read, so a 1 MiB string reaches the
	 * validation; 16 MiB does not. */
	start_with_key("max_body_bytes = 2m\n", NULL);
	rss0 = th_rss_kb(d.pid);

	/* 1 MiB strings: the field is named. */
	for (size_t i = 0; i < 3; i++) {
		size_t o = 0;

		for (size_t k = 0; k < 3; k++) {
			o += (size_t)snprintf(body + o, 32, "%s\"%s\":\"",
					      k ? "," : "{", fields[k]);
			if (k == i) {
				memset(body + o, 'x', (size_t)MIB);
				o += (size_t)MIB;
			} else {
				body[o++] = 'v';
			}
			body[o++] = '"';
		}
		snprintf(body + o, 8, "}");
		for (int m = 0; m < 2; m++) {
			doc = post_event(m ? TH_H2C : TH_H1, body, &st);
			ck_assert_msg(doc != NULL, "%s: no JSON", fields[i]);
			ck_assert_msg(st == (i == 2 ? 413 : 400),
				      "%s: status %ld", fields[i], st);
			ck_assert_str_eq(err_str(doc, "code"),
					 i == 2 ? "payload_too_large"
						: "invalid_event");
			ck_assert_str_eq(err_str(doc, "field"), fields[i]);
			json_decref(doc);
		}
	}
	rss1 = th_rss_kb(d.pid);

	/* 16 MiB with its length declared: 413 before any of it is read. */
	fd = th_connect(d.port);
	snprintf(ans, sizeof(ans),
		 "POST /v1/events HTTP/1.1\r\nHost: a\r\nAuthorization: "
		 "Bearer %s\r\nContent-Type: application/json\r\n"
		 "Content-Length: %ld\r\n\r\n",
		 ingest_key, 16 * MIB);
	ck_assert_int_eq(th_send(fd, ans, strlen(ans)), 0);
	th_recv_all(fd, ans, sizeof(ans), 2.0, &eof);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 413 ", 13) == 0, "%s", ans);
	ck_assert_int_eq(eof, 1);
	close(fd);
	/* And over h2c (curl declares the length too). */
	memset(body, 'x', 16 * MIB);
	body[16 * MIB] = '\0';
	doc = post_event(TH_H2C, body, &st);
	ck_assert_int_eq(st, 413);
	json_decref(doc);

	/* 16 MiB chunked: the length is unknown, the limit still holds;
	 * meanwhile (the upload held at 1 MiB) others are served. */
	fd = th_connect(d.port);
	snprintf(ans, sizeof(ans),
		 "POST /v1/events HTTP/1.1\r\nHost: a\r\nAuthorization: "
		 "Bearer %s\r\nContent-Type: application/json\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n%lx\r\n",
		 ingest_key, 16 * MIB);
	ck_assert_int_eq(th_send(fd, ans, strlen(ans)), 0);
	ck_assert_int_eq(th_send(fd, body, (size_t)MIB), 0);
	lat = normal_get(TH_H1);
	/* Past max_body_bytes (2 MiB of the 16): 413, closed. */
	ck_assert_int_eq(th_send(fd, body, (size_t)(3 * MIB / 2)), 0);
	th_recv_all(fd, ans, sizeof(ans), 3.0, &eof);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 413 ", 13) == 0, "%s", ans);
	ck_assert_int_eq(eof, 1);
	close(fd);
	free(body);

	ck_assert_int_eq(wait_conns(0, 5.0), 0);
	rss2 = th_rss_kb(d.pid);
	normal_get(TH_H2C);
	fprintf(stderr,
		"abuse: megabyte strings: 400 id, 400 user, 413 payload, 413 "
		"for 16 MiB (declared, or chunked and cut at max_body_bytes); "
		"normal client %.1f ms; RSS %ld -> %ld -> %ld KiB\n",
		lat * 1e3, rss0, rss1, rss2);
	/* A request may hold max_body_bytes and its parsed copy, never the
	 * 16 MiB. */
	ck_assert_msg(rss2 - rss0 < 12 * 1024, "RSS grew by %ld KiB",
		      rss2 - rss0);
}
END_TEST

/* ---- floods of bad API keys ------------------------------------------- */

static void random_key(char *out)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789-_";

	memcpy(out, "prk_", 4);
	for (int i = 0; i < 43; i++)
		out[4 + i] = b64[rand() % 64];
	out[47] = '\0';
}

/* Parse whole HTTP/1.1 answers in buf; returns the bytes consumed. */
static size_t h1_answers(const char *buf, size_t len, int *n401, int *other)
{
	size_t off = 0;

	while (off < len) {
		const char *p = buf + off, *end, *cl;
		size_t head, body;

		end = memmem(p, len - off, "\r\n\r\n", 4);
		if (!end)
			break;
		head = (size_t)(end - p) + 4;
		cl = memmem(p, head, "Content-Length: ", 16);
		body = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
		if (off + head + body > len)
			break;
		if (strncmp(p, "HTTP/1.1 401 ", 13) == 0)
			(*n401)++;
		else
			(*other)++;
		off += head + body;
	}
	return off;
}

/* n requests with wrong keys, pipelined 50 at a time on one connection. */
static int flood_h1(int port, int n, int *n401)
{
	static char out[50 * 400], in[1 << 16];
	int fd = th_connect(port), other = 0, done = 0;
	size_t have = 0;

	if (fd < 0)
		return -1;
	while (done < n) {
		int batch = n - done < 50 ? n - done : 50, want;
		size_t o = 0;

		for (int i = 0; i < batch; i++) {
			char key[48];

			random_key(key);
			o += (size_t)snprintf(
			    out + o, sizeof(out) - o,
			    "POST /v1/events HTTP/1.1\r\nHost: a\r\n"
			    "Authorization: Bearer %s\r\nContent-Type: "
			    "application/json\r\nContent-Length: 2\r\n\r\n{}",
			    key);
		}
		if (th_send(fd, out, o))
			break;
		want = done + batch;
		while (*n401 + other < want) {
			ssize_t r = recv(fd, in + have, sizeof(in) - have, 0);
			size_t used;

			if (r <= 0)
				goto out;
			have += (size_t)r;
			used = h1_answers(in, have, n401, &other);
			memmove(in, in + used, have - used);
			have -= used;
		}
		done = want;
	}
out:
	close(fd);
	return other;
}

struct h2flood {
	int fd;
	int inflight, done, n401, other;
};

static ssize_t h2f_send(nghttp2_session *s, const uint8_t *data, size_t len,
			int flags, void *ud)
{
	struct h2flood *f = ud;

	return th_send(f->fd, data, len) ? NGHTTP2_ERR_CALLBACK_FAILURE
					 : (ssize_t)len;
}

static int h2f_header(nghttp2_session *s, const nghttp2_frame *frame,
		      const uint8_t *name, size_t namelen, const uint8_t *value,
		      size_t valuelen, uint8_t flags, void *ud)
{
	struct h2flood *f = ud;

	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		if (valuelen == 3 && memcmp(value, "401", 3) == 0)
			f->n401++;
		else
			f->other++;
	}
	return 0;
}

static int h2f_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct h2flood *f = ud;

	f->inflight--;
	f->done++;
	return 0;
}

/* n requests with wrong keys over one h2c connection, 100 at a time. */
static int flood_h2(int port, int n, int *n401)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session *s;
	struct h2flood f = {th_connect(port), 0, 0, 0, 0};
	int submitted = 0;

	if (f.fd < 0)
		return -1;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, h2f_send);
	nghttp2_session_callbacks_set_on_header_callback(cbs, h2f_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2f_close);
	nghttp2_session_client_new(&s, cbs, &f);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
	while (f.done < n) {
		uint8_t buf[16384];
		ssize_t r;

		while (submitted < n && f.inflight < 100) {
			char key[48], auth[64];
			nghttp2_nv nv[] = {
			    {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
			    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
			    {(uint8_t *)":authority", (uint8_t *)"a", 10, 1, 0},
			    {(uint8_t *)":path", (uint8_t *)"/v1/events", 5, 10,
			     0},
			    {(uint8_t *)"authorization", (uint8_t *)auth, 13, 0,
			     0},
			};

			random_key(key);
			snprintf(auth, sizeof(auth), "Bearer %s", key);
			nv[4].valuelen = strlen(auth);
			if (nghttp2_submit_request(s, NULL, nv, 5, NULL, NULL) <
			    0)
				goto out;
			submitted++;
			f.inflight++;
		}
		if (nghttp2_session_send(s))
			break;
		r = recv(f.fd, buf, sizeof(buf), 0);
		if (r <= 0 || nghttp2_session_mem_recv(s, buf, (size_t)r) < 0)
			break;
	}
out:
	nghttp2_session_del(s);
	close(f.fd);
	*n401 = f.n401;
	return f.other + (n - f.done);
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Run the flood: two keep-alive HTTP/1.1 and two h2c connections, each
 * in its own process, per_conn wrong keys each. */
static void flood_start(pid_t *kids, int per_conn)
{
	for (int k = 0; k < 4; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			int got = 0, other;

			srand((unsigned)getpid());
			other = k < 2 ? flood_h1(d.port, per_conn, &got)
				      : flood_h2(d.port, per_conn, &got);
			_exit(other == 0 && got == per_conn ? 0 : 1);
		}
	}
}

/* Has the flood finished? Checks each process's verdict when it has. */
static int flood_done(pid_t *kids, int block)
{
	int running = 0, st;

	for (int k = 0; k < 4; k++) {
		if (kids[k] <= 0)
			continue;
		if (waitpid(kids[k], &st, block ? 0 : WNOHANG) != kids[k]) {
			running++;
			continue;
		}
		kids[k] = 0;
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "flood connection %d saw something but 401", k);
	}
	return running == 0;
}

#define JOBS   "pushrelay_store_commit_latency_seconds_count"
#define QUEUED "pushrelay_events_ingested_total{status=\"queued\"}"
#define BAD_KEYS                                                               \
	"pushrelay_http_requests_total{route=\"/v1/events\",method="           \
	"\"POST\",status=\"401\"}"

/* Store jobs done so far, once the count has stopped moving (a commit's
 * follow-up, the dispatcher's claim, comes a moment later). */
static long settled_jobs(void)
{
	long a = metric(JOBS), b;

	for (int i = 0; i < 30; i++) {
		usleep(200000);
		b = metric(JOBS);
		if (b == a)
			break;
		a = b;
	}
	return a;
}

START_TEST(test_bad_key_flood)
{
	const int per_conn = 5000, n = per_conn * 4;
	char db[400], wal[420], body[128], auth[200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	long rss0, rss1, rss2, jobs0, jobs1, q0, q1, db0, db1, bad0, flood_jobs;
	int good = 0;
	double worst = 0, t0, secs, per_event;
	pid_t kids[4];

	start_with_key(NULL, NULL);
	snprintf(db, sizeof(db), "%s/pushrelay.db", d.dir);
	snprintf(wal, sizeof(wal), "%s/pushrelay.db-wal", d.dir);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ingest_key);

	/* What a valid event costs the store alone (its commit, the
	 * dispatcher's claim...). */
	jobs0 = metric(JOBS);
	for (int i = 0; i < 4; i++) {
		struct th_resp r;

		snprintf(body, sizeof(body),
			 "{\"id\":\"calib-%d\",\"user\":\"alice\"}", i);
		ck_assert_int_eq(
		    th_request(&d, TH_H1, "POST", "/v1/events", body, hdrs, &r),
		    0);
		ck_assert_int_eq(r.status, 202);
		th_resp_free(&r);
	}
	per_event = (double)(settled_jobs() - jobs0) / 4.0;

	/* The flood alone: all 401, no store work, the database as it was.
	 * (It also brings the allocator to its working size.) */
	jobs0 = settled_jobs();
	db0 = file_size(db) + file_size(wal);
	bad0 = metric(BAD_KEYS);
	t0 = now_s();
	flood_start(kids, per_conn);
	flood_done(kids, 1);
	secs = now_s() - t0;
	ck_assert_int_eq(metric(BAD_KEYS) - bad0, n);
	jobs1 = settled_jobs();
	db1 = file_size(db) + file_size(wal);
	/* A scrape may start a background queue count (one per 5 s at
	 * most); nothing else. */
	ck_assert_msg(jobs1 - jobs0 <= 2 + (long)(now_s() - t0) / 5,
		      "%ld store jobs for bad keys", jobs1 - jobs0);
	flood_jobs = jobs1 - jobs0;
	ck_assert_msg(db1 == db0, "the database grew from %ld to %ld", db0,
		      db1);

	/* Again, while a client with the right key is served. */
	rss0 = rss1 = th_rss_kb(d.pid);
	jobs0 = settled_jobs();
	t0 = now_s();
	q0 = metric(QUEUED);
	bad0 = metric(BAD_KEYS);
	flood_start(kids, per_conn);
	while (!flood_done(kids, 0)) {
		struct th_resp r;
		double t1 = now_s();

		snprintf(body, sizeof(body),
			 "{\"id\":\"good-%d\",\"user\":\"alice\"}", good);
		ck_assert_int_eq(th_request(&d, good % 2 ? TH_H2C : TH_H1,
					    "POST", "/v1/events", body, hdrs,
					    &r),
				 0);
		t1 = now_s() - t1;
		ck_assert_msg(r.status == 202, "valid key got %ld: %s",
			      r.status, r.body);
		th_resp_free(&r);
		if (t1 > worst)
			worst = t1;
		good++;
		if (th_rss_kb(d.pid) > rss1)
			rss1 = th_rss_kb(d.pid);
	}
	ck_assert_msg(good >= 3, "only %d valid requests during the flood",
		      good);
	ck_assert_msg(worst < PROMPT, "a valid request waited %.3fs", worst);
	usleep(300000);
	ck_assert_int_eq(metric(BAD_KEYS) - bad0, n);
	q1 = metric(QUEUED);
	ck_assert_int_eq(q1 - q0, good);
	jobs1 = settled_jobs();
	ck_assert_msg(jobs1 - jobs0 <= (long)(per_event * good + 0.5) + 2 +
					   (long)(now_s() - t0) / 5,
		      "%ld store jobs for %d valid events (%.1f each alone)",
		      jobs1 - jobs0, good, per_event);
	rss2 = th_rss_kb(d.pid);
	fprintf(stderr,
		"abuse: bad-key flood: %d x 401 in %.2fs (%.0f/s) over 2 "
		"HTTP/1.1 + 2 h2c connections, %ld store jobs (background "
		"counts), db+wal %ld bytes before and after; again with %d "
		"valid events 202 meanwhile "
		"(worst %.1f ms, %ld store jobs, %.1f per event alone); RSS "
		"%ld -> %ld -> %ld KiB\n",
		n, secs, n / secs, flood_jobs, db0, good, worst * 1e3,
		jobs1 - jobs0, per_event, rss0, rss1, rss2);
	/* Flat: a request's memory is given back (a KiB kept per request
	 * would be 20 MiB). */
	ck_assert_msg(
	    rss1 - rss0 < 4096 &&
		    rss2 -
			rss0<4096, "RSS grew from %ld to %ld KiB", rss0, rss1>
			    rss2
		? rss1
		: rss2);
}
END_TEST

int main(void)
{
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"idle", test_idle_flood},
	    {"descriptors", test_out_of_descriptors},
	    {"slowloris", test_slowloris},
	    {"heads_http1", test_huge_heads_http1},
	    {"heads_http2", test_huge_heads_http2},
	    {"deep_json", test_deep_json},
	    {"big_strings", test_megabyte_strings},
	    {"bad_keys", test_bad_key_flood},
	};
	Suite *s = suite_create("abuse");
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	SRunner *sr;
	int failed;

	/* A small quarantine: freed memory is reused soon, so RSS shows
	 * what the relay holds. Every error is still caught. */
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4",
		 asan ? asan : "", asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* One case each, so CK_RUN_CASE=idle runs one. */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_checked_fixture(tc, NULL, teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
