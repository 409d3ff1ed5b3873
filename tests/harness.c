/*
 * harness.c - see harness.h. Everything here talks to loopback only.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int th_tmpdir(char *out, size_t outlen)
{
	const char *base = getenv("TMPDIR");

	snprintf(out, outlen, "%s/pushrelay-test-XXXXXX",
		 base && *base ? base : "/tmp");
	return mkdtemp(out) ? 0 : -1;
}

int th_write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	int rv;

	if (!fp)
		return -1;
	rv = fputs(text, fp) < 0 ? -1 : 0;
	if (fclose(fp) != 0)
		rv = -1;
	return rv;
}

char *th_read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!fp)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			char *p;

			cap = cap ? cap * 2 : 8192;
			p = realloc(buf, cap);
			if (!p) {
				free(buf);
				fclose(fp);
				return NULL;
			}
			buf = p;
		}
		n = fread(buf + len, 1, 4096, fp);
		len += n;
	} while (n > 0);
	fclose(fp);
	buf[len] = '\0';
	return buf;
}

int th_free_port(int v6)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0), port = 0;

	if (fd < 0)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (void *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*s4);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
				: ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return port;
}

int th_make_cert(const char *cert, const char *key)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *fp;
	int rv = -1;

	if (!pk || !x)
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	if (!X509_sign(x, pk, EVP_sha256()))
		goto out;
	fp = fopen(cert, "w");
	if (!fp)
		goto out;
	PEM_write_X509(fp, x);
	fclose(fp);
	fp = fopen(key, "w");
	if (!fp)
		goto out;
	fchmod(fileno(fp), 0600);
	PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL);
	fclose(fp);
	rv = 0;
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	return rv;
}

static int wait_healthy(struct th_daemon *d, double timeout)
{
	double end = now() + timeout;

	while (now() < end) {
		struct th_resp r;

		if (!th_alive(d->pid))
			return -1;
		if (th_request(d, TH_H1, "GET", "/healthz", NULL, NULL, &r) ==
			0 &&
		    r.status == 200) {
			th_resp_free(&r);
			return 0;
		}
		th_resp_free(&r);
		usleep(20000);
	}
	return -1;
}

int th_daemon_start(struct th_daemon *d, const char *extra_server,
		    const char *extra)
{
	char conf[8192], listen6[128] = "";
	int n;

	memset(d, 0, sizeof(*d));
	if (th_tmpdir(d->dir, sizeof(d->dir)))
		return -1;
	snprintf(d->conf, sizeof(d->conf), "%s/pushrelay.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/pushrelayd.log", d->dir);
	snprintf(d->cert, sizeof(d->cert), "%s/tls.crt", d->dir);
	snprintf(d->key, sizeof(d->key), "%s/tls.key", d->dir);
	snprintf(d->admin_sock, sizeof(d->admin_sock), "%s/admin.sock", d->dir);
	if (th_make_cert(d->cert, d->key))
		return -1;
	d->port = th_free_port(0);
	d->tls_port = th_free_port(0);
	d->port6 = th_free_port(1);
	if (d->port6)
		snprintf(listen6, sizeof(listen6), "listen = [::1]:%d\n",
			 d->port6);
	n = snprintf(conf, sizeof(conf),
		     "[server]\n"
		     "listen = 127.0.0.1:%d\n"
		     "listen = 127.0.0.1:%d tls\n"
		     "%s"
		     "tls_cert = %s\n"
		     "tls_key = %s\n"
		     "%s\n"
		     "[admin]\n"
		     "listen = unix:%s\n"
		     "[storage]\n"
		     "path = %s/pushrelay.db\n"
		     "[log]\n"
		     "level = info\n"
		     "%s",
		     d->port, d->tls_port, listen6, d->cert, d->key,
		     extra_server ? extra_server : "", d->admin_sock, d->dir,
		     extra ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(conf) || th_write_file(d->conf, conf))
		return -1;
	return th_daemon_restart(d);
}

int th_daemon_restart(struct th_daemon *d)
{
	return th_daemon_spawn(d, NULL, NULL, 1);
}

int th_alive(pid_t pid)
{
	int st;

	return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

int th_daemon_stop(struct th_daemon *d, int sig, double timeout)
{
	double end = now() + timeout;
	int st;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	while (now() < end) {
		pid_t r = waitpid(d->pid, &st, WNOHANG);

		if (r == d->pid) {
			d->pid = 0;
			if (WIFEXITED(st))
				return WEXITSTATUS(st);
			return 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &st, 0);
	d->pid = 0;
	return -1;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

/*
 * Every secret the suite hands the daemon (API keys, client-token and
 * webhook secrets, key passwords, the lines of private keys) is appended
 * to $PR_LOG_COLLECT/secrets.list, one per line, for tests/check_logs.sh.
 */
void th_note_secret(const char *secret, size_t len)
{
	const char *dir = getenv("PR_LOG_COLLECT");
	char path[512], line[8192];
	int fd;

	if (!dir || !*dir || len < 12 || len >= sizeof(line))
		return;
	memcpy(line, secret, len);
	line[len] = '\n';
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/secrets.list", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return;
	/* One write per line: O_APPEND keeps parallel tests' lines whole. */
	if (write(fd, line, len + 1) != (ssize_t)(len + 1))
		fprintf(stderr, "could not note a secret in %s\n", path);
	close(fd);
}

/* The body lines of every PEM private key in text (also inside a JSON
 * string, where lines end in a literal backslash-n). */
static void note_pem_lines(const char *text)
{
	static const char begin[] = "PRIVATE KEY-----";
	const char *p = text ? strstr(text, begin) : NULL;

	while (p) {
		const char *q = p + strlen(begin);
		const char *end = strstr(q, "-----END");

		if (!end)
			return;
		while (q < end) {
			size_t n = strcspn(q, "\\\n");

			if (q + n > end)
				n = (size_t)(end - q);
			th_note_secret(q, n);
			q += n;
			/* Skip "\n" (JSON) or a newline. */
			if (q < end && *q == '\\')
				q++;
			if (q < end && (*q == 'n' || *q == '\n'))
				q++;
		}
		/* Past this key's END line. */
		p = strstr(end + strlen("-----END"), begin);
		if (p)
			p = strstr(p + strlen(begin), begin);
	}
}

/* The values of the secret directives of a config file, and the private
 * keys in every file it names (TLS key, .p8, service account...). */
static void note_config_secrets(const char *conf)
{
	static const char *const names[] = {
	    "client_token_secret", "webhook_secret", "apns_cert_password"};
	char *text = th_read_file(conf), *line, *save = NULL;
	size_t i;

	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq;

		line += strspn(line, " \t");
		eq = strchr(line, '=');
		if (eq && eq[1 + strspn(eq + 1, " \t")] == '/') {
			char *file =
			    th_read_file(eq + 1 + strspn(eq + 1, " \t"));

			note_pem_lines(file);
			free(file);
		}
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			size_t n = strlen(names[i]);
			char *v;

			if (strncmp(line, names[i], n) != 0)
				continue;
			v = line + n + strspn(line + n, " \t");
			if (*v != '=')
				continue;
			v++;
			v += strspn(v, " \t");
			th_note_secret(v, strcspn(v, " \t\r"));
		}
	}
	free(text);
}

/*
 * Keep a copy of the daemon's log in $PR_LOG_COLLECT (make check sets it)
 * so that tests/check_logs.sh can search every log of the suite for
 * secrets once all tests ran.
 */
static void collect_log(const struct th_daemon *d)
{
	static int seq;
	const char *dir = getenv("PR_LOG_COLLECT");
	char path[512];
	char *text;

	if (!dir || !*dir || !d->log[0])
		return;
	text = th_read_file(d->log);
	if (!text)
		return;
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%ld-%d.log", dir, (long)getpid(),
		 ++seq);
	th_write_file(path, text);
	free(text);
}

void th_daemon_cleanup(struct th_daemon *d)
{
	if (d->pid > 0)
		th_daemon_stop(d, SIGKILL, 5);
	note_config_secrets(d->conf);
	collect_log(d);
	if (d->dir[0] && getenv("TH_KEEP")) {
		fprintf(stderr, "kept %s\n", d->dir);
		return;
	}
	if (d->dir[0])
		nftw(d->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

long th_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

struct sink {
	char *p;
	size_t len;
};

static size_t sink_cb(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	char *q = realloc(s->p, s->len + size * n + 1);

	if (!q)
		return 0;
	memcpy(q + s->len, p, size * n);
	s->len += size * n;
	q[s->len] = '\0';
	s->p = q;
	return size * n;
}

static int perform(CURL *h, struct th_resp *r)
{
	struct sink body = {NULL, 0}, hdrs = {NULL, 0};
	CURLcode rc;

	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sink_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &r->version);
	}
	r->body = body.p ? body.p : strdup("");
	r->len = body.len;
	r->headers = hdrs.p ? hdrs.p : strdup("");
	curl_easy_cleanup(h);
	return rc == CURLE_OK ? 0 : -1;
}

int th_request(const struct th_daemon *d, enum th_mode mode, const char *method,
	       const char *path, const char *body, const char *const *headers,
	       struct th_resp *r)
{
	struct curl_slist *list = NULL;
	char url[512];
	CURL *h = curl_easy_init();
	int tls = mode == TH_H2TLS || mode == TH_H1TLS, rv;

	memset(r, 0, sizeof(*r));
	if (!h)
		return -1;
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
		 tls ? "https" : "http", tls ? d->tls_port : d->port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	switch (mode) {
	case TH_H1:
	case TH_H1TLS:
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
				 CURL_HTTP_VERSION_1_1);
		break;
	case TH_H2C:
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
				 CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
		break;
	case TH_H2TLS:
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
				 CURL_HTTP_VERSION_2TLS);
		break;
	}
	if (tls) {
		curl_easy_setopt(h, CURLOPT_CAINFO, d->cert);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	for (size_t i = 0; headers && headers[i]; i++)
		list = curl_slist_append(list, headers[i]);
	if (list)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	rv = perform(h, r);
	curl_slist_free_all(list);
	return rv;
}

int th_request_unix(const char *sock, const char *path, struct th_resp *r)
{
	char url[512];
	CURL *h = curl_easy_init();

	memset(r, 0, sizeof(*r));
	if (!h)
		return -1;
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
	return perform(h, r);
}

void th_resp_free(struct th_resp *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
}

int th_connect(int port)
{
	struct sockaddr_in sa;
	struct timeval tv = {10, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int th_send(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t th_recv_all(int fd, char *buf, size_t cap, double timeout, int *eof)
{
	double end = now() + timeout;
	size_t len = 0;

	*eof = 0;
	while (now() < end) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int ms = (int)((end - now()) * 1000) + 1;
		char tmp[4096];
		ssize_t n;

		if (poll(&pfd, 1, ms) <= 0)
			continue;
		n = recv(fd, tmp, sizeof(tmp), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			*eof = 1;
			break;
		}
		if (n < 0)
			break;
		if (len + 1 < cap) {
			size_t take = (size_t)n;

			if (take > cap - 1 - len)
				take = cap - 1 - len;
			memcpy(buf + len, tmp, take);
			len += take;
		}
	}
	buf[len] = '\0';
	return len;
}

size_t th_recv_until(int fd, char *buf, size_t cap, const char *needle,
		     double timeout)
{
	double end = now() + timeout;
	size_t len = 0;

	buf[0] = '\0';
	while (now() < end && len + 1 < cap && !strstr(buf, needle)) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return len;
}

int th_count(const char *haystack, const char *needle)
{
	int n = 0;
	size_t nl = strlen(needle);

	for (const char *p = strstr(haystack, needle); p;
	     p = strstr(p + nl, needle))
		n++;
	return n;
}

#include "config.h"
#include "conn.h"
#include "server.h"

struct pr_server *th_mem_server(struct pr_config *cfg)
{
	char err[512];

	if (!cfg)
		cfg = pr_config_new();
	if (!cfg)
		return NULL;
	return pr_server_new(EV_DEFAULT, cfg, err, sizeof(err));
}

char *th_take_output(struct pr_conn *c)
{
	char *s = strndup(pr_buf_peek(&c->out), pr_buf_avail(&c->out));

	pr_buf_consume(&c->out, pr_buf_avail(&c->out));
	return s;
}

/* ---- the mock provider ------------------------------------------------ */

#include <dirent.h>
#include <jansson.h>

int th_mock_start(struct th_mock *m, const char *dir)
{
	const char *bin = getenv("PR_MOCK");
	char cmd[1024], portfile[300], *text;
	struct dirent *e;
	DIR *dp;
	int st;

	memset(m, 0, sizeof(*m));
	if (!bin)
		return -1;
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
	snprintf(cmd, sizeof(cmd), "%s --make-credentials %s >/dev/null", bin,
		 dir);
	st = system(cmd);
	if (st != 0)
		return -1;
	snprintf(m->cert, sizeof(m->cert), "%s/tls.crt", dir);
	snprintf(m->sa, sizeof(m->sa), "%s/service-account.json", dir);
	dp = opendir(dir);
	if (!dp)
		return -1;
	while ((e = readdir(dp))) {
		size_t n = strlen(e->d_name);

		if (strncmp(e->d_name, "AuthKey_", 8) == 0 && n > 11 &&
		    strcmp(e->d_name + n - 3, ".p8") == 0) {
			snprintf(m->p8, sizeof(m->p8), "%s/%s", dir, e->d_name);
			snprintf(m->key_id, sizeof(m->key_id), "%.*s",
				 (int)(n - 11), e->d_name + 8);
		}
	}
	closedir(dp);
	snprintf(m->team_id, sizeof(m->team_id), "TEAM123456");
	snprintf(portfile, sizeof(portfile), "%s/mock.port", dir);
	snprintf(m->log, sizeof(m->log), "%s/mock.log", dir);
	m->pid = fork();
	if (m->pid < 0)
		return -1;
	if (m->pid == 0) {
		char tlskey[300];
		int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		snprintf(tlskey, sizeof(tlskey), "%s/tls.key", dir);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--cert", m->cert,
		      "--key", tlskey, "--port-file", portfile, "--apns-key",
		      m->p8, "--apns-key-id", m->key_id, "--apns-team-id",
		      m->team_id, "--fcm-credentials", m->sa, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !m->port; i++) {
		text = th_read_file(portfile);
		if (text && *text)
			m->port = atoi(text);
		free(text);
		if (!m->port)
			usleep(10000);
	}
	return m->port ? 0 : -1;
}

void th_mock_stop(struct th_mock *m)
{
	int st;

	if (m->pid > 0) {
		kill(m->pid, SIGTERM);
		waitpid(m->pid, &st, 0);
	}
	m->pid = 0;
}

void th_mock_cleanup(struct th_mock *m, char *dir)
{
	th_mock_stop(m);
	if (dir[0] && !getenv("TH_KEEP"))
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = '\0';
}

static int mock_call(const struct th_mock *m, const char *method,
		     const char *path, const char *body, struct th_resp *r)
{
	struct curl_slist *h = NULL;
	char url[256];
	CURL *c = curl_easy_init();
	int rv;

	memset(r, 0, sizeof(*r));
	if (!c)
		return -1;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", m->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_CAINFO, m->cert);
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	rv = perform(c, r);
	curl_slist_free_all(h);
	return rv;
}

int th_mock_script(const struct th_mock *m, const char *rule)
{
	struct th_resp r;
	int ok = mock_call(m, "POST", "/mock/script", rule, &r) == 0 &&
		 r.status >= 200 && r.status < 300;

	th_resp_free(&r);
	return ok ? 0 : -1;
}

void *th_mock_requests(const struct th_mock *m, long after)
{
	char path[128];
	struct th_resp r;
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "/mock/requests?after=%ld&limit=10000",
		 after);
	if (mock_call(m, "GET", path, NULL, &r) == 0 && r.status == 200)
		doc = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return doc;
}

int th_mock_wait(const struct th_mock *m, const char *kind, int n,
		 double timeout)
{
	double end = now() + timeout;
	int count = 0;

	while (now() < end) {
		json_t *doc = th_mock_requests(m, 0), *reqs, *r;
		size_t i;

		count = 0;
		reqs = json_object_get(doc, "requests");
		json_array_foreach(reqs, i, r)
		{
			const char *k =
			    json_string_value(json_object_get(r, "kind"));

			if (k && strcmp(k, kind) == 0)
				count++;
		}
		json_decref(doc);
		if (count >= n)
			break;
		usleep(50000);
	}
	return count;
}

void th_mock_app_conf(const struct th_mock *m, char *out, size_t outlen)
{
	snprintf(out, outlen,
		 "[app \"chat\"]\n"
		 "push_mode = alert\n"
		 "apns_key_file = %s\n"
		 "apns_key_id = %s\n"
		 "apns_team_id = %s\n"
		 "apns_topic = com.example.chat\n"
		 "apns_url = https://127.0.0.1:%d\n"
		 "apns_sandbox_url = https://127.0.0.1:%d\n"
		 "fcm_credentials = %s\n"
		 "fcm_url = https://127.0.0.1:%d\n"
		 "fcm_token_url = https://127.0.0.1:%d/token\n"
		 "ca_file = %s\n",
		 m->p8, m->key_id, m->team_id, m->port, m->port, m->sa, m->port,
		 m->port, m->cert);
}

/* ---- client tokens ------------------------------------------------------ */

#include <openssl/hmac.h>

static void b64url_enc(const unsigned char *in, size_t n, char *out)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
	    "wxyz0123456789-_";
	size_t o = 0;
	unsigned v = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		v = (v << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = a[(v >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = a[(v << (6 - bits)) & 63];
	out[o] = '\0';
}

void th_jwt_hs256(char *out, size_t outlen, const char *header,
		  const char *claims, const char *secret)
{
	char h[512], c[1024], s[128], input[1600];
	unsigned char mac[32];
	unsigned int ml = 0;

	b64url_enc((const unsigned char *)header, strlen(header), h);
	b64url_enc((const unsigned char *)claims, strlen(claims), c);
	snprintf(input, sizeof(input), "%s.%s", h, c);
	HMAC(EVP_sha256(), secret, (int)strlen(secret),
	     (const unsigned char *)input, strlen(input), mac, &ml);
	b64url_enc(mac, ml, s);
	snprintf(out, outlen, "%s.%s", input, secret[0] ? s : "");
}

void th_client_token(char *out, size_t outlen, const char *secret,
		     const char *user, const char *device, long exp_in)
{
	char claims[512];

	snprintf(claims, sizeof(claims),
		 "{\"sub\":\"%s\",\"device\":\"%s\",\"exp\":%ld}", user, device,
		 (long)time(NULL) + exp_in);
	th_jwt_hs256(out, outlen, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims,
		     secret);
}

int th_make_key(const struct th_daemon *d, const char *name, const char *scope,
		char *out, size_t outlen)
{
	char cmd[1024], text[4096];
	const char *ctl = getenv("PUSHRELAYCTL"), *k;
	json_t *doc;
	FILE *fp;
	size_t n;
	int rv = -1;

	if (!ctl)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s -c %s --json keys create %s --scope %s",
		 ctl, d->conf, name, scope);
	fp = popen(cmd, "r");
	if (!fp)
		return -1;
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	if (pclose(fp) != 0)
		return -1;
	doc = json_loads(text, 0, NULL);
	k = json_string_value(json_object_get(doc, "key"));
	if (k && strlen(k) < outlen) {
		snprintf(out, outlen, "%s", k);
		th_note_secret(k, strlen(k));
		rv = 0;
	}
	json_decref(doc);
	return rv;
}

/*
 * th_daemon_restart with more: env adds "NAME=value" strings to the
 * daemon's environment, wrap is an argv run before "pushrelayd -c conf"
 * (e.g. unshare ... sh -c '... exec "$@"' sh), and without wait it returns
 * as soon as the process exists (for daemons that are meant to fail).
 */
int th_daemon_spawn(struct th_daemon *d, const char *const *env,
		    const char *const *wrap, int wait)
{
	const char *bin = getenv("PUSHRELAYD");
	const char *argv[32];
	size_t n = 0;

	if (!bin)
		bin = "./pushrelayd";
	for (size_t i = 0; wrap && wrap[i] && n < 28; i++)
		argv[n++] = wrap[i];
	argv[n++] = bin;
	argv[n++] = "-c";
	argv[n++] = d->conf;
	argv[n] = NULL;
	d->pid = fork();
	if (d->pid < 0)
		return -1;
	if (d->pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return wait ? wait_healthy(d, 15.0) : 0;
}

/*
 * The mock again after th_mock_stop: the same credentials and the same
 * port, so a daemon pointed at it finds it where it was (its rules, records
 * and counters start empty). Stopping it in between is how the tests make
 * "connection refused".
 */
int th_mock_restart(struct th_mock *m)
{
	const char *bin = getenv("PR_MOCK");
	char listen[64], portfile[300], tlskey[300], *text;
	int port = 0, st;

	if (!bin || m->port <= 0 || m->pid > 0)
		return -1;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", m->port);
	snprintf(portfile, sizeof(portfile), "%s/mock.port", m->dir);
	snprintf(tlskey, sizeof(tlskey), "%s/tls.key", m->dir);
	unlink(portfile);
	m->pid = fork();
	if (m->pid < 0)
		return -1;
	if (m->pid == 0) {
		int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(bin, bin, "--listen", listen, "--cert", m->cert, "--key",
		      tlskey, "--port-file", portfile, "--apns-key", m->p8,
		      "--apns-key-id", m->key_id, "--apns-team-id", m->team_id,
		      "--fcm-credentials", m->sa, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !port; i++) {
		text = th_read_file(portfile);
		if (text && *text)
			port = (int)strtol(text, NULL, 10);
		free(text);
		if (port)
			break;
		if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
			m->pid = 0; /* could not listen there */
			return -1;
		}
		usleep(10000);
	}
	return port == m->port ? 0 : -1;
}

void *th_mock_stats(const struct th_mock *m)
{
	struct th_resp r;
	json_t *doc = NULL;

	if (mock_call(m, "GET", "/mock/stats", NULL, &r) == 0 &&
	    r.status == 200)
		doc = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return doc;
}
