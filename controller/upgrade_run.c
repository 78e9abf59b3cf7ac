/* upgrade_run.c — carries out the driver upgrade's steps (see upgrade_run.h). */
#include "upgrade_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "render.h"
#include "strmap.h"

#define COMP "upgrade"

/* Every driver DaemonSet of the policy applied at its desired render and
 * observed by the DaemonSet controller; *target: the default variant's
 * hash (the plain name), else the first. */
static bool drivers_settled(const struct upgrade_run_in *in, const char **target) {
  const struct gpc_plan *pl = in->plan;
  *target = NULL;
  bool any = false;
  size_t i;
  const json_t *o;
  json_array_foreach(pl->objects, i, o) {
    const json_t *md = json_object_get(o, "metadata");
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const char *comp = json_string_value(
        json_object_get(json_object_get(md, "labels"), "app.kubernetes.io/component"));
    const char *name = json_string_value(json_object_get(md, "name"));
    if (!kind || strcmp(kind, "DaemonSet") || !comp || strcmp(comp, "driver") || !name) continue;
    any = true;
    const char *want = render_hash_of(o);
    const struct gpc_daemonset *d = NULL;
    for (size_t k = 0; k < in->n_ds && !d; k++)
      if (!strcmp(in->ds[k]->name, name)) d = in->ds[k];
    if (!d || strcmp(d->render_hash, want) != 0 || d->observed_generation < d->generation)
      return false;
    if (!*target || !strcmp(name, pl->operands[GPC_OP_DRIVER].daemonset)) *target = want;
  }
  return any;
}

static const struct gpc_daemonset *ds_named(const struct upgrade_run_in *in, const char *name) {
  for (size_t k = 0; k < in->n_ds; k++)
    if (!strcmp(in->ds[k]->name, name) && !strcmp(in->ds[k]->policy, in->policy->name))
      return in->ds[k];
  return NULL;
}

static const struct gpc_failing_node *failing(const struct gpc_plan *pl, const char *node,
                                              enum gpc_operand op) {
  for (size_t i = 0; i < pl->n_failing; i++)
    if (pl->failing[i].op == op && !pl->failing[i].node_down && !strcmp(pl->failing[i].node, node))
      return &pl->failing[i];
  return NULL;
}

/* The pod of `op` on `node`: the newest that is not Terminating; *deleting
 * tells whether a Terminating one is there too. */
static const struct gpc_pod *operand_pod(const struct upgrade_run_in *in, const char *node,
                                         enum gpc_operand op, bool *deleting) {
  const struct gpc_pod *best = NULL;
  if (deleting) *deleting = false;
  for (size_t i = 0; i < in->n_pods; i++) {
    const struct gpc_pod *p = in->pods[i];
    if ((int)p->operand != (int)op || strcmp(p->policy, in->policy->name) ||
        strcmp(p->node_name, node))
      continue;
    if (p->deleting) {
      if (deleting) *deleting = true;
      continue;
    }
    if (!best || strcmp(p->created, best->created) > 0) best = p;
  }
  return best;
}

/* The stage whose readiness proves the new driver: the validator, else the
 * device plugin, else none (the driver alone). */
static int proof_operand(const struct gpc_policy *p) {
  if (p->operands[GPC_OP_VALIDATOR].enabled) return GPC_OP_VALIDATOR;
  if (p->operands[GPC_OP_DEVICE_PLUGIN].enabled) return GPC_OP_DEVICE_PLUGIN;
  return -1;
}

/* A node's driver and proof pods (operand_pod()'s choice), gathered for
 * every node in one pass over the pod cache: at 5,000 nodes and 25,000
 * operand pods a scan per node would dominate the reconcile. */
struct node_ops {
  const struct gpc_pod *drv, *proof;
  bool drv_deleting;
};

static void gather_ops(const struct upgrade_run_in *in, struct strmap *index, int proof,
                       struct node_ops *ops) {
  for (size_t i = 0; i < in->n_pods; i++) {
    const struct gpc_pod *p = in->pods[i];
    if (strcmp(p->policy, in->policy->name) != 0) continue;
    if (p->operand != GPC_OP_DRIVER && (proof < 0 || p->operand != proof)) continue;
    size_t at = (size_t)strmap_get(index, p->node_name);
    if (!at) continue;
    struct node_ops *o = &ops[at - 1];
    bool drv = p->operand == GPC_OP_DRIVER;
    if (p->deleting) {
      if (drv) o->drv_deleting = true;
      continue;
    }
    const struct gpc_pod **slot = drv ? &o->drv : &o->proof;
    if (!*slot || strcmp(p->created, (*slot)->created) > 0) *slot = p;
  }
}

static void node_facts(const struct upgrade_run_in *in, const struct gpc_node *n,
                       const struct node_ops *ops, const char *target, struct gpc_upg_node *u) {
  const struct gpc_policy *p = in->policy;
  int st = upgrade_state_parse(gpc_labels_get(&n->labels, GPC_LABEL_UPGRADE_STATE));
  *u = (struct gpc_upg_node){
      .name = n->name,
      .want = target,
      .state = st < 0 ? GPC_UPG_NONE : (enum gpc_upg_state)st,
      .target = n->upg_target,
      .since = n->upg_since,
      .cordoned_by_us = n->upg_cordoned,
      .reason = n->upg_reason,
      .unschedulable = n->unschedulable,
      .ready = n->ready,
      .driver_reason = "",
      .validator_reason = "",
  };
  const char *opt = gpc_labels_get(&n->labels, GPC_LABEL_PREFIX "driver");
  bool deleting = ops->drv_deleting;
  const struct gpc_pod *drv = ops->drv;
  if (opt && !strcmp(opt, "false")) {
    u->driver_current = u->driver_ready = u->validator_ready = true; /* the host's driver */
    return;
  }
  u->driver_deleting = deleting;
  if (!drv) {
    /* No driver pod: a new node (nothing to replace) unless we are in the
     * middle of replacing it. */
    u->driver_current = !upgrade_state_in_progress(u->state);
    u->driver_deleting = true;
    return;
  }
  const struct gpc_daemonset *d = ds_named(in, drv->owner);
  if (d) u->want = d->render_hash;
  u->driver_current = d && drv->template_generation == d->generation;
  u->driver_ready = drv->ready;
  const struct gpc_failing_node *f = failing(in->plan, n->name, GPC_OP_DRIVER);
  if (f && u->driver_current) {
    u->driver_failing = true;
    u->driver_reason = f->reason;
  }
  int proof = proof_operand(p);
  if (proof < 0) {
    u->validator_ready = true;
    return;
  }
  const struct gpc_pod *v = ops->proof;
  u->validator_ready = v && v->ready && strcmp(v->created, drv->created) >= 0;
  f = failing(in->plan, n->name, (enum gpc_operand)proof);
  if (f && v && strcmp(v->created, drv->created) >= 0) {
    u->validator_failing = true;
    u->validator_reason = f->reason;
  }
}

/* "DriverUpgrade" + the state in CamelCase ("pod-deletion" ->
 * "DriverUpgradePodDeletion"; NONE -> "DriverUpgradeCleared"): one reason
 * per state, so the Event recorder's per-reason budget keeps each kind of
 * transition visible. */
static void event_reason(enum gpc_upg_state s, char out[48]) {
  const char *name = s == GPC_UPG_NONE ? "cleared" : upgrade_state_name(s);
  size_t n = (size_t)snprintf(out, 48, "DriverUpgrade");
  bool up = true;
  for (const char *c = name; *c && n + 1 < 48; c++) {
    if (*c == '-') {
      up = true;
      continue;
    }
    out[n++] = up && *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
    up = false;
  }
  out[n] = '\0';
}

struct node_pods {
  struct gpc_upg_pod *v;
  size_t n, cap;
};

static void send_step(const struct upgrade_run_in *in, const struct gpc_node *node,
                      const struct gpc_upg_node *nd, const struct gpc_upg_step *s,
                      const char *target, struct upgrade_run_out *out) {
  const char *policy = in->policy->name;
  struct gpc_error err = {0};
  char *key = gpc_asprintf("node/%s", nd->name);
  bool stale = apply_echo_pending(in->apply, key, node->resource_version);
  free(key);
  if (stale) {
    out->stale = true; /* the watch has not shown our last write yet: look again soon */
    return;
  }
  json_t *patch = upgrade_node_patch(s, nd->want ? nd->want : target, in->now);
  if (patch) {
    enum apply_result r =
        apply_node_labels(in->apply, policy, nd->name, node->resource_version, patch, &err);
    json_decref(patch);
    if (r == APPLY_ERROR)
      log_error(COMP, "node patch", KV_S("node", nd->name), KV_S("error", err.msg));
    if (r != APPLY_SENT) return; /* the rest waits for the state to be written */
    out->writes++;
    if (s->transition && in->event) {
      char msg[512];
      snprintf(msg, sizeof msg, "node %s: driver upgrade %s%s%s", nd->name,
               s->to == GPC_UPG_NONE ? "cleared" : upgrade_state_name(s->to),
               *s->reason ? ": " : "", s->reason);
      char reason[48];
      event_reason(s->to, reason);
      in->event(s->to == GPC_UPG_FAILED ? "Warning" : "Normal", reason, msg, in->ud);
    }
    log_info(COMP, "node step", KV_S("policy", policy), KV_S("node", nd->name),
             KV_S("state", upgrade_state_name(s->to)), KV_S("reason", s->reason));
  }
  for (size_t k = 0; k < s->n_evict; k++) {
    const struct gpc_upg_pod *p = &nd->pods[s->evict[k]];
    if (apply_evict(in->apply, policy, p->namespace, p->name, &err) == APPLY_SENT) out->writes++;
  }
  if (s->delete_driver) {
    const struct gpc_pod *drv = operand_pod(in, nd->name, GPC_OP_DRIVER, NULL);
    if (!drv) return;
    json_t *ref = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Pod",
                            "metadata", "name", drv->name, "namespace", drv->namespace);
    if (apply_delete(in->apply, policy, ref, true, true, &err) == APPLY_SENT) {
      out->writes++;
      log_info(COMP, "driver pod deleted", KV_S("node", nd->name), KV_S("pod", drv->name));
    }
    json_decref(ref);
  }
}

/* Abandons the upgrade on `v` (nodes carrying an upgrade state): our
 * cordon lifted, our label and annotations removed (upgrade.c with
 * autoUpgrade off). */
static void abandon(const struct upgrade_run_in *in, const struct gpc_node **v, size_t n,
                    struct upgrade_run_out *out) {
  if (!n) return;
  struct gpc_upg_settings st = {.max_unavailable = 1};
  struct gpc_upg_node *nodes = gpc_calloc(n, sizeof *nodes);
  for (size_t i = 0; i < n; i++) {
    int s = upgrade_state_parse(gpc_labels_get(&v[i]->labels, GPC_LABEL_UPGRADE_STATE));
    nodes[i] = (struct gpc_upg_node){
        .name = v[i]->name,
        .state = s <= 0 ? GPC_UPG_PENDING : (enum gpc_upg_state)s, /* a label to remove */
        .target = v[i]->upg_target,
        .cordoned_by_us = v[i]->upg_cordoned,
        .unschedulable = v[i]->unschedulable,
        .ready = v[i]->ready,
        .driver_current = true,
        .driver_reason = "",
        .validator_reason = "",
    };
  }
  struct gpc_upg_input ui = {.settings = &st, .target = "", .nodes = nodes, .n_nodes = n};
  struct gpc_upg_plan up;
  upgrade_plan(&ui, &up);
  for (size_t k = 0; k < up.n_steps; k++)
    send_step(in, v[up.steps[k].node], &nodes[up.steps[k].node], &up.steps[k], "", out);
  upgrade_plan_release(&up);
  free(nodes);
}

void upgrade_run(const struct upgrade_run_in *in, struct upgrade_run_out *out) {
  memset(out, 0, sizeof *out);
  const struct gpc_policy *p = in->policy;
  const struct gpc_driver_upgrade_policy *u = &p->driver_upgrade;
  /* The policy's nodes, whether any carries a state of ours, and the
   * nodes that carry one but belong to no policy any more (the policy was
   * deleted, or stopped selecting them mid-upgrade): those are abandoned,
   * whichever policy gets to them first — never upgraded by another. */
  size_t n = 0, n_orphans = 0;
  bool labelled = false;
  const struct gpc_node **owned = gpc_calloc(in->n_nodes + 1, sizeof *owned);
  const struct gpc_node **orphans = gpc_calloc(in->n_nodes + 1, sizeof *orphans);
  for (size_t i = 0; i < in->n_nodes; i++) {
    const char *pol = gpc_labels_get(&in->nodes[i]->labels, GPC_LABEL_POLICY);
    bool ours = pol && !strcmp(pol, p->name);
    bool has = gpc_labels_get(&in->nodes[i]->labels, GPC_LABEL_UPGRADE_STATE) != NULL;
    if (has && (!pol || (ours && in->abort)))
      orphans[n_orphans++] = in->nodes[i];
    else if (ours)
      owned[n++] = in->nodes[i];
    if (ours && has) labelled = true;
  }
  out->left = (unsigned)n_orphans;
  abandon(in, orphans, n_orphans, out);
  free(orphans);
  if (in->abort) {
    free(owned);
    return;
  }
  const char *target = NULL;
  bool drivers = p->operands[GPC_OP_DRIVER].enabled && drivers_settled(in, &target);
  bool act = u->auto_upgrade ? (drivers && in->work_synced) : labelled;
  if (!act) {
    free(owned);
    return;
  }
  struct gpc_upg_settings st;
  upgrade_settings_from_policy(u, (uint32_t)n, &st);
  if (!p->operands[GPC_OP_DRIVER].enabled) st.auto_upgrade = false; /* nothing to upgrade */
  /* Workload pods by node. */
  struct strmap *index = strmap_new();
  for (size_t i = 0; i < n; i++)
    strmap_put(index, owned[i]->name, (void *)(i + 1));
  struct node_pods *np = gpc_calloc(n + 1, sizeof *np);
  for (size_t w = 0; w < in->n_work; w++) {
    const struct gpc_workload *wl = in->work[w];
    if (!*wl->node) continue;
    size_t at = (size_t)strmap_get(index, wl->node);
    if (!at) continue;
    struct node_pods *b = &np[at - 1];
    gpc_grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v);
    upgrade_workload_facts(wl, u, &b->v[b->n++]);
  }
  struct node_ops *ops = gpc_calloc(n + 1, sizeof *ops);
  gather_ops(in, index, proof_operand(p), ops);
  struct gpc_upg_node *nodes = gpc_calloc(n + 1, sizeof *nodes);
  for (size_t i = 0; i < n; i++) {
    node_facts(in, owned[i], &ops[i], target, &nodes[i]);
    nodes[i].pods = np[i].v;
    nodes[i].n_pods = np[i].n;
  }
  struct gpc_upg_input ui = {
      .settings = &st,
      .target = target ? target : "",
      .nodes = nodes,
      .n_nodes = n,
      .now = in->now,
  };
  struct gpc_upg_plan up;
  upgrade_plan(&ui, &up);
  for (size_t k = 0; k < up.n_steps; k++)
    send_step(in, owned[up.steps[k].node], &nodes[up.steps[k].node], &up.steps[k], ui.target, out);
  out->active = u->auto_upgrade || labelled;
  out->status = upgrade_status_json(&ui, &up);
  out->halted = up.halted;
  memcpy(out->counts, up.counts, sizeof out->counts);
  uint32_t busy = up.counts[GPC_UPG_PENDING];
  for (int s = GPC_UPG_CORDONED; s <= GPC_UPG_VALIDATING; s++)
    busy += up.counts[s];
  out->in_progress = busy > 0;
  out->recheck_at = up.recheck_at;
  if (up.halted) {
    const char *reason = "";
    for (size_t i = 0; i < n; i++)
      if (!strcmp(nodes[i].name, up.halt_node)) reason = nodes[i].reason;
    for (size_t k = 0; k < up.n_steps; k++)
      if (up.steps[k].to == GPC_UPG_FAILED && !strcmp(nodes[up.steps[k].node].name, up.halt_node))
        reason = up.steps[k].reason;
    /* A long reason is cut: the message is for people, the reason is whole
     * in the node's annotation and status.driverUpgrade. */
    int w = snprintf(out->message, sizeof out->message,
                     "driver upgrade halted: node %s failed: %s (remove its label %s to retry it, "
                     "or fix spec.driver)",
                     up.halt_node, reason, GPC_LABEL_UPGRADE_STATE);
    if (w < 0 || (size_t)w >= sizeof out->message) /* cut: mark it */
      memcpy(out->message + sizeof out->message - 4, "...", 4);
  } else if (out->in_progress) {
    snprintf(out->message, sizeof out->message, "driver upgrade %s: %u node(s) in progress%s",
             json_string_value(json_object_get(out->status, "summary")), busy - up.counts[1],
             up.held ? ", paused" : "");
  }
  upgrade_plan_release(&up);
  for (size_t i = 0; i < n; i++)
    free(np[i].v);
  free(np);
  free(ops);
  free(nodes);
  strmap_free(index, NULL, NULL);
  free(owned);
}

void upgrade_run_release(struct upgrade_run_out *out) {
  json_decref(out->status);
  memset(out, 0, sizeof *out);
}
