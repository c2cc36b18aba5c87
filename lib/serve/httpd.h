/* The HTTP layer of llm-serve: HTTP/1.1 on libmicrohttpd (epoll, a pool of threads, suspended
 * connections for answers that are not ready yet), routes by method and path, request bodies
 * with a cap, answers in JSON (errors in the OpenAI shape) and server-sent event streams fed
 * from any thread.
 *
 * The life of a request:
 *   1. The headers arrive.  A path no route has is answered 404, a route with another method
 *      405, a Content-Length over max_body 413 before the body is read, a server that is
 *      draining (llm_httpd_quiesce) 503; headers over max_header are refused by
 *      libmicrohttpd itself (431).
 *   2. The body is read into memory (a chunked body that passes max_body: 413).
 *   3. The route's handler runs, on one of the server's threads, with the whole body.  It
 *      answers with one of the llm_httpd_reply* functions, or starts an event stream; or it
 *      hands the request to other work (taking a reference) and returns, and the answer comes
 *      later from that work's thread.  Meanwhile the connection is suspended: no thread spins
 *      on it.
 *   4. An event stream is a queue of bytes per request: any thread appends (llm_httpd_sse_*),
 *      the server writes them out as the socket takes them, suspending the connection while
 *      the queue is empty and resuming it when something is appended.  A ": ping" comment
 *      goes out after ping_s seconds without an event, so proxies keep the stream open and a
 *      client that went away is noticed (a suspended connection cannot notice it otherwise).
 *   5. When the request ends, the close callback (llm_httpd_set_data) runs once: completed
 *      when the whole answer went out, not completed when the client went away, timed out, or
 *      the server stopped.  That is where work for a client that left is cancelled.  After the
 *      request ended, replies and pushes do nothing and return false.
 *
 * The request object lives while the server or a holder of a reference needs it: a handler
 * that answers later calls llm_httpd_req_ref and, when done with it, llm_httpd_req_unref.
 *
 * Nothing here prints or exits. */
#ifndef LLM_SERVE_HTTPD_H
#define LLM_SERVE_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_httpd;
struct llm_httpd_req;

struct llm_httpd_opts {
	const char *host;	  /* the address to listen on: IPv4 or IPv6 text; NULL: 127.0.0.1 */
	int port;		  /* 0: any free port (llm_httpd_port says which) */
	int threads;		  /* threads of the pool, each with its own epoll; >= 1 */
	size_t max_body;	  /* a larger request body is answered 413 */
	size_t max_header;	  /* the request line and headers of one request (431 beyond) */
	unsigned max_connections; /* open connections; 0: libmicrohttpd's default */
	unsigned timeout_s; /* a connection idle this long (a slow client) is closed; 0: never.
			     * Counts while the server waits on the client, not on itself */
	double ping_s;	    /* event streams: ": ping" after this long without an event; 0: no */
	size_t max_stream_buffer; /* event streams: bytes queued for a client that does not read;
				   * past it the stream is dropped (the client is gone for us) */
	const char *tls_cert;	  /* PEM certificate chain file; with tls_key, serve HTTPS */
	const char *tls_key;	  /* PEM private key file */
	/* Called for each request the server answers itself, without a handler (404, 405, 413,
	 * 503 while draining), once it has ended: for the access log and the metrics.  The
	 * request's method, path, client, t0 and status can be read; NULL: not called. */
	void (*on_reject)(void *ctx, struct llm_httpd_req *r);
	void *on_reject_ctx;
};

/* Defaults: 127.0.0.1, port 0, 4 threads, max_body 8 MiB, max_header 32 KiB, connections 0,
 * timeout 60 s, ping 15 s, stream buffer 16 MiB, no TLS. */
void llm_httpd_opts_init(struct llm_httpd_opts *o);

/* A route's handler.  It runs once per request, on a server thread, after the body is in. */
struct llm_httpd_route {
	const char *method; /* "GET", "POST", ...; NULL for any */
	const char *path;   /* the exact path (no query); a path ending in '*' matches the
			     * paths that start with what comes before the '*' */
	void (*handler)(struct llm_httpd_req *r, void *ctx);
	void *ctx;
};

/* Make a server (nothing listens yet).  LLM_ERR_USAGE when the options cannot work (threads
 * < 1, one of tls_cert/tls_key without the other, TLS with a libmicrohttpd built without
 * GnuTLS); LLM_ERR_IO naming the file when a TLS file cannot be read. */
enum llm_err llm_httpd_new(struct llm_httpd **out, const struct llm_httpd_opts *o,
			   struct llm_diag *diag);

/* Add a route (copied).  The first route that matches a request's path and method wins;
 * call before llm_httpd_start. */
enum llm_err llm_httpd_add_route(struct llm_httpd *h, const struct llm_httpd_route *route,
				 struct llm_diag *diag);

/* Listen and serve on the server's own threads.  LLM_ERR_IO when the address cannot be bound
 * (in use, not local), with the reason. */
enum llm_err llm_httpd_start(struct llm_httpd *h, struct llm_diag *diag);

/* The port listened on (after llm_httpd_start), the one chosen when opts.port was 0. */
int llm_httpd_port(const struct llm_httpd *h);

/* Stop taking new connections and new requests (503 "shutting_down" with Connection: close on
 * connections already open); requests under way go on.  For a graceful shutdown: quiesce,
 * wait until llm_httpd_inflight is 0, then llm_httpd_free. */
void llm_httpd_quiesce(struct llm_httpd *h);

/* Requests whose handler has run (or is running) and that have not ended yet. */
size_t llm_httpd_inflight(const struct llm_httpd *h);
/* Open connections, and event streams under way. */
size_t llm_httpd_connections(const struct llm_httpd *h);
size_t llm_httpd_streams(const struct llm_httpd *h);

/* Stop listening, end every open request (their close callbacks run, not completed) and free
 * the server.  Requests still referenced elsewhere are freed with their last reference. */
void llm_httpd_free(struct llm_httpd *h);

/* --- a request ------------------------------------------------------------------------------ */

/* The method and the path (without the query, percent-decoded as libmicrohttpd does). */
const char *llm_httpd_method(const struct llm_httpd_req *r);
const char *llm_httpd_path(const struct llm_httpd_req *r);
/* A request header (case-insensitive name) or a query argument; NULL when absent.  Valid in
 * the handler only: copy what later work needs. */
const char *llm_httpd_header(const struct llm_httpd_req *r, const char *name);
const char *llm_httpd_query(const struct llm_httpd_req *r, const char *name);
/* The body (NUL-terminated; "" when none); valid while the request lives. */
const char *llm_httpd_body(const struct llm_httpd_req *r, size_t *len);
/* The client's address as text ("127.0.0.1", "::1"). */
const char *llm_httpd_client(const struct llm_httpd_req *r);
/* When the request's headers arrived, in CLOCK_MONOTONIC milliseconds. */
double llm_httpd_t0(const struct llm_httpd_req *r);
/* The monotonic clock in milliseconds, the same as llm_httpd_t0's. */
double llm_httpd_now_ms(void);

/* The status answered (0 while none was), and the bytes of the body or stream sent so far
 * (queued for the socket). */
int llm_httpd_status(const struct llm_httpd_req *r);
uint64_t llm_httpd_bytes_sent(const struct llm_httpd_req *r);

/* Attach the caller's state, and a callback that runs once when the request ends (on a server
 * thread, or in llm_httpd_free): completed is true when the whole answer was sent, false when
 * the client went away, timed out, or the server stopped first.  The callback must not block
 * on work that waits for the server's threads.  Set it from the handler. */
void llm_httpd_set_data(struct llm_httpd_req *r, void *data,
			void (*on_close)(struct llm_httpd_req *r, void *data, bool completed));
void *llm_httpd_data(const struct llm_httpd_req *r);

/* Keep the request alive past the handler; every ref needs its unref (from any thread). */
void llm_httpd_req_ref(struct llm_httpd_req *r);
void llm_httpd_req_unref(struct llm_httpd_req *r);

/* The request has ended (answered in full, or the client went away): further work for it is
 * wasted. */
bool llm_httpd_req_ended(const struct llm_httpd_req *r);

/* --- answering (from any thread, once per request) ------------------------------------------ */

/* Add a header to the answer to come ("Retry-After", "x-request-id").  False when the answer
 * was already given or memory ran out. */
bool llm_httpd_add_header(struct llm_httpd_req *r, const char *name, const char *value);

/* Answer with a body (copied).  False when the request was already answered or has ended. */
bool llm_httpd_reply(struct llm_httpd_req *r, int status, const char *content_type,
		     const char *body, size_t len);
/* Answer with a JSON value (compact; application/json). */
bool llm_httpd_reply_json(struct llm_httpd_req *r, int status, const json_t *v);
/* Answer with an error in the OpenAI shape:
 *     {"error": {"message": "...", "type": TYPE, "param": null, "code": CODE}}
 * code NULL gives a null code. */
bool llm_httpd_error(struct llm_httpd_req *r, int status, const char *type, const char *code,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same error body, into out (cleared first), for a stream's error event or a log. */
enum llm_err llm_httpd_error_body(struct llm_buf *out, const char *type, const char *code,
				  const char *message);

/* --- event streams ------------------------------------------------------------------------- */

/* Answer 200 with Content-Type text/event-stream (no caching, no proxy buffering); the events
 * follow.  False when the request was already answered or has ended. */
bool llm_httpd_sse_start(struct llm_httpd_req *r);
/* Queue one event "data: DATA\n\n" (data must hold no newline: compact JSON).  False when the
 * client is gone or its buffer is full: stop producing. */
bool llm_httpd_sse_data(struct llm_httpd_req *r, const char *data, size_t len);
/* Queue bytes as they are (events already framed, e.g. relayed from an upstream stream). */
bool llm_httpd_sse_raw(struct llm_httpd_req *r, const char *bytes, size_t len);
/* End the stream once what is queued has gone out. */
void llm_httpd_sse_end(struct llm_httpd_req *r);

#endif
