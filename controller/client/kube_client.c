/* kube_client.c — REST calls on one curl multi handle driven by the loop.
 *
 * A call moves through: QUEUED (waiting for a token) → RUNNING (an easy
 * handle in the multi) → delivered and freed, with a detour through WAITING
 * (a retry timer) after a retryable failure. Starting transfers always
 * happens from a loop timer ("kick"), never from inside a curl callback, and
 * removal of a cancelled transfer is deferred the same way when the cancel
 * comes from inside a curl callback: libcurl forbids both from its callbacks.
 */
#include "kube_client.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "dynbuf.h"
#include "log.h"

#define COMP "kube_client"

enum call_state { CALL_QUEUED, CALL_RUNNING, CALL_WAITING };

struct call {
  struct kube_client *c;
  struct call *prev, *next; /* in c->calls (all live calls) */
  struct call *qnext;       /* in c->queue when QUEUED */
  uint64_t id;
  enum call_state state;
  struct kube_request kind; /* verb/patch_type only, for retry decisions */
  char *url;
  char *body;
  size_t body_len;
  const char *content_type;
  long timeout_ms;
  long watch_timeout_s;
  kube_client_done_cb done;
  kube_client_chunk_cb chunk;
  void *ud;

  CURL *easy;
  struct curl_slist *headers;
  struct dynbuf resp; /* the response body, capped at the request's max_body */
  long retry_after_s; /* from the Retry-After header */
  int attempts;
  bool reauthed;
  bool too_large;
  bool chunk_aborted;
  bool cancelled;
  bool streaming; /* watch response with 200: body goes to chunk */
  uint64_t retry_timer;
  char errbuf[CURL_ERROR_SIZE]; /* curl's detail for a failed transfer */
};

struct kube_client {
  struct gpc_loop *loop;
  struct kubeconfig *kc;
  struct kube_client_config cfg;
  char *user_agent;
  CURLM *multi;
  uint64_t curl_timer;
  uint64_t kick_timer;
  uint64_t next_id;
  uint64_t rng;
  struct backoff_bucket bucket;
  struct call *calls;
  struct call *qhead, *qtail;
  int in_curl_cb; /* >0 while inside curl_multi_socket_action */
  bool has_doomed;
  unsigned fail_skip, fail_count; /* kube_client_fail_submits (tests) */
  struct kube_client_stats stats;
};

static void kick(struct kube_client *c, uint64_t delay_ms);
static void check_multi_info(struct kube_client *c);

/* ---- call bookkeeping ---- */

static void call_link(struct kube_client *c, struct call *k) {
  k->next = c->calls;
  if (c->calls) c->calls->prev = k;
  c->calls = k;
}

static void call_unlink(struct kube_client *c, struct call *k) {
  if (k->prev)
    k->prev->next = k->next;
  else
    c->calls = k->next;
  if (k->next) k->next->prev = k->prev;
}

static void queue_push(struct kube_client *c, struct call *k) {
  k->state = CALL_QUEUED;
  k->qnext = NULL;
  if (c->qtail)
    c->qtail->qnext = k;
  else
    c->qhead = k;
  c->qtail = k;
}

static void queue_remove(struct kube_client *c, struct call *k) {
  struct call **pp = &c->qhead, *prev = NULL;
  while (*pp && *pp != k) {
    prev = *pp;
    pp = &(*pp)->qnext;
  }
  if (!*pp) return;
  *pp = k->qnext;
  if (c->qtail == k) c->qtail = prev;
}

/* Frees a header list after wiping every line: one of them is
 * "Authorization: Bearer ...", and curl_slist_free_all does not wipe. */
static void headers_free_wiped(struct curl_slist *h) {
  for (struct curl_slist *l = h; l; l = l->next)
    if (l->data) OPENSSL_cleanse(l->data, strlen(l->data));
  curl_slist_free_all(h);
}

static void easy_release(struct kube_client *c, struct call *k) {
  if (k->easy) {
    curl_multi_remove_handle(c->multi, k->easy);
    curl_easy_cleanup(k->easy);
    k->easy = NULL;
    c->stats.in_flight--;
  }
  headers_free_wiped(k->headers);
  k->headers = NULL;
}

static void call_free(struct kube_client *c, struct call *k) {
  easy_release(c, k);
  if (k->state == CALL_QUEUED) queue_remove(c, k);
  if (k->retry_timer) gpc_loop_cancel_timer(c->loop, k->retry_timer);
  call_unlink(c, k);
  free(k->url);
  free(k->body);
  dynbuf_release(&k->resp);
  free(k);
}

static struct call *call_find(struct kube_client *c, uint64_t id) {
  for (struct call *k = c->calls; k; k = k->next)
    if (k->id == id) return k;
  return NULL;
}

/* ---- curl callbacks ---- */

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  struct call *k = ud;
  size_t len = size * n;
  static const char name[] = "retry-after:";
  if (len > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
    long v = strtol(buf + sizeof name - 1, NULL, 10);
    if (v > 0) k->retry_after_s = v;
  }
  return len;
}

static bool append_body(struct call *k, const char *data, size_t len) {
  if (dynbuf_add(&k->resp, data, len) != GPC_OK) {
    k->too_large = true;
    return false;
  }
  return true;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud) {
  struct call *k = ud;
  size_t len = size * n;
  if (k->cancelled) return 0;
  if (k->chunk && !k->streaming && !dynbuf_len(&k->resp)) {
    long code = 0;
    curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &code);
    k->streaming = code >= 200 && code < 300;
  }
  if (k->streaming) {
    if (k->chunk(k->c, data, len, k->ud) != 0) {
      k->chunk_aborted = true;
      return 0;
    }
    return k->cancelled ? 0 : len;
  }
  return append_body(k, data, len) ? len : 0;
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);

static void on_fd(struct gpc_loop *loop, int fd, int events, void *ud) {
  struct kube_client *c = ud;
  int flags = 0, running = 0;
  if (events & GPC_LOOP_READ) flags |= CURL_CSELECT_IN;
  if (events & GPC_LOOP_WRITE) flags |= CURL_CSELECT_OUT;
  if (events & GPC_LOOP_ERROR) flags |= CURL_CSELECT_ERR;
  c->in_curl_cb++;
  curl_multi_socket_action(c->multi, fd, flags, &running);
  c->in_curl_cb--;
  check_multi_info(c);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  struct kube_client *c = userp;
  if (what == CURL_POLL_REMOVE) {
    gpc_loop_del_fd(c->loop, s);
    return 0;
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= GPC_LOOP_READ;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= GPC_LOOP_WRITE;
  if (gpc_loop_add_fd(c->loop, s, ev, on_fd, c) != GPC_OK) {
    log_error(COMP, "cannot watch socket", KV_I("fd", s));
    return -1;
  }
  return 0;
}

static void on_curl_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct kube_client *c = ud;
  int running = 0;
  c->curl_timer = 0;
  c->in_curl_cb++;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  c->in_curl_cb--;
  check_multi_info(c);
}

static int on_timer_update(CURLM *multi, long timeout_ms, void *userp) {
  struct kube_client *c = userp;
  if (c->curl_timer) gpc_loop_cancel_timer(c->loop, c->curl_timer);
  c->curl_timer = 0;
  if (timeout_ms >= 0)
    c->curl_timer = gpc_loop_add_timer(c->loop, (uint64_t)timeout_ms, on_curl_timer, c);
  return 0;
}

/* ---- starting transfers ---- */

static void set_tls(struct kube_client *c, CURL *e) {
  struct kubeconfig *kc = c->kc;
  if (kc->ca.len) {
    struct curl_blob b = {kc->ca.data, kc->ca.len, CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
  }
  if (kc->cert.len && kc->key.len) {
    /* NOCOPY: curl would keep a private copy of the key per handle and free
     * it unwiped. The kubeconfig outlives the client (kube_client.h), so
     * curl may borrow ours, which kubeconfig_free wipes. */
    struct curl_blob cb = {kc->cert.data, kc->cert.len, CURL_BLOB_NOCOPY};
    struct curl_blob kb = {kc->key.data, kc->key.len, CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (kc->insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

/* libcurl may speak only the scheme of the configured server: no other
 * protocol libcurl was built with, whatever a URL says. */
static void restrict_protocols(CURL *e, const char *server) {
  const char *proto = strncmp(server, "http://", 7) == 0 ? "http" : "https";
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, proto);
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, proto);
}

/* Credentials never go over plain http:// unless the kubeconfig opted in
 * (kubeconfig.h allow_plain_http); then only with a warning. */
static int check_plain_http(const struct kubeconfig *kc, struct gpc_error *err) {
  if (strncmp(kc->server, "http://", 7) != 0) return GPC_OK;
  bool creds = (kc->token && *kc->token) || kc->token_file || kc->key.len;
  if (!creds) return GPC_OK;
  if (!kc->allow_plain_http)
    return gpc_fail(err, GPC_E_INVAL,
                    "refusing to send credentials in cleartext to %s: use https://, or opt in with "
                    "the cluster extension gpupolicy.dev/allow-plain-http {allow: true}",
                    kc->server);
  log_warn(COMP, "credentials are sent over plain HTTP (gpupolicy.dev/allow-plain-http)",
           KV_S("server", kc->server));
  return GPC_OK;
}

static struct curl_slist *build_headers(struct kube_client *c, const struct call *k) {
  struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
  h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
  if (k->body) {
    char *ct = gpc_asprintf("Content-Type: %s", k->content_type);
    h = curl_slist_append(h, ct);
    free(ct);
  }
  struct gpc_error err = {0};
  if (kubeconfig_refresh_token(c->kc, false, &err) != GPC_OK)
    log_warn(COMP, "token refresh failed, keeping the old token", KV_S("error", err.msg));
  if (c->kc->token && *c->kc->token) {
    char *auth = gpc_asprintf("Authorization: Bearer %s", c->kc->token);
    h = curl_slist_append(h, auth);
    explicit_bzero(auth, strlen(auth)); /* the slist holds its own copy */
    free(auth);
  }
  return h;
}

static void start_call(struct kube_client *c, struct call *k) {
  CURL *e = curl_easy_init();
  if (!e) abort(); /* only fails on allocation */
  k->easy = e;
  k->state = CALL_RUNNING;
  k->attempts++;
  dynbuf_reset(&k->resp);
  k->retry_after_s = 0;
  k->streaming = false;
  k->headers = build_headers(c, k);
  c->stats.attempts++;
  c->stats.in_flight++;

  curl_easy_setopt(e, CURLOPT_URL, k->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)k);
  k->errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, k);
  const char *method = kube_request_verb_method(k->kind.verb);
  if (strcmp(method, "GET") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (k->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, k->body);
  }
  if (k->kind.verb == KUBE_WATCH) {
    if (k->watch_timeout_s > 0)
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (k->watch_timeout_s + c->cfg.watch_margin_s) * 1000L);
  } else {
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, k->timeout_ms);
  }
  set_tls(c, e);
  restrict_protocols(e, c->kc->server);
  log_debug(COMP, "request", KV_S("method", method), KV_S("url", k->url),
            KV_I("attempt", k->attempts));
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) abort();
}

/* Starts queued calls while tokens last; re-arms itself for the next token. */
static void pump(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct kube_client *c = ud;
  c->kick_timer = 0;
  if (c->has_doomed) {
    c->has_doomed = false;
    for (struct call *k = c->calls, *next; k; k = next) {
      next = k->next;
      if (k->cancelled) call_free(c, k);
    }
  }
  while (c->qhead) {
    uint64_t now = gpc_loop_now_ms();
    if (!backoff_bucket_take(&c->bucket, now)) {
      c->stats.throttled++;
      kick(c, backoff_bucket_wait_ms(&c->bucket, now));
      return;
    }
    struct call *k = c->qhead;
    c->qhead = k->qnext;
    if (!c->qhead) c->qtail = NULL;
    c->stats.queued--;
    start_call(c, k);
  }
}

static void kick(struct kube_client *c, uint64_t delay_ms) {
  if (c->kick_timer) {
    if (delay_ms) return; /* already armed; a later wake-up re-checks */
    gpc_loop_cancel_timer(c->loop, c->kick_timer);
  }
  c->kick_timer = gpc_loop_add_timer(c->loop, delay_ms, pump, c);
}

/* ---- completion ---- */

static void deliver(struct kube_client *c, struct call *k, int rc, long code,
                    const struct kube_status *st, const char *error, double secs) {
  struct kube_response r = {
      .rc = rc,
      .http_code = code,
      .body = dynbuf_ptr(&k->resp) ? dynbuf_ptr(&k->resp) : "",
      .body_len = dynbuf_len(&k->resp),
      .status = st,
      .error = error,
      .seconds = secs,
      .attempts = k->attempts,
  };
  c->stats.completed++;
  if (rc != GPC_OK) c->stats.failed++;
  /* Zero the id first so a cancel of it from inside the callback is a no-op. */
  k->id = 0;
  k->done(c, &r, k->ud);
  call_free(c, k);
}

static void on_retry_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct call *k = ud;
  k->retry_timer = 0;
  queue_push(k->c, k);
  kick(k->c, 0);
}

static void schedule_retry(struct kube_client *c, struct call *k, long code, long retry_after_s) {
  uint64_t delay;
  if (retry_after_s > 0) {
    delay = (uint64_t)retry_after_s * 1000u;
    if (delay > c->cfg.retry_cap_ms) delay = c->cfg.retry_cap_ms;
  } else {
    delay = backoff_delay_ms(c->cfg.retry_base_ms, c->cfg.retry_cap_ms, (unsigned)k->attempts - 1,
                             backoff_rand(&c->rng));
  }
  log_warn(COMP, "retrying request", KV_S("method", kube_request_verb_method(k->kind.verb)),
           KV_S("url", k->url), KV_I("code", code), KV_I("attempt", k->attempts),
           KV_I("delay_ms", delay));
  c->stats.retries++;
  c->stats.queued++;
  k->state = CALL_WAITING;
  k->retry_timer = gpc_loop_add_timer(c->loop, delay, on_retry_timer, k);
}

static int rc_for_curl(CURLcode res) {
  switch (res) {
  case CURLE_OPERATION_TIMEDOUT:
    return GPC_E_TIMEOUT;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CACERT_BADFILE:
    return GPC_E_TLS;
  default:
    break;
  }
  return GPC_E_IO;
}

/* The one-line error of a transfer that got no usable response: curl's
 * name for it, its detail, and what a TLS handshake answered by a plain
 * HTTP server (a kubeconfig with https:// for an http:// server) means. */
static void transport_error(const struct kube_client *c, const struct call *k, CURLcode res,
                            char *out, size_t len) {
  const char *what = curl_easy_strerror(res);
  const char *detail = k->errbuf[0] && strcmp(k->errbuf, what) != 0 ? k->errbuf : NULL;
  /* OpenSSL reads "HTTP/1.x ..." as a TLS record of a version it does not know. */
  bool plain = rc_for_curl(res) == GPC_E_TLS && detail &&
               (strstr(detail, "wrong version number") ||
                strstr(detail, "packet length too long") || strstr(detail, "http request"));
  /* curl's detail often ends with its generic text already: say it once. */
  bool repeats = detail && strstr(detail, what);
  snprintf(out, len, "%s%s%s%s%s%s", repeats ? "" : what, detail && !repeats ? ": " : "",
           detail ? detail : "", plain ? " - the server at " : "", plain ? c->kc->server : "",
           plain ? " answers in plain HTTP, not TLS: check the server URL (https://) in the "
                   "kubeconfig"
                 : "");
}

/* TLS set-up errors will not heal by retrying. */
static bool curl_retryable(CURLcode res) {
  return rc_for_curl(res) != GPC_E_TLS;
}

static void finish_call(struct kube_client *c, struct call *k, CURLcode res) {
  long code = 0;
  double secs = 0;
  curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(k->easy, CURLINFO_TOTAL_TIME, &secs);
  easy_release(c, k);
  if (k->cancelled) {
    call_free(c, k);
    return;
  }
  if (c->cfg.observe)
    c->cfg.observe(kube_request_verb_method(k->kind.verb), code, secs, c->cfg.observe_ud);

  if (res == CURLE_WRITE_ERROR && k->too_large) {
    char msg[128];
    snprintf(msg, sizeof msg, "response body over %zu bytes", k->resp.max);
    log_warn(COMP, "response too large", KV_S("url", k->url), KV_I("limit", k->resp.max));
    dynbuf_reset(&k->resp);
    deliver(c, k, GPC_E_TOO_LARGE, code, NULL, msg, secs);
    return;
  }
  if (res == CURLE_WRITE_ERROR && k->chunk_aborted) {
    deliver(c, k, GPC_E_CANCELLED, code, NULL, "aborted by the chunk callback", secs);
    return;
  }
  if (res != CURLE_OK) {
    /* A watch that got its 200 and then lost the connection is over; the
     * informer resumes it. Anything else had no usable response. */
    bool got_stream = k->streaming;
    if (!got_stream && curl_retryable(res) &&
        kube_request_should_retry(&k->kind, 0, k->attempts, c->cfg.max_attempts)) {
      schedule_retry(c, k, 0, 0);
      return;
    }
    char msg[GPC_ERROR_MSG_MAX];
    transport_error(c, k, res, msg, sizeof msg);
    deliver(c, k, rc_for_curl(res), got_stream ? code : 0, NULL, msg, secs);
    return;
  }
  if (code >= 200 && code < 300) {
    deliver(c, k, GPC_OK, code, NULL, NULL, secs);
    return;
  }
  if (code == 401 && !k->reauthed && c->kc->token_file) {
    struct gpc_error err = {0};
    k->reauthed = true;
    if (kubeconfig_refresh_token(c->kc, true, &err) == GPC_OK) {
      log_info(COMP, "401: token re-read, retrying once", KV_S("url", k->url));
      c->stats.retries++;
      c->stats.queued++;
      queue_push(c, k);
      kick(c, 0);
      return;
    }
    log_warn(COMP, "401: token re-read failed", KV_S("error", err.msg));
  }
  struct kube_status st;
  kube_status_parse(&st, dynbuf_ptr(&k->resp), dynbuf_len(&k->resp), code);
  long ra = k->retry_after_s ? k->retry_after_s : st.retry_after_seconds;
  if (kube_request_should_retry(&k->kind, code, k->attempts, c->cfg.max_attempts)) {
    kube_status_release(&st);
    schedule_retry(c, k, code, ra);
    return;
  }
  char msg[GPC_ERROR_MSG_MAX];
  snprintf(msg, sizeof msg, "%s %ld %s: %s", kube_request_verb_method(k->kind.verb), code,
           st.reason, st.message);
  deliver(c, k, kube_status_err(&st), code, &st, msg, secs);
  kube_status_release(&st);
}

static void check_multi_info(struct kube_client *c) {
  CURLMsg *msg;
  int left = 0;
  while ((msg = curl_multi_info_read(c->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode res = msg->data.result;
    struct call *k = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&k);
    finish_call(c, k, res);
  }
}

/* ---- public API ---- */

static void apply_defaults(struct kube_client_config *cfg) {
  if (cfg->qps == 0) cfg->qps = 50;
  if (cfg->burst <= 0) cfg->burst = 100;
  if (cfg->timeout_ms <= 0) cfg->timeout_ms = 30000;
  if (!cfg->max_body) cfg->max_body = 64u << 20;
  if (cfg->max_attempts <= 0) cfg->max_attempts = 5;
  if (!cfg->retry_base_ms) cfg->retry_base_ms = 250;
  if (!cfg->retry_cap_ms) cfg->retry_cap_ms = 30000;
  if (cfg->max_host_connections <= 0) cfg->max_host_connections = 32;
  if (cfg->watch_margin_s <= 0) cfg->watch_margin_s = 30;
}

struct kube_client *kube_client_new(struct gpc_loop *loop, const struct kube_client_config *cfg,
                                    struct gpc_error *err) {
  if (!cfg || !cfg->kc || !cfg->kc->server || !*cfg->kc->server) {
    gpc_fail(err, GPC_E_INVAL, "kube_client: a kubeconfig with a server is required");
    return NULL;
  }
  if (check_plain_http(cfg->kc, err) != GPC_OK) return NULL;
  static bool curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      gpc_fail(err, GPC_E_IO, "curl_global_init failed");
      return NULL;
    }
    curl_ready = true;
  }
  struct kube_client *c = gpc_calloc(1, sizeof *c);
  c->loop = loop;
  c->kc = cfg->kc;
  c->cfg = *cfg;
  apply_defaults(&c->cfg);
  c->user_agent = cfg->user_agent ? gpc_strdup(cfg->user_agent)
                                  : gpc_strdup("gpu-policy-controller/" GPC_VERSION);
  c->rng = backoff_seed();
  backoff_bucket_init(&c->bucket, c->cfg.qps, c->cfg.burst, gpc_loop_now_ms());
  c->multi = curl_multi_init();
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_update);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c->cfg.max_host_connections);
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, c->cfg.max_host_connections);
  if (c->kc->insecure)
    log_warn(COMP, "TLS verification disabled (insecure-skip-tls-verify)",
             KV_S("server", c->kc->server));
  return c;
}

void kube_client_free(struct kube_client *c) {
  if (!c) return;
  while (c->calls)
    call_free(c, c->calls);
  if (c->kick_timer) gpc_loop_cancel_timer(c->loop, c->kick_timer);
  curl_multi_cleanup(c->multi); /* closes cached connections via on_socket */
  if (c->curl_timer) gpc_loop_cancel_timer(c->loop, c->curl_timer);
  free(c->user_agent);
  free(c);
}

uint64_t kube_client_submit(struct kube_client *c, const struct kube_request *req,
                            kube_client_done_cb done, kube_client_chunk_cb chunk, void *ud,
                            struct gpc_error *err) {
  if (!done || (req->verb == KUBE_WATCH && !chunk)) {
    gpc_fail(err, GPC_E_INVAL, "kube_client: %s needs a done%s callback",
             kube_request_verb_name(req->verb), req->verb == KUBE_WATCH ? " and a chunk" : "");
    return 0;
  }
  if (c->fail_count) {
    if (c->fail_skip) {
      c->fail_skip--;
    } else {
      c->fail_count--;
      gpc_fail(err, GPC_E_IO, "kube_client: injected submit failure");
      return 0;
    }
  }
  char *url = kube_request_url(c->kc->server, req, err);
  if (!url) return 0;
  struct call *k = gpc_calloc(1, sizeof *k);
  k->c = c;
  k->id = ++c->next_id;
  k->kind.verb = req->verb;
  k->kind.patch_type = req->patch_type;
  k->url = url;
  if (req->body) {
    k->body = gpc_malloc(req->body_len + 1);
    memcpy(k->body, req->body, req->body_len);
    k->body[req->body_len] = 0;
    k->body_len = req->body_len;
  }
  k->content_type = req->verb == KUBE_PATCH ? kube_request_patch_content_type(req->patch_type)
                                            : "application/json";
  k->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->cfg.timeout_ms;
  k->watch_timeout_s = req->timeout_seconds;
  dynbuf_init(&k->resp, req->max_body ? req->max_body : c->cfg.max_body);
  k->done = done;
  k->chunk = chunk;
  k->ud = ud;
  call_link(c, k);
  queue_push(c, k);
  c->stats.submitted++;
  c->stats.queued++;
  kick(c, 0);
  return k->id;
}

bool kube_client_cancel(struct kube_client *c, uint64_t id) {
  struct call *k = id ? call_find(c, id) : NULL;
  if (!k || k->cancelled) return false;
  c->stats.cancelled++;
  if (k->state != CALL_RUNNING) {
    c->stats.queued--;
    call_free(c, k);
    return true;
  }
  k->cancelled = true;
  if (c->in_curl_cb) {
    /* Inside a curl callback: the write callback now refuses data, and the
     * handle is removed from a timer once curl has returned. */
    c->has_doomed = true;
    kick(c, 0);
  } else {
    call_free(c, k);
  }
  return true;
}

void kube_client_fail_submits(struct kube_client *c, unsigned skip, unsigned count) {
  c->fail_skip = skip;
  c->fail_count = count;
}

void kube_client_stats(const struct kube_client *c, struct kube_client_stats *out) {
  *out = c->stats;
}

const char *kube_client_server(const struct kube_client *c) {
  return c->kc->server;
}
