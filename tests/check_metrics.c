/*
 * check_metrics.c - GET /metrics end to end: a running pushrelayd (pointed
 * at the mock provider) takes events and a push that makes a token
 * invalid, and the whole exposition is parsed as Prometheus text format
 * 0.0.4 by a small strict parser here; every family the relay promises is
 * present and the events counter matches what was posted.
 */
#include "autoconf.h"

#include <check.h>
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define APNS_TOKEN                                                             \
	"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];
static char key[128];

/* ---- a small Prometheus text (0.0.4) parser ---------------------------- */

#define MAX_FAM 256
#define MAX_LBL 8

struct family {
	char name[128];
	char type[16];
	int has_help;
	int samples;
	/* Histogram checks: last bucket seen for the current label set. */
	double last_bucket;
	double inf_bucket;
	int have_inf;
	double count;
	int have_count;
};

struct sample {
	char name[128];
	int n_lbl;
	char lname[MAX_LBL][64];
	char lval[MAX_LBL][256];
	double value;
};

struct expo {
	struct family fam[MAX_FAM];
	int n_fam;
	int n_samples;
};

static int name_start(int c)
{
	return isalpha(c) || c == '_' || c == ':';
}

static int name_char(int c)
{
	return isalnum(c) || c == '_' || c == ':';
}

/* A metric name at *p; copies it out and advances. 0 when invalid. */
static int parse_name(const char **p, char *out, size_t cap, int colon)
{
	const char *s = *p;
	size_t n = 0;

	if (!name_start((unsigned char)*s) || (!colon && *s == ':'))
		return 0;
	while (name_char((unsigned char)s[n]) && (colon || s[n] != ':')) {
		if (n + 1 >= cap)
			return 0;
		out[n] = s[n];
		n++;
	}
	out[n] = '\0';
	*p = s + n;
	return 1;
}

static int parse_value(const char *s, const char *end, double *v)
{
	char tmp[64], *e;
	size_t n = (size_t)(end - s);

	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!strcmp(tmp, "+Inf")) {
		*v = INFINITY;
		return 1;
	}
	if (!strcmp(tmp, "-Inf")) {
		*v = -INFINITY;
		return 1;
	}
	if (!strcmp(tmp, "NaN")) {
		*v = NAN;
		return 1;
	}
	/* strtod takes "inf"/"nan"/hex too: allow only decimal floats. */
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789.eE+-", tmp[i]))
			return 0;
	*v = strtod(tmp, &e);
	return *e == '\0';
}

static struct family *find_family(struct expo *x, const char *name)
{
	for (int i = 0; i < x->n_fam; i++)
		if (!strcmp(x->fam[i].name, name))
			return &x->fam[i];
	return NULL;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && !strcmp(s + a - b, suf);
}

/* The family a sample name belongs to (histogram suffixes removed when
 * such a histogram was declared). */
static struct family *family_of(struct expo *x, const char *name)
{
	static const char *const sufs[] = {"_bucket", "_sum", "_count"};
	struct family *f = find_family(x, name);

	if (f && strcmp(f->type, "histogram") != 0)
		return f;
	for (size_t i = 0; i < 3; i++) {
		char base[128];
		size_t n = strlen(name), k = strlen(sufs[i]);

		if (!ends_with(name, sufs[i]) || n - k >= sizeof(base))
			continue;
		memcpy(base, name, n - k);
		base[n - k] = '\0';
		f = find_family(x, base);
		if (f && (!strcmp(f->type, "histogram") ||
			  !strcmp(f->type, "summary")))
			return f;
	}
	return NULL;
}

/* One sample line; 0 with a reason in why when invalid. */
static int parse_sample(const char *line, struct sample *s, char *why,
			size_t wlen)
{
	const char *p = line, *v;

	memset(s, 0, sizeof(*s));
	if (!parse_name(&p, s->name, sizeof(s->name), 1)) {
		snprintf(why, wlen, "bad metric name");
		return 0;
	}
	if (*p == '{') {
		p++;
		while (*p != '}') {
			size_t n = 0;

			if (s->n_lbl == MAX_LBL) {
				snprintf(why, wlen, "too many labels");
				return 0;
			}
			if (!parse_name(&p, s->lname[s->n_lbl], 64, 0)) {
				snprintf(why, wlen, "bad label name");
				return 0;
			}
			if (!strncmp(s->lname[s->n_lbl], "__", 2)) {
				snprintf(why, wlen, "reserved label name");
				return 0;
			}
			for (int i = 0; i < s->n_lbl; i++)
				if (!strcmp(s->lname[i], s->lname[s->n_lbl])) {
					snprintf(why, wlen, "repeated label");
					return 0;
				}
			if (p[0] != '=' || p[1] != '"') {
				snprintf(why, wlen, "label without =\"");
				return 0;
			}
			p += 2;
			while (*p != '"') {
				char c = *p;

				if (c == '\0' || c == '\n') {
					snprintf(why, wlen, "open label value");
					return 0;
				}
				if (c == '\\') {
					p++;
					if (*p == 'n')
						c = '\n';
					else if (*p == '\\' || *p == '"')
						c = *p;
					else {
						snprintf(why, wlen,
							 "bad escape \\%c", *p);
						return 0;
					}
				}
				if (n + 1 >= 256) {
					snprintf(why, wlen, "label too long");
					return 0;
				}
				s->lval[s->n_lbl][n++] = c;
				p++;
			}
			s->lval[s->n_lbl][n] = '\0';
			s->n_lbl++;
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}') {
				snprintf(why, wlen, "expected , or }");
				return 0;
			}
		}
		p++;
	}
	if (*p != ' ') {
		snprintf(why, wlen, "no space before the value");
		return 0;
	}
	while (*p == ' ')
		p++;
	v = p;
	while (*p && *p != ' ')
		p++;
	if (!parse_value(v, p, &s->value)) {
		snprintf(why, wlen, "bad value");
		return 0;
	}
	if (*p == ' ') { /* optional integer timestamp */
		while (*p == ' ')
			p++;
		if (*p == '-')
			p++;
		if (!isdigit((unsigned char)*p)) {
			snprintf(why, wlen, "bad timestamp");
			return 0;
		}
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p) {
		snprintf(why, wlen, "trailing text");
		return 0;
	}
	return 1;
}

static const char *label(const struct sample *s, const char *name)
{
	for (int i = 0; i < s->n_lbl; i++)
		if (!strcmp(s->lname[i], name))
			return s->lval[i];
	return NULL;
}

/* Labels other than le, as one string (the histogram series key). */
static void series_key(const struct sample *s, char *out, size_t cap)
{
	out[0] = '\0';
	for (int i = 0; i < s->n_lbl; i++)
		if (strcmp(s->lname[i], "le") != 0) {
			size_t n = strlen(out);

			snprintf(out + n, cap - n, "%s=%s,", s->lname[i],
				 s->lval[i]);
		}
}

/* Parse the whole text into x; fails the test on any violation. Calls
 * cb for every sample. */
static void parse_expo(const char *text, struct expo *x,
		       void (*cb)(const struct sample *s, void *arg), void *arg)
{
	const char *p = text;
	int lineno = 0;
	char cur_series[512] = "";
	struct family *cur_hist = NULL;

	memset(x, 0, sizeof(*x));
	ck_assert_msg(*text, "empty exposition");
	ck_assert_msg(text[strlen(text) - 1] == '\n',
		      "the exposition does not end with a newline");
	while (*p) {
		const char *nl = strchr(p, '\n');
		char line[2048], why[128] = "";
		size_t n;

		ck_assert_ptr_nonnull(nl);
		n = (size_t)(nl - p);
		ck_assert_msg(n < sizeof(line), "line %d too long", lineno + 1);
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		lineno++;
		if (n == 0)
			continue;
		if (!strncmp(line, "# HELP ", 7) ||
		    !strncmp(line, "# TYPE ", 7)) {
			const char *q = line + 7;
			char name[128];
			struct family *f;

			ck_assert_msg(parse_name(&q, name, sizeof(name), 1),
				      "line %d: bad name: %s", lineno, line);
			f = find_family(x, name);
			if (!f) {
				ck_assert_int_lt(x->n_fam, MAX_FAM);
				f = &x->fam[x->n_fam++];
				snprintf(f->name, sizeof(f->name), "%s", name);
			}
			if (line[2] == 'H') {
				ck_assert_msg(*q == ' ' || *q == '\0',
					      "line %d: %s", lineno, line);
				ck_assert_msg(!f->has_help,
					      "line %d: second HELP for %s",
					      lineno, name);
				f->has_help = 1;
				/* HELP text escapes only \\ and \n. */
				for (const char *e = q; *e; e++)
					if (*e == '\\') {
						e++;
						ck_assert_msg(
						    *e == '\\' || *e == 'n',
						    "line %d: bad HELP "
						    "escape",
						    lineno);
					}
				continue;
			}
			ck_assert_msg(*q == ' ', "line %d: %s", lineno, line);
			q++;
			ck_assert_msg(
			    !strcmp(q, "counter") || !strcmp(q, "gauge") ||
				!strcmp(q, "histogram") ||
				!strcmp(q, "summary") || !strcmp(q, "untyped"),
			    "line %d: bad type: %s", lineno, line);
			ck_assert_msg(!f->type[0],
				      "line %d: second TYPE for %s", lineno,
				      name);
			ck_assert_msg(f->samples == 0,
				      "line %d: TYPE of %s after its samples",
				      lineno, name);
			snprintf(f->type, sizeof(f->type), "%s", q);
			if (!strcmp(q, "counter"))
				ck_assert_msg(ends_with(name, "_total"),
					      "line %d: counter %s is not "
					      "named *_total",
					      lineno, name);
			continue;
		}
		ck_assert_msg(line[0] != '#' || line[1] == ' ',
			      "line %d: bad comment: %s", lineno, line);
		if (line[0] == '#')
			continue; /* a plain comment */
		{
			struct sample s;
			struct family *f;
			char key_[512];

			ck_assert_msg(parse_sample(line, &s, why, sizeof(why)),
				      "line %d: %s: %s", lineno, why, line);
			f = family_of(x, s.name);
			ck_assert_msg(f != NULL && f->type[0],
				      "line %d: %s has no TYPE before it",
				      lineno, s.name);
			f->samples++;
			x->n_samples++;
			if (!strcmp(f->type, "counter") ||
			    !strcmp(f->type, "histogram"))
				ck_assert_msg(isnan(s.value) || s.value >= 0,
					      "line %d: negative %s", lineno,
					      f->type);
			if (!strcmp(f->type, "histogram")) {
				series_key(&s, key_, sizeof(key_));
				if (cur_hist != f ||
				    strcmp(key_, cur_series) != 0) {
					/* A new series starts with buckets. */
					ck_assert_msg(
					    cur_hist == NULL ||
						cur_hist->have_count,
					    "line %d: histogram %s ended "
					    "without _count",
					    lineno, cur_hist->name);
					cur_hist = f;
					snprintf(cur_series, sizeof(cur_series),
						 "%s", key_);
					f->last_bucket = 0;
					f->have_inf = 0;
					f->have_count = 0;
				}
				if (ends_with(s.name, "_bucket")) {
					const char *le = label(&s, "le");
					double b;

					ck_assert_msg(le != NULL,
						      "line %d: bucket "
						      "without le",
						      lineno);
					ck_assert_msg(
					    parse_value(le, le + strlen(le),
							&b),
					    "line %d: bad le", lineno);
					ck_assert_msg(!f->have_inf,
						      "line %d: bucket after "
						      "+Inf",
						      lineno);
					ck_assert_msg(s.value >= f->last_bucket,
						      "line %d: buckets of %s "
						      "not cumulative",
						      lineno, f->name);
					f->last_bucket = s.value;
					if (isinf(b)) {
						f->have_inf = 1;
						f->inf_bucket = s.value;
					}
				} else if (ends_with(s.name, "_count")) {
					ck_assert_msg(f->have_inf,
						      "line %d: %s without a "
						      "+Inf bucket",
						      lineno, f->name);
					ck_assert_msg(s.value == f->inf_bucket,
						      "line %d: %s_count %g "
						      "!= +Inf bucket %g",
						      lineno, f->name, s.value,
						      f->inf_bucket);
					f->have_count = 1;
				}
			} else if (cur_hist) {
				ck_assert_msg(cur_hist->have_count,
					      "line %d: histogram %s ended "
					      "without _count",
					      lineno, cur_hist->name);
				cur_hist = NULL;
			}
			if (cb)
				cb(&s, arg);
		}
	}
	if (cur_hist)
		ck_assert_msg(cur_hist->have_count,
			      "histogram %s ended without _count",
			      cur_hist->name);
}

/* ---- the daemon ---------------------------------------------------------- */

static void start(void)
{
	char app[4096], extra[8192];

	ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
	ck_assert_msg(th_mock_start(&m, mockdir) == 0, "pr-mock did not start");
	th_mock_app_conf(&m, app, sizeof(app));
	snprintf(extra, sizeof(extra),
		 "[push]\nbackoff_base = 1\nbackoff_max = 4\n\n%s\n", app);
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	ck_assert_int_eq(th_make_key(&d, "t", "ingest", key, sizeof(key)), 0);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
}

static long call(const char *method, const char *path, const char *body)
{
	char auth[200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	ck_assert_int_eq(th_request(&d, TH_H1, method, path, body, hdrs, &r),
			 0);
	st = r.status;
	th_resp_free(&r);
	return st;
}

static void event(const char *id)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"user\":\"alice\",\"payload\":{\"x\":1},"
		 "\"push\":{\"mode\":\"alert\",\"title\":\"t\",\"body\":"
		 "\"hello\"}}",
		 id);
	ck_assert_int_eq(call("POST", "/v1/events", body), 202);
}

/* What the test looks for in one scrape. */
struct seen {
	double queued, duplicate;
	int events_queued_seen, events_dup_seen;
	double invalid_token; /* sum over apps/providers */
	int invalid_seen;
	int paused_seen;
	int queue_depth_seen;
	int http_events_202;
};

static void look(const struct sample *s, void *arg)
{
	struct seen *w = arg;
	const char *v;

	if (!strcmp(s->name, "pushrelay_events_ingested_total")) {
		v = label(s, "status");
		ck_assert_ptr_nonnull(v);
		if (!strcmp(v, "queued")) {
			w->queued = s->value;
			w->events_queued_seen = 1;
		} else if (!strcmp(v, "duplicate")) {
			w->duplicate = s->value;
			w->events_dup_seen = 1;
		}
	} else if (!strcmp(s->name, "pushrelay_pushes_total")) {
		ck_assert_ptr_nonnull(label(s, "provider"));
		ck_assert_ptr_nonnull(label(s, "app"));
		v = label(s, "outcome");
		ck_assert_ptr_nonnull(v);
		if (!strcmp(v, "invalid_token")) {
			w->invalid_token += s->value;
			w->invalid_seen = 1;
		}
	} else if (!strcmp(s->name, "pushrelay_provider_paused")) {
		w->paused_seen = 1;
	} else if (!strcmp(s->name, "pushrelay_push_queue_depth")) {
		ck_assert_ptr_nonnull(label(s, "state"));
		w->queue_depth_seen = 1;
	} else if (!strcmp(s->name, "pushrelay_http_requests_total")) {
		v = label(s, "route");
		if (v && !strcmp(v, "/v1/events") &&
		    !strcmp(label(s, "status"), "202"))
			w->http_events_202 = (int)s->value;
	}
}

static char *scrape(void)
{
	struct th_resp r;
	char *text;

	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.headers, "text/plain; version=0.0.4") != NULL,
		      "content type: %s", r.headers);
	text = strdup(r.body);
	ck_assert_ptr_nonnull(text);
	th_resp_free(&r);
	return text;
}

static void expect_family(struct expo *x, const char *name, const char *type)
{
	struct family *f = find_family(x, name);

	ck_assert_msg(f != NULL, "no family %s", name);
	ck_assert_msg(!strcmp(f->type, type), "%s is a %s, not a %s", name,
		      f->type, type);
	ck_assert_msg(f->has_help, "%s has no HELP", name);
	ck_assert_msg(f->samples > 0, "%s has no samples", name);
}

START_TEST(test_parser_rejects_nothing_valid)
{
	/* The parser itself, on a hand-written exposition. */
	static const char text[] = "# HELP a_total A \\\\ counter.\n"
				   "# TYPE a_total counter\n"
				   "a_total{x=\"q\\\"\\\\\\n\",y=\"\"} 3\n"
				   "\n"
				   "# TYPE h histogram\n"
				   "h_bucket{le=\"0.5\"} 1\n"
				   "h_bucket{le=\"+Inf\"} 2\n"
				   "h_sum 0.7\n"
				   "h_count 2\n"
				   "# TYPE g gauge\n"
				   "g NaN\n"
				   "g{a=\"1\"} +Inf 1700000000000\n"
				   "g{a=\"2\"} -1.5e-3\n";
	struct expo x;
	struct sample s;
	char why[128];

	parse_expo(text, &x, NULL, NULL);
	ck_assert_int_eq(x.n_samples, 8);
	ck_assert_int_eq(parse_sample("1bad 1", &s, why, sizeof(why)), 0);
	ck_assert_int_eq(parse_sample("a{b=\"x} 1", &s, why, sizeof(why)), 0);
	ck_assert_int_eq(parse_sample("a{b=\"\\x\"} 1", &s, why, sizeof(why)),
			 0);
	ck_assert_int_eq(parse_sample("a{1b=\"x\"} 1", &s, why, sizeof(why)),
			 0);
	ck_assert_int_eq(parse_sample("a 1.2.3x", &s, why, sizeof(why)), 0);
	ck_assert_int_eq(parse_sample("a inf", &s, why, sizeof(why)), 0);
	ck_assert_int_eq(parse_sample("a{b=\"x\",} 1", &s, why, sizeof(why)),
			 1);
}
END_TEST

START_TEST(test_metrics_complete_and_valid)
{
	struct expo *x = calloc(1, sizeof(*x));
	struct seen w;
	char *text = NULL;
	double deadline;
	struct timespec ts;

	ck_assert_ptr_nonnull(x);
	start();
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"status\":410,\"reason\":"
					    "\"Unregistered\"}"),
			 0);
	ck_assert_int_eq(call("PUT", "/v1/devices/phone-1",
			      "{\"user\":\"alice\",\"platform\":\"apns\","
			      "\"token\":\"" APNS_TOKEN "\"}"),
			 201);
	event("e-1");
	event("e-2");
	event("e-3");
	event("e-1"); /* a duplicate */
	ck_assert_int_ge(th_mock_wait(&m, "apns", 1, 15), 1);

	/* The token invalidation and the background queue count show up
	 * within a few seconds; every scrape must parse. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = ts.tv_sec + ts.tv_nsec / 1e9 + 20;
	for (;;) {
		free(text);
		text = scrape();
		memset(&w, 0, sizeof(w));
		parse_expo(text, x, look, &w);
		if (w.invalid_token >= 1 && w.queue_depth_seen)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ck_assert_msg(ts.tv_sec + ts.tv_nsec / 1e9 < deadline,
			      "no invalid_token push or queue depth:\n%s",
			      text);
		usleep(200 * 1000);
	}

	expect_family(x, "pushrelay_events_ingested_total", "counter");
	expect_family(x, "pushrelay_pushes_total", "counter");
	expect_family(x, "pushrelay_push_latency_seconds", "histogram");
	expect_family(x, "pushrelay_push_queue_depth", "gauge");
	expect_family(x, "pushrelay_push_queue_depth_age_seconds", "gauge");
	expect_family(x, "pushrelay_oldest_pending_age_seconds", "gauge");
	expect_family(x, "pushrelay_store_commit_latency_seconds", "histogram");
	expect_family(x, "pushrelay_http_requests_total", "counter");
	expect_family(x, "pushrelay_http_request_duration_seconds",
		      "histogram");
	expect_family(x, "pushrelay_connections", "gauge");
	expect_family(x, "pushrelay_provider_paused", "gauge");
	expect_family(x, "pushrelay_inbox_messages_fetched_total", "counter");
	expect_family(x, "pushrelay_inbox_acks_total", "counter");

	ck_assert(w.events_queued_seen && w.events_dup_seen);
	ck_assert_msg(w.queued == 3 && w.duplicate == 1,
		      "events: queued %g duplicate %g", w.queued, w.duplicate);
	ck_assert_int_eq(w.http_events_202, 4);
	ck_assert(w.invalid_seen && w.paused_seen);
	free(text);
	free(x);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tp = tcase_create("parser");
	TCase *tc = tcase_create("metrics");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tp, test_parser_rejects_nothing_valid);
	suite_add_tcase(s, tp);
	tcase_add_test(tc, test_metrics_complete_and_valid);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
