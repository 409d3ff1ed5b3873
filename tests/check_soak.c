/*
 * check_soak.c - the crash soak. pushrelayd runs against the mock
 * APNs/FCM server with a few users of one or two devices each, under
 * mixed load from threads: ingest writers post events (single and
 * batched, some to one named device), one inbox client per device
 * fetches pages (long polls too, sometimes from scratch as a reconnecting
 * app does) and acknowledges, and the dispatcher pushes to the mock,
 * which holds every push a little and fails some. At a random moment of
 * every cycle the daemon is killed with SIGKILL and started again; the
 * clients reconnect and go on.
 *
 * Asserted: the daemon starts again after every kill; an event answered
 * 202 is never lost (each of its devices received it through the inbox
 * or still has it there at the end, and it is stored once); no inbox
 * page ever holds a seq the device's answered acknowledgement covered;
 * each device's seqs run 1..last without a gap across what it received
 * and what is left, a seq never names two messages nor a message two
 * seqs; an event whose request died with the daemon is "unknown", and
 * posting it again answers queued or duplicate; after draining, every
 * push job is final (sent, or cancelled by an acknowledgement) and the
 * database passes integrity_check. Pushes sent again after a crash (the
 * same apns-id, or the same FCM message, twice at the mock) are counted,
 * not refused: delivery is at least once.
 *
 * SOAK_CYCLES (default 6) kills, each after a random 0.2..SOAK_SECONDS
 * (default 2.5) of load; SOAK_SEED repeats a run; SOAK_MAX_EVENTS bounds
 * the events (default 200000). contrib/crash-soak.sh runs it for many
 * cycles and tabulates the "soak:" lines it prints.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SECRET	     "soak-secret-0123456789abcdefghijklmnopq"
#define N_USERS	     4
#define N_DEVICES    6
#define WRITERS	     2
#define MAX_BATCH    4
#define MAX_REPOST   16	 /* unknown events posted again in one request */
#define MAX_RETRY    512 /* unknown events one writer holds */
#define MAX_REPORTS  25	 /* violations printed in full */
#define SOAK_SECONDS 2.5 /* the longest a cycle runs before its kill */

/* ---- the model ------------------------------------------------------ */

struct device {
	const char *id;
	int user;
	const char *platform;
	char token[80];
	char client[1024]; /* its client token */
	int h2;		   /* its inbox client speaks h2 (TLS) */

	/* Written by its inbox thread only (read by the main thread after
	 * joining it). */
	int64_t cursor;	  /* highest seq received */
	int64_t acked;	  /* highest up_to answered 200 */
	int64_t ack_sent; /* highest up_to ever sent */
	int32_t *seen;	  /* seq -> event index + 1, 0: not seen */
	size_t seen_cap;  /* entries of seen */
	int32_t *ev_seq;  /* event index -> seq here, 0: not seen */
	struct {
		double t; /* wall clock, when the answer came */
		int64_t up;
	} * acklog; /* the acks answered 200 that moved acked */
	size_t n_acklog, cap_acklog;
	/* Counters, read while it runs for the cycle lines. */
	atomic_ulong fetches, fetch_errors, received, acks, ack_errors;
	unsigned long remaining;
};

static struct device devs[N_DEVICES] = {
    {.id = "u0-phone", .user = 0, .platform = "apns", .h2 = 0},
    {.id = "u0-tablet", .user = 0, .platform = "fcm", .h2 = 1},
    {.id = "u1-phone", .user = 1, .platform = "apns", .h2 = 1},
    {.id = "u2-phone", .user = 2, .platform = "fcm", .h2 = 0},
    {.id = "u2-tablet", .user = 2, .platform = "apns", .h2 = 0},
    {.id = "u3-phone", .user = 3, .platform = "fcm", .h2 = 1},
};

enum { EV_NEW = 0, EV_UNKNOWN, EV_ACCEPTED };

struct event {
	uint8_t user;
	uint8_t one;	 /* device index + 1 when the event names one device */
	uint8_t state;	 /* EV_* */
	uint8_t targets; /* bit per device */
};

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];
static char key[128], admin_key[128];

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct event *events;
static size_t n_events, max_events;

static atomic_int stop_writers, stop_readers;
static atomic_ulong n_posts, n_post_errors, n_unknown, n_repost_queued,
    n_repost_dup, n_violations, n_lost, n_redelivered, n_gaps;

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned soak_seed; /* SOAK_SEED, or from the clock */
static int debug;	   /* SOAK_DEBUG: print every failed request */

static void violation(atomic_ulong *kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(atomic_ulong *kind, const char *fmt, ...)
{
	va_list ap;
	unsigned long n = atomic_fetch_add(&n_violations, 1);

	if (kind)
		atomic_fetch_add(kind, 1);
	if (n >= MAX_REPORTS)
		return;
	pthread_mutex_lock(&report_lock);
	fprintf(stderr, "soak: VIOLATION: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&report_lock);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	if (*end || n < lo || n > hi)
		return def;
	return n;
}

static double env_seconds(const char *name, double def)
{
	const char *v = getenv(name);
	char *end;
	double s;

	if (!v || !*v)
		return def;
	s = strtod(v, &end);
	return *end || s < 0.3 || s > 3600 ? def : s;
}

/* ---- HTTP ----------------------------------------------------------- */

struct body {
	char *p;
	size_t len;
};

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	char *q = realloc(b->p, b->len + size * n + 1);

	if (!q)
		return 0;
	memcpy(q + b->len, p, size * n);
	b->len += size * n;
	q[b->len] = '\0';
	b->p = q;
	return size * n;
}

/*
 * One request on a kept handle (its connection is reused until the daemon
 * dies). Returns the status, 0 when no answer came; *out (may be NULL)
 * gets the parsed body.
 */
static long http(CURL *h, int h2, const char *method, const char *path,
		 const char *bearer, const char *body, json_t **out)
{
	char url[512], auth[1200];
	struct curl_slist *hdrs = NULL;
	struct body b = {NULL, 0};
	long status = 0;
	CURLcode rc;

	if (out)
		*out = NULL;
	/* HTTP/2 goes over TLS (ALPN): libcurl 7.88 fails a reused h2c
	 * prior-knowledge connection ("Error in the HTTP2 framing layer",
	 * curl issue 10634, fixed in 8.0). */
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", h2 ? "https" : "http",
		 h2 ? d.tls_port : d.port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
			 h2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
	if (h2) {
		curl_easy_setopt(h, CURLOPT_CAINFO, d.cert);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else if (debug)
		fprintf(stderr, "soak: %.3f %s %s: %s\n", mono(), method, path,
			curl_easy_strerror(rc));
	if (status && out && b.p)
		*out = json_loadb(b.p, b.len, 0, NULL);
	free(b.p);
	curl_slist_free_all(hdrs);
	return status;
}

/* A request from the main thread, which must be answered. */
static long call(const char *method, const char *path, const char *bearer,
		 const char *body, json_t **out)
{
	CURL *h = curl_easy_init();
	long st;

	ck_assert_ptr_nonnull(h);
	st = http(h, 0, method, path, bearer, body, out);
	curl_easy_cleanup(h);
	return st;
}

/* ---- ingest writers ------------------------------------------------- */

/* Event idx as JSON into out (its content follows from idx, so a repost
 * is the same event). */
static size_t event_json(char *out, size_t cap, size_t idx)
{
	const struct event *e = &events[idx];
	const char *mode = idx % 10 == 0   ? "none"
			   : idx % 10 == 1 ? "wakeup"
					   : "alert";
	char devices[80] = "";

	if (e->one)
		snprintf(devices, sizeof(devices), "\"devices\":[\"%s\"],",
			 devs[e->one - 1].id);
	return (size_t)snprintf(
	    out, cap,
	    "{\"id\":\"e%zu\",\"user\":\"u%d\",%s\"payload\":{\"n\":%zu},"
	    "\"push\":{\"mode\":\"%s\",\"title\":\"soak\",\"body\":\"m%zu\"}}",
	    idx, e->user, devices, idx, mode, idx);
}

/* A fresh event: its user and targets, chosen at random. */
static size_t event_new(unsigned *seed)
{
	size_t idx;
	struct event *e;

	pthread_mutex_lock(&ev_lock);
	if (n_events >= max_events) {
		pthread_mutex_unlock(&ev_lock);
		return SIZE_MAX;
	}
	idx = n_events++;
	e = &events[idx];
	e->user = (uint8_t)(rand_r(seed) % N_USERS);
	e->targets = 0;
	for (int i = 0; i < N_DEVICES; i++)
		if (devs[i].user == e->user)
			e->targets |= (uint8_t)(1u << i);
	if (rand_r(seed) % 5 == 0) {
		/* Name one of the user's devices. */
		int pick[N_DEVICES], n = 0;

		for (int i = 0; i < N_DEVICES; i++)
			if (e->targets & (1u << i))
				pick[n++] = i;
		n = pick[rand_r(seed) % (unsigned)n];
		e->one = (uint8_t)(n + 1);
		e->targets = (uint8_t)(1u << n);
	}
	e->state = EV_NEW;
	pthread_mutex_unlock(&ev_lock);
	return idx;
}

/* Events made so far (the writers may be making more). */
static size_t events_made(void)
{
	size_t n;

	pthread_mutex_lock(&ev_lock);
	n = n_events;
	pthread_mutex_unlock(&ev_lock);
	return n;
}

static void event_set(size_t idx, uint8_t state)
{
	pthread_mutex_lock(&ev_lock);
	events[idx].state = state;
	pthread_mutex_unlock(&ev_lock);
}

/*
 * Post events ids[0..n) in one request (a batch, or a single event).
 * repost: they were posted before without an answer. Returns 1 when
 * answered 202 (every event accepted), 0 when their fate is unknown.
 */
static int post_events(CURL *h, int h2, const size_t *ids, size_t n, int repost,
		       int single)
{
	char body[MAX_REPOST * 400 + 64];
	size_t o = 0;
	json_t *doc = NULL, *results;
	long st;

	if (n == 1 && single) {
		event_json(body, sizeof(body), ids[0]);
	} else {
		o += (size_t)snprintf(body, sizeof(body), "{\"events\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				body[o++] = ',';
			o += event_json(body + o, sizeof(body) - o, ids[i]);
		}
		snprintf(body + o, sizeof(body) - o, "]}");
	}
	atomic_fetch_add(&n_posts, 1);
	st = http(h, h2, "POST", "/v1/events", key, body, &doc);
	if (st != 202) {
		json_decref(doc);
		atomic_fetch_add(&n_post_errors, 1);
		if (st && st != 429 && st != 503)
			violation(NULL, "POST /v1/events answered %ld", st);
		return 0;
	}
	results = json_object_get(doc, "results");
	if (json_array_size(results) != n)
		violation(NULL, "202 with %zu results for %zu events",
			  json_array_size(results), n);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(results, i);
		const char *s = json_string_value(json_object_get(r, "status"));
		const char *id = json_string_value(json_object_get(r, "id"));
		char want[32];

		snprintf(want, sizeof(want), "e%zu", ids[i]);
		if (!id || strcmp(id, want) != 0)
			violation(NULL, "202 result %zu is %s, not %s", i,
				  id ? id : "(none)", want);
		if (s && strcmp(s, "queued") == 0) {
			if (repost)
				atomic_fetch_add(&n_repost_queued, 1);
		} else if (s && strcmp(s, "duplicate") == 0 && repost) {
			atomic_fetch_add(&n_repost_dup, 1);
		} else {
			violation(NULL, "event %s answered \"%s\"%s", want,
				  s ? s : "(none)",
				  repost ? " on a repost" : "");
		}
		event_set(ids[i], EV_ACCEPTED);
	}
	json_decref(doc);
	return 1;
}

struct writer {
	pthread_t th;
	int no;
	unsigned seed;
	size_t retry[MAX_RETRY]; /* events whose fate is unknown */
	size_t n_retry;
	int down; /* the last request had no answer: repost, nothing new */
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	CURL *h = curl_easy_init();
	int h2 = w->no % 2;

	while (h && !atomic_load(&stop_writers)) {
		size_t ids[MAX_REPOST], n = 0;
		int repost =
		    w->n_retry > 0 && (w->down || w->n_retry >= MAX_RETRY / 2 ||
				       rand_r(&w->seed) % 3 == 0);

		if (repost) {
			while (n < MAX_REPOST && w->n_retry > 0)
				ids[n++] = w->retry[--w->n_retry];
		} else {
			size_t want = 1 + rand_r(&w->seed) % MAX_BATCH;

			while (n < want) {
				size_t idx = event_new(&w->seed);

				if (idx == SIZE_MAX)
					break;
				ids[n++] = idx;
			}
			if (n == 0) { /* the bound: only reposts now */
				sleep_ms(20);
				continue;
			}
		}
		if (!post_events(h, h2, ids, n, repost, rand_r(&w->seed) % 2)) {
			for (size_t i = 0; i < n; i++) {
				if (!repost) {
					event_set(ids[i], EV_UNKNOWN);
					atomic_fetch_add(&n_unknown, 1);
				}
				if (w->n_retry < MAX_RETRY)
					w->retry[w->n_retry++] = ids[i];
				/* else: the main thread posts it at the end */
			}
			w->down = 1;
			sleep_ms(10 + rand_r(&w->seed) % 20);
			continue;
		}
		w->down = 0;
		sleep_ms(rand_r(&w->seed) % 8);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* ---- inbox clients -------------------------------------------------- */

static int seen_room(struct device *v, int64_t seq)
{
	size_t cap = v->seen_cap;

	if (seq < 0)
		return 0;
	if ((size_t)seq < cap)
		return 1;
	while ((size_t)seq >= cap)
		cap = cap ? cap * 2 : 1024;
	{
		int32_t *s = realloc(v->seen, cap * sizeof(*s));

		if (!s)
			return 0;
		v->seen = s;
	}
	memset(v->seen + v->seen_cap, 0, (cap - v->seen_cap) * sizeof(int32_t));
	v->seen_cap = cap;
	return 1;
}

/* Note that device v got (seq, id); check it is one of its events, and
 * that neither the seq nor the event was seen with another. */
static void note_message(struct device *v, int64_t seq, const char *id)
{
	char *end;
	unsigned long long idx;
	struct event e = {0};
	size_t known;

	if (!id || id[0] != 'e') {
		violation(NULL, "%s: seq %lld has id %s", v->id, (long long)seq,
			  id ? id : "(none)");
		return;
	}
	idx = strtoull(id + 1, &end, 10);
	pthread_mutex_lock(&ev_lock);
	known = n_events;
	if (idx < known)
		e = events[idx];
	pthread_mutex_unlock(&ev_lock);
	if (*end || idx >= known) {
		violation(NULL, "%s: seq %lld is %s, never posted", v->id,
			  (long long)seq, id);
		return;
	}
	if (!(e.targets & (1u << (v - devs))))
		violation(NULL, "%s: got %s, meant for others", v->id, id);
	if (!seen_room(v, seq)) {
		violation(NULL, "%s: no room for seq %lld", v->id,
			  (long long)seq);
		return;
	}
	if (v->seen[seq] && v->seen[seq] != (int32_t)idx + 1)
		violation(&n_gaps, "%s: seq %lld was e%d, now %s", v->id,
			  (long long)seq, v->seen[seq] - 1, id);
	if (v->ev_seq[idx] && v->ev_seq[idx] != seq)
		violation(&n_gaps, "%s: %s at seq %d and at seq %lld", v->id,
			  id, v->ev_seq[idx], (long long)seq);
	v->seen[seq] = (int32_t)idx + 1;
	v->ev_seq[idx] = (int32_t)seq;
}

/*
 * Check one inbox page asked with after; acked is what the device's
 * answered acknowledgements covered when the request left. Every seq is
 * past acked; the page runs without a gap from max(after, the relay's
 * cursor) + 1, where the relay's cursor is between acked and the highest
 * up_to ever sent. Returns the last seq, or 0 for an empty page.
 */
static int64_t check_page(struct device *v, json_t *doc, int64_t after,
			  int64_t acked, int final)
{
	json_t *msgs = json_object_get(doc, "messages"), *msg;
	int64_t prev = 0, lo, hi;
	size_t i;

	if (!json_is_array(msgs)) {
		violation(NULL, "%s: an inbox answer without messages", v->id);
		return 0;
	}
	lo = (after > acked ? after : acked) + 1;
	hi = (after > v->ack_sent ? after : v->ack_sent) + 1;
	json_array_foreach(msgs, i, msg)
	{
		int64_t seq = json_integer_value(json_object_get(msg, "seq"));
		const char *id = json_string_value(json_object_get(msg, "id"));

		if (seq <= acked)
			violation(&n_redelivered,
				  "%s: seq %lld (%s) fetched after its ack "
				  "(acked %lld)%s",
				  v->id, (long long)seq, id ? id : "?",
				  (long long)acked, final ? " at the end" : "");
		else if (i == 0 && (seq < lo || seq > hi))
			violation(&n_gaps,
				  "%s: after=%lld (acked %lld, ack sent %lld) "
				  "began at seq %lld",
				  v->id, (long long)after, (long long)acked,
				  (long long)v->ack_sent, (long long)seq);
		if (i > 0 && seq != prev + 1)
			violation(&n_gaps, "%s: seq %lld follows %lld", v->id,
				  (long long)seq, (long long)prev);
		note_message(v, seq, id);
		prev = seq;
	}
	return prev;
}

static void acklog_add(struct device *v, int64_t up)
{
	if (v->n_acklog == v->cap_acklog) {
		size_t cap = v->cap_acklog ? v->cap_acklog * 2 : 1024;
		void *p = realloc(v->acklog, cap * sizeof(*v->acklog));

		if (!p) {
			violation(NULL, "out of memory");
			return;
		}
		v->acklog = p;
		v->cap_acklog = cap;
	}
	v->acklog[v->n_acklog].t = wall();
	v->acklog[v->n_acklog++].up = up;
}

static void *reader_main(void *arg)
{
	struct device *v = arg;
	unsigned seed = soak_seed * 7919u + (unsigned)(v - devs);
	CURL *h = curl_easy_init();

	while (h && !atomic_load(&stop_readers)) {
		char path[128], body[64];
		int scratch = rand_r(&seed) % 8 == 0;
		int64_t after = scratch ? 0 : v->cursor, acked = v->acked, last,
			up;
		long limit = 1 + rand_r(&seed) % 100,
		     wait = rand_r(&seed) % 3 == 0;
		json_t *doc = NULL;
		long st;
		unsigned r;

		snprintf(path, sizeof(path),
			 "/v1/inbox?after=%lld&limit=%ld&wait=%ld",
			 (long long)after, limit, wait);
		st = http(h, v->h2, "GET", path, v->client, NULL, &doc);
		if (st != 200) {
			json_decref(doc);
			v->fetch_errors++;
			if (st && st != 503 && st != 429)
				violation(NULL, "%s: GET %s answered %ld",
					  v->id, path, st);
			sleep_ms(10 + rand_r(&seed) % 20);
			continue;
		}
		v->fetches++;
		last = check_page(v, doc, after, acked, 0);
		v->received +=
		    json_array_size(json_object_get(doc, "messages"));
		json_decref(doc);
		if (last > v->cursor)
			v->cursor = last;
		/* Acknowledge: mostly all, sometimes part, sometimes not. */
		r = rand_r(&seed) % 10;
		if (v->cursor <= v->acked || r >= 8) {
			if (!last)
				sleep_ms(5 + rand_r(&seed) % 25);
			continue;
		}
		up = r < 6 ? v->cursor
			   : v->acked + 1 +
				 (int64_t)(rand_r(&seed) %
					   (unsigned)(v->cursor - v->acked));
		if (rand_r(&seed) % 20 == 0)
			up = v->acked; /* an old one again: a no-op */
		if (up > v->ack_sent)
			v->ack_sent = up;
		snprintf(body, sizeof(body), "{\"up_to\":%lld}", (long long)up);
		st = http(h, v->h2, "POST", "/v1/inbox/ack", v->client, body,
			  &doc);
		if (st == 200) {
			json_int_t got =
			    json_integer_value(json_object_get(doc, "acked"));

			v->acks++;
			if (up > v->acked) {
				v->acked = up;
				acklog_add(v, up);
			}
			if (got < v->acked || got > v->ack_sent)
				violation(NULL,
					  "%s: ack %lld answered acked %lld",
					  v->id, (long long)up, (long long)got);
		} else {
			v->ack_errors++;
			if (st && st != 503 && st != 429)
				violation(NULL, "%s: ack %lld answered %ld",
					  v->id, (long long)up, st);
		}
		json_decref(doc);
		sleep_ms(rand_r(&seed) % 10);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* ---- the mock's record of pushes ------------------------------------ */

/* One push request the mock saw. */
struct push {
	char *key; /* apns-id (APNs), or token, message id and seq (FCM) */
	unsigned char st; /* its answer: 0 none (the daemon went), 1 200,
			     2 an error */
	int dev;	  /* device index, -1 unknown */
	int64_t seq;	  /* the seq it announced */
	double at;	  /* when it arrived (wall clock) */
};

static struct {
	struct push *p;
	size_t n, cap;
	long after;		 /* the mock's record cursor */
	long missing;		 /* records the ring dropped before we read */
	unsigned long status[6]; /* 2xx..5xx by first digit, [0]: none */
} pushes;

static int dev_by_token(const char *token)
{
	for (int i = 0; token && i < N_DEVICES; i++)
		if (strcmp(devs[i].token, token) == 0)
			return i;
	return -1;
}

/* Read what the mock recorded since the last call. */
static void pushes_collect(void)
{
	for (;;) {
		json_t *doc = th_mock_requests(&m, pushes.after), *reqs, *r;
		size_t i;

		reqs = json_object_get(doc, "requests");
		if (!doc || json_array_size(reqs) == 0) {
			json_decref(doc);
			return;
		}
		json_array_foreach(reqs, i, r)
		{
			const char *kind =
			    json_string_value(json_object_get(r, "kind"));
			long n =
			    (long)json_integer_value(json_object_get(r, "n"));
			long st = (long)json_integer_value(
			    json_object_get(r, "status"));
			json_t *b = json_loads(
			    json_string_value(json_object_get(r, "body")), 0,
			    NULL);
			json_t *msg = json_object_get(b, "message");
			json_t *data = json_object_get(msg, "data");
			struct push *p;
			char k[512];

			if (n > pushes.after + 1)
				pushes.missing += n - pushes.after - 1;
			if (n > pushes.after)
				pushes.after = n;
			if (!kind || (strcmp(kind, "apns") != 0 &&
				      strcmp(kind, "fcm") != 0)) {
				json_decref(b);
				continue;
			}
			if (pushes.n == pushes.cap) {
				size_t cap = pushes.cap ? pushes.cap * 2 : 4096;

				p = realloc(pushes.p, cap * sizeof(*p));
				ck_assert_ptr_nonnull(p);
				pushes.p = p;
				pushes.cap = cap;
			}
			p = &pushes.p[pushes.n++];
			p->st = st == 200 ? 1 : st ? 2 : 0;
			p->at = (double)json_integer_value(
				    json_object_get(r, "at")) /
				1000.0;
			if (kind[0] == 'a') {
				snprintf(k, sizeof(k), "apns %s",
					 json_string_value(json_object_get(
					     json_object_get(r, "headers"),
					     "apns-id")));
				p->dev = dev_by_token(json_string_value(
				    json_object_get(r, "token")));
				p->seq = json_integer_value(
				    json_object_get(b, "seq"));
			} else {
				const char *tok = json_string_value(
				    json_object_get(msg, "token"));
				const char *seq = json_string_value(
				    json_object_get(data, "seq"));

				snprintf(k, sizeof(k), "fcm %s %s %s", tok,
					 json_string_value(json_object_get(
					     data, "message_id")),
					 seq);
				p->dev = dev_by_token(tok);
				p->seq = seq ? strtoll(seq, NULL, 10) : 0;
			}
			p->key = strdup(k);
			ck_assert_ptr_nonnull(p->key);
			json_decref(b);
			pushes.status[st >= 200 && st < 600 ? st / 100 : 0]++;
		}
		json_decref(doc);
	}
}

static int cmp_push(const void *a, const void *b)
{
	return strcmp(((const struct push *)a)->key,
		      ((const struct push *)b)->key);
}

/*
 * Pushes the mock saw more than once: sent again after a crash (an
 * earlier request died with the daemon, or was answered 200 before the
 * daemon could write that down), or retried after a provider error; and
 * those answered 200 more than once. Sorts the record.
 */
static void pushes_count(unsigned long *crash, unsigned long *retried,
			 unsigned long *twice)
{
	struct push *r = pushes.p;

	*crash = *retried = *twice = 0;
	qsort(r, pushes.n, sizeof(*r), cmp_push);
	for (size_t i = 0, j; i < pushes.n; i = j) {
		unsigned long n[3] = {0, 0, 0};

		for (j = i; j < pushes.n && strcmp(r[j].key, r[i].key) == 0;
		     j++)
			n[r[j].st]++;
		if (j - i < 2)
			continue;
		if (n[0] || n[1] > 1)
			(*crash)++;
		else
			(*retried)++;
		*twice += n[1] > 1;
	}
}

/* The kills, wall clock. */
static double *kill_at;
static int n_kills;

/* What device v's answered acks covered at wall time t. */
static int64_t acked_at(const struct device *v, double t)
{
	int64_t up = 0;

	for (size_t i = 0; i < v->n_acklog && v->acklog[i].t < t; i++)
		up = v->acklog[i].up;
	return up;
}

/*
 * Pushes of messages the device had acknowledged before a kill, sent by
 * a daemon started after it (arrived at the mock past the kill; what
 * the old one wrote arrives at once on loopback): nothing was in the way
 * of cancelling them. And pushes that announce no message (seq < 1).
 */
static unsigned long pushes_after_ack(void)
{
	unsigned long n = 0;

	for (size_t i = 0; i < pushes.n; i++) {
		const struct push *p = &pushes.p[i];
		double k = 0;

		if (p->dev < 0) {
			violation(NULL, "%s: a push to an unknown token",
				  p->key);
			continue;
		}
		if (p->seq < 1) {
			n++;
			violation(&n_redelivered, "%s: a push for seq %lld",
				  p->key, (long long)p->seq);
			continue;
		}
		for (int c = 0; c < n_kills && kill_at[c] + 0.02 < p->at; c++)
			k = kill_at[c];
		if (k > 0 && p->seq <= acked_at(&devs[p->dev], k)) {
			n++;
			violation(&n_redelivered,
				  "%s: pushed seq %lld to %s at %.3f, acked "
				  "before the kill at %.3f",
				  p->key, (long long)p->seq, devs[p->dev].id,
				  p->at, k);
		}
	}
	return n;
}

/* ---- setup ---------------------------------------------------------- */

/* The mock and a daemon pointed at it, with an ingest and an admin key. */
static void start_daemon(void)
{
	char app[4096], extra[8192];

	ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
	ck_assert_msg(th_mock_start(&m, mockdir) == 0, "pr-mock did not start");
	th_mock_app_conf(&m, app, sizeof(app));
	snprintf(extra, sizeof(extra),
		 /* Checkpoints and sweeps run all the time, so kills
		  * find them too. */
		 "[storage]\ncheckpoint_interval = 1\nsweep_interval = 1\n"
		 "[push]\nbackoff_base = 1\nbackoff_max = 2\n"
		 "request_timeout = 10\n%sclient_token_secret = " SECRET "\n",
		 app);
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	ck_assert_int_eq(th_make_key(&d, "soak", "ingest", key, sizeof(key)),
			 0);
	ck_assert_int_eq(th_make_key(&d, "soak-admin", "admin", admin_key,
				     sizeof(admin_key)),
			 0);
}

/* Register device v; its push token and client token are made here. */
static void register_device(struct device *v)
{
	char path[128], body[512], user[8];

	if (strcmp(v->platform, "apns") == 0)
		snprintf(v->token, sizeof(v->token), "%062d%02x", 0,
			 (int)(v - devs) + 0xa0);
	else
		snprintf(v->token, sizeof(v->token), "soak-fcm-%d:APA91bSoak",
			 (int)(v - devs));
	snprintf(path, sizeof(path), "/v1/devices/%s", v->id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"u%d\",\"platform\":\"%s\",\"token\":\"%s\"}",
		 v->user, v->platform, v->token);
	ck_assert_int_eq(call("PUT", path, key, body, NULL), 201);
	snprintf(user, sizeof(user), "u%d", v->user);
	th_client_token(v->client, sizeof(v->client), SECRET, user, v->id,
			24 * 3600);
}

static void start(void)
{
	start_daemon();
	for (int i = 0; i < N_DEVICES; i++) {
		struct device *v = &devs[i];

		register_device(v);
		v->ev_seq = calloc(max_events, sizeof(*v->ev_seq));
		ck_assert_ptr_nonnull(v->ev_seq);
		ck_assert(seen_room(v, 1));
	}
	/* Every push is held a little, so kills find some in flight. */
	ck_assert_int_eq(
	    th_mock_script(&m, "{\"token\":\"*\",\"delay_ms\":60}"), 0);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
}

/* A provider failure for one device, for a few attempts: its push goes to
 * retry, and may be in retry when the kill comes. */
static void script_fault(unsigned *seed)
{
	const struct device *v = &devs[rand_r(seed) % N_DEVICES];
	char rule[512];

	if (rand_r(seed) % 2)
		snprintf(rule, sizeof(rule),
			 "{\"token\":\"%s\",\"status\":503,\"times\":2}",
			 v->token);
	else
		snprintf(rule, sizeof(rule),
			 "{\"token\":\"%s\",\"status\":429,\"retry_after\":1,"
			 "\"times\":1}",
			 v->token);
	ck_assert_int_eq(th_mock_script(&m, rule), 0);
}

/* ---- after the last cycle ------------------------------------------- */

/* Post every event whose fate is still unknown until it is answered. */
static unsigned long settle_unknown(void)
{
	CURL *h = curl_easy_init();
	double end = mono() + 60;
	unsigned long n = 0;

	ck_assert_ptr_nonnull(h);
	for (size_t i = 0; i < n_events; i++) {
		if (events[i].state == EV_ACCEPTED)
			continue;
		ck_assert_int_eq(events[i].state, EV_UNKNOWN);
		while (!post_events(h, 0, &i, 1, 1, 1)) {
			ck_assert_msg(mono() < end, "e%zu never answered", i);
			sleep_ms(100);
		}
		n++;
	}
	curl_easy_cleanup(h);
	return n;
}

/* Wait until no push is waiting or in flight. */
static void drain_pushes(void)
{
	double end = mono() + 90;

	for (;;) {
		json_t *doc = NULL, *q;
		long st = call("GET", "/v1/admin/stats", admin_key, NULL, &doc);
		json_int_t busy = -1;

		q = json_object_get(doc, "queue");
		if (st == 200 && q)
			busy =
			    json_integer_value(json_object_get(q, "pending")) +
			    json_integer_value(
				json_object_get(q, "in_flight")) +
			    json_integer_value(json_object_get(q, "retry"));
		json_decref(doc);
		if (busy == 0)
			return;
		ck_assert_msg(mono() < end,
			      "pushes still waiting after 90 s (%lld)",
			      (long long)busy);
		sleep_ms(200);
	}
}

/* Everything each device still has, from the relay's cursor on. */
static void fetch_left(void)
{
	for (int i = 0; i < N_DEVICES; i++) {
		struct device *v = &devs[i];
		int64_t after = 0;

		for (;;) {
			char path[128];
			json_t *doc = NULL;
			size_t n;

			snprintf(path, sizeof(path),
				 "/v1/inbox?after=%lld&limit=500",
				 (long long)after);
			ck_assert_int_eq(
			    call("GET", path, v->client, NULL, &doc), 200);
			n = json_array_size(json_object_get(doc, "messages"));
			if (n) {
				after = check_page(v, doc, after, v->acked, 1);
				v->remaining += n;
			}
			json_decref(doc);
			if (!n)
				break;
		}
	}
}

/* Read the stopped daemon's database. */
static void check_db(long *sent, long *cancelled)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;

	*sent = *cancelled = 0;
	snprintf(path, sizeof(path), "file:%s/pushrelay.db?mode=ro", d.dir);
	ck_assert_msg(sqlite3_open_v2(path, &db,
				      SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
				      NULL) == SQLITE_OK,
		      "cannot open %s: %s", path, sqlite3_errmsg(db));
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);

	/* Every push job is final: sent, or cancelled by an ack. */
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT state, count(*) FROM "
					    "push_jobs GROUP BY state",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);
		long n = (long)sqlite3_column_int64(st, 1);

		if (strcmp(s, "sent") == 0)
			*sent = n;
		else if (strcmp(s, "cancelled") == 0)
			*cancelled = n;
		else
			ck_abort_msg("%ld push jobs are %s after draining", n,
				     s);
	}
	sqlite3_finalize(st);

	/* Every accepted event is stored, once. */
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT count(*) FROM messages "
					    "WHERE app_id = (SELECT id FROM "
					    "apps WHERE name = 'chat') AND "
					    "ext_id = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	for (size_t i = 0; i < n_events; i++) {
		char id[32];

		snprintf(id, sizeof(id), "e%zu", i);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		if (sqlite3_column_int(st, 0) != 1)
			violation(&n_lost, "%s stored %d times", id,
				  sqlite3_column_int(st, 0));
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);

	/* Each device's seqs 1..next_seq-1 were all seen, none beyond; its
	 * cursor is between the answered acks and the acks sent. */
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT next_seq, acked_seq FROM "
					    "devices WHERE device_id = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	for (int i = 0; i < N_DEVICES; i++) {
		struct device *v = &devs[i];
		int64_t last, acked;

		sqlite3_bind_text(st, 1, v->id, -1, SQLITE_STATIC);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		last = sqlite3_column_int64(st, 0) - 1;
		acked = sqlite3_column_int64(st, 1);
		sqlite3_reset(st);
		if (acked < v->acked || acked > v->ack_sent)
			violation(NULL,
				  "%s: cursor %lld, acks answered %lld, sent "
				  "%lld",
				  v->id, (long long)acked, (long long)v->acked,
				  (long long)v->ack_sent);
		ck_assert(seen_room(v, last + 1));
		for (int64_t s = 1; s <= last; s++)
			if (!v->seen[s])
				violation(&n_gaps, "%s: seq %lld never seen",
					  v->id, (long long)s);
		for (size_t s = (size_t)last + 1; s < v->seen_cap; s++)
			if (v->seen[s])
				violation(&n_gaps,
					  "%s: seq %zu seen, last is %lld",
					  v->id, s, (long long)last);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Every accepted event reached each of its devices: received through
 * the inbox, or still there. */
static unsigned long check_lost(void)
{
	unsigned long deliveries = 0;

	for (size_t i = 0; i < n_events; i++) {
		const struct event *e = &events[i];

		if (e->state != EV_ACCEPTED)
			continue;
		for (int k = 0; k < N_DEVICES; k++) {
			if (!(e->targets & (1u << k)))
				continue;
			deliveries++;
			if (!devs[k].ev_seq[i])
				violation(&n_lost,
					  "e%zu (202) never reached %s", i,
					  devs[k].id);
		}
	}
	return deliveries;
}

/* ---- the test ------------------------------------------------------- */

struct totals {
	unsigned long fetches, received, acks, fetch_errors, ack_errors;
};

static void totals(struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < N_DEVICES; i++) {
		t->fetches += devs[i].fetches;
		t->received += devs[i].received;
		t->acks += devs[i].acks;
		t->fetch_errors += devs[i].fetch_errors;
		t->ack_errors += devs[i].ack_errors;
	}
}

START_TEST(test_crash_soak)
{
	int cycles = (int)env_long("SOAK_CYCLES", 6, 1, 100000);
	double seconds = env_seconds("SOAK_SECONDS", SOAK_SECONDS);
	unsigned seed = (unsigned)env_long(
	    "SOAK_SEED", (long)time(NULL) & 0xffff, 0, 0x7fffffff);
	struct writer w[WRITERS];
	pthread_t readers[N_DEVICES];
	unsigned long resent, retried, twice, after_ack, settled, deliveries,
	    remaining = 0;
	long jobs_sent, jobs_cancelled;
	struct totals t;
	double t0 = mono(), restart_max = 0;
	int kills = 0;

	max_events = (size_t)env_long("SOAK_MAX_EVENTS", 200000, 100, 2000000);
	events = calloc(max_events, sizeof(*events));
	kill_at = calloc((size_t)cycles, sizeof(*kill_at));
	ck_assert_ptr_nonnull(kill_at);
	ck_assert_ptr_nonnull(events);
	soak_seed = seed;
	debug = getenv("SOAK_DEBUG") != NULL;
	printf("soak: seed %u, %d cycles of up to %.1fs\n", seed, cycles,
	       seconds);
	fflush(stdout);
	start();
	for (int i = 0; i < WRITERS; i++) {
		w[i].no = i;
		w[i].seed = seed * 31u + (unsigned)i;
		w[i].n_retry = 0;
		pthread_create(&w[i].th, NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < N_DEVICES; i++)
		pthread_create(&readers[i], NULL, reader_main, &devs[i]);

	for (int c = 1; c <= cycles; c++) {
		double run = 0.2 +
			     (seconds - 0.2) * (rand_r(&seed) % 1000) / 1000.0,
		       killed, up;

		/* Now and then while it is still starting up: recovering
		 * its pushes, its clients reconnecting. */
		if (rand_r(&seed) % 5 == 0)
			run = (rand_r(&seed) % 100) / 1000.0;
		size_t before = events_made(), now;
		int rv;

		if (rand_r(&seed) % 2)
			script_fault(&seed);
		sleep_ms((long)(run * 1000));
		kill_at[n_kills++] = wall();
		rv = th_daemon_stop(&d, SIGKILL, 10);
		ck_assert_msg(rv == 128 + SIGKILL, "cycle %d: the daemon %s", c,
			      rv < 0 ? "did not die" : "had exited already");
		kills++;
		killed = mono();
		/* Clients keep trying while it is down. */
		sleep_ms(rand_r(&seed) % 200);
		ck_assert_msg(th_daemon_restart(&d) == 0,
			      "cycle %d: pushrelayd did not start again after "
			      "SIGKILL; see %s",
			      c, d.log);
		up = mono() - killed;
		if (up > restart_max)
			restart_max = up;
		pushes_collect();
		totals(&t);
		now = events_made();
		printf("soak: cycle %d/%d: killed after %.2fs, back in "
		       "%.2fs; events %zu (+%zu), unknown %lu, fetches %lu, "
		       "acks %lu, pushes %zu, violations %lu; at %.1fs\n",
		       c, cycles, run, up, now, now - before,
		       atomic_load(&n_unknown), t.fetches, t.acks, pushes.n,
		       atomic_load(&n_violations), mono() - t0);
		fflush(stdout);
	}

	/* Drain. The load goes on a little after the last restart; the
	 * inbox clients stop first, so some messages are left unread or
	 * unacknowledged; then the writers; what is unknown is posted
	 * again; what is left in each inbox is read; pushes finish. */
	sleep_ms(500);
	atomic_store(&stop_readers, 1);
	for (int i = 0; i < N_DEVICES; i++)
		pthread_join(readers[i], NULL);
	sleep_ms(300);
	atomic_store(&stop_writers, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i].th, NULL);
	settled = settle_unknown();
	fetch_left();
	drain_pushes();
	pushes_collect();
	ck_assert_msg(th_daemon_stop(&d, SIGTERM, 30) == 0,
		      "pushrelayd did not stop cleanly; see %s", d.log);
	check_db(&jobs_sent, &jobs_cancelled);
	deliveries = check_lost();
	after_ack = pushes_after_ack();
	pushes_count(&resent, &retried, &twice);
	totals(&t);
	for (int i = 0; i < N_DEVICES; i++)
		remaining += devs[i].remaining;

	printf("soak: summary cycles=%d kills=%d seconds=%.0f seed=%u "
	       "events=%zu first_try_202=%lu unknown=%lu reposted_queued=%lu "
	       "reposted_duplicate=%lu settled_at_end=%lu posts=%lu "
	       "post_errors=%lu deliveries=%lu fetches=%lu fetch_errors=%lu "
	       "received=%lu acks=%lu ack_errors=%lu left_in_inbox=%lu "
	       "pushes=%zu pushes_resent_after_kill=%lu pushes_retried=%lu "
	       "pushes_delivered_twice=%lu pushes_after_ack=%lu "
	       "push_errors=%lu mock_records_missed=%ld jobs_sent=%ld "
	       "jobs_cancelled=%ld restart_max=%.2f lost=%lu redelivered=%lu "
	       "gaps=%lu violations=%lu\n",
	       cycles, kills, mono() - t0, soak_seed, n_events,
	       (unsigned long)n_events - atomic_load(&n_unknown),
	       atomic_load(&n_unknown), atomic_load(&n_repost_queued),
	       atomic_load(&n_repost_dup), settled, atomic_load(&n_posts),
	       atomic_load(&n_post_errors), deliveries, t.fetches,
	       t.fetch_errors, t.received, t.acks, t.ack_errors, remaining,
	       pushes.n, resent, retried, twice, after_ack,
	       pushes.status[4] + pushes.status[5], pushes.missing, jobs_sent,
	       jobs_cancelled, restart_max, atomic_load(&n_lost),
	       atomic_load(&n_redelivered), atomic_load(&n_gaps),
	       atomic_load(&n_violations));
	fflush(stdout);
	ck_assert_msg(atomic_load(&n_lost) == 0, "%lu accepted events lost",
		      atomic_load(&n_lost));
	ck_assert_msg(atomic_load(&n_redelivered) == 0,
		      "%lu messages fetched or pushed again after "
		      "their ack",
		      atomic_load(&n_redelivered));
	ck_assert_msg(atomic_load(&n_gaps) == 0, "%lu sequence faults",
		      atomic_load(&n_gaps));
	ck_assert_msg(atomic_load(&n_violations) == 0,
		      "%lu violations (see stderr)",
		      atomic_load(&n_violations));
	ck_assert_int_gt(t.acks, 0);
	ck_assert_int_gt(pushes.n, 0);
	for (size_t i = 0; i < pushes.n; i++)
		free(pushes.p[i].key);
	free(pushes.p);
	free(kill_at);
	for (int i = 0; i < N_DEVICES; i++) {
		free(devs[i].seen);
		free(devs[i].ev_seq);
		free(devs[i].acklog);
	}
	free(events);
}
END_TEST

/* How many answers the mock is holding now, -1 when it cannot tell. */
static long mock_held(void)
{
	char url[128];
	struct body b = {NULL, 0};
	CURL *h = curl_easy_init();
	json_t *doc;
	long n = -1;

	ck_assert_ptr_nonnull(h);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/mock/stats", m.port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_CAINFO, m.cert);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) == CURLE_OK && b.p) {
		doc = json_loadb(b.p, b.len, 0, NULL);
		if (json_is_integer(json_object_get(doc, "delayed")))
			n = (long)json_integer_value(
			    json_object_get(doc, "delayed"));
		json_decref(doc);
	}
	free(b.p);
	curl_easy_cleanup(h);
	return n;
}

/*
 * A push in flight when the device acknowledges its message is not
 * cancelled (it has left); if it comes back to the queue (the daemon
 * was killed before its answer was written down, or the provider asked
 * for a retry) it must not go out again for the acknowledged message.
 * (It did, announcing seq 0: the claim did not look at the ack.)
 */
static void ack_while_in_flight(int crash)
{
	struct device *v = &devs[2]; /* APNs */
	char rule[512];
	json_t *doc = NULL, *p;
	double end;

	start_daemon();
	register_device(v);
	/* Held 3 s; for the retry case then answered 503. */
	snprintf(rule, sizeof(rule),
		 "{\"token\":\"%s\",\"delay_ms\":3000,\"times\":1%s}", v->token,
		 crash ? "" : ",\"status\":503");
	ck_assert_int_eq(th_mock_script(&m, rule), 0);
	ck_assert_int_eq(call("POST", "/v1/events", key,
			      "{\"id\":\"r-1\",\"user\":\"u1\",\"push\":"
			      "{\"mode\":\"alert\",\"title\":\"t\"}}",
			      NULL),
			 202);
	/* The push reaches the mock and is held there. */
	end = mono() + 10;
	while (mock_held() < 1) {
		ck_assert_msg(mono() < end, "the push never reached the mock");
		sleep_ms(20);
	}
	ck_assert_int_eq(call("GET", "/v1/inbox", v->client, NULL, &doc), 200);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "messages")), 1);
	json_decref(doc);
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", v->client, "{\"up_to\":1}", &doc),
	    200);
	/* In flight: the ack does not cancel it. */
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "cancelled")),
			 0);
	json_decref(doc);
	if (crash) {
		ck_assert_int_eq(th_daemon_stop(&d, SIGKILL, 10),
				 128 + SIGKILL);
		ck_assert_int_eq(th_daemon_restart(&d), 0);
	}
	/* The held request ends (cut by the kill, or 503); a second one
	 * would come at once after the restart, or after the backoff (1-2
	 * s) and a tick. */
	ck_assert_int_eq(th_mock_wait(&m, "apns", 2, crash ? 4 : 8), 1);
	/* Its job ends cancelled (at the claim that would have sent it). */
	end = mono() + 10;
	for (;;) {
		const char *state;

		ck_assert_int_eq(call("GET", "/v1/admin/messages/r-1",
				      admin_key, NULL, &doc),
				 200);
		p = json_array_get(json_object_get(doc, "pushes"), 0);
		state = json_string_value(json_object_get(p, "state"));
		ck_assert_ptr_nonnull(state);
		if (strcmp(state, "cancelled") == 0 || mono() > end)
			break;
		json_decref(doc);
		sleep_ms(100);
	}
	ck_assert_str_eq(json_string_value(json_object_get(p, "state")),
			 "cancelled");
	json_decref(doc);
	/* Nothing went out meanwhile. */
	ck_assert_int_eq(th_mock_wait(&m, "apns", 2, 0.1), 1);
}

START_TEST(test_ack_in_flight_crash_not_resent)
{
	ack_while_in_flight(1);
}
END_TEST

START_TEST(test_ack_in_flight_retry_not_resent)
{
	ack_while_in_flight(0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("soak");
	TCase *tc = tcase_create("crash"), *ack = tcase_create("ack");
	SRunner *sr;
	int failed;
	long cycles = env_long("SOAK_CYCLES", 6, 1, 100000);
	double seconds = env_seconds("SOAK_SECONDS", SOAK_SECONDS);

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* Each cycle: its load, a restart (slow under sanitizers); then the
	 * drain. */
	tcase_set_timeout(tc, 120.0 + (double)cycles * (seconds + 20.0));
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_crash_soak);
	tcase_set_timeout(ack, 60);
	tcase_add_checked_fixture(ack, NULL, teardown);
	tcase_add_test(ack, test_ack_in_flight_crash_not_resent);
	tcase_add_test(ack, test_ack_in_flight_retry_not_resent);
	suite_add_tcase(s, ack);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
