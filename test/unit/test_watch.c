/* test_watch.c — the watch decoder fed recorded streams at every split point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "watch.h"

/* Collected events, each as "TYPE <object with sorted keys>". */
struct sink {
  char **ev;
  size_t n, cap;
  size_t stop_after; /* 0 = never stop */
};

static int collect_cb(const struct watch_event *ev, void *ud) {
  struct sink *s = ud;
  char *obj = json_dumps(ev->object, JSON_SORT_KEYS | JSON_COMPACT);
  gpc_grow((void **)&s->ev, &s->cap, s->n + 1, sizeof *s->ev);
  s->ev[s->n++] = gpc_asprintf("%s %s", watch_event_type_name(ev->type), obj);
  free(obj);
  return s->stop_after && s->n >= s->stop_after;
}

static void sink_free(struct sink *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->ev[i]);
  free(s->ev);
  memset(s, 0, sizeof *s);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  char *buf = NULL;
  size_t cap = 0, n = 0, got;
  do {
    gpc_grow((void **)&buf, &cap, n + 4096, 1);
    got = fread(buf + n, 1, cap - n, f);
    n += got;
  } while (got);
  fclose(f);
  *len = n;
  return buf;
}

/* Feeds `data` cut at the given chunk boundaries; returns the feed result. */
static int feed_chunks(const char *data, size_t len, const size_t *cuts, size_t ncuts,
                       size_t max_event, struct sink *s, size_t *pending) {
  struct watch_decoder *d = watch_decoder_new(max_event);
  struct gpc_error err = {0};
  size_t at = 0;
  int rc = GPC_OK;
  for (size_t i = 0; i <= ncuts && rc == GPC_OK; i++) {
    size_t to = i < ncuts ? cuts[i] : len;
    rc = watch_decoder_feed(d, data + at, to - at, collect_cb, s, &err);
    at = to;
  }
  if (pending) *pending = watch_decoder_pending(d);
  watch_decoder_free(d);
  return rc;
}

static void assert_same(const struct sink *a, const struct sink *b, const char *what, size_t at) {
  if (a->n != b->n) fail_msg("%s at %zu: %zu events, want %zu", what, at, b->n, a->n);
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->ev[i], b->ev[i]) != 0) fail_msg("%s at %zu: event %zu differs", what, at, i);
}

/* Whole, every two-way split, and 1-byte chunks must all give `want_types`. */
static void check_stream(const char *path, const char *const *want_types, size_t nwant) {
  size_t len;
  char *data = slurp(path, &len);
  struct sink whole = {0};
  size_t pending = 1;
  assert_int_equal(feed_chunks(data, len, NULL, 0, 0, &whole, &pending), GPC_OK);
  assert_int_equal(pending, 0);
  assert_int_equal(whole.n, nwant);
  for (size_t i = 0; i < nwant; i++)
    if (strncmp(whole.ev[i], want_types[i], strlen(want_types[i])) != 0)
      fail_msg("%s: event %zu is %.20s, want %s", path, i, whole.ev[i], want_types[i]);
  for (size_t cut = 0; cut <= len; cut++) {
    struct sink s = {0};
    assert_int_equal(feed_chunks(data, len, &cut, 1, 0, &s, NULL), GPC_OK);
    assert_same(&whole, &s, path, cut);
    sink_free(&s);
  }
  size_t *ones = gpc_malloc(len * sizeof *ones);
  for (size_t i = 0; i < len; i++)
    ones[i] = i + 1;
  struct sink s = {0};
  assert_int_equal(feed_chunks(data, len, ones, len, 0, &s, &pending), GPC_OK);
  assert_int_equal(pending, 0);
  assert_same(&whole, &s, "1-byte chunks", 0);
  sink_free(&s);
  free(ones);
  sink_free(&whole);
  free(data);
}

static void test_nodes_stream(void **state) {
  (void)state;
  static const char *const want[] = {"ADDED", "MODIFIED", "ADDED", "BOOKMARK", "DELETED"};
  check_stream("test/data/watch/nodes.jsonl", want, 5);
  /* Spot-check content: the bookmark's RV and the deleted object's RV. */
  size_t len;
  char *data = slurp("test/data/watch/nodes.jsonl", &len);
  struct sink s = {0};
  assert_int_equal(feed_chunks(data, len, NULL, 0, 0, &s, NULL), GPC_OK);
  assert_non_null(strstr(s.ev[3], "\"resourceVersion\":\"1240\""));
  assert_non_null(strstr(s.ev[4], "\"resourceVersion\":\"1241\""));
  sink_free(&s);
  free(data);
}

static void test_expired_stream(void **state) {
  (void)state;
  static const char *const want[] = {"ERROR"};
  check_stream("test/data/watch/expired.jsonl", want, 1);
  size_t len;
  char *data = slurp("test/data/watch/expired.jsonl", &len);
  struct sink s = {0};
  assert_int_equal(feed_chunks(data, len, NULL, 0, 0, &s, NULL), GPC_OK);
  assert_non_null(strstr(s.ev[0], "\"code\":410"));
  assert_non_null(strstr(s.ev[0], "\"reason\":\"Expired\""));
  sink_free(&s);
  free(data);
}

static void test_crlf_and_blank_lines(void **state) {
  (void)state;
  static const char *const want[] = {"ADDED", "BOOKMARK", "DELETED", "ERROR"};
  check_stream("test/data/watch/crlf-blank.jsonl", want, 4);
}

static int feed_str(const char *s, size_t max_event, struct gpc_error *err, size_t *nev) {
  struct watch_decoder *d = watch_decoder_new(max_event);
  struct sink sk = {0};
  int rc = watch_decoder_feed(d, s, strlen(s), collect_cb, &sk, err);
  /* A failed decoder stays failed. */
  if (rc != GPC_OK) assert_int_equal(watch_decoder_feed(d, "\n", 1, collect_cb, &sk, NULL), rc);
  if (nev) *nev = sk.n;
  sink_free(&sk);
  watch_decoder_free(d);
  return rc;
}

static void test_nul_in_strings(void **state) {
  (void)state;
  struct gpc_error err = {0};
  size_t n = 0;
  assert_int_equal(feed_str("{\"type\":\"ADDED\",\"object\":{\"a\":\"x\\u0000y\"}}\n", 0, &err, &n),
                   GPC_OK);
  assert_int_equal(n, 1);
}

static void test_garbage(void **state) {
  (void)state;
  struct gpc_error err = {0};
  size_t n = 0;
  const char *ok = "{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n";
  char buf[256];
  snprintf(buf, sizeof buf, "%snot json\n%s", ok, ok);
  assert_int_equal(feed_str(buf, 0, &err, &n), GPC_E_INVAL);
  assert_int_equal(n, 1); /* the event before the garbage was delivered */
  assert_non_null(strstr(err.msg, "watch event 2"));
  assert_non_null(strstr(err.msg, "malformed JSON"));
  assert_int_equal(feed_str("[1,2]\n", 0, &err, NULL), GPC_E_INVAL);
  assert_int_equal(feed_str("{\"type\":\"ADDED\"}\n", 0, &err, NULL), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "\"object\""));
  assert_int_equal(feed_str("{\"type\":\"RENAMED\",\"object\":{}}\n", 0, &err, NULL), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "RENAMED"));
  assert_int_equal(feed_str("{\"type\":7,\"object\":{}}\n", 0, &err, NULL), GPC_E_INVAL);
  assert_int_equal(feed_str("{\"type\":\"ADDED\",\"object\":{}} {}\n", 0, &err, NULL), GPC_E_INVAL);
  assert_int_equal(feed_str("{\"type\":\"ADDED\",\"object\":{}\n", 0, &err, NULL), GPC_E_INVAL);
  assert_int_equal(feed_str("\x01\xff\n", 0, &err, NULL), GPC_E_INVAL);
}

static void test_too_large(void **state) {
  (void)state;
  struct gpc_error err = {0};
  /* 32-byte event: fits a 32-byte cap exactly, not a 31-byte one. */
  const char *ev = "{\"type\":\"ADDED\",\"object\":{\"x\":1}}\n";
  size_t evlen = strlen(ev) - 1;
  size_t n = 0;
  assert_int_equal(feed_str(ev, evlen, &err, &n), GPC_OK);
  assert_int_equal(n, 1);
  assert_int_equal(feed_str(ev, evlen - 1, &err, NULL), GPC_E_TOO_LARGE);
  assert_non_null(strstr(err.msg, "size cap"));
  /* Fed byte by byte the over-long event is refused before its end arrives. */
  struct watch_decoder *d = watch_decoder_new(16);
  int rc = GPC_OK;
  size_t i;
  for (i = 0; ev[i] && rc == GPC_OK; i++)
    rc = watch_decoder_feed(d, ev + i, 1, collect_cb, NULL, &err);
  assert_int_equal(rc, GPC_E_TOO_LARGE);
  assert_int_equal(i, 17);
  watch_decoder_free(d);
  /* A stream of endless bytes with no newline never grows past the cap. */
  d = watch_decoder_new(1024);
  char junk[100];
  memset(junk, 'a', sizeof junk);
  for (i = 0, rc = GPC_OK; i < 100 && rc == GPC_OK; i++)
    rc = watch_decoder_feed(d, junk, sizeof junk, collect_cb, NULL, &err);
  assert_int_equal(rc, GPC_E_TOO_LARGE);
  assert_true(watch_decoder_pending(d) <= 1024);
  watch_decoder_free(d);
}

static void test_pending_and_cancel(void **state) {
  (void)state;
  struct watch_decoder *d = watch_decoder_new(0);
  struct gpc_error err = {0};
  struct sink s = {.stop_after = 1};
  const char *two =
      "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"DELETED\",\"object\":{}}\n{\"ty";
  assert_int_equal(watch_decoder_feed(d, two, 10, collect_cb, &s, &err), GPC_OK);
  assert_int_equal(watch_decoder_pending(d), 10);
  assert_int_equal(watch_decoder_feed(d, two + 10, strlen(two) - 10, collect_cb, &s, &err),
                   GPC_E_CANCELLED);
  assert_int_equal(s.n, 1); /* stopped after the first event */
  assert_int_equal(watch_decoder_feed(d, "\n", 1, collect_cb, &s, &err), GPC_E_CANCELLED);
  sink_free(&s);
  watch_decoder_free(d);
  /* A cut-off stream reports pending bytes. */
  d = watch_decoder_new(0);
  struct sink s2 = {0};
  assert_int_equal(watch_decoder_feed(d, two, strlen(two), collect_cb, &s2, &err), GPC_OK);
  assert_int_equal(s2.n, 2);
  assert_int_equal(watch_decoder_pending(d), 4);
  sink_free(&s2);
  watch_decoder_free(d);
  assert_string_equal(watch_event_type_name(WATCH_BOOKMARK), "BOOKMARK");
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nodes_stream),         cmocka_unit_test(test_expired_stream),
      cmocka_unit_test(test_crlf_and_blank_lines), cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_nul_in_strings),       cmocka_unit_test(test_too_large),
      cmocka_unit_test(test_pending_and_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
