/* http_server.c — health and metrics endpoints: lws on a libuv loop embedded
 * in the controller's epoll loop (see http_server.h for why). */
#include "http_server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "log.h"
#include "loop.h"

#define COMP "http"
/* What lws_create_context opens (lws_plat_context_early_init). */
#define HTTP_RANDOM_DEVICE "/dev/urandom"
#define CHUNK 16384
/* Every connection, from accept to the last byte of its one reply, lives at
 * most this long: idle and slow clients are dropped (lws timeouts). */
#define HTTP_TIMEOUT_S 5
/* File descriptors lws may use (listeners + connections). At the cap lws
 * stops accepting (its accept modulation) instead of accept()ing into
 * EMFILE in a loop; kubelet probes and a scraper need a handful. */
#define HTTP_MAX_FDS 64u
/* lws log lines let through per window; the rest are counted, then summed up. */
#define LOG_BURST 10
#define LOG_WINDOW_MS 10000u

struct vhost_info {
  struct http_server *srv;
  enum http_vhost which;
};

struct http_server {
  struct http_server_config cfg;
  uv_loop_t *uv;
  struct lws_context *ctx;
  struct lws_vhost *vh[2];
  struct vhost_info info[2];
  int port[2];
  int uv_fd;
  uint64_t timer;
};

/* Per connection (lws zeroes it). One request per connection: the reply
 * carries "connection: close" and the connection closes once it is out, so
 * nothing pipelined behind the first request is ever read. */
struct session {
  char *body;
  size_t len, sent;
  bool head; /* HEAD: headers only */
  bool done; /* reply written; close once lws has flushed it */
};

/* ---- pure parts ---- */

int http_server_parse_bind(const char *flag, const char *addr, char *host, size_t host_size,
                           int *port, bool *disabled, struct gpc_error *err) {
  *disabled = false;
  *port = 0;
  if (host_size) host[0] = 0;
  if (!addr || strcmp(addr, "0") == 0) {
    *disabled = true;
    return GPC_OK;
  }
  const char *colon = strrchr(addr, ':');
  if (!colon || !colon[1] || strlen(colon + 1) > 5)
    return gpc_fail(err, GPC_E_INVAL, "%s: invalid address \"%s\" (want HOST:PORT, :PORT or 0)",
                    flag, addr);
  for (const char *p = colon + 1; *p; p++)
    if (!isdigit((unsigned char)*p))
      return gpc_fail(err, GPC_E_INVAL, "%s: invalid port in \"%s\"", flag, addr);
  long p = strtol(colon + 1, NULL, 10);
  if (p > 65535) return gpc_fail(err, GPC_E_INVAL, "%s: port out of range in \"%s\"", flag, addr);
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  if (hl && h[0] == '[') {
    if (hl < 2 || h[hl - 1] != ']')
      return gpc_fail(err, GPC_E_INVAL, "%s: unbalanced [ ] in \"%s\"", flag, addr);
    h++;
    hl -= 2;
  } else if (memchr(h, ':', hl)) {
    return gpc_fail(err, GPC_E_INVAL, "%s: IPv6 hosts need brackets: \"%s\"", flag, addr);
  }
  if (hl >= host_size) return gpc_fail(err, GPC_E_INVAL, "%s: host too long in \"%s\"", flag, addr);
  for (size_t i = 0; i < hl; i++)
    if (isspace((unsigned char)h[i]))
      return gpc_fail(err, GPC_E_INVAL, "%s: invalid host in \"%s\"", flag, addr);
  memcpy(host, h, hl);
  host[hl] = 0;
  *port = (int)p;
  return GPC_OK;
}

static void reply_text(struct http_reply *out, int status, const char *text) {
  out->status = status;
  out->content_type = "text/plain; charset=utf-8";
  out->body = gpc_strdup(text);
  out->len = strlen(text);
}

void http_server_route_method(const struct http_server_config *cfg, enum http_vhost v,
                              const char *method, const char *path, struct http_reply *out) {
  if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) {
    memset(out, 0, sizeof *out);
    reply_text(out, 405, "405 method not allowed\n");
    out->allow = "GET, HEAD";
    return;
  }
  http_server_route(cfg, v, path, out);
}

void http_server_route(const struct http_server_config *cfg, enum http_vhost v, const char *path,
                       struct http_reply *out) {
  memset(out, 0, sizeof *out);
  if (v == HTTP_VHOST_HEALTH && (strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0)) {
    reply_text(out, 200, "ok");
  } else if (v == HTTP_VHOST_HEALTH && strcmp(path, "/readyz") == 0) {
    const char *why = "not ready";
    if (!cfg->ready || cfg->ready(cfg->ud, &why)) {
      reply_text(out, 200, "ok");
    } else {
      char *msg = gpc_asprintf("%s", why ? why : "not ready");
      reply_text(out, 503, msg);
      free(msg);
    }
  } else if (v == HTTP_VHOST_METRICS && strcmp(path, "/metrics") == 0 && cfg->metrics) {
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = cfg->metrics(cfg->ud, &out->len);
  } else {
    reply_text(out, 404, "404 page not found\n");
  }
}

/* ---- lws ---- */

static void session_reset(struct session *ss) {
  free(ss->body);
  memset(ss, 0, sizeof *ss);
}

/* The reply is out (or queued in lws): close now, or once lws has
 * flushed what the socket did not take (lws calls back when writable). */
static int finish(struct lws *wsi, struct session *ss) {
  ss->done = true;
  if (lws_send_pipe_choked(wsi)) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  return -1;
}

static int write_chunk(struct lws *wsi, struct session *ss) {
  if (ss->done) return finish(wsi, ss);
  if (ss->head) return finish(wsi, ss);
  unsigned char buf[LWS_PRE + CHUNK];
  size_t n = ss->len - ss->sent;
  if (n > CHUNK) n = CHUNK;
  bool last = ss->sent + n == ss->len;
  memcpy(buf + LWS_PRE, ss->body + ss->sent, n);
  if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
    return -1;
  ss->sent += n;
  if (!last) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  return finish(wsi, ss);
}

static const char *method_name(struct lws *wsi) {
  char *uri = NULL;
  int len = 0;
  switch (lws_http_get_uri_and_method(wsi, &uri, &len)) {
  case LWSHUMETH_GET:
    return "GET";
  case LWSHUMETH_HEAD:
    return "HEAD";
  default:
    return "OTHER";
  }
}

static int on_http(struct lws *wsi, struct session *ss, const char *path) {
  const struct vhost_info *vi = lws_get_vhost_user(lws_get_vhost(wsi));
  if (!vi) return -1;
  session_reset(ss);
  /* One request per connection (see finish): whatever a client pipelined
   * behind this request is never parsed; bound the time to send the reply. */
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_TIMEOUT_S);
  const char *method = method_name(wsi);
  struct http_reply r;
  http_server_route_method(&vi->srv->cfg, vi->which, method, path ? path : "", &r);
  ss->body = r.body;
  ss->len = r.len;
  ss->head = strcmp(method, "HEAD") == 0;
  unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  if (lws_add_http_common_headers(wsi, (unsigned)r.status, r.content_type, (lws_filepos_t)r.len, &p,
                                  end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p,
                                   end) ||
      (r.allow && lws_add_http_header_by_name(
                      wsi, (const unsigned char *)"allow:", (const unsigned char *)r.allow,
                      (int)strlen(r.allow), &p, end)) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  lws_callback_on_writable(wsi);
  return 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
  struct session *ss = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return on_http(wsi, ss, in);
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (!ss || (!ss->body && !ss->done)) return 0;
    return write_chunk(wsi, ss);
  case LWS_CALLBACK_HTTP_BODY:
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    return 0; /* a body (of a refused method) is never read */
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
  case LWS_CALLBACK_CLOSED_HTTP:
    if (ss) session_reset(ss);
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

static const struct lws_protocols protocols[] = {
    {"gpc-http", http_cb, sizeof(struct session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* lws logs one line per failed accept, per reset connection...: a flood
 * must not turn into a log flood. LOG_BURST lines per LOG_WINDOW_MS, then a
 * count of what was dropped. */
static struct {
  uint64_t window_start;
  unsigned in_window, dropped;
} lws_log_limit;

static bool lws_log_allowed(void) {
  uint64_t now = gpc_loop_now_ms();
  if (now - lws_log_limit.window_start >= LOG_WINDOW_MS) {
    if (lws_log_limit.dropped)
      log_warn(COMP, "libwebsockets messages suppressed", KV_I("count", lws_log_limit.dropped),
               KV_I("window_ms", LOG_WINDOW_MS));
    lws_log_limit.window_start = now;
    lws_log_limit.in_window = 0;
    lws_log_limit.dropped = 0;
  }
  if (lws_log_limit.in_window >= LOG_BURST) {
    lws_log_limit.dropped++;
    return false;
  }
  lws_log_limit.in_window++;
  return true;
}

/* While the listeners are being set up, a failure is ours to report: a bind
 * error becomes one line naming the flag (add_vhost), so libwebsockets' own
 * lines about it are debug detail, not two more error lines on stderr. */
static bool lws_setting_up;

static void lws_log(int level, const char *line) {
  if (!lws_log_allowed()) return;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", line);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = 0;
  if (lws_setting_up)
    log_debug(COMP, "libwebsockets", KV_S("detail", msg));
  else if (level & LLL_ERR)
    log_error(COMP, "libwebsockets", KV_S("detail", msg));
  else
    log_warn(COMP, "libwebsockets", KV_S("detail", msg));
}

/* ---- libuv embedded in our loop ---- */

static void pump(struct http_server *s);

static void on_uv_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct http_server *s = ud;
  s->timer = 0;
  pump(s);
}

static void on_uv_fd(struct gpc_loop *loop, int fd, int events, void *ud) {
  (void)loop;
  (void)fd;
  (void)events;
  pump(ud);
}

/* One non-blocking libuv iteration, then wake again when libuv wants: its
 * backend fd covers I/O; uv_backend_timeout covers timers and the changes
 * to its epoll set that it applies lazily (then it returns 0). */
static void pump(struct http_server *s) {
  uv_run(s->uv, UV_RUN_NOWAIT);
  int t = uv_backend_timeout(s->uv);
  if (s->timer) gpc_loop_cancel_timer(s->cfg.loop, s->timer);
  s->timer = 0;
  if (t >= 0) s->timer = gpc_loop_add_timer(s->cfg.loop, (uint64_t)t, on_uv_timer, s);
}

static bool ipv6_available(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  close(fd);
  return true;
}

/* Resolves a host name to a numeric address lws can bind ("" stays ""). */
static int numeric_host(const char *flag, const char *host, char *out, size_t size, bool *v6,
                        struct gpc_error *err) {
  *v6 = false;
  if (!*host) {
    out[0] = 0;
    *v6 = ipv6_available();
    return GPC_OK;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0 || !res)
    return gpc_fail(err, GPC_E_INVAL, "%s: cannot resolve \"%s\": %s", flag, host,
                    gai_strerror(rc));
  *v6 = res->ai_family == AF_INET6;
  rc = getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST);
  freeaddrinfo(res);
  if (rc != 0) return gpc_fail(err, GPC_E_INVAL, "%s: cannot use \"%s\"", flag, host);
  return GPC_OK;
}

static int add_vhost(struct http_server *s, enum http_vhost which, const char *flag,
                     const char *addr, struct gpc_error *err) {
  char host[256], num[NI_MAXHOST];
  int port;
  bool disabled, v6;
  if (http_server_parse_bind(flag, addr, host, sizeof host, &port, &disabled, err) != GPC_OK)
    return err->code;
  if (disabled) return GPC_OK;
  if (numeric_host(flag, host, num, sizeof num, &v6, err) != GPC_OK) return err->code;
  s->info[which] = (struct vhost_info){s, which};
  struct lws_context_creation_info vi;
  memset(&vi, 0, sizeof vi);
  vi.vhost_name = which == HTTP_VHOST_HEALTH ? "health" : "metrics";
  vi.port = port;
  vi.iface = num[0] ? num : NULL;
  vi.protocols = protocols;
  vi.user = &s->info[which];
  vi.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
  vi.keepalive_timeout = HTTP_TIMEOUT_S;
  vi.timeout_secs = HTTP_TIMEOUT_S;
  vi.timeout_secs_ah_idle = HTTP_TIMEOUT_S;
  if (!v6) vi.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  s->vh[which] = lws_create_vhost(s->ctx, &vi);
  if (!s->vh[which])
    return gpc_fail(err, GPC_E_IO, "%s: cannot listen on \"%s\" (address in use or not local?)",
                    flag, addr);
  s->port[which] = lws_get_vhost_listen_port(s->vh[which]);
  return GPC_OK;
}

/* Logged once both listeners exist, so a failed start says one thing only. */
static void log_listening(const struct http_server *s, const struct http_server_config *cfg) {
  static const char *const names[] = {
      [HTTP_VHOST_HEALTH] = "health", [HTTP_VHOST_METRICS] = "metrics"};
  const char *addrs[] = {
      [HTTP_VHOST_HEALTH] = cfg->health_bind, [HTTP_VHOST_METRICS] = cfg->metrics_bind};
  for (int i = 0; i < 2; i++)
    if (s->vh[i])
      log_info(COMP, "listening", KV_S("endpoint", names[i]), KV_S("address", addrs[i]),
               KV_I("port", s->port[i]));
}

/* HTTP_MAX_FDS, or less under a low RLIMIT_NOFILE, so that lws stops
 * accepting before the process runs out of descriptors for its API
 * connections. */
static unsigned fd_cap(void) {
  struct rlimit rl;
  unsigned cap = HTTP_MAX_FDS;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < cap)
    cap = (unsigned)(rl.rlim_cur / 2);
  return cap < 8 ? 8 : cap;
}

struct http_server *http_server_new(const struct http_server_config *cfg, struct gpc_error *err) {
  char hh[256], mh[256];
  int hp, mp;
  bool off_h, off_m;
  if (http_server_parse_bind("--health-probe-bind-address", cfg->health_bind, hh, sizeof hh, &hp,
                             &off_h, err) != GPC_OK ||
      http_server_parse_bind("--metrics-bind-address", cfg->metrics_bind, mh, sizeof mh, &mp,
                             &off_m, err) != GPC_OK)
    return NULL;
  if (!off_h && !off_m && hp != 0 && hp == mp && strcmp(hh, mh) == 0) {
    gpc_fail(err, GPC_E_INVAL,
             "--health-probe-bind-address and --metrics-bind-address are both \"%s\"",
             cfg->health_bind);
    return NULL;
  }
  struct http_server *s = gpc_calloc(1, sizeof *s);
  s->cfg = *cfg;
  s->uv_fd = -1;
  if (off_h && off_m) return s;

  /* libwebsockets opens the random device while it creates its context,
   * and its clean-up after that failure crashes inside uv_run (4.1 with a
   * foreign libuv loop): look first and say what is missing. */
  int rfd = open(HTTP_RANDOM_DEVICE, O_RDONLY | O_CLOEXEC);
  if (rfd < 0) {
    gpc_fail(err, GPC_E_IO,
             "http server: cannot open %s (%s): libwebsockets needs it for the probe and "
             "metrics endpoints; mount /dev (or disable both endpoints with "
             "--health-probe-bind-address=0 --metrics-bind-address=0)",
             HTTP_RANDOM_DEVICE, strerror(errno));
    http_server_free(s);
    return NULL;
  }
  close(rfd);
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
  s->uv = gpc_calloc(1, sizeof *s->uv);
  if (uv_loop_init(s->uv) != 0) {
    free(s->uv);
    s->uv = NULL;
    gpc_fail(err, GPC_E_IO, "http server: cannot create a libuv loop");
    http_server_free(s);
    return NULL;
  }
  void *foreign[1] = {s->uv};
  struct lws_context_creation_info ci;
  memset(&ci, 0, sizeof ci);
  ci.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
               LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
  ci.foreign_loops = foreign;
  ci.port = CONTEXT_PORT_NO_LISTEN;
  ci.pcontext = &s->ctx;
  ci.fd_limit_per_thread = fd_cap();
  s->ctx = lws_create_context(&ci);
  if (!s->ctx) {
    gpc_fail(err, GPC_E_IO,
             "http server: cannot create the libwebsockets context "
             "(is the libwebsockets-evlib-uv plugin installed?)");
    http_server_free(s);
    return NULL;
  }
  lws_setting_up = true;
  bool listening =
      add_vhost(s, HTTP_VHOST_HEALTH, "--health-probe-bind-address", cfg->health_bind, err) ==
          GPC_OK &&
      add_vhost(s, HTTP_VHOST_METRICS, "--metrics-bind-address", cfg->metrics_bind, err) == GPC_OK;
  lws_setting_up = false;
  if (!listening) {
    http_server_free(s);
    return NULL;
  }
  log_listening(s, cfg);
  s->uv_fd = uv_backend_fd(s->uv);
  if (gpc_loop_add_fd(cfg->loop, s->uv_fd, GPC_LOOP_READ, on_uv_fd, s) != GPC_OK) {
    gpc_fail(err, GPC_E_IO, "http server: cannot watch the libuv backend fd");
    s->uv_fd = -1;
    http_server_free(s);
    return NULL;
  }
  pump(s);
  return s;
}

int http_server_health_port(const struct http_server *s) {
  return s ? s->port[HTTP_VHOST_HEALTH] : 0;
}

int http_server_metrics_port(const struct http_server *s) {
  return s ? s->port[HTTP_VHOST_METRICS] : 0;
}

static void close_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void http_server_free(struct http_server *s) {
  if (!s) return;
  if (s->timer) gpc_loop_cancel_timer(s->cfg.loop, s->timer);
  if (s->uv_fd >= 0) gpc_loop_del_fd(s->cfg.loop, s->uv_fd);
  if (s->ctx) {
    /* With a foreign loop lws closes its handles asynchronously: let libuv
     * run until they are gone (bounded), as the lws foreign-loop example. */
    for (int i = 0; i < 100 && s->ctx; i++) {
      lws_context_destroy(s->ctx); /* lws NULLs s->ctx (pcontext) once freed */
      for (int k = 0; k < 100 && uv_run(s->uv, UV_RUN_NOWAIT); k++)
        ;
    }
    if (s->ctx) log_warn(COMP, "libwebsockets context not fully destroyed");
  }
  if (s->uv) {
    uv_walk(s->uv, close_handle, NULL);
    uv_run(s->uv, UV_RUN_NOWAIT);
    uv_loop_close(s->uv);
    free(s->uv);
  }
  free(s);
}
