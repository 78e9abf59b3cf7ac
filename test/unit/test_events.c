/* test_events.c — Events are created on news, aggregated on repeats, and rate-limited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "events.h"

static const struct events_object P = {.name = "p", .uid = "u-1", .resource_version = "7"};
static const time_t T0 = 1795000000;

static void test_create_body(void **state) {
  (void)state;
  struct gpc_events *ev = events_new("gpu-policy-controller", "pod-x");
  struct events_write w;
  events_record(ev, &P, "Normal", EVENT_ROLLOUT_STARTED, "rolling out to 3 nodes", 1000, T0, &w);
  assert_int_equal(w.kind, EVENTS_CREATE);
  assert_non_null(strstr(w.name, "p."));
  json_t *b = w.body;
  assert_string_equal(json_string_value(json_object_get(b, "kind")), "Event");
  const json_t *md = json_object_get(b, "metadata");
  assert_string_equal(json_string_value(json_object_get(md, "namespace")), "default");
  assert_string_equal(json_string_value(json_object_get(md, "name")), w.name);
  const json_t *io = json_object_get(b, "involvedObject");
  assert_string_equal(json_string_value(json_object_get(io, "kind")), "ClusterGPUPolicy");
  assert_string_equal(json_string_value(json_object_get(io, "apiVersion")),
                      "gpupolicy.dev/v1alpha1");
  assert_string_equal(json_string_value(json_object_get(io, "uid")), "u-1");
  assert_null(json_object_get(io, "namespace"));
  assert_string_equal(json_string_value(json_object_get(b, "reason")), "RolloutStarted");
  assert_string_equal(json_string_value(json_object_get(b, "type")), "Normal");
  assert_int_equal(json_integer_value(json_object_get(b, "count")), 1);
  char ts[32];
  events_format_time(T0, ts, sizeof ts);
  assert_string_equal(json_string_value(json_object_get(b, "firstTimestamp")), ts);
  assert_int_equal(strlen(ts), 20);
  events_write_release(&w);
  events_free(ev);
}

static void test_repeats_aggregate(void **state) {
  (void)state;
  struct gpc_events *ev = events_new(NULL, NULL);
  struct events_write w;
  events_record(ev, &P, "Warning", EVENT_NODE_FAILING, "gpu-2: driver CrashLoopBackOff", 1000, T0,
                &w);
  assert_int_equal(w.kind, EVENTS_CREATE);
  char *name = strdup(w.name);
  events_write_release(&w);
  /* 100 repeats within the interval: nothing sent, one pending update. */
  for (int i = 0; i < 100; i++) {
    events_record(ev, &P, "Warning", EVENT_NODE_FAILING, "gpu-2: driver CrashLoopBackOff",
                  1000 + (uint64_t)i * 10, T0 + 1, &w);
    assert_int_equal(w.kind, EVENTS_NONE);
  }
  assert_int_equal(events_next_flush_at(ev), 1000 + EVENTS_UPDATE_INTERVAL_MS);
  assert_false(events_next_flush(ev, 2000, T0 + 1, &w));
  assert_true(events_next_flush(ev, 1000 + EVENTS_UPDATE_INTERVAL_MS, T0 + 10, &w));
  assert_int_equal(w.kind, EVENTS_PATCH);
  assert_string_equal(w.name, name);
  assert_int_equal(json_integer_value(json_object_get(w.body, "count")), 101);
  events_write_release(&w);
  assert_false(events_next_flush(ev, 100000, T0 + 100, &w));
  assert_int_equal(events_next_flush_at(ev), 0);
  /* A repeat long after: patched at once. */
  events_record(ev, &P, "Warning", EVENT_NODE_FAILING, "gpu-2: driver CrashLoopBackOff", 200000,
                T0 + 200, &w);
  assert_int_equal(w.kind, EVENTS_PATCH);
  assert_int_equal(json_integer_value(json_object_get(w.body, "count")), 102);
  events_write_release(&w);
  free(name);
  events_free(ev);
}

static void test_new_messages_rate_limited(void **state) {
  (void)state;
  struct gpc_events *ev = events_new(NULL, NULL);
  struct events_write w;
  int creates = 0;
  char msg[64];
  for (int i = 0; i < 50; i++) {
    snprintf(msg, sizeof msg, "gpu-%d failing", i);
    events_record(ev, &P, "Warning", EVENT_NODE_FAILING, msg, 1000 + (uint64_t)i, T0, &w);
    if (w.kind == EVENTS_CREATE) creates++;
    events_write_release(&w);
  }
  assert_int_equal(creates, EVENTS_BURST);
  /* The rest was folded into the last Event, newest message first. */
  assert_true(events_next_flush(ev, 1100 + EVENTS_UPDATE_INTERVAL_MS, T0, &w));
  assert_string_equal(json_string_value(json_object_get(w.body, "message")), "gpu-49 failing");
  assert_int_equal(json_integer_value(json_object_get(w.body, "count")), 50 - EVENTS_BURST + 1);
  events_write_release(&w);
  /* A token comes back after EVENTS_REFILL_MS. */
  events_record(ev, &P, "Warning", EVENT_NODE_FAILING, "gpu-99 failing",
                1000 + EVENTS_REFILL_MS + 100, T0 + 61, &w);
  assert_int_equal(w.kind, EVENTS_CREATE);
  events_write_release(&w);
  /* Other reasons and policies have their own budget. */
  events_record(ev, &P, "Normal", EVENT_ROLLOUT_COMPLETE, "done", 2000, T0, &w);
  assert_int_equal(w.kind, EVENTS_CREATE);
  events_write_release(&w);
  struct events_object q = {.name = "q", .uid = "u-2"};
  events_record(ev, &q, "Warning", EVENT_NODE_FAILING, "gpu-1 failing", 2000, T0, &w);
  assert_int_equal(w.kind, EVENTS_CREATE);
  events_write_release(&w);
  events_forget(ev, "p");
  events_record(ev, &P, "Normal", EVENT_ROLLOUT_COMPLETE, "done", 2001, T0, &w);
  assert_int_equal(w.kind, EVENTS_CREATE); /* forgotten: starts a new series */
  events_write_release(&w);
  events_free(ev);
}

/* A PATCH answered 404 (the Event expired): the same Event is created anew
 * with the aggregated count, as client-go's recorder does. */
static void test_recreate_after_patch_404(void **state) {
  (void)state;
  struct gpc_events *ev = events_new("gpu-policy-controller", NULL);
  struct events_write w;
  events_record(ev, &P, "Warning", EVENT_NODE_FAILING, "node a failing", 1000, T0, &w);
  assert_int_equal(w.kind, EVENTS_CREATE);
  char *name = gpc_strdup(w.name);
  events_write_release(&w);
  events_record(ev, &P, "Warning", EVENT_NODE_FAILING, "node a failing",
                1000 + EVENTS_UPDATE_INTERVAL_MS, T0 + 10, &w);
  assert_int_equal(w.kind, EVENTS_PATCH);
  events_write_release(&w);
  assert_true(events_recreate(ev, name, &w));
  assert_int_equal(w.kind, EVENTS_CREATE);
  assert_string_equal(w.name, name);
  assert_int_equal(json_integer_value(json_object_get(w.body, "count")), 2);
  assert_string_equal(json_string_value(json_object_get(w.body, "message")), "node a failing");
  assert_string_equal(json_string_value(json_object_get(w.body, "reason")), EVENT_NODE_FAILING);
  const json_t *io = json_object_get(w.body, "involvedObject");
  assert_string_equal(json_string_value(json_object_get(io, "name")), "p");
  assert_string_equal(json_string_value(json_object_get(io, "uid")), "u-1");
  events_write_release(&w);
  assert_false(events_recreate(ev, "p.unknown", &w));
  assert_int_equal(w.kind, EVENTS_NONE);
  free(name);
  events_free(ev);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_body),
      cmocka_unit_test(test_repeats_aggregate),
      cmocka_unit_test(test_new_messages_rate_limited),
      cmocka_unit_test(test_recreate_after_patch_404),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
