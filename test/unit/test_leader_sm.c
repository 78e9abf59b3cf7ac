/* test_leader_sm.c — client-go's Lease election rules with a fake clock. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "leader_sm.h"

#define T0 1795896062123456LL /* 2026-11-28T20:01:02.123456Z */

static char *lease(const char *holder, long dur, const char *acquire, const char *renew,
                   long transitions, const char *rv) {
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:{s:s}},s:{s:s,s:i,s:s,s:s,s:i}}", "apiVersion",
                        "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", "l",
                        "namespace", "ns", "resourceVersion", rv, "labels", "keep", "me", "spec",
                        "holderIdentity", holder, "leaseDurationSeconds", (int)dur, "acquireTime",
                        acquire, "renewTime", renew, "leaseTransitions", (int)transitions);
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}

static json_t *spec_of(const char *body) {
  json_t *o = json_loads(body, 0, NULL);
  assert_non_null(o);
  json_t *spec = json_incref(json_object_get(o, "spec"));
  json_decref(o);
  return spec;
}

static const char *sget(json_t *spec, const char *k) {
  return json_string_value(json_object_get(spec, k));
}

static long iget(json_t *spec, const char *k) {
  return (long)json_integer_value(json_object_get(spec, k));
}

static void test_microtime(void **state) {
  (void)state;
  char b[40];
  assert_string_equal(leader_sm_microtime(0, b, sizeof b), "1970-01-01T00:00:00.000000Z");
  assert_string_equal(leader_sm_microtime(T0, b, sizeof b), "2026-11-28T20:01:02.123456Z");
  assert_string_equal(leader_sm_microtime(T0 - 123456 + 7, b, sizeof b),
                      "2026-11-28T20:01:02.000007Z");
}

/* No lease: GET 404 -> CREATE -> leader; then fast-path renewals keep
 * acquireTime and transitions. */
static void test_create_then_renew(void **state) {
  (void)state;
  struct leader_sm sm;
  leader_sm_init(&sm, "me", "ns", "l", 0, 0, 0);
  assert_int_equal(sm.lease_ms, 15000);
  assert_int_equal(leader_sm_begin(&sm, 1000), LEADER_STEP_GET);
  assert_int_equal(leader_sm_on_get(&sm, 1000, 404, NULL, 0), LEADER_STEP_CREATE);
  char *body = leader_sm_body(&sm, LEADER_STEP_CREATE, false, T0);
  json_t *o = json_loads(body, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(json_object_get(o, "metadata"), "name")),
                      "l");
  assert_null(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
  json_decref(o);
  json_t *spec = spec_of(body);
  assert_string_equal(sget(spec, "holderIdentity"), "me");
  assert_int_equal(iget(spec, "leaseDurationSeconds"), 15);
  assert_string_equal(sget(spec, "acquireTime"), "2026-11-28T20:01:02.123456Z");
  assert_string_equal(sget(spec, "renewTime"), "2026-11-28T20:01:02.123456Z");
  assert_int_equal(iget(spec, "leaseTransitions"), 0);
  json_decref(spec);
  free(body);

  char *resp =
      lease("me", 15, "2026-11-28T20:01:02.123456Z", "2026-11-28T20:01:02.123456Z", 0, "5");
  enum leader_step next;
  assert_true(leader_sm_on_write(&sm, 1000, 201, resp, strlen(resp), &next));
  free(resp);
  assert_true(sm.leading);

  /* renew two seconds later: fast path straight to UPDATE */
  assert_int_equal(leader_sm_begin(&sm, 3000), LEADER_STEP_UPDATE);
  body = leader_sm_body(&sm, LEADER_STEP_UPDATE, false, T0 + 2000000);
  o = json_loads(body, 0, NULL);
  json_t *meta = json_object_get(o, "metadata");
  assert_string_equal(json_string_value(json_object_get(meta, "resourceVersion")), "5");
  assert_string_equal(json_string_value(json_object_get(json_object_get(meta, "labels"), "keep")),
                      "me");
  json_decref(o);
  spec = spec_of(body);
  assert_string_equal(sget(spec, "acquireTime"), "2026-11-28T20:01:02.123456Z");
  assert_string_equal(sget(spec, "renewTime"), "2026-11-28T20:01:04.123456Z");
  assert_int_equal(iget(spec, "leaseTransitions"), 0);
  json_decref(spec);
  free(body);

  /* the fast-path write conflicts: fall back to a GET in the same round */
  assert_false(leader_sm_on_write(&sm, 3000, 409, "{}", 2, &next));
  assert_int_equal(next, LEADER_STEP_GET);
  leader_sm_release(&sm);
}

/* Another holder's lease expires leaseDurationSeconds after this replica
 * last SAW the record change, whatever its renewTime says. */
static void test_expiry_from_local_observation(void **state) {
  (void)state;
  struct leader_sm sm;
  leader_sm_init(&sm, "me", "ns", "l", 0, 0, 0);
  /* renewTime years in the past: a skewed clock must not make it look expired */
  char *a =
      lease("other", 15, "2000-01-01T00:00:00.000000Z", "2000-01-01T00:00:00.000000Z", 3, "10");
  assert_int_equal(leader_sm_on_get(&sm, 100000, 200, a, strlen(a)), LEADER_STEP_NONE);
  assert_string_equal(leader_sm_holder(&sm), "other");
  assert_int_equal(leader_sm_on_get(&sm, 114999, 200, a, strlen(a)), LEADER_STEP_NONE);
  /* the holder renews at 110000 (record changes): the clock restarts */
  char *b =
      lease("other", 15, "2000-01-01T00:00:00.000000Z", "2000-01-01T00:00:10.000000Z", 3, "11");
  assert_int_equal(leader_sm_on_get(&sm, 110000, 200, b, strlen(b)), LEADER_STEP_NONE);
  assert_int_equal(leader_sm_on_get(&sm, 124999, 200, b, strlen(b)), LEADER_STEP_NONE);
  /* unchanged for a whole lease duration: take it over, transitions + 1 */
  assert_int_equal(leader_sm_on_get(&sm, 125000, 200, b, strlen(b)), LEADER_STEP_UPDATE);
  char *body = leader_sm_body(&sm, LEADER_STEP_UPDATE, false, T0);
  json_t *spec = spec_of(body);
  assert_string_equal(sget(spec, "holderIdentity"), "me");
  assert_string_equal(sget(spec, "acquireTime"), "2026-11-28T20:01:02.123456Z");
  assert_int_equal(iget(spec, "leaseTransitions"), 4);
  json_decref(spec);
  free(body);
  /* a lost race (409) just fails the round */
  enum leader_step next;
  assert_false(leader_sm_on_write(&sm, 125001, 409, "{}", 2, &next));
  assert_int_equal(next, LEADER_STEP_NONE);
  assert_false(sm.leading);
  free(a);
  free(b);
  leader_sm_release(&sm);
}

static void test_released_lease_is_taken_at_once(void **state) {
  (void)state;
  struct leader_sm sm;
  leader_sm_init(&sm, "me", "ns", "l", 0, 0, 0);
  char *a = lease("", 1, "2026-11-28T20:01:02.123456Z", "2026-11-28T20:01:02.123456Z", 2, "3");
  assert_int_equal(leader_sm_on_get(&sm, 5000, 200, a, strlen(a)), LEADER_STEP_UPDATE);
  free(a);
  leader_sm_release(&sm);
}

static void test_deadline_and_release(void **state) {
  (void)state;
  struct leader_sm sm;
  leader_sm_init(&sm, "me", "ns", "l", 0, 0, 0);
  char *a = lease("me", 15, "2026-11-28T20:01:02.123456Z", "2026-11-28T20:01:02.123456Z", 7, "9");
  enum leader_step next;
  assert_true(leader_sm_on_write(&sm, 1000, 200, a, strlen(a), &next));
  free(a);
  assert_false(leader_sm_check_deadline(&sm, 10999));
  assert_true(sm.leading);
  assert_true(leader_sm_check_deadline(&sm, 11000));
  assert_false(sm.leading);
  assert_false(leader_sm_check_deadline(&sm, 12000)); /* reported once */
  /* not leading any more: the next round is a GET, not a blind renewal */
  assert_int_equal(leader_sm_begin(&sm, 12000), LEADER_STEP_GET);

  char *body = leader_sm_body(&sm, LEADER_STEP_UPDATE, true, T0);
  json_t *spec = spec_of(body);
  assert_string_equal(sget(spec, "holderIdentity"), "");
  assert_int_equal(iget(spec, "leaseDurationSeconds"), 1);
  assert_int_equal(iget(spec, "leaseTransitions"), 7);
  assert_string_equal(sget(spec, "renewTime"), "2026-11-28T20:01:02.123456Z");
  json_decref(spec);
  free(body);
  leader_sm_release(&sm);
}

/* A leader that finds the lease in someone else's hands stops at once. */
static void test_usurped(void **state) {
  (void)state;
  struct leader_sm sm;
  leader_sm_init(&sm, "me", "ns", "l", 0, 0, 0);
  char *a = lease("me", 15, "x", "y", 0, "1");
  enum leader_step next;
  assert_true(leader_sm_on_write(&sm, 1000, 200, a, strlen(a), &next));
  char *b = lease("other", 15, "x", "z", 1, "2");
  assert_int_equal(leader_sm_on_get(&sm, 2000, 200, b, strlen(b)), LEADER_STEP_NONE);
  assert_false(sm.leading);
  /* garbage or errors never make a leader */
  assert_int_equal(leader_sm_on_get(&sm, 3000, 200, "not json", 8), LEADER_STEP_NONE);
  assert_int_equal(leader_sm_on_get(&sm, 3000, 500, "{}", 2), LEADER_STEP_NONE);
  assert_int_equal(leader_sm_on_get(&sm, 3000, 0, NULL, 0), LEADER_STEP_NONE);
  assert_false(leader_sm_on_write(&sm, 3000, 200, "[]", 2, &next));
  /* a successful write of a record naming someone else is not leadership */
  assert_false(leader_sm_on_write(&sm, 3000, 200, b, strlen(b), &next));
  free(a);
  free(b);
  leader_sm_release(&sm);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_microtime),
      cmocka_unit_test(test_create_then_renew),
      cmocka_unit_test(test_expiry_from_local_observation),
      cmocka_unit_test(test_released_lease_is_taken_at_once),
      cmocka_unit_test(test_deadline_and_release),
      cmocka_unit_test(test_usurped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
