/* status.c — conditions, counts and failing nodes from a plan. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

void status_format_time(time_t t, char out[32]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const json_t *find_condition(const json_t *prev, const char *type) {
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(prev, "conditions"), i, c) {
    const char *t = json_string_value(json_object_get(c, "type"));
    if (t && strcmp(t, type) == 0) return c;
  }
  return NULL;
}

/* Appends a metav1.Condition, keeping the previous lastTransitionTime when
 * the status did not change (reason or message changes are not
 * transitions). */
static void add_condition(json_t *conds, const json_t *prev, const char *type, const char *status,
                          const char *reason, const char *message, int64_t gen, time_t now) {
  const json_t *old = find_condition(prev, type);
  const char *old_status = json_string_value(json_object_get(old, "status"));
  const char *old_time = json_string_value(json_object_get(old, "lastTransitionTime"));
  char ts[32];
  if (old_status && old_time && strcmp(old_status, status) == 0)
    snprintf(ts, sizeof(ts), "%s", old_time);
  else
    status_format_time(now, ts);
  json_array_append_new(conds,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", type, "status", status,
                                  "reason", reason, "message", message, "lastTransitionTime", ts,
                                  "observedGeneration", (json_int_t)gen));
}

/* ---- messages ---------------------------------------------------------------- */

struct msg {
  char buf[1024];
  size_t len;
};

static void msg_add(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(struct msg *m, const char *fmt, ...) {
  if (m->len >= sizeof(m->buf) - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(m->buf + m->len, sizeof(m->buf) - m->len, fmt, ap);
  va_end(ap);
  if (n > 0) m->len += (size_t)n;
  if (m->len >= sizeof(m->buf)) m->len = sizeof(m->buf) - 1;
}

/* The earliest failing stage (operands are numbered in stage order), or
 * GPC_OP_COUNT when nothing fails. */
static int first_failing_op(const struct gpc_plan *plan) {
  int first = GPC_OP_COUNT;
  for (size_t i = 0; i < plan->n_failing; i++)
    if (!plan->failing[i].node_down && (int)plan->failing[i].op < first)
      first = (int)plan->failing[i].op;
  return first;
}

/* Nodes where the stack fails; a NotReady node is listed in failingNodes but
 * is not the stack's failure (it is counted in plan->not_ready). */
static uint32_t failing_nodes(const struct gpc_plan *plan) {
  uint32_t n = 0;
  const char *last = NULL;
  for (size_t i = 0; i < plan->n_failing; i++) {
    const struct gpc_failing_node *f = &plan->failing[i];
    if (f->node_down) continue;
    if (!last || strcmp(f->node, last) != 0) n++;
    last = f->node;
  }
  return n;
}

/* Ready's reason names the stage, so `kubectl get cgp` and kstatus readers
 * see which operand is broken without parsing the message. */
static const char *not_ready_reason(int op) {
  switch (op) {
  case GPC_OP_DRIVER:
    return "DriverNotReady";
  case GPC_OP_TOOLKIT:
    return "ContainerToolkitNotReady";
  case GPC_OP_DEVICE_PLUGIN:
    return "DevicePluginNotReady";
  case GPC_OP_DCGM_EXPORTER:
    return "DcgmExporterNotReady";
  case GPC_OP_VALIDATOR:
    return "ValidatorNotReady";
  default:
    return "OperandsNotReady";
  }
}

/* "driver not ready on 2 nodes: gpu-1 (CrashLoopBackOff), gpu-7 (ImagePullBackOff)"
 * for the earliest failing stage. */
static void failing_message(const struct gpc_plan *plan, struct msg *m) {
  int first = first_failing_op(plan);
  if (first == GPC_OP_COUNT) return; /* nothing failing: no message */
  msg_add(m, "%s not ready on %u node(s):", gpc_operand_name((enum gpc_operand)first),
          plan->operands[first].nodes_failing);
  int shown = 0;
  for (size_t i = 0; i < plan->n_failing; i++) {
    const struct gpc_failing_node *f = &plan->failing[i];
    if ((int)f->op != first || f->node_down) continue;
    if (shown++ == 5) {
      msg_add(m, " ...");
      break;
    }
    msg_add(m, "%s %s (%s)", shown > 1 ? "," : "", f->node, f->reason);
  }
  msg_add(m, "; %u/%u nodes ready", plan->ready, plan->matched);
}

/* The earliest stage still waiting on some node, for the rollout message. */
static void progress_message(const struct gpc_plan *plan, struct msg *m) {
  msg_add(m, "%u/%u nodes ready", plan->ready, plan->matched);
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    const struct gpc_operand_summary *s = &plan->operands[op];
    if (s->state == GPC_STATE_DISABLED || s->state == GPC_STATE_READY) continue;
    if (s->blocked_node) {
      msg_add(m,
              "; %s rollout blocked: its pod on unreachable node %s is stuck Terminating "
              "(bring the node back, or delete the node or that pod with --force --grace-period=0)",
              gpc_operand_name((enum gpc_operand)op), s->blocked_node);
      return;
    }
    uint32_t waiting = s->nodes_wanted - s->nodes_ready - s->nodes_down;
    if (waiting > 0)
      msg_add(m, "; waiting for %s on %u node(s)", gpc_operand_name((enum gpc_operand)op), waiting);
    else
      msg_add(m, "; rolling out %s", gpc_operand_name((enum gpc_operand)op));
    return;
  }
}

/* ---- status ------------------------------------------------------------------- */

static json_t *operands_json(const struct gpc_plan *plan) {
  json_t *arr = json_array();
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    const struct gpc_operand_summary *s = &plan->operands[op];
    json_t *o = json_pack("{s:s}", "name", gpc_operand_name((enum gpc_operand)op));
    if (s->state != GPC_STATE_DISABLED) {
      json_object_set_new(o, "daemonSet", json_string(s->daemonset));
      json_object_set_new(o, "desired", json_integer(s->desired));
      json_object_set_new(o, "ready", json_integer(s->ready));
      json_object_set_new(o, "updated", json_integer(s->updated));
      json_object_set_new(o, "available", json_integer(s->available));
    }
    json_object_set_new(o, "state", json_string(plan_operand_state_name(s->state)));
    json_array_append_new(arr, o);
  }
  return arr;
}

static json_t *failing_json(const struct gpc_plan *plan) {
  json_t *arr = json_array();
  for (size_t i = 0; i < plan->n_failing && i < GPC_STATUS_MAX_FAILING; i++) {
    const struct gpc_failing_node *f = &plan->failing[i];
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "node", f->node, "operand",
                                         gpc_operand_name(f->op), "reason", f->reason, "message",
                                         f->message));
  }
  return arr;
}

/* The Driver column: what the nodes run, not only what the spec asks for. A
 * new version waits for each node's driver pod to be deleted (OnDelete), so
 * the spec's version alone would read as rolled out while no node runs it. */
static void driver_summary(const struct gpc_plan *plan, const struct gpc_policy *p, char *buf,
                           size_t size) {
  const struct gpc_operand_spec *spec = &p->operands[GPC_OP_DRIVER];
  const struct gpc_operand_summary *d = &plan->operands[GPC_OP_DRIVER];
  if (!spec->enabled || d->state == GPC_STATE_DISABLED)
    snprintf(buf, size, "disabled");
  else if (d->pending_update > 0)
    snprintf(buf, size, "%s (pending on %d of %d)", spec->version, d->pending_update, d->desired);
  else
    snprintf(buf, size, "%s", spec->version);
}

static bool all_operands_ready(const struct gpc_plan *plan) {
  for (int op = 0; op < GPC_OP_COUNT; op++)
    if (plan->operands[op].state != GPC_STATE_READY &&
        plan->operands[op].state != GPC_STATE_DISABLED)
      return false;
  return true;
}

json_t *status_from_plan(const struct gpc_plan *plan, const struct gpc_policy *p,
                         const json_t *prev, time_t now) {
  int64_t gen = p->generation;
  struct msg m = {0};
  const char *ready, *ready_reason;
  bool reconciling;
  if (plan->deleting) {
    ready = "Unknown", ready_reason = "RolloutInProgress", reconciling = true;
    msg_add(&m, "policy is being deleted: removing its node labels and objects");
  } else if (failing_nodes(plan) > 0) {
    ready = "False", ready_reason = not_ready_reason(first_failing_op(plan));
    failing_message(plan, &m);
    /* Nodes neither ready nor failing are still rolling out. */
    reconciling = plan->ready + failing_nodes(plan) + plan->not_ready < plan->matched;
  } else if (plan->matched == 0) {
    ready = "True", ready_reason = "NoMatchingNodes", reconciling = false;
    msg_add(&m, "no node matches the policy");
    if (plan->conflicted) msg_add(&m, " (%u owned by an older policy)", plan->conflicted);
  } else if (plan->ready + plan->not_ready == plan->matched && plan->ready > 0 &&
             all_operands_ready(plan)) {
    /* NotReady nodes are not waited for, but nothing ready is not done. */
    ready = "True", ready_reason = "AllOperandsReady", reconciling = false;
    msg_add(&m, "%u/%u nodes ready", plan->ready, plan->matched);
    if (plan->not_ready > 0)
      msg_add(&m, "; %u node(s) NotReady (not waited for), e.g. %s", plan->not_ready,
              plan->not_ready_first ? plan->not_ready_first : "?");
    const struct gpc_operand_summary *d = &plan->operands[GPC_OP_DRIVER];
    if (d->pending_update > 0)
      msg_add(&m,
              "; driver update pending on %d node(s) (OnDelete: delete a node's driver pod "
              "to update it)",
              d->pending_update);
  } else {
    ready = "Unknown", ready_reason = "RolloutInProgress", reconciling = true;
    progress_message(plan, &m);
  }
  json_t *conds = json_array();
  add_condition(conds, prev, "Ready", ready, ready_reason, m.buf, gen, now);
  add_condition(conds, prev, "Reconciling", reconciling ? "True" : "False",
                reconciling ? "Progressing" : "Idle", reconciling ? m.buf : "", gen, now);
  add_condition(conds, prev, "Stalled", "False", "Idle", "", gen, now);
  if (plan->conflicted > 0) {
    struct msg cm = {0};
    msg_add(&cm, "%u matched node(s) belong to older policy %s", plan->conflicted,
            plan->conflict_owner ? plan->conflict_owner : "(unknown)");
    add_condition(conds, prev, "NodeConflict", "True", "NodesOwnedByOlderPolicy", cm.buf, gen, now);
  } else {
    add_condition(conds, prev, "NodeConflict", "False", "NoConflict", "", gen, now);
  }
  char summary[32], driver[160];
  snprintf(summary, sizeof(summary), "%u/%u", plan->ready, plan->matched);
  driver_summary(plan, p, driver, sizeof driver);
  return json_pack("{s:I, s:o, s:s, s:s, s:{s:i, s:i, s:i}, s:{s:I}, s:o, s:o}",
                   "observedGeneration", (json_int_t)gen, "conditions", conds, "nodesSummary",
                   summary, "driverSummary", driver, "nodes", "matched", (int)plan->matched,
                   "ready", (int)plan->ready, "conflicted", (int)plan->conflicted, "gpus",
                   "allocatable", (json_int_t)plan->gpus, "operands", operands_json(plan),
                   "failingNodes", failing_json(plan));
}

json_t *status_stalled(const json_t *prev, int64_t generation, const char *reason,
                       const char *message, time_t now) {
  json_t *st = json_is_object(prev) ? json_deep_copy(prev) : json_object();
  json_t *conds = json_array();
  add_condition(conds, prev, "Ready", "False", reason, message, generation, now);
  add_condition(conds, prev, "Reconciling", "False", "Idle", "", generation, now);
  add_condition(conds, prev, "Stalled", "True", reason, message, generation, now);
  const json_t *nc = find_condition(prev, "NodeConflict");
  if (nc) {
    json_t *copy = json_deep_copy(nc);
    json_object_set_new(copy, "observedGeneration", json_integer(generation));
    json_array_append_new(conds, copy);
  } else {
    add_condition(conds, prev, "NodeConflict", "False", "NoConflict", "", generation, now);
  }
  json_object_set_new(st, "conditions", conds);
  json_object_set_new(st, "observedGeneration", json_integer(generation));
  if (!json_object_get(st, "nodesSummary"))
    json_object_set_new(st, "nodesSummary", json_string("0/0"));
  return st;
}

void status_set_apply_failed(json_t *status, const json_t *prev, int64_t generation,
                             const char *message, time_t now) {
  json_t *conds = json_array();
  add_condition(conds, prev, "Ready", "False", "ApplyFailed", message, generation, now);
  add_condition(conds, prev, "Reconciling", "False", "Idle", "", generation, now);
  add_condition(conds, prev, "Stalled", "True", "ApplyFailed", message, generation, now);
  const json_t *nc = find_condition(status, "NodeConflict");
  if (nc)
    json_array_append_new(conds, json_deep_copy(nc));
  else
    add_condition(conds, prev, "NodeConflict", "False", "NoConflict", "", generation, now);
  json_object_set_new(status, "conditions", conds);
}

/* Replaces condition `type` in place (the others keep their order). */
static void replace_condition(json_t *status, const json_t *prev, const char *type, const char *st,
                              const char *reason, const char *message, int64_t gen, time_t now) {
  json_t *conds = json_array();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(status, "conditions"), i, c) {
    const char *t = json_string_value(json_object_get(c, "type"));
    if (t && strcmp(t, type) == 0)
      add_condition(conds, prev, type, st, reason, message, gen, now);
    else
      json_array_append(conds, c);
  }
  json_object_set_new(status, "conditions", conds);
}

void status_set_driver_upgrade(json_t *status, const json_t *prev, int64_t generation,
                               const json_t *upgrade, bool halted, bool in_progress,
                               const char *message, time_t now) {
  json_object_set_new(status, "driverUpgrade", json_deep_copy(upgrade));
  const json_t *ready = find_condition(status, "Ready");
  const char *rs = json_string_value(json_object_get(ready, "status"));
  if (halted) {
    replace_condition(status, prev, "Ready", "False", "DriverUpgradeHalted", message, generation,
                      now);
  } else if (in_progress) {
    replace_condition(status, prev, "Reconciling", "True", "DriverUpgradeInProgress", message,
                      generation, now);
    if (rs && strcmp(rs, "True") == 0)
      replace_condition(status, prev, "Ready", "Unknown", "DriverUpgradeInProgress", message,
                        generation, now);
  }
}

/* ---- comparison ------------------------------------------------------------------ */

static int cmp_by_key(const json_t *a, const json_t *b, const char *key) {
  const char *x = json_string_value(json_object_get(a, key));
  const char *y = json_string_value(json_object_get(b, key));
  return strcmp(x ? x : "", y ? y : "");
}

/* Are two list-maps equal as maps keyed by `key`? Lists are short (at most
 * five entries), so a quadratic match is fine. */
static bool listmap_equal(const json_t *a, const json_t *b, const char *key) {
  if (!json_is_array(a) || !json_is_array(b)) return json_equal((json_t *)a, (json_t *)b);
  if (json_array_size(a) != json_array_size(b)) return false;
  size_t i, j;
  json_t *x, *y;
  json_array_foreach(a, i, x) {
    bool found = false;
    json_array_foreach(b, j, y) {
      if (cmp_by_key(x, y, key) == 0) {
        if (!json_equal(x, y)) return false;
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

bool status_equal(const json_t *a, const json_t *b) {
  if (!json_is_object(a) || !json_is_object(b)) return json_equal((json_t *)a, (json_t *)b);
  if (json_object_size(a) != json_object_size(b)) return false;
  const char *k;
  json_t *va;
  json_object_foreach((json_t *)a, k, va) {
    json_t *vb = json_object_get(b, k);
    if (!vb) return false;
    bool eq;
    if (strcmp(k, "conditions") == 0)
      eq = listmap_equal(va, vb, "type");
    else if (strcmp(k, "operands") == 0)
      eq = listmap_equal(va, vb, "name");
    else
      eq = json_equal(va, vb);
    if (!eq) return false;
  }
  return true;
}
