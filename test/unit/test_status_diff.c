/* test_status_diff.c — transitions are what kstatus waits for; Events only on changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "status_diff.h"

static json_t *st(const char *ready, const char *reconciling, const char *stalled,
                  const char *stalled_reason, int gen, const char *failing) {
  json_error_t je;
  char buf[2048];
  snprintf(
      buf, sizeof buf,
      "{\"observedGeneration\":%d,\"nodesSummary\":\"1/2\",\"conditions\":["
      "{\"type\":\"Ready\",\"status\":\"%s\",\"reason\":\"R\",\"message\":\"1/2 nodes ready\"},"
      "{\"type\":\"Reconciling\",\"status\":\"%s\",\"reason\":\"P\"},"
      "{\"type\":\"Stalled\",\"status\":\"%s\",\"reason\":\"%s\",\"message\":\"spec.x: bad\"},"
      "{\"type\":\"NodeConflict\",\"status\":\"False\",\"reason\":\"NoConflict\"}],"
      "\"failingNodes\":[%s]}",
      gen, ready, reconciling, stalled, stalled_reason, failing);
  json_t *j = json_loads(buf, 0, &je);
  if (!j) fail_msg("bad JSON: %s", je.text);
  return j;
}

struct seen {
  int n;
  char reasons[8][64];
  char messages[8][256];
};

static void collect(const char *type, const char *reason, const char *message, void *ud) {
  struct seen *s = ud;
  (void)type;
  if (s->n >= 8) fail_msg("too many events");
  snprintf(s->reasons[s->n], sizeof s->reasons[0], "%s", reason);
  snprintf(s->messages[s->n], sizeof s->messages[0], "%s", message);
  s->n++;
}

static void test_transitions(void **state) {
  (void)state;
  json_t *a = st("Unknown", "True", "False", "Idle", 1, "");
  json_t *b = st("Unknown", "True", "False", "Idle", 1, "");
  json_object_set_new(b, "nodesSummary", json_string("2/2"));
  assert_false(status_diff_transition(a, b)); /* counts only */
  json_t *c = st("True", "False", "False", "Idle", 1, "");
  assert_true(status_diff_transition(b, c)); /* Ready moved */
  json_t *d = st("True", "False", "False", "Idle", 2, "");
  assert_true(status_diff_transition(c, d));    /* new generation observed */
  assert_true(status_diff_transition(NULL, a)); /* first status */
  assert_string_equal(status_diff_condition(c, "Ready"), "True");
  assert_string_equal(status_diff_condition(c, "Nope"), "");
  assert_string_equal(status_diff_condition(NULL, "Ready"), "");
  json_decref(a);
  json_decref(b);
  json_decref(c);
  json_decref(d);
}

static void test_events(void **state) {
  (void)state;
  struct seen s = {0};
  json_t *start = st("Unknown", "True", "False", "Idle", 1, "");
  status_diff_events(NULL, start, collect, &s);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.reasons[0], "RolloutStarted");

  /* Unchanged: nothing. */
  memset(&s, 0, sizeof s);
  status_diff_events(start, start, collect, &s);
  assert_int_equal(s.n, 0);

  /* A node starts failing: one NodeFailing naming node, operand and reason. */
  json_t *failing = st("False", "True", "False", "Idle", 1,
                       "{\"node\":\"gpu-1\",\"operand\":\"driver\",\"reason\":\"CrashLoopBackOff\","
                       "\"message\":\"no GPU\"}");
  memset(&s, 0, sizeof s);
  status_diff_events(start, failing, collect, &s);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.reasons[0], "NodeFailing");
  assert_string_equal(s.messages[0], "node gpu-1: driver CrashLoopBackOff: no GPU");
  /* Still failing next time: no repeat. */
  memset(&s, 0, sizeof s);
  status_diff_events(failing, failing, collect, &s);
  assert_int_equal(s.n, 0);

  /* Done. */
  json_t *done = st("True", "False", "False", "Idle", 1, "");
  memset(&s, 0, sizeof s);
  status_diff_events(failing, done, collect, &s);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.reasons[0], "RolloutComplete");
  assert_string_equal(s.messages[0], "1/2 nodes ready");

  /* Stalled: the reason is the condition's. */
  json_t *stalled = st("False", "False", "True", "ApplyFailed", 2, "");
  memset(&s, 0, sizeof s);
  status_diff_events(done, stalled, collect, &s);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.reasons[0], "ApplyFailed");
  assert_string_equal(s.messages[0], "spec.x: bad");
  json_decref(start);
  json_decref(failing);
  json_decref(done);
  json_decref(stalled);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transitions),
      cmocka_unit_test(test_events),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
