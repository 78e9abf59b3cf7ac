/* test_status.c — conditions (kstatus rules, lastTransitionTime stability),
 * counts, failingNodes cap and order, status_equal, the Stalled status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "plan.h"
#include "status.h"
#include "yaml2json.h"

static struct gpc_policy *mk_policy(void) {
  const char *y = "metadata: {name: gpus, uid: u, generation: 7}\nspec: {}\n";
  struct gpc_error err = {0};
  json_t *j = yaml2json_parse(y, strlen(y), 0, &err);
  struct gpc_policy *p = NULL;
  assert_int_equal(policy_from_json(j, &p, &err), GPC_OK);
  json_decref(j);
  return p;
}

/* A plan with `matched` nodes of which `ready` are ready, every operand in
 * `state`. */
static void mk_plan(struct gpc_plan *pl, uint32_t matched, uint32_t ready,
                    enum gpc_operand_state state) {
  memset(pl, 0, sizeof(*pl));
  pl->objects = json_array();
  pl->matched = matched;
  pl->ready = ready;
  pl->gpus = 8 * (int64_t)ready;
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    struct gpc_operand_summary *s = &pl->operands[op];
    s->state = state;
    snprintf(s->daemonset, sizeof(s->daemonset), "gpus-%s", gpc_operand_name(op));
    s->nodes_wanted = matched;
    s->nodes_ready = ready;
    s->desired = s->ready = s->updated = s->available = (int32_t)ready;
  }
}

static void add_failing(struct gpc_plan *pl, const char *node, enum gpc_operand op,
                        const char *reason) {
  pl->failing = gpc_realloc(pl->failing, (pl->n_failing + 1) * sizeof(*pl->failing));
  struct gpc_failing_node *f = &pl->failing[pl->n_failing++];
  f->node = gpc_strdup(node);
  f->op = op;
  f->reason = gpc_strdup(reason);
  f->message = gpc_strdup("boom");
  f->node_down = false;
  pl->operands[op].nodes_failing++;
  pl->operands[op].state = GPC_STATE_DEGRADED;
}

static const json_t *cond(const json_t *st, const char *type) {
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(st, "conditions"), i, c) {
    if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0) return c;
  }
  fail_msg("no condition %s", type);
  return NULL;
}

static const char *cs(const json_t *st, const char *type, const char *field) {
  return json_string_value(json_object_get(cond(st, type), field));
}

/* kstatus: never Reconciling and Stalled both True; Stalled=True -> Ready=False;
 * every condition carries the generation. */
static void check_invariants(const json_t *st) {
  bool rec = strcmp(cs(st, "Reconciling", "status"), "True") == 0;
  bool stalled = strcmp(cs(st, "Stalled", "status"), "True") == 0;
  assert_false(rec && stalled);
  if (stalled) assert_string_equal(cs(st, "Ready", "status"), "False");
  const char *types[] = {"Ready", "Reconciling", "Stalled", "NodeConflict"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(json_integer_value(json_object_get(cond(st, types[i]), "observedGeneration")),
                     json_integer_value(json_object_get(st, "observedGeneration")));
    assert_non_null(cs(st, types[i], "reason"));
    assert_non_null(cs(st, types[i], "message"));
  }
}

static void test_rollout_then_ready(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 4, 1, GPC_STATE_PROGRESSING);
  pl.operands[GPC_OP_DRIVER].state = GPC_STATE_READY;
  pl.operands[GPC_OP_DRIVER].nodes_ready = 4;
  json_t *s1 = status_from_plan(&pl, p, NULL, 1000);
  check_invariants(s1);
  assert_string_equal(cs(s1, "Ready", "status"), "Unknown");
  assert_string_equal(cs(s1, "Ready", "reason"), "RolloutInProgress");
  assert_non_null(strstr(cs(s1, "Ready", "message"), "waiting for container-toolkit on 3 node(s)"));
  assert_string_equal(cs(s1, "Reconciling", "status"), "True");
  assert_string_equal(cs(s1, "Stalled", "reason"), "Idle");
  assert_string_equal(cs(s1, "NodeConflict", "reason"), "NoConflict");
  assert_string_equal(json_string_value(json_object_get(s1, "nodesSummary")), "1/4");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(s1, "gpus"), "allocatable")),
                   8);
  assert_int_equal(json_integer_value(json_object_get(s1, "observedGeneration")), 7);
  assert_string_equal(cs(s1, "Ready", "lastTransitionTime"), "1970-01-01T00:16:40Z");

  /* same facts later: nothing changes, not even the times */
  json_t *s2 = status_from_plan(&pl, p, s1, 5000);
  assert_true(status_equal(s1, s2));
  plan_release(&pl);

  /* done: Ready flips (new time), Stalled does not (old time) */
  mk_plan(&pl, 4, 4, GPC_STATE_READY);
  json_t *s3 = status_from_plan(&pl, p, s2, 9000);
  check_invariants(s3);
  assert_string_equal(cs(s3, "Ready", "status"), "True");
  assert_string_equal(cs(s3, "Ready", "reason"), "AllOperandsReady");
  assert_string_equal(cs(s3, "Ready", "message"), "4/4 nodes ready");
  assert_string_equal(cs(s3, "Reconciling", "reason"), "Idle");
  assert_string_equal(cs(s3, "Ready", "lastTransitionTime"), "1970-01-01T02:30:00Z");
  assert_string_equal(cs(s3, "Stalled", "lastTransitionTime"), "1970-01-01T00:16:40Z");
  assert_false(status_equal(s2, s3));
  json_t *ops = json_object_get(s3, "operands");
  assert_int_equal(json_array_size(ops), 5);
  assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 2), "daemonSet")),
                      "gpus-device-plugin");
  assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 2), "state")), "Ready");
  plan_release(&pl);
  json_decref(s1);
  json_decref(s2);
  json_decref(s3);
  policy_free(p);
}

static void test_failing_nodes(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 20, 3, GPC_STATE_PROGRESSING);
  char name[32];
  for (int i = 0; i < 15; i++) {
    snprintf(name, sizeof(name), "gpu-%02d", i);
    add_failing(&pl, name, GPC_OP_DRIVER, "CrashLoopBackOff");
  }
  json_t *st = status_from_plan(&pl, p, NULL, 1);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "False");
  assert_string_equal(cs(st, "Ready", "reason"), "DriverNotReady");
  const char *msg = cs(st, "Ready", "message");
  assert_non_null(strstr(msg, "driver not ready on 15 node(s): gpu-00 (CrashLoopBackOff)"));
  assert_non_null(strstr(msg, "3/20 nodes ready"));
  /* 2 nodes are neither ready nor failing: still rolling out */
  assert_string_equal(cs(st, "Reconciling", "status"), "True");
  json_t *f = json_object_get(st, "failingNodes");
  assert_int_equal(json_array_size(f), GPC_STATUS_MAX_FAILING);
  assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "node")), "gpu-00");
  assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "operand")),
                      "driver");
  assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "message")), "boom");
  assert_string_equal(json_string_value(json_object_get(
                          json_array_get(json_object_get(st, "operands"), 0), "state")),
                      "Degraded");
  json_decref(st);
  plan_release(&pl);

  /* every non-ready node failing: nothing left rolling */
  mk_plan(&pl, 2, 1, GPC_STATE_READY);
  add_failing(&pl, "x", GPC_OP_DEVICE_PLUGIN, "Error");
  st = status_from_plan(&pl, p, NULL, 1);
  check_invariants(st);
  assert_string_equal(cs(st, "Reconciling", "status"), "False");
  assert_string_equal(cs(st, "Ready", "reason"), "DevicePluginNotReady");
  assert_non_null(
      strstr(cs(st, "Ready", "message"), "device-plugin not ready on 1 node(s): x (Error)"));
  json_decref(st);
  plan_release(&pl);

  /* the earliest failing stage names the reason, whatever the order */
  static const struct {
    enum gpc_operand later, earlier;
    const char *reason;
  } cases[] = {
      {GPC_OP_VALIDATOR, GPC_OP_TOOLKIT, "ContainerToolkitNotReady"},
      {GPC_OP_VALIDATOR, GPC_OP_DCGM_EXPORTER, "DcgmExporterNotReady"},
      {GPC_OP_VALIDATOR, GPC_OP_VALIDATOR, "ValidatorNotReady"},
      {GPC_OP_DEVICE_PLUGIN, GPC_OP_DRIVER, "DriverNotReady"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    mk_plan(&pl, 3, 1, GPC_STATE_READY);
    add_failing(&pl, "a", cases[i].later, "CrashLoopBackOff");
    add_failing(&pl, "b", cases[i].earlier, "NoDevice");
    st = status_from_plan(&pl, p, NULL, 1);
    check_invariants(st);
    assert_string_equal(cs(st, "Ready", "status"), "False");
    assert_string_equal(cs(st, "Ready", "reason"), cases[i].reason);
    assert_non_null(strstr(cs(st, "Ready", "message"), gpc_operand_name(cases[i].earlier)));
    json_decref(st);
    plan_release(&pl);
  }
  policy_free(p);
}

static void test_not_ready_nodes(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 4, 3, GPC_STATE_READY);
  pl.not_ready = 1;
  pl.not_ready_first = gpc_strdup("gpu-4");
  json_t *st = status_from_plan(&pl, p, NULL, 1);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "True");
  assert_non_null(strstr(cs(st, "Ready", "message"), "3/4 nodes ready; 1 node(s) NotReady"));
  assert_non_null(strstr(cs(st, "Ready", "message"), "gpu-4"));
  assert_string_equal(json_string_value(json_object_get(st, "nodesSummary")), "3/4");
  json_decref(st);
  plan_release(&pl);
  policy_free(p);
}

static void test_no_nodes_and_conflict(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 0, 0, GPC_STATE_READY);
  pl.conflicted = 3;
  pl.conflict_owner = gpc_strdup("older");
  json_t *st = status_from_plan(&pl, p, NULL, 1);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "True");
  assert_string_equal(cs(st, "Ready", "reason"), "NoMatchingNodes");
  assert_string_equal(cs(st, "NodeConflict", "status"), "True");
  assert_string_equal(cs(st, "NodeConflict", "reason"), "NodesOwnedByOlderPolicy");
  assert_non_null(strstr(cs(st, "NodeConflict", "message"), "older"));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "nodes"), "conflicted")),
                   3);
  json_decref(st);
  plan_release(&pl);
  policy_free(p);
}

static void test_stalled(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 2, 1, GPC_STATE_PROGRESSING);
  json_t *prev = status_from_plan(&pl, p, NULL, 100);
  json_t *st = status_stalled(prev, 8, "InvalidSpec",
                              "spec.driver.imagePullPolicy: Unsupported value \"Sometimes\"", 200);
  check_invariants(st);
  assert_string_equal(cs(st, "Stalled", "status"), "True");
  assert_string_equal(cs(st, "Stalled", "reason"), "InvalidSpec");
  assert_string_equal(cs(st, "Ready", "status"), "False");
  assert_string_equal(cs(st, "Ready", "reason"), "InvalidSpec");
  assert_non_null(strstr(cs(st, "Ready", "message"), "spec.driver.imagePullPolicy"));
  assert_string_equal(cs(st, "Reconciling", "status"), "False");
  assert_int_equal(json_integer_value(json_object_get(st, "observedGeneration")), 8);
  /* counts kept from before: nothing was applied */
  assert_string_equal(json_string_value(json_object_get(st, "nodesSummary")), "1/2");
  json_decref(st);
  /* no previous status at all */
  st = status_stalled(NULL, 1, "ApplyFailed", "DaemonSet gpus-driver: 422", 5);
  check_invariants(st);
  assert_string_equal(cs(st, "Stalled", "reason"), "ApplyFailed");
  json_decref(st);
  json_decref(prev);
  plan_release(&pl);
  policy_free(p);
}

/* A write the API server refuses overrides the plan's verdict (here: all
 * ready) until it goes through; counts and NodeConflict stay. */
static void test_apply_failed_overlay(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 2, 2, GPC_STATE_READY);
  json_t *prev = status_from_plan(&pl, p, NULL, 100);
  assert_string_equal(cs(prev, "Ready", "status"), "True");
  json_t *st = status_from_plan(&pl, p, prev, 200);
  status_set_apply_failed(st, prev, p->generation,
                          "apply servicemonitors.monitoring.coreos.com ns/x: 404 NotFound: the "
                          "server could not find the requested resource",
                          200);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "False");
  assert_string_equal(cs(st, "Ready", "reason"), "ApplyFailed");
  assert_non_null(strstr(cs(st, "Ready", "message"), "servicemonitors"));
  assert_string_equal(cs(st, "Stalled", "status"), "True");
  assert_string_equal(cs(st, "Stalled", "reason"), "ApplyFailed");
  assert_string_equal(cs(st, "Reconciling", "status"), "False");
  assert_string_equal(cs(st, "NodeConflict", "status"), "False");
  assert_string_equal(cs(st, "Ready", "lastTransitionTime"), "1970-01-01T00:03:20Z");
  assert_string_equal(json_string_value(json_object_get(st, "nodesSummary")), "2/2");
  assert_false(status_equal(prev, st));
  /* the next status without the failure is Ready again */
  json_t *again = status_from_plan(&pl, p, st, 300);
  assert_string_equal(cs(again, "Ready", "status"), "True");
  assert_string_equal(cs(again, "Stalled", "status"), "False");
  json_decref(again);
  json_decref(st);
  json_decref(prev);
  plan_release(&pl);
  policy_free(p);
}

/* Driver upgrades: in progress turns Ready=True into Unknown with
 * Reconciling=True; a halt is Ready=False naming it; Stalled is kept. */
static void test_driver_upgrade_overlay(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 2, 2, GPC_STATE_READY);
  json_t *prev = status_from_plan(&pl, p, NULL, 100);
  json_t *up = json_pack("{s:s}", "summary", "1/2");
  json_t *st = status_from_plan(&pl, p, prev, 200);
  status_set_driver_upgrade(st, prev, p->generation, up, false, true, "driver upgrade 1/2", 200);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "Unknown");
  assert_string_equal(cs(st, "Ready", "reason"), "DriverUpgradeInProgress");
  assert_string_equal(cs(st, "Reconciling", "status"), "True");
  assert_string_equal(cs(st, "Reconciling", "reason"), "DriverUpgradeInProgress");
  assert_string_equal(cs(st, "Stalled", "status"), "False");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(st, "driverUpgrade"), "summary")), "1/2");
  json_decref(st);
  st = status_from_plan(&pl, p, prev, 200);
  status_set_driver_upgrade(st, prev, p->generation, up, true, true, "driver upgrade halted", 200);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "False");
  assert_string_equal(cs(st, "Ready", "reason"), "DriverUpgradeHalted");
  assert_string_equal(cs(st, "Ready", "message"), "driver upgrade halted");
  json_decref(st);
  /* Done: the block stays, the conditions are the plan's. */
  st = status_from_plan(&pl, p, prev, 200);
  status_set_driver_upgrade(st, prev, p->generation, up, false, false, "", 200);
  assert_string_equal(cs(st, "Ready", "status"), "True");
  assert_string_equal(cs(st, "Reconciling", "status"), "False");
  json_decref(st);
  json_decref(up);
  json_decref(prev);
  plan_release(&pl);
  policy_free(p);
}

static void test_equal_ignores_list_order(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 2, 2, GPC_STATE_READY);
  json_t *a = status_from_plan(&pl, p, NULL, 1);
  json_t *b = json_deep_copy(a);
  /* the API server may hand conditions back in another order */
  json_t *conds = json_object_get(b, "conditions");
  json_t *first = json_incref(json_array_get(conds, 0));
  json_array_remove(conds, 0);
  json_array_append_new(conds, first);
  json_t *ops = json_object_get(b, "operands");
  json_t *op0 = json_incref(json_array_get(ops, 0));
  json_array_remove(ops, 0);
  json_array_append_new(ops, op0);
  assert_true(status_equal(a, b));
  /* but any value change counts */
  json_object_set_new(json_object_get(b, "gpus"), "allocatable", json_integer(1));
  assert_false(status_equal(a, b));
  json_decref(b);
  b = json_deep_copy(a);
  json_object_set_new(json_array_get(json_object_get(b, "conditions"), 1), "message",
                      json_string("x"));
  assert_false(status_equal(a, b));
  assert_false(status_equal(a, NULL));
  json_decref(a);
  json_decref(b);
  plan_release(&pl);
  policy_free(p);
}

/* A NotReady node is in failingNodes but does not make the policy not Ready. */
static void test_node_down_is_listed_not_failing(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 3, 2, GPC_STATE_READY);
  pl.not_ready = 1;
  pl.not_ready_first = gpc_strdup("gpu-9");
  pl.failing = gpc_calloc(1, sizeof(*pl.failing));
  pl.failing[0] =
      (struct gpc_failing_node){.node = gpc_strdup("gpu-9"),
                                .op = GPC_OP_DRIVER,
                                .reason = gpc_strdup("Unreachable"),
                                .message = gpc_strdup("Kubelet stopped posting node status."),
                                .node_down = true};
  pl.n_failing = 1;
  json_t *st = status_from_plan(&pl, p, NULL, 1);
  check_invariants(st);
  assert_string_equal(cs(st, "Ready", "status"), "True");
  assert_string_equal(cs(st, "Ready", "reason"), "AllOperandsReady");
  assert_non_null(
      strstr(cs(st, "Ready", "message"), "1 node(s) NotReady (not waited for), e.g. gpu-9"));
  json_t *f = json_object_get(st, "failingNodes");
  assert_int_equal(json_array_size(f), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "reason")),
                      "Unreachable");
  json_decref(st);
  plan_release(&pl);
  policy_free(p);
}

/* The Driver column shows a new version as pending until the nodes run it. */
static void test_driver_summary_says_what_runs(void **state) {
  (void)state;
  struct gpc_policy *p = mk_policy();
  struct gpc_plan pl;
  mk_plan(&pl, 4, 4, GPC_STATE_READY);
  json_t *st = status_from_plan(&pl, p, NULL, 100);
  const char *v = p->operands[GPC_OP_DRIVER].version;
  assert_string_equal(json_string_value(json_object_get(st, "driverSummary")), v);
  json_decref(st);
  pl.operands[GPC_OP_DRIVER].pending_update = 3;
  st = status_from_plan(&pl, p, NULL, 100);
  char want[128];
  snprintf(want, sizeof want, "%s (pending on 3 of 4)", v);
  assert_string_equal(json_string_value(json_object_get(st, "driverSummary")), want);
  json_decref(st);
  pl.operands[GPC_OP_DRIVER].state = GPC_STATE_DISABLED;
  st = status_from_plan(&pl, p, NULL, 100);
  assert_string_equal(json_string_value(json_object_get(st, "driverSummary")), "disabled");
  json_decref(st);
  json_decref(pl.objects);
  policy_free(p);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rollout_then_ready),
      cmocka_unit_test(test_failing_nodes),
      cmocka_unit_test(test_no_nodes_and_conflict),
      cmocka_unit_test(test_not_ready_nodes),
      cmocka_unit_test(test_stalled),
      cmocka_unit_test(test_equal_ignores_list_order),
      cmocka_unit_test(test_apply_failed_overlay),
      cmocka_unit_test(test_driver_upgrade_overlay),
      cmocka_unit_test(test_driver_summary_says_what_runs),
      cmocka_unit_test(test_node_down_is_listed_not_failing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
