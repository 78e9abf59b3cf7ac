/* test_http_server.c — bind-address parsing, routing, and real requests
 * served through lws/libuv on the project's loop (single-threaded: the test
 * drives the loop while its client socket waits). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "alloc.h"
#include "http_server.h"
#include "loop.h"

static void test_parse_bind(void **state) {
  (void)state;
  char host[64];
  int port;
  bool off;
  struct gpc_error err = {0};
  assert_int_equal(http_server_parse_bind("--x", ":8080", host, sizeof host, &port, &off, &err),
                   GPC_OK);
  assert_string_equal(host, "");
  assert_int_equal(port, 8080);
  assert_false(off);
  assert_int_equal(
      http_server_parse_bind("--x", "127.0.0.1:0", host, sizeof host, &port, &off, &err), GPC_OK);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 0);
  assert_int_equal(
      http_server_parse_bind("--x", "[::1]:9000", host, sizeof host, &port, &off, &err), GPC_OK);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 9000);
  assert_int_equal(http_server_parse_bind("--x", "0", host, sizeof host, &port, &off, &err),
                   GPC_OK);
  assert_true(off);
  const char *bad[] = {"8080", ":", ":http", ":65536", "::1:80", "[::1:80", "a b:80", ":123456"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(http_server_parse_bind("--metrics-bind-address", bad[i], host, sizeof host,
                                            &port, &off, &err),
                     GPC_E_INVAL);
    assert_non_null(strstr(err.msg, "--metrics-bind-address"));
  }
}

static bool is_ready;
static int metrics_calls;

static bool ready_cb(void *ud, const char **why) {
  (void)ud;
  *why = "informers not synced";
  return is_ready;
}

/* A body larger than one write chunk, to exercise partial writes. */
static char *metrics_cb(void *ud, size_t *len) {
  (void)ud;
  metrics_calls++;
  size_t n = 100000;
  char *b = gpc_malloc(n + 1);
  for (size_t i = 0; i < n; i++)
    b[i] = (char)('a' + i % 26);
  b[n - 1] = '\n';
  b[n] = 0;
  *len = n;
  return b;
}

static void test_route(void **state) {
  (void)state;
  struct http_server_config cfg = {.ready = ready_cb, .metrics = metrics_cb};
  struct http_reply r;
  is_ready = false;
  http_server_route(&cfg, HTTP_VHOST_HEALTH, "/healthz", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok");
  free(r.body);
  http_server_route(&cfg, HTTP_VHOST_HEALTH, "/readyz", &r);
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "informers not synced");
  free(r.body);
  is_ready = true;
  http_server_route(&cfg, HTTP_VHOST_HEALTH, "/readyz", &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  http_server_route(&cfg, HTTP_VHOST_HEALTH, "/metrics", &r); /* wrong port */
  assert_int_equal(r.status, 404);
  free(r.body);
  http_server_route(&cfg, HTTP_VHOST_METRICS, "/healthz", &r);
  assert_int_equal(r.status, 404);
  free(r.body);
  http_server_route(&cfg, HTTP_VHOST_METRICS, "/metrics", &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.content_type, "version=0.0.4"));
  assert_int_equal(r.len, 100000);
  assert_null(r.allow);
  free(r.body);
  /* only GET and HEAD */
  const char *refused[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER", NULL};
  for (const char **m = refused; *m; m++) {
    http_server_route_method(&cfg, HTTP_VHOST_HEALTH, *m, "/healthz", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    free(r.body);
  }
  http_server_route_method(&cfg, HTTP_VHOST_HEALTH, "HEAD", "/healthz", &r);
  assert_int_equal(r.status, 200);
  free(r.body);
}

/* Sends `req` to 127.0.0.1:port and runs the loop until the server closes
 * or a full Content-Length body arrived. Returns the raw response. */
static bool until_close; /* read until the server closes, whatever Content-Length says */

static char *fetch(struct gpc_loop *loop, int port, const char *req) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  assert_true(rc == 0 || errno == EINPROGRESS);
  size_t sent = 0, len = 0, cap = 1 << 18;
  char *out = gpc_calloc(1, cap);
  uint64_t deadline = gpc_loop_now_ms() + 5000;
  while (gpc_loop_now_ms() < deadline) {
    gpc_loop_run_once(loop, 5);
    if (sent < strlen(req)) {
      ssize_t n = send(fd, req + sent, strlen(req) - sent, MSG_NOSIGNAL);
      if (n > 0) sent += (size_t)n;
    }
    ssize_t n = recv(fd, out + len, cap - len - 1, 0);
    if (n == 0) break;
    if (n > 0) len += (size_t)n;
    char *hdr_end = strstr(out, "\r\n\r\n");
    char *cl = strcasestr(out, "content-length:");
    if (!until_close && hdr_end && cl &&
        len >= (size_t)(hdr_end + 4 - out) + strtoul(cl + 15, NULL, 10))
      break;
  }
  close(fd);
  out[len] = 0;
  return out;
}

static void test_serve(void **state) {
  (void)state;
  struct gpc_error err = {0};
  struct gpc_loop *loop = gpc_loop_new(&err);
  struct http_server_config cfg = {.loop = loop,
                                   .health_bind = "127.0.0.1:0",
                                   .metrics_bind = "127.0.0.1:0",
                                   .ready = ready_cb,
                                   .metrics = metrics_cb};
  struct http_server *s = http_server_new(&cfg, &err);
  assert_non_null(s);
  int hp = http_server_health_port(s), mp = http_server_metrics_port(s);
  assert_true(hp > 0 && mp > 0 && hp != mp);

  is_ready = false;
  char *r = fetch(loop, hp, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 503"));
  assert_non_null(strstr(r, "informers not synced"));
  free(r);
  is_ready = true;
  r = fetch(loop, hp, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  free(r);
  r = fetch(loop, hp, "GET /healthz HTTP/1.0\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.0 200") ? r : strstr(r, "HTTP/1.1 200"));
  assert_non_null(strstr(r, "\r\n\r\nok"));
  free(r);
  r = fetch(loop, hp, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, " 404"));
  free(r);
  /* HEAD: the headers of GET, no body */
  r = fetch(loop, hp, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  assert_non_null(strcasestr(r, "content-length: 2"));
  assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");
  free(r);
  r = fetch(loop, hp, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 405"));
  assert_non_null(strcasestr(r, "allow: GET, HEAD"));
  free(r);
  /* pipelined requests: one reply, then the server closes */
  until_close = true;
  r = fetch(loop, hp,
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  assert_null(strstr(strstr(r, "HTTP/1.1 200") + 1, "HTTP/1.1"));
  assert_non_null(strcasestr(r, "connection: close"));
  free(r);
  until_close = false;

  metrics_calls = 0;
  r = fetch(loop, mp, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  char *body = strstr(r, "\r\n\r\n");
  assert_non_null(body);
  assert_int_equal(strlen(body + 4), 100000);
  assert_int_equal(metrics_calls, 1);
  free(r);

  /* the same port twice cannot be bound: a clear error naming the flag */
  char busy[32];
  snprintf(busy, sizeof busy, "127.0.0.1:%d", hp);
  struct http_server_config cfg2 = {.loop = loop, .health_bind = "0", .metrics_bind = busy};
  assert_null(http_server_new(&cfg2, &err));
  assert_non_null(strstr(err.msg, "--metrics-bind-address"));
  cfg2.metrics_bind = busy;
  cfg2.health_bind = busy;
  assert_null(http_server_new(&cfg2, &err));
  assert_non_null(strstr(err.msg, "both"));

  http_server_free(s);
  /* both disabled: nothing listens, nothing breaks */
  struct http_server_config off = {.loop = loop, .health_bind = "0", .metrics_bind = "0"};
  s = http_server_new(&off, &err);
  assert_non_null(s);
  assert_int_equal(http_server_health_port(s), 0);
  http_server_free(s);
  assert_int_equal(gpc_loop_timer_count(loop), 0);
  gpc_loop_free(loop);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_bind),
      cmocka_unit_test(test_route),
      cmocka_unit_test(test_serve),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
