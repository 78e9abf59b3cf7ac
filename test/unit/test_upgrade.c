/* test_upgrade.c — the driver upgrade state machine: steps, bounds, halts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"
#include "upgrade.h"

#define T "hash-new"
#define NOW 10000

static struct gpc_upg_settings defaults(void) {
  struct gpc_upg_settings s = {.auto_upgrade = true,
                               .max_parallel = 1,
                               .max_unavailable = 1,
                               .drain_timeout_s = 300,
                               .deletion_timeout_s = 300};
  return s;
}

/* n nodes "n0".."n<n-1>", Ready, schedulable, old driver, no state. */
static struct gpc_upg_node *fleet(size_t n) {
  static char names[16][24]; /* room for "n" and any size_t */
  assert_true(n <= 16);
  struct gpc_upg_node *v = calloc(n, sizeof *v);
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "n%zu", i);
    v[i] = (struct gpc_upg_node){
        .name = names[i], .target = "", .ready = true, .driver_reason = "", .validator_reason = ""};
  }
  return v;
}

static void run(const struct gpc_upg_settings *s, const struct gpc_upg_node *nodes, size_t n,
                struct gpc_upg_plan *out) {
  struct gpc_upg_input in = {.settings = s, .target = T, .nodes = nodes, .n_nodes = n, .now = NOW};
  upgrade_plan(&in, out);
}

static const struct gpc_upg_step *step(const struct gpc_upg_plan *p, size_t node) {
  for (size_t i = 0; i < p->n_steps; i++)
    if (p->steps[i].node == node) return &p->steps[i];
  return NULL;
}

static void test_names(void **state) {
  (void)state;
  for (int i = 0; i < GPC_UPG_COUNT; i++)
    assert_int_equal(upgrade_state_parse(upgrade_state_name((enum gpc_upg_state)i)), i);
  assert_int_equal(upgrade_state_parse(NULL), GPC_UPG_NONE);
  assert_int_equal(upgrade_state_parse("upgrade-done"), -1);
  assert_string_equal(upgrade_state_name(GPC_UPG_POD_DELETION), "pod-deletion");
  assert_true(upgrade_state_in_progress(GPC_UPG_DRAIN));
  assert_false(upgrade_state_in_progress(GPC_UPG_PENDING));
  assert_false(upgrade_state_in_progress(GPC_UPG_FAILED));
  assert_int_equal(upgrade_resolve_max_unavailable("25", true, 8), 2);
  assert_int_equal(upgrade_resolve_max_unavailable("25", true, 9), 3); /* rounds up */
  assert_int_equal(upgrade_resolve_max_unavailable("1", true, 8), 1);
  assert_int_equal(upgrade_resolve_max_unavailable("0", false, 8), 1);
  assert_int_equal(upgrade_resolve_max_unavailable("3", false, 8), 3);
}

/* The first round: one slot, the first node by name is cordoned, the rest wait. */
static void test_start_one(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  struct gpc_upg_node *v = fleet(4);
  struct gpc_upg_plan p;
  run(&s, v, 4, &p);
  assert_int_equal(p.n_steps, 4);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_CORDONED);
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_SET);
  for (size_t i = 1; i < 4; i++) {
    assert_int_equal(step(&p, i)->to, GPC_UPG_PENDING);
    assert_int_equal(step(&p, i)->cordon, GPC_UPG_CORDON_KEEP);
  }
  assert_int_equal(p.counts[GPC_UPG_CORDONED], 1);
  assert_int_equal(p.counts[GPC_UPG_PENDING], 3);
  assert_int_equal(p.unavailable, 1);
  upgrade_plan_release(&p);

  /* maxParallel 3, maxUnavailable 2: the unavailability bound is the tighter. */
  s.max_parallel = 3;
  s.max_unavailable = 2;
  run(&s, v, 4, &p);
  assert_int_equal(p.counts[GPC_UPG_CORDONED], 2);
  upgrade_plan_release(&p);
  /* 0 = no parallel limit; maxUnavailable still bounds. */
  s.max_parallel = 0;
  s.max_unavailable = 4;
  run(&s, v, 4, &p);
  assert_int_equal(p.counts[GPC_UPG_CORDONED], 4);
  upgrade_plan_release(&p);
  free(v);
}

/* Nodes already unavailable for other reasons count against maxUnavailable;
 * a node a user cordoned costs nothing, goes first, and is never uncordoned. */
static void test_unavailable_counted(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  s.max_parallel = 2;
  struct gpc_upg_node *v = fleet(4);
  v[3].ready = false; /* down: uses the only unit */
  struct gpc_upg_plan p;
  run(&s, v, 4, &p);
  assert_int_equal(p.counts[GPC_UPG_CORDONED], 0);
  assert_int_equal(p.counts[GPC_UPG_PENDING], 4);
  upgrade_plan_release(&p);

  v[3].ready = true;
  v[2].unschedulable = true; /* a user's cordon */
  run(&s, v, 4, &p);
  /* n2 first: it already uses the one unit, so it costs nothing; n0 would
   * be a second unavailable node. */
  assert_int_equal(step(&p, 2)->to, GPC_UPG_CORDONED);
  assert_int_equal(step(&p, 2)->cordon, GPC_UPG_CORDON_KEEP);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_PENDING);
  upgrade_plan_release(&p);
  s.max_unavailable = 2;
  run(&s, v, 4, &p);
  assert_int_equal(step(&p, 2)->to, GPC_UPG_CORDONED);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_CORDONED);
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_SET);
  assert_int_equal(step(&p, 1)->to, GPC_UPG_PENDING);
  assert_int_equal(p.unavailable, 2);
  upgrade_plan_release(&p);

  /* At validation's end: done, and the user's cordon stays. */
  v[2].state = GPC_UPG_VALIDATING;
  v[2].target = T;
  v[2].driver_current = v[2].driver_ready = v[2].validator_ready = true;
  run(&s, v, 3, &p);
  assert_int_equal(step(&p, 2)->to, GPC_UPG_DONE);
  assert_int_equal(step(&p, 2)->cordon, GPC_UPG_CORDON_KEEP);
  upgrade_plan_release(&p);
  free(v);
}

static void test_flow(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  s.drain = true;
  struct gpc_upg_pod pods[] = {
      {.namespace = "ml",
       .name = "train-1",
       .gpu = true,
       .has_controller = true,
       .drain_selected = true},
      {.namespace = "gpu",
       .name = "dp",
       .gpu = true,
       .daemonset = true,
       .has_controller = true,
       .drain_selected = true},
      {.namespace = "web", .name = "api", .has_controller = true, .drain_selected = true},
  };
  struct gpc_upg_node *v = fleet(1);
  v[0].state = GPC_UPG_CORDONED;
  v[0].target = T;
  v[0].unschedulable = true;
  v[0].cordoned_by_us = true;
  v[0].since = NOW - 5;
  v[0].pods = pods;
  v[0].n_pods = 3;
  struct gpc_upg_plan p;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_POD_DELETION);
  upgrade_plan_release(&p);

  /* pod-deletion evicts the GPU pod only (not the DaemonSet's). */
  v[0].state = GPC_UPG_POD_DELETION;
  run(&s, v, 1, &p);
  assert_false(step(&p, 0)->transition);
  assert_int_equal(step(&p, 0)->n_evict, 1);
  assert_int_equal(step(&p, 0)->evict[0], 0);
  assert_int_equal(p.recheck_at, NOW - 5 + 300);
  upgrade_plan_release(&p);
  /* Evicted and Terminating: wait, evict nothing more. */
  pods[0].deleting = true;
  run(&s, v, 1, &p);
  assert_int_equal(p.n_steps, 0);
  upgrade_plan_release(&p);
  /* Gone: on to the drain. */
  pods[0].gpu = false;
  pods[0].drain_selected = false;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_DRAIN);
  upgrade_plan_release(&p);

  /* The drain evicts the rest but the DaemonSet pod. */
  v[0].state = GPC_UPG_DRAIN;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->n_evict, 1);
  assert_int_equal(step(&p, 0)->evict[0], 2);
  upgrade_plan_release(&p);
  pods[2].drain_selected = false; /* gone */
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_RESTARTING);
  assert_true(step(&p, 0)->delete_driver);
  upgrade_plan_release(&p);

  /* Restarting: the old pod is Terminating, then the new one comes up. */
  v[0].state = GPC_UPG_RESTARTING;
  v[0].driver_deleting = true;
  run(&s, v, 1, &p);
  assert_int_equal(p.n_steps, 0);
  upgrade_plan_release(&p);
  v[0].driver_deleting = false;
  v[0].driver_current = true;
  run(&s, v, 1, &p);
  assert_int_equal(p.n_steps, 0); /* current, not Ready yet */
  upgrade_plan_release(&p);
  v[0].driver_ready = true;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_VALIDATING);
  upgrade_plan_release(&p);

  v[0].state = GPC_UPG_VALIDATING;
  run(&s, v, 1, &p);
  assert_int_equal(p.n_steps, 0);
  upgrade_plan_release(&p);
  v[0].validator_ready = true;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_DONE);
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_CLEAR);
  /* Still counted until the uncordon is seen: a failed write never lets
   * another node past the bound. */
  assert_int_equal(p.unavailable, 1);
  upgrade_plan_release(&p);

  /* Done and current: nothing to write, ever (B3). */
  v[0].state = GPC_UPG_DONE;
  v[0].unschedulable = false;
  run(&s, v, 1, &p);
  assert_int_equal(p.n_steps, 0);
  assert_int_equal(p.counts[GPC_UPG_DONE], 1);
  upgrade_plan_release(&p);
  free(v);
}

/* A PDB keeps refusing: evictions are retried every round until the
 * timeout, then the node fails with a reason and the rollout halts. */
static void test_drain_timeout_halts(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  s.drain = true;
  s.max_unavailable = 3;
  struct gpc_upg_pod pods[] = {
      {.namespace = "ml", .name = "guarded", .has_controller = true, .drain_selected = true}};
  struct gpc_upg_node *v = fleet(3);
  v[0].state = GPC_UPG_DRAIN;
  v[0].target = T;
  v[0].unschedulable = true;
  v[0].since = NOW - 299;
  v[0].pods = pods;
  v[0].n_pods = 1;
  struct gpc_upg_plan p;
  run(&s, v, 3, &p);
  assert_int_equal(step(&p, 0)->n_evict, 1);
  assert_false(p.halted);
  assert_int_equal(p.recheck_at, NOW + 1);
  upgrade_plan_release(&p);

  v[0].since = NOW - 300;
  run(&s, v, 3, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_FAILED);
  assert_int_equal(step(&p, 0)->n_evict, 0);
  assert_non_null(strstr(step(&p, 0)->reason, "DrainTimeout: pod ml/guarded"));
  assert_true(p.halted);
  assert_string_equal(p.halt_node, "n0");
  /* The others wait; the failed node stays cordoned for a person to look at. */
  assert_int_equal(step(&p, 1)->to, GPC_UPG_PENDING);
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_KEEP);
  upgrade_plan_release(&p);

  /* drain.timeoutSeconds 0: wait forever. */
  s.drain_timeout_s = 0;
  v[0].since = 1;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->n_evict, 1);
  assert_int_equal(p.recheck_at, 0);
  upgrade_plan_release(&p);
  free(v);
}

/* kubectl drain's refusals: a bare pod without force, emptyDir without
 * deleteEmptyDir. Terminal pods go regardless. */
static void test_drain_refusals(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  s.drain = true;
  struct gpc_upg_pod pods[] = {
      {.namespace = "a", .name = "bare", .drain_selected = true},
      {.namespace = "a", .name = "done", .terminal = true, .drain_selected = true},
      {.namespace = "a", .name = "static", .mirror = true, .drain_selected = true},
      {.namespace = "ops",
       .name = "gpu-policy-alloc-n0",
       .gpu = true,
       .ours = true,
       .drain_selected = true},
  };
  struct gpc_upg_node *v = fleet(1);
  v[0].state = GPC_UPG_DRAIN;
  v[0].target = T;
  v[0].since = NOW;
  v[0].pods = pods;
  v[0].n_pods = 4; /* the allocation pod is ours: never evicted */
  struct gpc_upg_plan p;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_FAILED);
  assert_string_equal(step(&p, 0)->reason,
                      "DrainRefused: pod a/bare has no controller (force is false)");
  assert_int_equal(step(&p, 0)->n_evict, 0);
  upgrade_plan_release(&p);

  s.drain_force = true;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->n_evict, 2); /* bare and done; the mirror pod stays */
  upgrade_plan_release(&p);

  pods[0].has_controller = true;
  pods[0].empty_dir = true;
  s.drain_force = false;
  run(&s, v, 1, &p);
  assert_non_null(strstr(step(&p, 0)->reason, "emptyDir"));
  upgrade_plan_release(&p);
  s.drain_empty_dir = true;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->n_evict, 2);
  upgrade_plan_release(&p);

  /* drain.podSelector: unselected pods stay. */
  pods[0].drain_selected = false;
  pods[1].drain_selected = false;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_RESTARTING);
  upgrade_plan_release(&p);
  free(v);
}

static void test_wait_jobs(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  s.wait_timeout_s = 60;
  struct gpc_upg_pod pods[] = {
      {.namespace = "b", .name = "job", .wait_selected = true, .has_controller = true}};
  struct gpc_upg_node *v = fleet(1);
  v[0].state = GPC_UPG_CORDONED;
  v[0].target = T;
  v[0].since = NOW;
  v[0].pods = pods;
  v[0].n_pods = 1;
  struct gpc_upg_plan p;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_WAIT_JOBS);
  upgrade_plan_release(&p);
  v[0].state = GPC_UPG_WAIT_JOBS;
  run(&s, v, 1, &p);
  assert_int_equal(p.n_steps, 0);
  assert_int_equal(p.recheck_at, NOW + 60);
  upgrade_plan_release(&p);
  /* Past the timeout the upgrade goes on, as gpu-operator's does. */
  v[0].since = NOW - 60;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_POD_DELETION);
  upgrade_plan_release(&p);
  /* A finished job lets it go on at once. */
  v[0].since = NOW;
  pods[0].terminal = true;
  run(&s, v, 1, &p);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_POD_DELETION);
  upgrade_plan_release(&p);
  free(v);
}

/* A new driver crash-looping on the canary: failed, halted, others wait;
 * fixing the version (a new target) starts it again, uncordoned first. */
static void test_canary_and_fix(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  struct gpc_upg_node *v = fleet(3);
  v[0].state = GPC_UPG_RESTARTING;
  v[0].target = T;
  v[0].unschedulable = true;
  v[0].driver_current = true;
  v[0].driver_failing = true;
  v[0].driver_reason = "CrashLoopBackOff";
  v[1].state = GPC_UPG_PENDING;
  v[1].target = T;
  v[2].state = GPC_UPG_PENDING;
  v[2].target = T;
  struct gpc_upg_plan p;
  run(&s, v, 3, &p);
  assert_int_equal(p.n_steps, 1);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_FAILED);
  assert_string_equal(step(&p, 0)->reason, "DriverFailed: CrashLoopBackOff");
  assert_true(p.halted);
  upgrade_plan_release(&p);

  v[0].state = GPC_UPG_FAILED;
  run(&s, v, 3, &p);
  assert_int_equal(p.n_steps, 0); /* held until a person acts: no writes */
  assert_true(p.halted);
  upgrade_plan_release(&p);

  /* A person removes the label: the node is retried; still cordoned (by
   * us: the marker stays), so it costs nothing and starts again at once,
   * and it will be uncordoned at the end. */
  v[0].state = GPC_UPG_NONE;
  v[0].cordoned_by_us = true;
  v[0].driver_current = false;
  run(&s, v, 3, &p);
  assert_false(p.halted);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_CORDONED);
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_KEEP);
  upgrade_plan_release(&p);

  /* A fixed version (new target): the failed node is released and pending. */
  v[0].state = GPC_UPG_FAILED;
  v[0].target = "hash-bad";
  run(&s, v, 3, &p);
  assert_false(p.halted);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_CORDONED);       /* and restarts at once */
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_SET); /* released, then ours again */
  upgrade_plan_release(&p);

  /* The validator failing after the driver came up fails the node too. */
  v[0].state = GPC_UPG_VALIDATING;
  v[0].target = T;
  v[0].driver_current = true;
  v[0].driver_failing = false;
  v[0].driver_ready = true;
  v[0].validator_failing = true;
  v[0].validator_reason = "NoDevice";
  run(&s, v, 1, &p);
  assert_string_equal(step(&p, 0)->reason, "ValidationFailed: NoDevice");
  upgrade_plan_release(&p);
  free(v);
}

static void test_paused_and_abort(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  s.paused = true;
  s.max_parallel = 2;
  s.max_unavailable = 2;
  struct gpc_upg_node *v = fleet(3);
  v[0].state = GPC_UPG_VALIDATING;
  v[0].target = T;
  v[0].unschedulable = true;
  v[0].cordoned_by_us = true;
  v[0].driver_current = v[0].driver_ready = v[0].validator_ready = true;
  struct gpc_upg_plan p;
  run(&s, v, 3, &p);
  assert_true(p.held);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_DONE); /* in flight: finishes */
  assert_int_equal(step(&p, 1)->to, GPC_UPG_PENDING);
  assert_int_equal(step(&p, 2)->to, GPC_UPG_PENDING);
  upgrade_plan_release(&p);

  /* autoUpgrade off: leave every node as we found it. */
  s.auto_upgrade = false;
  v[0].state = GPC_UPG_DRAIN;
  v[1].state = GPC_UPG_PENDING;
  v[2].state = GPC_UPG_DRAIN;
  v[2].unschedulable = true; /* the user's cordon: no marker */
  run(&s, v, 3, &p);
  assert_int_equal(p.n_steps, 3);
  assert_int_equal(step(&p, 0)->to, GPC_UPG_NONE);
  assert_int_equal(step(&p, 0)->cordon, GPC_UPG_CORDON_CLEAR);
  assert_int_equal(step(&p, 1)->cordon, GPC_UPG_CORDON_KEEP);
  assert_int_equal(step(&p, 2)->cordon, GPC_UPG_CORDON_KEEP); /* the user's cordon */
  upgrade_plan_release(&p);
  /* Off and nothing of ours: nothing at all. */
  struct gpc_upg_node *w = fleet(2);
  run(&s, w, 2, &p);
  assert_int_equal(p.n_steps, 0);
  upgrade_plan_release(&p);
  free(w);
  free(v);
}

static void test_patch(void **state) {
  (void)state;
  struct gpc_upg_step s = {
      .transition = true, .to = GPC_UPG_CORDONED, .cordon = GPC_UPG_CORDON_SET};
  json_t *j = upgrade_node_patch(&s, T, 42);
  char *txt = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
  assert_string_equal(
      txt, "{\"metadata\":{\"annotations\":{\"gpupolicy.dev/driver-upgrade-cordoned\":\"true\","
           "\"gpupolicy.dev/driver-upgrade-reason\":null,"
           "\"gpupolicy.dev/driver-upgrade-since\":\"42\","
           "\"gpupolicy.dev/driver-upgrade-target\":\"hash-new\"},"
           "\"labels\":{\"gpupolicy.dev/driver-upgrade-state\":\"cordoned\"}},"
           "\"spec\":{\"unschedulable\":true}}");
  free(txt);
  json_decref(j);

  struct gpc_upg_step f = {.transition = true, .to = GPC_UPG_FAILED};
  snprintf(f.reason, sizeof f.reason, "DrainTimeout: x");
  j = upgrade_node_patch(&f, T, 42);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(j, "metadata"), "annotations"),
                          GPC_ANNOTATION_UPGRADE_REASON)),
                      "DrainTimeout: x");
  assert_null(json_object_get(j, "spec"));
  json_decref(j);

  struct gpc_upg_step d = {.transition = true, .to = GPC_UPG_NONE, .cordon = GPC_UPG_CORDON_CLEAR};
  j = upgrade_node_patch(&d, T, 42);
  txt = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
  assert_non_null(strstr(txt, "\"gpupolicy.dev/driver-upgrade-state\":null"));
  assert_non_null(strstr(txt, "\"spec\":{\"unschedulable\":null}"));
  assert_non_null(strstr(txt, "\"gpupolicy.dev/driver-upgrade-cordoned\":null"));
  free(txt);
  json_decref(j);

  struct gpc_upg_step none = {.evict = NULL};
  assert_null(upgrade_node_patch(&none, T, 42));
}

static struct gpc_policy *decode(const char *upgrade_policy) {
  char buf[2048];
  snprintf(buf, sizeof buf,
           "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"driver\":{\"upgradePolicy\":%s}}}",
           upgrade_policy);
  json_error_t je;
  json_t *obj = json_loads(buf, 0, &je);
  if (!obj) fail_msg("bad JSON: %s", je.text);
  struct gpc_policy *p = NULL;
  struct gpc_error err = {0};
  if (policy_from_json(obj, &p, &err)) fail_msg("%s", err.msg);
  json_decref(obj);
  return p;
}

static void test_from_policy(void **state) {
  (void)state;
  struct gpc_policy *p = decode(
      "{\"autoUpgrade\":true,\"paused\":true,\"maxParallelUpgrades\":2,\"maxUnavailable\":\"25%\","
      "\"waitForCompletion\":{\"podSelector\":{\"matchLabels\":{\"kind\":\"job\"}},"
      "\"timeoutSeconds\":60},\"podDeletion\":{\"force\":true,\"timeoutSeconds\":30},"
      "\"drain\":{\"enable\":true,\"timeoutSeconds\":90,\"deleteEmptyDir\":true,"
      "\"podSelector\":{\"matchLabels\":{\"drain\":\"yes\"}}}}");
  struct gpc_upg_settings s;
  upgrade_settings_from_policy(&p->driver_upgrade, 10, &s);
  assert_true(s.auto_upgrade);
  assert_true(s.paused);
  assert_int_equal(s.max_parallel, 2);
  assert_int_equal(s.max_unavailable, 3); /* 25% of 10, rounded up */
  assert_int_equal(s.wait_timeout_s, 60);
  assert_int_equal(s.deletion_timeout_s, 30);
  assert_true(s.deletion_force);
  assert_false(s.deletion_empty_dir);
  assert_true(s.drain);
  assert_false(s.drain_force);
  assert_true(s.drain_empty_dir);
  assert_int_equal(s.drain_timeout_s, 90);

  json_error_t je;
  json_t *pod = json_loads(
      "{\"metadata\":{\"namespace\":\"ml\",\"name\":\"w-1\",\"labels\":{\"kind\":\"job\"},"
      "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"w\",\"controller\":true}]},"
      "\"spec\":{\"containers\":[{\"name\":\"main\",\"resources\":{\"limits\":"
      "{\"nvidia.com/gpu\":\"2\"}}}],\"volumes\":[{\"name\":\"s\",\"emptyDir\":{}}]},"
      "\"status\":{\"phase\":\"Running\"}}",
      0, &je);
  assert_non_null(pod);
  struct gpc_upg_pod f;
  upgrade_pod_facts(pod, &p->driver_upgrade, &f);
  assert_string_equal(f.namespace, "ml");
  assert_string_equal(f.name, "w-1");
  assert_true(f.gpu);
  assert_true(f.has_controller);
  assert_false(f.daemonset);
  assert_false(f.mirror);
  assert_false(f.ours);
  assert_true(f.empty_dir);
  assert_false(f.terminal);
  assert_false(f.deleting);
  assert_true(f.wait_selected);
  assert_false(f.drain_selected); /* drain.podSelector wants drain=yes */
  json_decref(pod);

  pod = json_loads(
      "{\"metadata\":{\"namespace\":\"gpu\",\"name\":\"dp\",\"deletionTimestamp\":\"x\","
      "\"annotations\":{\"kubernetes.io/"
      "config.mirror\":\"h\"},\"labels\":{\"drain\":\"yes\",\"app.kubernetes.io/"
      "managed-by\":\"gpu-policy-validator\"},"
      "\"ownerReferences\":[{\"kind\":\"DaemonSet\",\"name\":\"d\",\"controller\":true}]},"
      "\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":"
      "{\"nvidia.com/gpu\":0}}}]},\"status\":{\"phase\":\"Succeeded\"}}",
      0, &je);
  upgrade_pod_facts(pod, &p->driver_upgrade, &f);
  assert_false(f.gpu);
  assert_true(f.daemonset);
  assert_true(f.mirror);
  assert_true(f.ours);
  assert_true(f.terminal);
  assert_true(f.deleting);
  assert_false(f.wait_selected);
  assert_true(f.drain_selected);
  json_decref(pod);
  policy_free(p);

  /* Defaults: no selectors, so nothing waited for and everything drained. */
  p = decode("{}");
  upgrade_settings_from_policy(&p->driver_upgrade, 3, &s);
  assert_false(s.auto_upgrade);
  assert_int_equal(s.max_parallel, 1);
  assert_int_equal(s.max_unavailable, 1);
  assert_int_equal(s.drain_timeout_s, 300);
  pod = json_loads("{\"metadata\":{\"name\":\"bare\"}}", 0, &je);
  upgrade_pod_facts(pod, &p->driver_upgrade, &f);
  assert_string_equal(f.namespace, "");
  assert_false(f.has_controller);
  assert_false(f.wait_selected);
  assert_true(f.drain_selected);
  json_decref(pod);
  policy_free(p);
}

/* status.driverUpgrade: counts of every state, failed nodes first with
 * their reason, done nodes left out, at most 10 listed. */
static void test_status_json(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  struct gpc_upg_node *v = fleet(12);
  v[0].state = GPC_UPG_DONE;
  v[0].target = T;
  v[0].driver_current = true;
  v[1].state = GPC_UPG_DRAIN;
  v[1].target = T;
  v[1].since = NOW;
  v[1].unschedulable = true;
  v[5].state = GPC_UPG_FAILED;
  v[5].target = T;
  v[5].reason = "DrainTimeout: pod a/b";
  struct gpc_upg_plan p;
  struct gpc_upg_input in = {.settings = &s, .target = T, .nodes = v, .n_nodes = 12, .now = NOW};
  upgrade_plan(&in, &p);
  json_t *j = upgrade_status_json(&in, &p);
  assert_string_equal(json_string_value(json_object_get(j, "summary")), "1/12 halted");
  assert_string_equal(json_string_value(json_object_get(j, "target")), T);
  json_t *st = json_object_get(j, "states");
  assert_int_equal(json_object_size(st), GPC_UPG_COUNT - 1); /* zeros too: merge patches */
  assert_int_equal(json_integer_value(json_object_get(st, "pending")), 9);
  assert_int_equal(json_integer_value(json_object_get(st, "failed")), 1);
  assert_int_equal(json_integer_value(json_object_get(st, "restarting")),
                   1); /* drain -> restarting */
  assert_int_equal(json_integer_value(json_object_get(st, "cordoned")), 0);
  assert_true(json_is_true(json_object_get(j, "halted")));
  json_t *nodes = json_object_get(j, "nodes");
  assert_int_equal(json_array_size(nodes), GPC_UPG_STATUS_NODES);
  json_t *first = json_array_get(nodes, 0);
  assert_string_equal(json_string_value(json_object_get(first, "name")), "n5");
  assert_string_equal(json_string_value(json_object_get(first, "reason")), "DrainTimeout: pod a/b");
  json_t *second = json_array_get(nodes, 1);
  assert_string_equal(json_string_value(json_object_get(second, "state")), "restarting");
  assert_null(json_object_get(second, "reason"));
  json_decref(j);
  upgrade_plan_release(&p);
  free(v);
}

/* A node's own target (its driver DaemonSet's render) wins over the input's. */
static void test_per_node_target(void **state) {
  (void)state;
  struct gpc_upg_settings s = defaults();
  struct gpc_upg_node *v = fleet(2);
  v[0].state = GPC_UPG_FAILED;
  v[0].target = "rhel-hash";
  v[0].want = "rhel-hash";
  v[1].state = GPC_UPG_DONE;
  v[1].target = T;
  v[1].driver_current = true;
  struct gpc_upg_plan p;
  run(&s, v, 2, &p);
  assert_true(p.halted); /* failed for its own current target */
  assert_int_equal(p.n_steps, 0);
  upgrade_plan_release(&p);
  free(v);
}

static void test_workload(void **state) {
  (void)state;
  json_error_t je;
  json_t *pod = json_loads(
      "{\"metadata\":{\"namespace\":\"ml\",\"name\":\"w\",\"labels\":{\"kind\":\"job\"}},"
      "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"m\",\"resources\":"
      "{\"requests\":{\"nvidia.com/gpu\":1}}}]},\"status\":{\"phase\":\"Running\"}}",
      0, &je);
  struct gpc_workload *a = upgrade_workload_new(pod);
  json_object_set_new(json_object_get(pod, "status"), "phase", json_string("Succeeded"));
  struct gpc_workload *b = upgrade_workload_new(pod);
  json_decref(pod); /* the projections own their strings */
  assert_string_equal(a->node, "n1");
  assert_string_equal(a->facts.namespace, "ml");
  assert_true(a->facts.gpu);
  assert_false(a->facts.has_controller);
  assert_true(upgrade_workload_changed(a, b));
  assert_false(upgrade_workload_changed(a, a));
  struct gpc_policy *p = decode("{\"waitForCompletion\":{\"podSelector\":{\"matchLabels\":"
                                "{\"kind\":\"job\"}}},\"drain\":{\"podSelector\":{\"matchLabels\":"
                                "{\"kind\":\"web\"}}}}");
  struct gpc_upg_pod f;
  upgrade_workload_facts(a, &p->driver_upgrade, &f);
  assert_true(f.wait_selected);
  assert_false(f.drain_selected);
  assert_string_equal(f.name, "w");
  upgrade_workload_facts(b, NULL, &f);
  assert_true(f.terminal);
  assert_false(f.wait_selected);
  assert_true(f.drain_selected);
  policy_free(p);
  upgrade_workload_free(a);
  upgrade_workload_free(b);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_start_one),
      cmocka_unit_test(test_unavailable_counted),
      cmocka_unit_test(test_flow),
      cmocka_unit_test(test_drain_timeout_halts),
      cmocka_unit_test(test_drain_refusals),
      cmocka_unit_test(test_wait_jobs),
      cmocka_unit_test(test_canary_and_fix),
      cmocka_unit_test(test_paused_and_abort),
      cmocka_unit_test(test_patch),
      cmocka_unit_test(test_from_policy),
      cmocka_unit_test(test_status_json),
      cmocka_unit_test(test_per_node_target),
      cmocka_unit_test(test_workload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
