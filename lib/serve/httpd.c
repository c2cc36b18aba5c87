/* The HTTP layer on libmicrohttpd (see httpd.h for the life of a request).
 *
 * Locking: each request has a mutex that guards its answer and its event queue; the server
 * has one that guards the list of live requests (for pings and shutdown).  The order is
 * server lock, then request lock, then libmicrohttpd's own locks (MHD_suspend_connection and
 * MHD_resume_connection take them): a request's lock is held around suspend and resume so a
 * resume can never come before the suspend it undoes. */
#include "config.h"

#include "serve/httpd.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>

/* The block a stream's reader fills at most per call. */
#define STREAM_BLOCK (16u << 10)
/* What libmicrohttpd keeps per connection besides the header bytes: its write buffer and the
 * stream block. */
#define CONN_MEMORY_EXTRA (64u << 10)

enum answer { ANS_NONE, ANS_READY, ANS_STREAM };

struct route {
	char *method; /* NULL: any */
	char *path;
	size_t plen;
	bool prefix;
	void (*handler)(struct llm_httpd_req *r, void *ctx);
	void *ctx;
};

struct header {
	char *name, *value;
};

struct llm_httpd_req {
	struct llm_httpd *h;
	struct MHD_Connection *conn;
	atomic_int refs;
	pthread_mutex_t mu;
	struct llm_httpd_req *prev, *next; /* the server's live list */
	const struct route *route;
	char *method, *path;
	char client[INET6_ADDRSTRLEN + 1];
	double t0;
	struct llm_buf body;
	bool too_big;
	int reject;   /* a status the server answers itself, 0: none */
	bool handled; /* the handler ran */
	bool live;    /* in the server's list */

	/* Under mu. */
	enum answer ans;
	bool queued;	 /* the answer went to libmicrohttpd */
	bool suspended;	 /* the connection is suspended, waiting on us */
	bool ended;	 /* the request has ended */
	bool stream_end; /* llm_httpd_sse_end was called */
	bool broken;	 /* the stream overflowed: drop the connection */
	bool stopping;	 /* the server is stopping: resume nothing more */
	int status;
	char *ctype;
	char *rbody;
	size_t rlen;
	struct header *hdrs;
	size_t nhdrs;
	struct llm_buf q; /* stream bytes not yet handed to libmicrohttpd */
	size_t qoff;
	double last_event; /* ms: when the stream last had something to send */
	atomic_uint_fast64_t sent;

	void *data;
	void (*on_close)(struct llm_httpd_req *r, void *data, bool completed);
};

struct llm_httpd {
	struct llm_httpd_opts o;
	char *host;
	char *cert, *key; /* PEM texts */
	struct route *routes;
	size_t nroutes;
	struct MHD_Daemon *d;
	int port;
	MHD_socket quiesced_fd;
	atomic_bool quiescing;
	atomic_size_t inflight, conns, streams;
	char last_error[256]; /* libmicrohttpd's last message, for a failed start */

	pthread_mutex_t mu; /* the live list */
	struct llm_httpd_req *live;
	bool stopping; /* llm_httpd_free has begun: new requests must not suspend */
	pthread_cond_t cond;
	bool stop_pinger;
	bool pinger_on;
	pthread_t pinger;
};

double llm_httpd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void llm_httpd_opts_init(struct llm_httpd_opts *o)
{
	memset(o, 0, sizeof *o);
	o->threads = 4;
	o->max_body = 8u << 20;
	o->max_header = 32u << 10;
	o->timeout_s = 60;
	o->ping_s = 15;
	o->max_stream_buffer = 16u << 20;
}

/* --- requests ----------------------------------------------------------------------------- */

static void req_free(struct llm_httpd_req *r)
{
	pthread_mutex_destroy(&r->mu);
	free(r->method);
	free(r->path);
	llm_buf_free(&r->body);
	free(r->ctype);
	free(r->rbody);
	for (size_t i = 0; i < r->nhdrs; i++) {
		free(r->hdrs[i].name);
		free(r->hdrs[i].value);
	}
	free(r->hdrs);
	llm_buf_free(&r->q);
	free(r);
}

void llm_httpd_req_ref(struct llm_httpd_req *r)
{
	atomic_fetch_add(&r->refs, 1);
}

void llm_httpd_req_unref(struct llm_httpd_req *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1)
		req_free(r);
}

const char *llm_httpd_method(const struct llm_httpd_req *r)
{
	return r->method;
}

const char *llm_httpd_path(const struct llm_httpd_req *r)
{
	return r->path;
}

const char *llm_httpd_header(const struct llm_httpd_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *llm_httpd_query(const struct llm_httpd_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *llm_httpd_body(const struct llm_httpd_req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return r->body.data ? r->body.data : "";
}

const char *llm_httpd_client(const struct llm_httpd_req *r)
{
	return r->client;
}

double llm_httpd_t0(const struct llm_httpd_req *r)
{
	return r->t0;
}

int llm_httpd_status(const struct llm_httpd_req *r)
{
	struct llm_httpd_req *m = (struct llm_httpd_req *)r;
	pthread_mutex_lock(&m->mu);
	int s = m->status;
	pthread_mutex_unlock(&m->mu);
	return s;
}

uint64_t llm_httpd_bytes_sent(const struct llm_httpd_req *r)
{
	return atomic_load(&((struct llm_httpd_req *)r)->sent);
}

void llm_httpd_set_data(struct llm_httpd_req *r, void *data,
			void (*on_close)(struct llm_httpd_req *r, void *data, bool completed))
{
	r->data = data;
	r->on_close = on_close;
}

void *llm_httpd_data(const struct llm_httpd_req *r)
{
	return r->data;
}

bool llm_httpd_req_ended(const struct llm_httpd_req *r)
{
	struct llm_httpd_req *m = (struct llm_httpd_req *)r;
	pthread_mutex_lock(&m->mu);
	bool e = m->ended || m->broken;
	pthread_mutex_unlock(&m->mu);
	return e;
}

/* With r->mu held: let libmicrohttpd go on with a connection we suspended. */
static void wake(struct llm_httpd_req *r)
{
	if (r->suspended && !r->stopping) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
}

/* --- answers ------------------------------------------------------------------------------ */

bool llm_httpd_add_header(struct llm_httpd_req *r, const char *name, const char *value)
{
	pthread_mutex_lock(&r->mu);
	bool ok = false;
	if (r->ans == ANS_NONE && !r->ended) {
		struct header *v = realloc(r->hdrs, (r->nhdrs + 1) * sizeof *v);
		if (v) {
			r->hdrs = v;
			v[r->nhdrs].name = strdup(name);
			v[r->nhdrs].value = strdup(value);
			if (v[r->nhdrs].name && v[r->nhdrs].value) {
				r->nhdrs++;
				ok = true;
			} else {
				free(v[r->nhdrs].name);
				free(v[r->nhdrs].value);
			}
		}
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

bool llm_httpd_reply(struct llm_httpd_req *r, int status, const char *content_type,
		     const char *body, size_t len)
{
	char *copy = malloc(len + 1);
	char *ct = strdup(content_type ? content_type : "text/plain; charset=utf-8");
	if (!copy || !ct) {
		free(copy);
		free(ct);
		return false;
	}
	if (len)
		memcpy(copy, body, len);
	copy[len] = '\0';
	pthread_mutex_lock(&r->mu);
	bool ok = r->ans == ANS_NONE && !r->ended;
	if (ok) {
		r->ans = ANS_READY;
		r->status = status;
		r->ctype = ct;
		r->rbody = copy;
		r->rlen = len;
		wake(r);
	}
	pthread_mutex_unlock(&r->mu);
	if (!ok) {
		free(copy);
		free(ct);
	}
	return ok;
}

bool llm_httpd_reply_json(struct llm_httpd_req *r, int status, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(10));
	if (!s)
		return false;
	bool ok = llm_httpd_reply(r, status, "application/json", s, strlen(s));
	free(s);
	return ok;
}

enum llm_err llm_httpd_error_body(struct llm_buf *out, const char *type, const char *code,
				  const char *message)
{
	llm_buf_clear(out);
	json_t *o = json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", message, "type", type,
			      "param", "code", code);
	if (o && !code)
		json_object_set_new(json_object_get(o, "error"), "code", json_null());
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return LLM_ERR_NOMEM;
	enum llm_err e = llm_buf_puts(out, s);
	free(s);
	return e;
}

bool llm_httpd_error(struct llm_httpd_req *r, int status, const char *type, const char *code,
		     const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	bool ok = llm_httpd_error_body(&b, type, code, msg) == LLM_OK &&
		  llm_httpd_reply(r, status, "application/json", b.data, b.len);
	llm_buf_free(&b);
	return ok;
}

bool llm_httpd_sse_start(struct llm_httpd_req *r)
{
	pthread_mutex_lock(&r->mu);
	bool ok = r->ans == ANS_NONE && !r->ended;
	if (ok) {
		r->ans = ANS_STREAM;
		r->status = 200;
		r->last_event = llm_httpd_now_ms();
		wake(r);
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

/* Queue stream bytes: a, then b (either may be empty). */
static bool push(struct llm_httpd_req *r, const char *a, size_t na, const char *b, size_t nb,
		 const char *c, size_t nc)
{
	pthread_mutex_lock(&r->mu);
	bool ok = r->ans == ANS_STREAM && !r->ended && !r->broken && !r->stream_end;
	if (ok) {
		size_t before = r->q.len;
		if (llm_buf_append(&r->q, a, na) || llm_buf_append(&r->q, b, nb) ||
		    llm_buf_append(&r->q, c, nc)) {
			/* A client that does not read (or memory ran out): drop the stream
			 * rather than hold its backlog. */
			r->q.len = before;
			r->broken = true;
			ok = false;
		}
		r->last_event = llm_httpd_now_ms();
		wake(r);
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

bool llm_httpd_sse_data(struct llm_httpd_req *r, const char *data, size_t len)
{
	return push(r, "data: ", 6, data, len, "\n\n", 2);
}

bool llm_httpd_sse_raw(struct llm_httpd_req *r, const char *bytes, size_t len)
{
	return push(r, bytes, len, "", 0, "", 0);
}

void llm_httpd_sse_end(struct llm_httpd_req *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->ans == ANS_STREAM) {
		r->stream_end = true;
		wake(r);
	}
	pthread_mutex_unlock(&r->mu);
}

/* --- libmicrohttpd callbacks -------------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct llm_httpd_req *r = cls;
	pthread_mutex_lock(&r->mu);
	ssize_t n;
	size_t have = r->q.len - r->qoff;
	if (r->broken || r->stopping) {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (have > 0) {
		size_t k = have < max ? have : max;
		memcpy(buf, r->q.data + r->qoff, k);
		r->qoff += k;
		if (r->qoff == r->q.len) {
			llm_buf_clear(&r->q);
			r->qoff = 0;
		}
		atomic_fetch_add(&r->sent, k);
		n = (ssize_t)k;
	} else if (r->stream_end) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		/* Nothing to send: sleep until a push (or a ping) wakes the connection.  Returning
		 * 0 without suspending would make libmicrohttpd ask again at once, forever. */
		r->suspended = true;
		MHD_suspend_connection(r->conn);
		n = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void stream_free(void *cls)
{
	llm_httpd_req_unref(cls);
}

static void add_headers(struct MHD_Response *resp, struct llm_httpd_req *r)
{
	for (size_t i = 0; i < r->nhdrs; i++)
		MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
}

/* With r->mu held: hand the answer to libmicrohttpd. */
static enum MHD_Result queue_answer(struct llm_httpd_req *r)
{
	struct MHD_Response *resp;
	if (r->ans == ANS_STREAM) {
		llm_httpd_req_ref(r); /* the response's */
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
							 stream_read, r, stream_free);
		if (!resp) {
			llm_httpd_req_unref(r);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		MHD_add_response_header(resp, "X-Accel-Buffering", "no");
		atomic_fetch_add(&r->h->streams, 1);
	} else {
		resp = MHD_create_response_from_buffer(r->rlen, r->rbody, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			return MHD_NO;
		r->rbody = NULL; /* libmicrohttpd frees it */
		atomic_fetch_add(&r->sent, r->rlen);
		MHD_add_response_header(resp, "Content-Type", r->ctype);
	}
	add_headers(resp, r);
	if (atomic_load(&r->h->quiescing))
		MHD_add_response_header(resp, "Connection", "close");
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	r->queued = true;
	return ret;
}

/* An answer the server gives itself, before any handler. */
static enum MHD_Result reject(struct llm_httpd_req *r, int status, const char *type,
			      const char *code, const char *msg)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (llm_httpd_error_body(&b, type, code, msg)) {
		llm_buf_free(&b);
		return MHD_NO;
	}
	r->reject = status;
	if (status == 503)
		llm_httpd_add_header(r, "Retry-After", "1");
	if (status == 405 && r->route && r->route->method)
		llm_httpd_add_header(r, "Allow", r->route->method);
	bool ok = llm_httpd_reply(r, status, "application/json", b.data, b.len);
	llm_buf_free(&b);
	if (!ok)
		return MHD_NO;
	pthread_mutex_lock(&r->mu);
	enum MHD_Result ret = queue_answer(r);
	pthread_mutex_unlock(&r->mu);
	return ret;
}

static bool route_matches_path(const struct route *rt, const char *path)
{
	return rt->prefix ? strncmp(path, rt->path, rt->plen) == 0 : strcmp(path, rt->path) == 0;
}

/* The route for a request; *path_only set when some route has the path but not the method. */
static const struct route *find_route(const struct llm_httpd *h, const char *method,
				      const char *path, const struct route **path_only)
{
	*path_only = NULL;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct route *rt = &h->routes[i];
		if (!route_matches_path(rt, path))
			continue;
		if (!rt->method || strcmp(rt->method, method) == 0)
			return rt;
		if (!*path_only)
			*path_only = rt;
	}
	return NULL;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	(void)kind;
	size_t *n = cls;
	*n += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static struct llm_httpd_req *new_req(struct llm_httpd *h, struct MHD_Connection *conn,
				     const char *url, const char *method)
{
	struct llm_httpd_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->h = h;
	r->conn = conn;
	atomic_init(&r->refs, 1); /* the server's, until the request ends */
	atomic_init(&r->sent, 0);
	pthread_mutex_init(&r->mu, NULL);
	r->t0 = llm_httpd_now_ms();
	r->method = strdup(method);
	r->path = strdup(url);
	llm_buf_init(&r->body, h->o.max_body);
	llm_buf_init(&r->q, h->o.max_stream_buffer);
	if (!r->method || !r->path) {
		req_free(r);
		return NULL;
	}
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET,
				  &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
				  r->client, sizeof r->client);
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
				  &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
				  r->client, sizeof r->client);
	}
	pthread_mutex_lock(&h->mu);
	r->stopping = h->stopping;
	r->next = h->live;
	if (h->live)
		h->live->prev = r;
	h->live = r;
	r->live = true;
	pthread_mutex_unlock(&h->mu);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct llm_httpd *h = cls;
	struct llm_httpd_req *r = *con_cls;
	if (!r) {
		/* The headers are in. */
		if (!(r = new_req(h, conn, url, method)))
			return MHD_NO;
		*con_cls = r;
		if (r->stopping)
			return MHD_NO;
		size_t hbytes = strlen(method) + strlen(url) + 16;
		MHD_get_connection_values(conn, MHD_HEADER_KIND, sum_header, &hbytes);
		const struct route *path_only;
		r->route = find_route(h, method, r->path, &path_only);
		if (atomic_load(&h->quiescing))
			return reject(r, 503, "unavailable", "shutting_down",
				      "the server is shutting down");
		if (hbytes > h->o.max_header)
			return reject(r, 431, "invalid_request_error", "headers_too_large",
				      "the request headers are too large");
		if (!r->route) {
			r->route = path_only;
			char msg[512];
			snprintf(msg, sizeof msg, "%s %.400s: %s", method, r->path,
				 path_only ? "method not allowed" : "no such route");
			return path_only
				   ? reject(r, 405, "invalid_request_error", "method_not_allowed",
					    msg)
				   : reject(r, 404, "invalid_request_error", "not_found", msg);
		}
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno || end == cl || n > h->o.max_body) {
				char msg[128];
				snprintf(msg, sizeof msg,
					 "the request body is larger than the limit of %zu bytes",
					 h->o.max_body);
				return reject(r, 413, "invalid_request_error", "request_too_large",
					      msg);
			}
		}
		return MHD_YES;
	}
	if (r->reject)
		return MHD_YES; /* answered; libmicrohttpd discards the rest */
	if (*upload_size) {
		if (!r->too_big && llm_buf_append(&r->body, upload, *upload_size))
			r->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->handled) {
		if (r->too_big) {
			char msg[128];
			snprintf(msg, sizeof msg,
				 "the request body is larger than the limit of %zu bytes",
				 h->o.max_body);
			return reject(r, 413, "invalid_request_error", "request_too_large", msg);
		}
		if (!r->body.data)
			llm_buf_reserve(&r->body, 1); /* "" rather than NULL for the handler */
		r->handled = true;
		atomic_fetch_add(&h->inflight, 1);
		r->route->handler(r, r->route->ctx);
	}
	/* After the handler, or called again after a resume. */
	enum MHD_Result ret = MHD_YES;
	pthread_mutex_lock(&r->mu);
	if (r->ans != ANS_NONE && !r->queued) {
		ret = queue_answer(r);
	} else if (!r->queued && !r->suspended) {
		if (r->stopping) {
			ret = MHD_NO; /* the server is going away: drop the connection */
		} else {
			r->suspended = true;
			MHD_suspend_connection(conn);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct llm_httpd *h = cls;
	struct llm_httpd_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	pthread_mutex_lock(&r->mu);
	r->ended = true;
	r->suspended = false;
	bool stream = r->ans == ANS_STREAM && r->queued;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_lock(&h->mu);
	if (r->live) {
		if (r->prev)
			r->prev->next = r->next;
		else
			h->live = r->next;
		if (r->next)
			r->next->prev = r->prev;
		r->live = false;
	}
	pthread_mutex_unlock(&h->mu);
	if (stream)
		atomic_fetch_sub(&h->streams, 1);
	if (r->handled) {
		if (r->on_close)
			r->on_close(r, r->data, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
		atomic_fetch_sub(&h->inflight, 1);
	} else if (r->reject && h->o.on_reject) {
		h->o.on_reject(h->o.on_reject_ctx, r);
	}
	llm_httpd_req_unref(r);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)conn;
	(void)socket_context;
	struct llm_httpd *h = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&h->conns, 1);
	else
		atomic_fetch_sub(&h->conns, 1);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	struct llm_httpd *h = cls;
	vsnprintf(h->last_error, sizeof h->last_error, fmt, ap);
	size_t n = strlen(h->last_error);
	while (n && (h->last_error[n - 1] == '\n' || h->last_error[n - 1] == '.'))
		h->last_error[--n] = '\0';
}

/* --- pings -------------------------------------------------------------------------------- */

static void *pinger(void *arg)
{
	struct llm_httpd *h = arg;
	double tick = h->o.ping_s < 2 ? h->o.ping_s / 2 : 1.0;
	pthread_mutex_lock(&h->mu);
	while (!h->stop_pinger) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + tick;
		ts.tv_sec = (time_t)t;
		ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&h->cond, &h->mu, &ts);
		if (h->stop_pinger)
			break;
		double now = llm_httpd_now_ms();
		for (struct llm_httpd_req *r = h->live; r; r = r->next) {
			pthread_mutex_lock(&r->mu);
			if (r->ans == ANS_STREAM && r->queued && !r->ended && !r->stream_end &&
			    !r->broken && r->q.len == r->qoff &&
			    now - r->last_event >= h->o.ping_s * 1000.0) {
				/* A comment: clients ignore it, proxies see traffic, and a
				 * write to a client that left fails, which ends the request. */
				if (llm_buf_puts(&r->q, ": ping\n\n") == LLM_OK)
					r->last_event = now;
				wake(r);
			}
			pthread_mutex_unlock(&r->mu);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* --- the server --------------------------------------------------------------------------- */

static enum llm_err read_pem(const char *path, char **out, struct llm_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(diag, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	struct llm_buf b;
	llm_buf_init(&b, 1u << 20);
	char chunk[4096];
	size_t n;
	enum llm_err e = LLM_OK;
	while (!e && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		e = llm_buf_append(&b, chunk, n);
	bool bad = ferror(f);
	fclose(f);
	if (e || bad || !b.len) {
		llm_buf_free(&b);
		return llm_diag_set(diag, LLM_ERR_IO, path, 0, "%s",
				    e	  ? "larger than 1 MiB"
				    : bad ? "cannot read"
					  : "empty");
	}
	*out = b.data;
	return LLM_OK;
}

enum llm_err llm_httpd_new(struct llm_httpd **out, const struct llm_httpd_opts *o,
			   struct llm_diag *diag)
{
	*out = NULL;
	if (o->threads < 1)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "threads must be at least 1");
	if (!o->tls_cert != !o->tls_key)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "TLS needs both a certificate and a key");
	if (o->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "this libmicrohttpd was built without TLS (GnuTLS): serve "
				    "plain HTTP behind a TLS-terminating proxy instead");
	struct llm_httpd *h = calloc(1, sizeof *h);
	if (!h)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	h->o = *o;
	h->quiesced_fd = MHD_INVALID_SOCKET;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->host = strdup(o->host ? o->host : "127.0.0.1");
	enum llm_err e =
	    h->host ? LLM_OK : llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	if (!e && o->tls_cert && !(e = read_pem(o->tls_cert, &h->cert, diag)))
		e = read_pem(o->tls_key, &h->key, diag);
	h->o.host = h->host;
	h->o.tls_cert = h->o.tls_key = NULL; /* the paths are the caller's; the texts are ours */
	if (e) {
		llm_httpd_free(h);
		return e;
	}
	*out = h;
	return LLM_OK;
}

enum llm_err llm_httpd_add_route(struct llm_httpd *h, const struct llm_httpd_route *route,
				 struct llm_diag *diag)
{
	if (!route->path || !route->handler)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "a route needs a path and a handler");
	struct route *v = realloc(h->routes, (h->nroutes + 1) * sizeof *v);
	if (!v)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	h->routes = v;
	struct route *rt = &v[h->nroutes];
	memset(rt, 0, sizeof *rt);
	size_t n = strlen(route->path);
	rt->prefix = n > 0 && route->path[n - 1] == '*';
	rt->plen = rt->prefix ? n - 1 : n;
	rt->path = strndup(route->path, rt->plen);
	rt->method = route->method ? strdup(route->method) : NULL;
	rt->handler = route->handler;
	rt->ctx = route->ctx;
	if (!rt->path || (route->method && !rt->method)) {
		free(rt->path);
		free(rt->method);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	h->nroutes++;
	return LLM_OK;
}

enum llm_err llm_httpd_start(struct llm_httpd *h, struct llm_diag *diag)
{
	char port[16];
	snprintf(port, sizeof port, "%d", h->o.port);
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(h->host, port, &hints, &ai);
	if (gai != 0 || !ai)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "cannot listen on '%s': %s",
				    h->host, gai ? gai_strerror(gai) : "no address");
	struct sockaddr_storage addr;
	memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
	bool v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);

	unsigned flags =
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	if (h->cert)
		flags |= MHD_USE_TLS;
	size_t memory = h->o.max_header + CONN_MEMORY_EXTRA;
	struct MHD_OptionItem opts[16];
	int k = 0;
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h};
	opts[k++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_log, h};
	opts[k++] =
	    (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)memory, NULL};
	opts[k++] =
	    (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)h->o.timeout_s, NULL};
	if (h->o.threads > 1)
		opts[k++] =
		    (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, h->o.threads, NULL};
	if (h->o.max_connections)
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
						    (intptr_t)h->o.max_connections, NULL};
	if (h->cert) {
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert};
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->key};
	}
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	h->last_error[0] = '\0';
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
				MHD_OPTION_END);
	if (!h->d)
		return llm_diag_set(diag, LLM_ERR_IO, NULL, 0, "cannot listen on %s port %d: %s",
				    h->host, h->o.port,
				    h->last_error[0] ? h->last_error : "the server did not start");
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : h->o.port;
	if (h->o.ping_s > 0) {
		h->stop_pinger = false;
		if (pthread_create(&h->pinger, NULL, pinger, h) == 0)
			h->pinger_on = true;
	}
	return LLM_OK;
}

int llm_httpd_port(const struct llm_httpd *h)
{
	return h->port;
}

void llm_httpd_quiesce(struct llm_httpd *h)
{
	if (atomic_exchange(&h->quiescing, true) || !h->d)
		return;
	h->quiesced_fd = MHD_quiesce_daemon(h->d);
	/* libmicrohttpd no longer accepts on it, but the kernel would still complete connections
	 * into its backlog, and those clients would hang: refuse them.  (The descriptor itself
	 * is closed only after the threads are gone, as libmicrohttpd asks.) */
	if (h->quiesced_fd != MHD_INVALID_SOCKET)
		shutdown(h->quiesced_fd, SHUT_RDWR);
}

size_t llm_httpd_inflight(const struct llm_httpd *h)
{
	return atomic_load(&((struct llm_httpd *)h)->inflight);
}

size_t llm_httpd_connections(const struct llm_httpd *h)
{
	return atomic_load(&((struct llm_httpd *)h)->conns);
}

size_t llm_httpd_streams(const struct llm_httpd *h)
{
	return atomic_load(&((struct llm_httpd *)h)->streams);
}

void llm_httpd_free(struct llm_httpd *h)
{
	if (!h)
		return;
	if (h->pinger_on) {
		pthread_mutex_lock(&h->mu);
		h->stop_pinger = true;
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->pinger, NULL);
	}
	if (h->d) {
		/* libmicrohttpd refuses to stop with connections suspended: resume them all, and
		 * let no other thread suspend or resume one after that. */
		pthread_mutex_lock(&h->mu);
		h->stopping = true;
		for (struct llm_httpd_req *r = h->live; r; r = r->next) {
			pthread_mutex_lock(&r->mu);
			if (r->suspended) {
				r->suspended = false;
				MHD_resume_connection(r->conn);
			}
			r->stopping = true;
			pthread_mutex_unlock(&r->mu);
		}
		pthread_mutex_unlock(&h->mu);
		MHD_stop_daemon(h->d);
		if (h->quiesced_fd != MHD_INVALID_SOCKET)
			close(h->quiesced_fd);
	}
	for (size_t i = 0; i < h->nroutes; i++) {
		free(h->routes[i].path);
		free(h->routes[i].method);
	}
	free(h->routes);
	free(h->host);
	if (h->key)
		explicit_bzero(h->key, strlen(h->key));
	free(h->key);
	free(h->cert);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
