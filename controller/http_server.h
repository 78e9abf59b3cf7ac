/* http_server.h — /healthz, /readyz and /metrics over libwebsockets, on the
 * controller's event loop.
 *
 * Two lws vhosts in one context: the health vhost (--health-probe-bind-address)
 * serves GET /healthz (200 "ok" while the loop turns) and GET /readyz (503
 * with the reason until ready() says so, then 200 "ok"); the metrics vhost
 * (--metrics-bind-address) serves GET /metrics (text format 0.0.4). Anything
 * else is 404; HEAD gets the headers of GET; other methods get 405. A bind
 * address of "0" (or NULL) disables that vhost.
 *
 * Abuse limits (design.md §7): one request per connection ("connection:
 * close"; anything pipelined behind it is never read, so a client that
 * does not read its replies cannot make the loop spin), HTTP_TIMEOUT_S from
 * accept to the end of the reply, at most HTTP_MAX_FDS descriptors (lws
 * stops accepting at the cap rather than spin on EMFILE), and lws's own
 * log lines rate-limited. test/integration/test_http_abuse.py measures it.
 *
 * Loop integration: Debian's libwebsockets 4.1 is built without
 * LWS_WITH_EXTERNAL_POLL, so the ADD/DEL/CHANGE_MODE_POLL_FD callbacks never
 * fire. lws runs instead on a libuv loop we own (LWS_SERVER_OPTION_LIBUV with
 * a foreign loop), and that libuv loop is embedded in ours the way libuv
 * documents: its backend epoll fd sits in our epoll set, and each time it is
 * readable, or the libuv timeout (uv_backend_timeout) expires, we run
 * uv_run(UV_RUN_NOWAIT) once. Everything stays on one thread; no locks.
 * Runtime needs libuv1 and the libwebsockets-evlib-uv plugin.
 *
 * Memory: the config's callbacks and ud are borrowed and must outlive the
 * server. Bodies returned by metrics() are freed by the server.
 */
#ifndef GPC_HTTP_SERVER_H
#define GPC_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct gpc_loop;
struct http_server;

struct http_server_config {
  struct gpc_loop *loop;
  const char *health_bind;  /* ":8081", "127.0.0.1:0", "[::1]:9000", "0" = off */
  const char *metrics_bind; /* ":8080", ... */
  /* /readyz: true when ready; otherwise *why (static string) explains. */
  bool (*ready)(void *ud, const char **why);
  /* /metrics body (malloc'd, the server frees it). */
  char *(*metrics)(void *ud, size_t *len);
  void *ud;
};

/* Listens on both addresses. NULL with err naming the flag when an address
 * is malformed, unresolvable or cannot be bound (in use, no permission). */
struct http_server *http_server_new(const struct http_server_config *cfg, struct gpc_error *err);
/* The port actually bound (useful with port 0), or 0 when disabled. */
int http_server_health_port(const struct http_server *s);
int http_server_metrics_port(const struct http_server *s);
void http_server_free(struct http_server *s);

/* ---- pure helpers (tested without sockets) ---- */

/* Splits "HOST:PORT" ("" host = every interface; "[v6]" brackets removed).
 * Returns GPC_OK, or GPC_E_INVAL naming `flag` ("--metrics-bind-address")
 * when malformed. *disabled is set for "0". */
int http_server_parse_bind(const char *flag, const char *addr, char *host, size_t host_size,
                           int *port, bool *disabled, struct gpc_error *err);

enum http_vhost { HTTP_VHOST_HEALTH, HTTP_VHOST_METRICS };

struct http_reply {
  int status;
  const char *content_type;
  const char *allow; /* "Allow:" header value on 405, else NULL */
  char *body;        /* malloc'd */
  size_t len;
};

/* What `path` on vhost `v` answers (method GET). */
void http_server_route(const struct http_server_config *cfg, enum http_vhost v, const char *path,
                       struct http_reply *out);
/* The same for any method: GET and HEAD route as above (the server sends
 * no body for HEAD), anything else is 405 with allow "GET, HEAD". */
void http_server_route_method(const struct http_server_config *cfg, enum http_vhost v,
                              const char *method, const char *path, struct http_reply *out);

#endif
