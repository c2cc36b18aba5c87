#!/usr/bin/python3
"""A small OpenAI-compatible server for the tests, standard library only.

    fake-openai.py [--port-file FILE] [--log FILE] [--key KEY]

Listens on 127.0.0.1 on a free port; prints the port as the first line of standard output
and, with --port-file, writes it to FILE (atomically: poll until the file exists).  Stop it
with SIGTERM.

Endpoints
  POST /v1/chat/completions, POST /v1/completions
      The answer is "echo: " + PROMPT, where PROMPT is the last user message (chat; a list of
      content parts is joined) or the prompt (completions; the first one of a list).  It is cut
      into pieces at word starts (each piece a word with the blanks before it); a piece counts
      as a token.  usage: prompt_tokens = words of PROMPT, completion_tokens = pieces sent.
      max_tokens (or max_completion_tokens) cuts the pieces, and then finish_reason is
      "length", else "stop".  n > 1 gives n identical choices.  "model" is echoed (default
      "fake-model"); id "chatcmpl-fake-N" or "cmpl-fake-N"; created 1700000000.
      logprobs: chat with "logprobs": true gets {"content": [{token, logprob, bytes,
      top_logprobs: []}]}; completions with "logprobs": K gets tokens / token_logprobs /
      top_logprobs / text_offset; piece i has logprob -(i+1)/8.
      "stream": true answers server-sent events (chunked transfer): a first chunk with the
      role, one chunk per piece, a chunk with finish_reason, the usage chunk (empty choices)
      when stream_options.include_usage is true, then "data: [DONE]".
  GET /stats
      {"requests": N, "attempts": {PROMPT: n}, "times": {PROMPT: [t, ...]}, "max_inflight": n,
       "auth_failures": n}; times are time.monotonic() at each attempt's arrival.
  GET /v1/models
      One model, "fake-model".

With --key KEY every completion request must carry "Authorization: Bearer KEY", else 401
with code "invalid_api_key".  With --log FILE each completion request appends one JSON line:
{"path", "prompt", "attempt", "stream", "model", "auth": "ok"|"missing"|"wrong"|"unchecked",
"include_usage", "t"}; the key itself is never written.

Fault modes: markers in PROMPT, words of the form @NAME, @NAME=VALUE, @NAME*K or
@NAME=VALUE*K.  The attempts are counted per PROMPT (so give each case its own prompt, or
start a fresh server); *K applies a marker to the first K attempts only, without it to every
attempt.
  @status=CODE       answer HTTP CODE with an OpenAI error body: 429 rate_limit_exceeded
                     (type "requests"), 5xx type "server_error" (no code), others
                     "invalid_request_error" with code "fake_CODE"
  @quota             answer 429 with type and code "insufficient_quota"
  @retry-after=V     add "retry-after: V" to error answers; V "date+S" sends an HTTP date S
                     seconds ahead
  @retry-after-ms=V  add "retry-after-ms: V"
  @should-retry=V    add "x-should-retry: V"
  @drop=before       close the connection before the first token: streamed, after the
                     headers and the role chunk; not streamed, after the headers and a few
                     bytes of a body they announced as 1000 bytes long
  @drop=after        streamed: close the connection after the first token (not streamed:
                     as before)
  @error-event       streamed: after the first token, an event {"error": {...}} (type
                     "server_error"), then the stream ends cleanly without [DONE]
  @truncate          streamed: end the stream cleanly after the first token, with neither
                     a finish_reason nor [DONE]
  @no-done           streamed: everything but the final "data: [DONE]"
  @slow=SECONDS      wait this long before answering
  @hold=N            wait (at most 10 s) until N requests carrying @hold=N have arrived, so
                     they were all in flight at once; after a timeout the answer is
                     "barrier timeout" instead of the echo
  @crlf              streamed: CRLF line ends, and a ": ping" comment before every event
  @usage=N           report N completion tokens (the text is the same)
"""
import argparse
import email.utils
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Condition()
STATE = {
    "requests": 0,
    "attempts": {},
    "times": {},
    "inflight": 0,
    "max_inflight": 0,
    "auth_failures": 0,
    "holds": {},
    "ids": 0,
}
ARGS = None
MARKER = re.compile(r"@([a-z-]+)(?:=([^\s*]+))?(?:\*(\d+))?")


def prompt_of(path, body):
    if path.endswith("/chat/completions"):
        for m in reversed(body.get("messages") or []):
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, list):
                    return "".join(p.get("text", "") for p in c if isinstance(p, dict))
                return c if isinstance(c, str) else ""
        return ""
    p = body.get("prompt", "")
    if isinstance(p, list):
        p = p[0] if p and isinstance(p[0], str) else ""
    return p if isinstance(p, str) else ""


def markers(prompt, attempt):
    """The markers that apply to this attempt: {name: value or True}."""
    out = {}
    for name, value, k in MARKER.findall(prompt):
        if k and attempt > int(k):
            continue
        out[name] = value if value else True
    return out


def pieces_of(text):
    return re.findall(r"\s*\S+", text) or [text]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # quiet: the tests read /stats and --log
        pass

    # --- plumbing -----------------------------------------------------------------------

    def answered(self):
        """No longer in flight: said before the last bytes go out, so that a client that
        sends its next request as soon as it has this answer never sees two in flight."""
        if getattr(self, "inflight", False):
            self.inflight = False
            with LOCK:
                STATE["inflight"] -= 1

    def send_json(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.answered()
        self.wfile.write(data)
        self.wfile.flush()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def drop(self):
        """Close the connection without finishing the response."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # --- endpoints ----------------------------------------------------------------------

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                out = {k: STATE[k] for k in ("requests", "attempts", "times", "max_inflight", "auth_failures")}
                self.send_json(200, json.loads(json.dumps(out)))
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "no such route", "type": "invalid_request_error", "code": None}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self.send_json(404, {"error": {"message": "no such route", "type": "invalid_request_error", "code": None}})
            return
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except Exception:
            self.send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error", "code": None}})
            return
        with LOCK:
            STATE["inflight"] += 1
            STATE["max_inflight"] = max(STATE["max_inflight"], STATE["inflight"])
        self.inflight = True
        try:
            self.complete(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.answered()

    def complete(self, body):
        chat = self.path.endswith("/chat/completions")
        prompt = prompt_of(self.path, body)
        auth = "unchecked"
        if ARGS.key is not None:
            got = self.headers.get("Authorization")
            auth = "missing" if got is None else ("ok" if got == "Bearer " + ARGS.key else "wrong")
        stream = body.get("stream") is True
        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        with LOCK:
            STATE["requests"] += 1
            attempt = STATE["attempts"].get(prompt, 0) + 1
            STATE["attempts"][prompt] = attempt
            STATE["times"].setdefault(prompt, []).append(time.monotonic())
            STATE["ids"] += 1
            rid = STATE["ids"]
            if auth in ("missing", "wrong"):
                STATE["auth_failures"] += 1
            if ARGS.log:
                with open(ARGS.log, "a") as f:
                    f.write(json.dumps({"path": self.path, "prompt": prompt, "attempt": attempt,
                                        "stream": stream, "model": body.get("model"), "auth": auth,
                                        "include_usage": include_usage, "t": time.monotonic()}) + "\n")
        if auth in ("missing", "wrong"):
            self.send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "param": None, "code": "invalid_api_key"}})
            return
        mk = markers(prompt, attempt)
        if "slow" in mk:
            time.sleep(float(mk["slow"]))
        text = "echo: " + prompt
        if "hold" in mk:
            n = int(mk["hold"])
            with LOCK:
                STATE["holds"][n] = STATE["holds"].get(n, 0) + 1
                LOCK.notify_all()
                if not LOCK.wait_for(lambda: STATE["holds"][n] >= n, timeout=10):
                    text = "barrier timeout"
        if "quota" in mk or "status" in mk:
            self.error_answer(mk)
            return
        if "drop" in mk and not stream:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"id\": \"cut")
            self.drop()
            return

        pieces = pieces_of(text)
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        finish = "stop"
        if isinstance(limit, int) and limit < len(pieces):
            pieces = pieces[:max(limit, 0)]
            finish = "length"
        n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") > 0 else 1
        model = body.get("model") or "fake-model"
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(pieces) * n}
        if "usage" in mk:
            usage["completion_tokens"] = int(mk["usage"])
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        want_lp = body.get("logprobs")
        want_lp = (want_lp is True) if chat else isinstance(want_lp, int) and not isinstance(want_lp, bool)
        base = {"id": ("chatcmpl-fake-%d" if chat else "cmpl-fake-%d") % rid,
                "created": 1700000000, "model": model, "system_fingerprint": "fp_fake"}
        if stream:
            self.stream_answer(chat, base, pieces, finish, n, usage if include_usage else None, want_lp, mk)
            return
        choices = []
        for i in range(n):
            c = {"index": i}
            out = "".join(pieces)
            if chat:
                c["message"] = {"role": "assistant", "content": out}
            else:
                c["text"] = out
            c["logprobs"] = logprobs(chat, pieces, 0) if want_lp else None
            c["finish_reason"] = finish
            choices.append(c)
        resp = dict(base, object="chat.completion" if chat else "text_completion", choices=choices, usage=usage)
        self.send_json(200, resp)

    def error_answer(self, mk):
        if "quota" in mk:
            status = 429
            err = {"message": "You exceeded your current quota (fake)", "type": "insufficient_quota",
                   "param": None, "code": "insufficient_quota"}
        else:
            status = int(mk["status"])
            if status == 429:
                err = {"message": "Rate limit reached (fake)", "type": "requests", "param": None,
                       "code": "rate_limit_exceeded"}
            elif status >= 500:
                err = {"message": "The server had an error (fake)", "type": "server_error", "param": None,
                       "code": None}
            else:
                err = {"message": "fake error %d" % status, "type": "invalid_request_error", "param": None,
                       "code": "fake_%d" % status}
        headers = []
        ra = mk.get("retry-after")
        if isinstance(ra, str):
            if ra.startswith("date+"):
                ra = email.utils.formatdate(time.time() + float(ra[5:]), usegmt=True)
            headers.append(("retry-after", ra))
        if isinstance(mk.get("retry-after-ms"), str):
            headers.append(("retry-after-ms", mk["retry-after-ms"]))
        if isinstance(mk.get("should-retry"), str):
            headers.append(("x-should-retry", mk["should-retry"]))
        self.send_json(status, {"error": err}, headers)

    def stream_answer(self, chat, base, pieces, finish, n, usage, want_lp, mk):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        eol = b"\r\n" if "crlf" in mk else b"\n"
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(payload):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            head = b": ping" + eol if "crlf" in mk else b""
            self.chunk(head + b"data: " + data + eol + eol)

        def choice(i, piece=None, role=False, fin=None, lp_index=0):
            if chat:
                delta = {}
                if role:
                    delta = {"role": "assistant", "content": ""}
                elif piece is not None:
                    delta = {"content": piece}
                c = {"index": i, "delta": delta}
            else:
                c = {"index": i, "text": piece or ""}
            offset = sum(len(p) for p in pieces[:lp_index])
            c["logprobs"] = logprobs(chat, [piece], lp_index, offset) if (want_lp and piece is not None) else None
            c["finish_reason"] = fin
            return c

        if chat:
            event(dict(base, object=obj, choices=[choice(i, role=True) for i in range(n)]))
        if mk.get("drop") == "before" or (mk.get("drop") and not pieces):
            self.drop()
            return
        for k, piece in enumerate(pieces):
            event(dict(base, object=obj, choices=[choice(i, piece=piece, lp_index=k) for i in range(n)]))
            if k == 0:
                if mk.get("drop"):
                    self.drop()
                    return
                if "error-event" in mk:
                    event({"error": {"message": "fake failure in the middle of the stream", "type": "server_error",
                                     "param": None, "code": None}})
                    self.chunk(b"")
                    return
                if "truncate" in mk:
                    self.chunk(b"")
                    return
        event(dict(base, object=obj, choices=[choice(i, fin=finish) for i in range(n)]))
        if usage is not None:
            event(dict(base, object=obj, choices=[], usage=usage))
        if "no-done" not in mk:
            event(b"[DONE]")
        self.answered()
        self.chunk(b"")


def logprobs(chat, pieces, start, offset=0):
    lps = [-(start + i + 1) / 8 for i in range(len(pieces))]
    if chat:
        return {"content": [{"token": p, "logprob": lp, "bytes": list(p.encode()), "top_logprobs": []}
                            for p, lp in zip(pieces, lps)]}
    offsets, pos = [], offset
    for p in pieces:
        offsets.append(pos)
        pos += len(p)
    return {"tokens": pieces, "token_logprobs": lps,
            "top_logprobs": [{p: lp} for p, lp in zip(pieces, lps)], "text_offset": offsets}


def main():
    global ARGS
    ap = argparse.ArgumentParser(description="a fake OpenAI-compatible server for tests")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--key")
    ARGS = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    print(port, flush=True)
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, ARGS.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
