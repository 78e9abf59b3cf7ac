/* upgrade.c — the driver upgrade state machine's decisions (see upgrade.h). */
#include "upgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"
#include "selector.h"

static const char *const state_names[GPC_UPG_COUNT] = {GPC_UPG_STATE_MAP(GPC_X_NAME)};

const char *upgrade_state_name(enum gpc_upg_state s) {
  return (s >= 0 && s < GPC_UPG_COUNT) ? state_names[s] : "";
}

int upgrade_state_parse(const char *value) {
  if (!value || !*value) return GPC_UPG_NONE;
  for (int i = 1; i < GPC_UPG_COUNT; i++)
    if (!strcmp(value, state_names[i])) return i;
  return -1;
}

bool upgrade_state_in_progress(enum gpc_upg_state s) {
  return s >= GPC_UPG_CORDONED && s <= GPC_UPG_VALIDATING;
}

int32_t upgrade_resolve_max_unavailable(const char *value, bool is_percent, uint32_t nodes) {
  long v = value ? strtol(value, NULL, 10) : 0;
  if (v < 0) v = 0;
  if (is_percent) v = (long)(((uint64_t)v * nodes + 99) / 100);
  if (v < 1) v = 1;
  if (v > INT32_MAX) v = INT32_MAX;
  return (int32_t)v;
}

void upgrade_settings_from_policy(const struct gpc_driver_upgrade_policy *u, uint32_t nodes,
                                  struct gpc_upg_settings *out) {
  *out = (struct gpc_upg_settings){
      .auto_upgrade = u->auto_upgrade,
      .paused = u->paused,
      .max_parallel = u->max_parallel_upgrades,
      .max_unavailable =
          upgrade_resolve_max_unavailable(u->max_unavailable, u->max_unavailable_is_percent, nodes),
      .wait_timeout_s = u->wait_for_completion.timeout_seconds,
      .deletion_timeout_s = u->pod_deletion.timeout_seconds,
      .deletion_force = u->pod_deletion.force,
      .deletion_empty_dir = u->pod_deletion.delete_empty_dir,
      .drain = u->drain.enable,
      .drain_force = u->drain.force,
      .drain_empty_dir = u->drain.delete_empty_dir,
      .drain_timeout_s = u->drain.timeout_seconds,
  };
}

static const char *str_at(const json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

/* A container asks for GPUs through limits or requests (requests default
 * to limits, so either counts). */
static bool wants_gpu(const json_t *containers) {
  size_t i;
  const json_t *c;
  json_array_foreach(containers, i, c) {
    const json_t *res = json_object_get(c, "resources");
    const char *kinds[] = {"limits", "requests"};
    for (int k = 0; k < 2; k++) {
      const json_t *q = json_object_get(json_object_get(res, kinds[k]), "nvidia.com/gpu");
      if (json_is_integer(q) && json_integer_value(q) > 0) return true;
      const char *s = json_string_value(q);
      if (s && *s && strtoll(s, NULL, 10) > 0) return true;
    }
  }
  return false;
}

void upgrade_pod_facts(const json_t *pod, const struct gpc_driver_upgrade_policy *u,
                       struct gpc_upg_pod *out) {
  const json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
  memset(out, 0, sizeof *out);
  out->namespace = str_at(md, "namespace");
  out->name = str_at(md, "name");
  out->gpu = wants_gpu(json_object_get(spec, "containers")) ||
             wants_gpu(json_object_get(spec, "initContainers"));
  size_t i;
  const json_t *e;
  json_array_foreach(json_object_get(md, "ownerReferences"), i, e) {
    if (!json_is_true(json_object_get(e, "controller"))) continue;
    out->has_controller = true;
    if (!strcmp(str_at(e, "kind"), "DaemonSet")) out->daemonset = true;
  }
  out->mirror = json_object_get(json_object_get(md, "annotations"), "kubernetes.io/config.mirror");
  const char *by = str_at(json_object_get(md, "labels"), "app.kubernetes.io/managed-by");
  out->ours = !strcmp(by, "gpu-policy-controller") || !strcmp(by, "gpu-policy-validator");
  json_array_foreach(json_object_get(spec, "volumes"), i, e) {
    if (json_object_get(e, "emptyDir")) out->empty_dir = true;
  }
  const char *phase = str_at(json_object_get(pod, "status"), "phase");
  out->terminal = !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
  out->deleting = json_object_get(md, "deletionTimestamp") != NULL;
  const json_t *labels = json_object_get(md, "labels");
  const struct label_selector *w = u ? u->wait_for_completion.pod_selector : NULL;
  const struct label_selector *d = u ? u->drain.pod_selector : NULL;
  out->wait_selected = w && selector_matches_json(w, labels);
  out->drain_selected = !d || selector_matches_json(d, labels);
}

struct gpc_workload *upgrade_workload_new(const json_t *pod) {
  struct gpc_workload *w = gpc_calloc(1, sizeof *w);
  struct gpc_upg_pod f;
  upgrade_pod_facts(pod, NULL, &f);
  w->namespace = gpc_strdup(f.namespace);
  w->name = gpc_strdup(f.name);
  const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
  w->node = gpc_strdup(node ? node : "");
  gpc_labels_set_json(&w->labels, json_object_get(json_object_get(pod, "metadata"), "labels"));
  w->facts = f;
  w->facts.namespace = w->namespace;
  w->facts.name = w->name;
  return w;
}

void upgrade_workload_free(struct gpc_workload *w) {
  if (!w) return;
  free(w->namespace);
  free(w->name);
  free(w->node);
  gpc_labels_release(&w->labels);
  free(w);
}

bool upgrade_workload_changed(const struct gpc_workload *a, const struct gpc_workload *b) {
  const struct gpc_upg_pod *x = &a->facts, *y = &b->facts;
  return strcmp(a->node, b->node) != 0 || !gpc_labels_equal(&a->labels, &b->labels) ||
         x->gpu != y->gpu || x->daemonset != y->daemonset || x->mirror != y->mirror ||
         x->has_controller != y->has_controller || x->empty_dir != y->empty_dir ||
         x->terminal != y->terminal || x->deleting != y->deleting;
}

void upgrade_workload_facts(const struct gpc_workload *w, const struct gpc_driver_upgrade_policy *u,
                            struct gpc_upg_pod *out) {
  *out = w->facts;
  const struct label_selector *ws = u ? u->wait_for_completion.pod_selector : NULL;
  const struct label_selector *ds = u ? u->drain.pod_selector : NULL;
  out->wait_selected = ws && selector_matches(ws, gpc_labels_lookup, &w->labels);
  out->drain_selected = !ds || selector_matches(ds, gpc_labels_lookup, &w->labels);
}

/* ---- one node --------------------------------------------------------- */

struct ctx {
  const struct gpc_upg_input *in;
  struct gpc_upg_plan *out;
  size_t cap;
  enum gpc_upg_state *after; /* state of every node after its step */
  bool *unsched_after;       /* spec.unschedulable after its step */
};

static struct gpc_upg_step *step_for(struct ctx *c, size_t node) {
  struct gpc_upg_plan *p = c->out;
  if (p->n_steps && p->steps[p->n_steps - 1].node == node) return &p->steps[p->n_steps - 1];
  gpc_grow((void **)&p->steps, &c->cap, p->n_steps + 1, sizeof *p->steps);
  struct gpc_upg_step *s = &p->steps[p->n_steps++];
  memset(s, 0, sizeof *s);
  s->node = node;
  return s;
}

static void go(struct ctx *c, size_t i, enum gpc_upg_state to) {
  struct gpc_upg_step *s = step_for(c, i);
  s->transition = true;
  s->to = to;
  c->after[i] = to;
}

static void fail(struct ctx *c, size_t i, const char *fmt, const char *a, const char *b) {
  go(c, i, GPC_UPG_FAILED);
  struct gpc_upg_step *s = step_for(c, i);
  /* The format is one of ours; the arguments are names and reasons. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(s->reason, sizeof s->reason, fmt, a ? a : "", b ? b : "");
#pragma GCC diagnostic pop
}

static void set_cordon(struct ctx *c, size_t i, enum gpc_upg_cordon how) {
  struct gpc_upg_step *s = step_for(c, i);
  s->cordon = how;
  c->unsched_after[i] = how == GPC_UPG_CORDON_SET;
}

/* Uncordon only a cordon of ours. */
static void release_cordon(struct ctx *c, size_t i) {
  const struct gpc_upg_node *n = &c->in->nodes[i];
  if (n->unschedulable && n->cordoned_by_us) set_cordon(c, i, GPC_UPG_CORDON_CLEAR);
}

static void due(struct ctx *c, int64_t since, int32_t timeout_s) {
  if (timeout_s <= 0 || since <= 0) return;
  int64_t at = since + timeout_s;
  if (!c->out->recheck_at || at < c->out->recheck_at) c->out->recheck_at = at;
}

static bool timed_out(const struct ctx *c, int64_t since, int32_t timeout_s) {
  return timeout_s > 0 && since > 0 && c->in->now >= since + timeout_s;
}

/* The pods a stage has to move off the node: gpu_only for pod-deletion,
 * else every drain-selected pod. Returns the index of a pod that cannot be
 * evicted under the settings (and *why), or (size_t)-1; fills evict with the
 * pods to evict now and *left with the pods still on the node. */
static size_t collect(struct ctx *c, size_t i, bool gpu_only, bool force, bool empty_dir,
                      size_t *left, const char **why) {
  const struct gpc_upg_node *n = &c->in->nodes[i];
  *left = 0;
  size_t refused = (size_t)-1;
  size_t *ev = NULL, n_ev = 0, cap = 0;
  for (size_t k = 0; k < n->n_pods; k++) {
    const struct gpc_upg_pod *p = &n->pods[k];
    if (p->daemonset || p->mirror || p->ours) continue; /* kubectl drain leaves them */
    if (gpu_only ? !p->gpu : !p->drain_selected) continue;
    (*left)++;
    if (p->deleting) continue; /* on its way out: wait for it */
    if (!p->terminal) {
      if (!p->has_controller && !force) {
        if (refused == (size_t)-1) refused = k, *why = "has no controller (force is false)";
        continue;
      }
      if (p->empty_dir && !empty_dir) {
        if (refused == (size_t)-1) refused = k, *why = "uses emptyDir (deleteEmptyDir is false)";
        continue;
      }
    }
    gpc_grow((void **)&ev, &cap, n_ev + 1, sizeof *ev);
    ev[n_ev++] = k;
  }
  if (refused != (size_t)-1) {
    free(ev); /* kubectl drain evicts nothing when one pod is refused */
    return refused;
  }
  if (n_ev) {
    struct gpc_upg_step *s = step_for(c, i);
    s->evict = ev;
    s->n_evict = n_ev;
  }
  return (size_t)-1;
}

/* pod-deletion and drain: evict, wait, time out. Returns true when the
 * node is clear of the stage's pods. */
static bool clear_pods(struct ctx *c, size_t i, bool gpu_only) {
  const struct gpc_upg_settings *st = c->in->settings;
  const struct gpc_upg_node *n = &c->in->nodes[i];
  bool force = gpu_only ? st->deletion_force : st->drain_force;
  bool ed = gpu_only ? st->deletion_empty_dir : st->drain_empty_dir;
  int32_t timeout = gpu_only ? st->deletion_timeout_s : st->drain_timeout_s;
  const char *why = "";
  size_t left = 0;
  size_t bad = collect(c, i, gpu_only, force, ed, &left, &why);
  char pod[512];
  if (bad != (size_t)-1) {
    snprintf(pod, sizeof pod, "%s/%s", n->pods[bad].namespace, n->pods[bad].name);
    fail(c, i, gpu_only ? "PodDeletionRefused: pod %s %s" : "DrainRefused: pod %s %s", pod, why);
    return false;
  }
  if (!left) return true;
  if (timed_out(c, n->since, timeout)) {
    const struct gpc_upg_pod *first = NULL;
    for (size_t k = 0; k < n->n_pods && !first; k++) {
      const struct gpc_upg_pod *p = &n->pods[k];
      if (!p->daemonset && !p->mirror && !p->ours && (gpu_only ? p->gpu : p->drain_selected))
        first = p;
    }
    snprintf(pod, sizeof pod, "%s/%s", first->namespace, first->name);
    /* The eviction list of this round is moot: the node stops here. */
    struct gpc_upg_step *s = step_for(c, i);
    free(s->evict);
    s->evict = NULL;
    s->n_evict = 0;
    fail(c, i,
         gpu_only ? "PodDeletionTimeout: pod %s still on the node%s"
                  : "DrainTimeout: pod %s still on the node%s",
         pod, " (an eviction refused by a PodDisruptionBudget is retried, never bypassed)");
    return false;
  }
  due(c, n->since, timeout);
  return false;
}

static bool jobs_running(const struct gpc_upg_node *n) {
  for (size_t k = 0; k < n->n_pods; k++)
    if (n->pods[k].wait_selected && !n->pods[k].terminal) return true;
  return false;
}

/* Moves on from `from` (a clearing state) to the next one, with the driver
 * pod deleted in the same step when the next one is restarting. */
static void after_clearing(struct ctx *c, size_t i, enum gpc_upg_state from) {
  const struct gpc_upg_node *n = &c->in->nodes[i];
  if (from < GPC_UPG_WAIT_JOBS && jobs_running(n)) {
    go(c, i, GPC_UPG_WAIT_JOBS);
  } else if (from < GPC_UPG_POD_DELETION) {
    go(c, i, GPC_UPG_POD_DELETION);
  } else if (from < GPC_UPG_DRAIN && c->in->settings->drain) {
    go(c, i, GPC_UPG_DRAIN);
  } else {
    go(c, i, GPC_UPG_RESTARTING);
    if (!n->driver_current && !n->driver_deleting) step_for(c, i)->delete_driver = true;
  }
}

static void restarting(struct ctx *c, size_t i) {
  const struct gpc_upg_node *n = &c->in->nodes[i];
  if (!n->driver_current) {
    if (!n->driver_deleting) step_for(c, i)->delete_driver = true;
    return;
  }
  if (n->driver_failing)
    fail(c, i, "DriverFailed: %s%s", *n->driver_reason ? n->driver_reason : "not ready", "");
  else if (n->driver_ready)
    go(c, i, GPC_UPG_VALIDATING);
}

static void validating(struct ctx *c, size_t i) {
  const struct gpc_upg_node *n = &c->in->nodes[i];
  if (n->driver_failing) {
    fail(c, i, "DriverFailed: %s%s", *n->driver_reason ? n->driver_reason : "not ready", "");
  } else if (n->validator_failing) {
    fail(c, i, "ValidationFailed: %s%s",
         *n->validator_reason ? n->validator_reason : "validator not ready", "");
  } else if (n->validator_ready && n->driver_ready) {
    go(c, i, GPC_UPG_DONE);
    release_cordon(c, i);
  }
}

/* Pass 1: every node that is not waiting for a slot. */
static void advance(struct ctx *c, size_t i) {
  const struct gpc_upg_settings *st = c->in->settings;
  const struct gpc_upg_node *n = &c->in->nodes[i];
  bool same_target = !strcmp(n->target, n->want ? n->want : c->in->target);
  if (!st->auto_upgrade) {
    if (n->state == GPC_UPG_NONE) return;
    /* Aborted: leave the node as we found it. */
    if (n->state != GPC_UPG_DONE && n->state != GPC_UPG_PENDING) release_cordon(c, i);
    go(c, i, GPC_UPG_NONE);
    return;
  }
  switch (n->state) {
  case GPC_UPG_NONE:
  case GPC_UPG_PENDING:
    if (n->driver_current && n->state == GPC_UPG_PENDING) go(c, i, GPC_UPG_NONE);
    /* else: pass 2 decides (a slot, or pending) */
    return;
  case GPC_UPG_DONE:
    if (!n->driver_current)
      go(c, i, GPC_UPG_PENDING);
    else if (!same_target)
      go(c, i, GPC_UPG_NONE);
    return;
  case GPC_UPG_FAILED:
    if (same_target) return; /* halts the rollout until a person acts */
    release_cordon(c, i);    /* a new target (a fix): start this node again */
    go(c, i, n->driver_current ? GPC_UPG_NONE : GPC_UPG_PENDING);
    return;
  case GPC_UPG_CORDONED:
    after_clearing(c, i, GPC_UPG_CORDONED);
    return;
  case GPC_UPG_WAIT_JOBS:
    if (!jobs_running(n) || timed_out(c, n->since, st->wait_timeout_s))
      after_clearing(c, i, GPC_UPG_WAIT_JOBS);
    else
      due(c, n->since, st->wait_timeout_s);
    return;
  case GPC_UPG_POD_DELETION:
    if (clear_pods(c, i, true)) after_clearing(c, i, GPC_UPG_POD_DELETION);
    return;
  case GPC_UPG_DRAIN:
    if (clear_pods(c, i, false)) after_clearing(c, i, GPC_UPG_DRAIN);
    return;
  case GPC_UPG_RESTARTING:
    restarting(c, i);
    return;
  case GPC_UPG_VALIDATING:
    validating(c, i);
    return;
  case GPC_UPG_COUNT:
    return;
  }
}

/* ---- pass 2: start nodes within the bounds ----------------------------- */

static const struct gpc_upg_node *cmp_nodes;

/* Already-unschedulable nodes first (they cost no unavailability), then by
 * name, so the order of the rollout does not depend on the cache's. */
static int cmp_candidates(const void *a, const void *b) {
  const struct gpc_upg_node *x = &cmp_nodes[*(const size_t *)a];
  const struct gpc_upg_node *y = &cmp_nodes[*(const size_t *)b];
  if (x->unschedulable != y->unschedulable) return x->unschedulable ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void start_nodes(struct ctx *c) {
  const struct gpc_upg_input *in = c->in;
  const struct gpc_upg_settings *st = in->settings;
  size_t *cand = gpc_calloc(in->n_nodes ? in->n_nodes : 1, sizeof *cand), n_cand = 0;
  uint32_t busy = 0, unavailable = 0;
  for (size_t i = 0; i < in->n_nodes; i++) {
    /* Conservative: a node counts while it is busy or unavailable before OR
     * after this round's steps, so a step whose write fails (an uncordon)
     * can never leave the cluster past a bound. */
    if (upgrade_state_in_progress(c->after[i]) || upgrade_state_in_progress(in->nodes[i].state))
      busy++;
    if (c->unsched_after[i] || in->nodes[i].unschedulable || !in->nodes[i].ready) unavailable++;
    if (c->after[i] == GPC_UPG_FAILED) {
      c->out->halted = true;
      if (!c->out->halt_node[0])
        snprintf(c->out->halt_node, sizeof c->out->halt_node, "%s", in->nodes[i].name);
    }
    bool wants = (c->after[i] == GPC_UPG_PENDING ||
                  (c->after[i] == GPC_UPG_NONE && in->nodes[i].state == GPC_UPG_NONE)) &&
                 !in->nodes[i].driver_current;
    if (st->auto_upgrade && wants) cand[n_cand++] = i;
  }
  cmp_nodes = in->nodes;
  qsort(cand, n_cand, sizeof *cand, cmp_candidates);
  bool may_start = !st->paused && !c->out->halted;
  for (size_t k = 0; k < n_cand; k++) {
    size_t i = cand[k];
    const struct gpc_upg_node *n = &in->nodes[i];
    bool fits = may_start && n->ready && (!st->max_parallel || busy < (uint32_t)st->max_parallel);
    bool unsched = c->unsched_after[i];
    uint32_t cost = (unsched || n->unschedulable) ? 0 : 1;
    if (fits && unavailable + cost > (uint32_t)st->max_unavailable) fits = false;
    if (!fits) {
      if (c->after[i] != GPC_UPG_PENDING) go(c, i, GPC_UPG_PENDING);
      if (st->paused) c->out->held = true;
      continue;
    }
    go(c, i, GPC_UPG_CORDONED);
    /* Unschedulable already: someone else's cordon (ours carries the
     * marker and is kept), so it stays theirs to lift. */
    if (!unsched) set_cordon(c, i, GPC_UPG_CORDON_SET);
    busy++;
    unavailable += cost;
  }
  c->out->unavailable = unavailable;
  free(cand);
}

static int cmp_steps(const void *a, const void *b) {
  size_t x = ((const struct gpc_upg_step *)a)->node, y = ((const struct gpc_upg_step *)b)->node;
  return x < y ? -1 : x > y;
}

void upgrade_plan(const struct gpc_upg_input *in, struct gpc_upg_plan *out) {
  memset(out, 0, sizeof *out);
  struct ctx c = {.in = in, .out = out};
  size_t n = in->n_nodes ? in->n_nodes : 1;
  c.after = gpc_calloc(n, sizeof *c.after);
  c.unsched_after = gpc_calloc(n, sizeof *c.unsched_after);
  for (size_t i = 0; i < in->n_nodes; i++) {
    c.after[i] = in->nodes[i].state;
    c.unsched_after[i] = in->nodes[i].unschedulable;
    advance(&c, i);
  }
  start_nodes(&c);
  /* A node may have had a step from both passes; merge them by node. */
  if (out->n_steps > 1) /* steps is NULL when there are none */
    qsort(out->steps, out->n_steps, sizeof *out->steps, cmp_steps);
  size_t w = 0;
  for (size_t r = 0; r < out->n_steps; r++) {
    if (w && out->steps[w - 1].node == out->steps[r].node) {
      struct gpc_upg_step *d = &out->steps[w - 1], *s = &out->steps[r];
      if (s->transition) d->transition = true, d->to = s->to;
      if (s->cordon) d->cordon = s->cordon;
      continue;
    }
    out->steps[w++] = out->steps[r];
  }
  out->n_steps = w;
  for (size_t i = 0; i < in->n_nodes; i++)
    out->counts[c.after[i]]++;
  free(c.after);
  free(c.unsched_after);
}

void upgrade_plan_release(struct gpc_upg_plan *p) {
  for (size_t i = 0; i < p->n_steps; i++)
    free(p->steps[i].evict);
  free(p->steps);
  memset(p, 0, sizeof *p);
}

json_t *upgrade_node_patch(const struct gpc_upg_step *s, const char *target, int64_t now) {
  if (!s->transition && s->cordon == GPC_UPG_CORDON_KEEP) return NULL;
  json_t *patch = json_object();
  if (s->transition) {
    json_t *labels = json_object(), *ann = json_object();
    bool none = s->to == GPC_UPG_NONE;
    json_object_set_new(labels, GPC_LABEL_UPGRADE_STATE,
                        none ? json_null() : json_string(upgrade_state_name(s->to)));
    json_object_set_new(ann, GPC_ANNOTATION_UPGRADE_TARGET,
                        none ? json_null() : json_string(target));
    char since[24];
    snprintf(since, sizeof since, "%lld", (long long)now);
    json_object_set_new(ann, GPC_ANNOTATION_UPGRADE_SINCE, none ? json_null() : json_string(since));
    json_object_set_new(ann, GPC_ANNOTATION_UPGRADE_REASON,
                        s->to == GPC_UPG_FAILED ? json_string(s->reason) : json_null());
    json_t *meta = json_object();
    json_object_set_new(meta, "labels", labels);
    json_object_set_new(meta, "annotations", ann);
    json_object_set_new(patch, "metadata", meta);
  }
  if (s->cordon != GPC_UPG_CORDON_KEEP) {
    /* The marker travels with the cordon in one patch: it is what keeps us
     * from ever uncordoning a node someone else cordoned. */
    json_t *meta = json_object_get(patch, "metadata");
    if (!meta) json_object_set_new(patch, "metadata", meta = json_object());
    json_t *ann = json_object_get(meta, "annotations");
    if (!ann) json_object_set_new(meta, "annotations", ann = json_object());
    json_object_set_new(ann, GPC_ANNOTATION_UPGRADE_CORDONED,
                        s->cordon == GPC_UPG_CORDON_SET ? json_string("true") : json_null());
    json_t *spec = json_object();
    /* Uncordon removes the field, as kubectl uncordon leaves it. */
    json_object_set_new(spec, "unschedulable",
                        s->cordon == GPC_UPG_CORDON_SET ? json_true() : json_null());
    json_object_set_new(patch, "spec", spec);
  }
  return patch;
}

/* The order nodes are listed in: the ones a person must look at first. */
static int status_rank(enum gpc_upg_state s) {
  if (s == GPC_UPG_FAILED) return 0;
  if (upgrade_state_in_progress(s)) return 1;
  if (s == GPC_UPG_PENDING) return 2;
  return 3;
}

struct listed {
  const char *name;
  enum gpc_upg_state state;
  const char *reason;
};

static int cmp_listed(const void *a, const void *b) {
  const struct listed *x = a, *y = b;
  int d = status_rank(x->state) - status_rank(y->state);
  return d ? d : strcmp(x->name, y->name);
}

json_t *upgrade_status_json(const struct gpc_upg_input *in, const struct gpc_upg_plan *p) {
  json_t *st = json_object();
  json_object_set_new(st, "target", json_string(in->target ? in->target : ""));
  uint32_t done = p->counts[GPC_UPG_DONE] + p->counts[GPC_UPG_NONE];
  char summary[48];
  snprintf(summary, sizeof summary, "%u/%zu%s", done, in->n_nodes,
           p->halted ? " halted" : (p->held ? " paused" : ""));
  json_object_set_new(st, "summary", json_string(summary));
  json_t *states = json_object();
  /* Every state, zeros too: the status is written as a merge patch, where
   * a state left out would keep its old count. */
  for (int s = 1; s < GPC_UPG_COUNT; s++)
    json_object_set_new(states, upgrade_state_name((enum gpc_upg_state)s),
                        json_integer(p->counts[s]));
  json_object_set_new(st, "states", states);
  json_object_set_new(st, "halted", json_boolean(p->halted));
  json_object_set_new(st, "paused", json_boolean(in->settings->paused));
  struct listed *v = gpc_calloc(in->n_nodes ? in->n_nodes : 1, sizeof *v);
  size_t n = 0, k = 0;
  for (size_t i = 0; i < in->n_nodes; i++) {
    const struct gpc_upg_node *nd = &in->nodes[i];
    struct listed l = {nd->name, nd->state, nd->reason ? nd->reason : ""};
    while (k < p->n_steps && p->steps[k].node < i)
      k++;
    if (k < p->n_steps && p->steps[k].node == i && p->steps[k].transition) {
      l.state = p->steps[k].to;
      l.reason = p->steps[k].reason;
    }
    if (l.state == GPC_UPG_NONE || l.state == GPC_UPG_DONE) continue;
    if (l.state != GPC_UPG_FAILED) l.reason = "";
    v[n++] = l;
  }
  qsort(v, n, sizeof *v, cmp_listed);
  json_t *nodes = json_array();
  for (size_t i = 0; i < n && i < GPC_UPG_STATUS_NODES; i++) {
    json_t *e = json_pack("{s:s, s:s}", "name", v[i].name, "state", upgrade_state_name(v[i].state));
    if (*v[i].reason) json_object_set_new(e, "reason", json_string(v[i].reason));
    json_array_append_new(nodes, e);
  }
  free(v);
  json_object_set_new(st, "nodes", nodes);
  return st;
}
