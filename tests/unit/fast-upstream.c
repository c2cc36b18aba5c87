/* A fast OpenAI-compatible upstream for the gateway's tests and benchmarks, on libmicrohttpd.
 *
 *     fast-upstream [--port N] [--port-file FILE] [--threads N]
 *
 * Listens on 127.0.0.1 (port 0: a free one, printed on stdout and written to FILE).  Python's
 * http.server answers a few thousand requests a second; this answers tens of thousands, so a
 * benchmark measures the gateway rather than the upstream.
 *
 *   POST /v1/chat/completions, /v1/completions
 *       A fixed answer, "fast answer" (finish_reason "stop", usage 5 + 2 tokens), whatever
 *       was asked; with "stream": true in the body, server-sent events: a role chunk (chat),
 *       the two words, a finish_reason chunk, a usage chunk when the body has
 *       "include_usage": true, and [DONE].  A body containing @slowstream streams a word
 *       every 100 ms, 600 of them: a client that goes away is seen (the "aborted" count)
 *       long before the stream would end.
 *   GET /v1/models, GET /health     200 (counted as probes)
 *   GET /stats                      {"completions","streams","probes","aborted","sick"}
 *
 * SIGUSR1 toggles "sick": every answer but /stats is then 503 with an OpenAI error body, probes
 * included.  SIGTERM or SIGINT stops it. */
#include "config.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#define BODY_KEEP  (64u << 10)
#define SLOW_WORDS 600

static atomic_ulong n_completions, n_streams, n_probes, n_aborted;
static atomic_bool sick;
static volatile sig_atomic_t stop_flag;

static const char chat_answer[] =
    "{\"id\":\"chatcmpl-fast\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"fast-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"fast answer\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}";
static const char text_answer[] =
    "{\"id\":\"cmpl-fast\",\"object\":\"text_completion\",\"created\":1700000000,"
    "\"model\":\"fast-model\",\"choices\":[{\"index\":0,\"text\":\"fast answer\","
    "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}";
static const char sick_answer[] =
    "{\"error\":{\"message\":\"the fast upstream is sick\",\"type\":\"server_error\","
    "\"param\":null,\"code\":null}}";

struct conn {
	char body[BODY_KEEP + 1];
	size_t len;
	bool is_stream; /* an answer streamed: its end is counted */
	bool chat, slow, usage;
	int step; /* the next event to send */
	char event[512];
	size_t event_len, event_off;
};

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		atomic_store(&sick, !atomic_load(&sick));
	else
		stop_flag = 1;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
				 const char *text)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The next event of a stream into k->event; false at the end. */
static bool next_event(struct conn *k)
{
	const char *obj = k->chat ? "chat.completion.chunk" : "text_completion";
	char choice[160];
	int words = k->slow ? SLOW_WORDS : 2;
	int s = k->step++;
	if (k->chat && s == 0) {
		snprintf(choice, sizeof choice,
			 "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
			 "\"finish_reason\":null}");
	} else {
		int w = s - (k->chat ? 1 : 0);
		if (w < words) {
			const char *word = w == 0 ? "fast" : " answer";
			if (k->chat)
				snprintf(choice, sizeof choice,
					 "{\"index\":0,\"delta\":{\"content\":\"%s\"},"
					 "\"finish_reason\":null}",
					 word);
			else
				snprintf(choice, sizeof choice,
					 "{\"index\":0,\"text\":\"%s\",\"finish_reason\":null}",
					 word);
		} else if (w == words) {
			snprintf(choice, sizeof choice,
				 k->chat
				     ? "{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}"
				     : "{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}");
		} else if (w == words + 1 && k->usage) {
			k->event_len = (size_t)snprintf(
			    k->event, sizeof k->event,
			    "data: {\"id\":\"fast\",\"object\":\"%s\",\"created\":1700000000,"
			    "\"model\":\"fast-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":"
			    "5,"
			    "\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
			    obj, words, words + 5);
			k->event_off = 0;
			return true;
		} else if (w == words + 1 + (k->usage ? 1 : 0)) {
			k->event_len =
			    (size_t)snprintf(k->event, sizeof k->event, "data: [DONE]\n\n");
			k->event_off = 0;
			return true;
		} else {
			return false;
		}
	}
	k->event_len = (size_t)snprintf(k->event, sizeof k->event,
					"data: {\"id\":\"fast\",\"object\":\"%s\",\"created\":"
					"1700000000,\"model\":\"fast-model\",\"choices\":[%s]}\n\n",
					obj, choice);
	k->event_off = 0;
	return true;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct conn *k = cls;
	if (k->event_off == k->event_len) {
		if (k->slow && k->step > 1) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (!next_event(k))
			return MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t n = k->event_len - k->event_off;
	if (n > max)
		n = max;
	memcpy(buf, k->event + k->event_off, n);
	k->event_off += n;
	return (ssize_t)n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)version;
	struct conn *k = *con_cls;
	if (!k) {
		k = calloc(1, sizeof *k);
		if (!k)
			return MHD_NO;
		*con_cls = k;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t room = BODY_KEEP - k->len;
		size_t n = *upload_size < room ? *upload_size : room;
		memcpy(k->body + k->len, upload, n);
		k->len += n;
		*upload_size = 0;
		return MHD_YES;
	}
	k->body[k->len] = '\0';
	if (!strcmp(method, "GET") && !strcmp(url, "/stats")) {
		char text[256];
		snprintf(text, sizeof text,
			 "{\"completions\":%lu,\"streams\":%lu,\"probes\":%lu,\"aborted\":%lu,"
			 "\"sick\":%s}",
			 atomic_load(&n_completions), atomic_load(&n_streams),
			 atomic_load(&n_probes), atomic_load(&n_aborted),
			 atomic_load(&sick) ? "true" : "false");
		struct MHD_Response *r =
		    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, "Content-Type", "application/json");
		enum MHD_Result ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	bool chat = !strcmp(url, "/v1/chat/completions");
	bool completion = chat || !strcmp(url, "/v1/completions");
	bool probe = !strcmp(url, "/v1/models") || !strcmp(url, "/health");
	if (probe && !strcmp(method, "GET")) {
		atomic_fetch_add(&n_probes, 1);
		if (atomic_load(&sick))
			return send_text(c, 503, "application/json", sick_answer);
		return send_text(c, 200, "application/json",
				 "{\"object\":\"list\",\"data\":[{\"id\":\"fast-model\","
				 "\"object\":\"model\"}]}");
	}
	if (!completion || strcmp(method, "POST"))
		return send_text(
		    c, 404, "application/json",
		    "{\"error\":{\"message\":\"no such route\","
		    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
	atomic_fetch_add(&n_completions, 1);
	if (atomic_load(&sick))
		return send_text(c, 503, "application/json", sick_answer);
	bool stream = strstr(k->body, "\"stream\":true") || strstr(k->body, "\"stream\": true");
	if (!stream)
		return send_text(c, 200, "application/json", chat ? chat_answer : text_answer);
	atomic_fetch_add(&n_streams, 1);
	k->is_stream = true;
	k->chat = chat;
	k->slow = strstr(k->body, "@slowstream") != NULL;
	k->usage =
	    strstr(k->body, "\"include_usage\":true") || strstr(k->body, "\"include_usage\": true");
	struct MHD_Response *r =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, k, NULL);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	struct conn *k = *con_cls;
	if (!k)
		return;
	if (k->is_stream && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		atomic_fetch_add(&n_aborted, 1);
	free(k);
	*con_cls = NULL;
}

int main(int argc, char **argv)
{
	int port = 0;
	unsigned threads = 2;
	const char *port_file = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
			port_file = argv[++i];
		else {
			fprintf(stderr, "usage: fast-upstream [--port N] [--port-file FILE] "
					"[--threads N]\n");
			return 2;
		}
	}
	if (threads < 1)
		threads = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 10000U,
	    MHD_OPTION_CONNECTION_TIMEOUT, 120U, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "fast-upstream: cannot listen\n");
		return 3;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	int bound = info ? info->port : port;
	printf("%d\n", bound);
	fflush(stdout);
	if (port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", bound) < 0 || fclose(f) != 0 ||
		    rename(tmp, port_file)) {
			fprintf(stderr, "fast-upstream: cannot write %s\n", port_file);
			MHD_stop_daemon(d);
			return 3;
		}
	}
	while (!stop_flag)
		pause();
	MHD_stop_daemon(d);
	return 0;
}
