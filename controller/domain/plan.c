/* plan.c — node ownership, per-node stage gating, label patches, summaries. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gpu_labels.h"
#include "selector.h"
#include "strmap.h"
#include "taint.h"

/* Default GPU detection (design.md §4, gpu_labels.h). */
static const char *const gpu_labels[] = {GPC_GPU_PRESENT_LABELS};
static const char *const cloud_gpu_labels[] = {GPC_GPU_CLOUD_LABELS};

const char *plan_operand_state_name(enum gpc_operand_state s) {
  static const char *const names[] = {GPC_OPERAND_STATE_MAP(GPC_X_NAME)};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "Unknown";
}

bool plan_node_matches(const struct gpc_policy *p, const struct gpc_node *n) {
  if (!p->node_selector_empty) {
    /* A selector that failed to compile matches nothing: never claim nodes
     * on a guess. */
    return p->selector && selector_matches(p->selector, gpc_labels_lookup, &n->labels);
  }
  for (size_t i = 0; i < sizeof(gpu_labels) / sizeof(gpu_labels[0]); i++) {
    const char *v = gpc_labels_get(&n->labels, gpu_labels[i]);
    if (v && strcmp(v, "true") == 0) return true;
  }
  for (size_t i = 0; i < sizeof(cloud_gpu_labels) / sizeof(cloud_gpu_labels[0]); i++) {
    const char *v = gpc_labels_get(&n->labels, cloud_gpu_labels[i]);
    if (v && strncmp(v, "nvidia", 6) == 0) return true;
  }
  return false;
}

/* A policy with its own nodeSelector names its nodes on purpose; default
 * detection ("every GPU node") covers the rest. So on a node both match, the
 * explicit one wins whatever their ages, and the default one does not count it
 * as a conflict: one policy per pool plus one for the rest works without
 * NodeConflict (manifests/samples/node-pool.yaml). Within a class, the oldest. */
static bool outranks(const struct gpc_policy *a, const struct gpc_policy *b) {
  if (a->node_selector_empty != b->node_selector_empty) return !a->node_selector_empty;
  return plan_policy_older(a, b);
}

bool plan_policy_older(const struct gpc_policy *a, const struct gpc_policy *b) {
  /* RFC 3339 timestamps in UTC ("Z") compare as strings; a missing one
   * (render -f) sorts last. */
  const char *ta = a->creation_timestamp, *tb = b->creation_timestamp;
  if (ta[0] && !tb[0]) return true;
  if (!ta[0] && tb[0]) return false;
  int c = strcmp(ta, tb);
  if (c != 0) return c < 0;
  return strcmp(a->name, b->name) < 0;
}

/* The owner among `policies` plus `self` (which may or may not be in the
 * list; the list's copy of the same name is ignored in its favour). */
static const struct gpc_policy *owner_of(const struct gpc_policy *self,
                                         const struct gpc_policy *const *policies, size_t n,
                                         const struct gpc_node *node) {
  const struct gpc_policy *best = NULL;
  for (size_t i = 0; i <= n; i++) {
    const struct gpc_policy *p = i < n ? policies[i] : self;
    if (!p || p->deleting) continue;
    if (i < n && self && strcmp(p->name, self->name) == 0) continue;
    if (!plan_node_matches(p, node)) continue;
    if (!best || outranks(p, best)) best = p;
  }
  return best;
}

const struct gpc_policy *plan_node_owner(const struct gpc_policy *const *policies, size_t n,
                                         const struct gpc_node *node) {
  return owner_of(NULL, policies, n, node);
}

/* ---- node name -> index --------------------------------------------------- */

/* Node name -> its index in in->nodes, plus one (a NULL value is absent).
 * The first of two nodes with one name wins. */
static struct strmap *index_build(const struct gpc_node *const *nodes, size_t n) {
  struct strmap *ix = strmap_new();
  for (size_t i = 0; i < n; i++)
    if (!strmap_get(ix, nodes[i]->name)) strmap_put(ix, nodes[i]->name, (void *)(uintptr_t)(i + 1));
  return ix;
}

static long index_find(const struct strmap *ix, const char *name) {
  uintptr_t v = (uintptr_t)strmap_get(ix, name);
  return v ? (long)v - 1 : -1;
}

/* ---- pods ------------------------------------------------------------------ */

static int32_t grace_of(const struct gpc_plan_input *in) {
  return in->pod_grace_s > 0 ? in->pod_grace_s : GPC_POD_GRACE_DEFAULT_S;
}

/* When a progressing pod turns failing (Unix seconds); 0 = never known. */
static int64_t pod_deadline(const struct gpc_plan_input *in, const struct gpc_pod *p) {
  if (!p->progressing || !p->since) return 0;
  return p->since + p->window_s + grace_of(in);
}

/* Waiting reasons of a pod on its way up (decode.c marks them progressing;
 * without that mark they still never count as failing). */
static const char *const benign_reasons[] = {"ContainerCreating", "PodInitializing", "Pending",
                                             NULL};

static bool pod_failing(const struct gpc_plan_input *in, const struct gpc_pod *p) {
  if (p->ready || p->deleting) return false;
  if (!p->progressing) {
    if (strcmp(p->phase, "Failed") == 0) return true;
    if (!p->reason[0]) return false;
    for (int i = 0; benign_reasons[i]; i++)
      if (strcmp(p->reason, benign_reasons[i]) == 0) return false;
    return true;
  }
  int64_t due = pod_deadline(in, p);
  return in->now > 0 && due > 0 && in->now >= due;
}

/* Several pods of one operand can share a node (the old one Terminating
 * during a rollout, a Failed one beside its replacement): a live one beats a
 * Terminating one, then a Ready one decides, else one that explains a
 * failure. */
static bool pod_better(const struct gpc_plan_input *in, const struct gpc_pod *cand,
                       const struct gpc_pod *cur) {
  if (!cur) return true;
  if (cand->deleting != cur->deleting) return !cand->deleting;
  if (cand->ready != cur->ready) return cand->ready;
  return pod_failing(in, cand) && !pod_failing(in, cur);
}

static const struct gpc_pod **pods_by_node(const struct gpc_plan_input *in,
                                           const struct strmap *ix) {
  const struct gpc_pod **tab = gpc_calloc(in->n_nodes * GPC_OP_COUNT + 1, sizeof(*tab));
  for (size_t i = 0; i < in->n_pods; i++) {
    const struct gpc_pod *pod = in->pods[i];
    if (pod->operand < 0 || pod->operand >= GPC_OP_COUNT || !pod->node_name[0]) continue;
    if (strcmp(pod->policy, in->policy->name) != 0) continue;
    if (in->namespace && pod->namespace[0] && strcmp(pod->namespace, in->namespace) != 0) continue;
    long n = index_find(ix, pod->node_name);
    if (n < 0) continue;
    const struct gpc_pod **slot = &tab[(size_t)n * GPC_OP_COUNT + (size_t)pod->operand];
    if (pod_better(in, pod, *slot)) *slot = pod;
  }
  return tab;
}

/* ---- label patches ----------------------------------------------------------- */

struct label_want {
  const char *key;
  const char *value; /* desired value, NULL = absent */
};

static void op_label_key(enum gpc_operand op, char *buf, size_t len) {
  snprintf(buf, len, GPC_LABEL_PREFIX "%s", gpc_operand_name(op));
}

/* ---- node variants (design.md §3 "Node side") -------------------------------- */

/* The node's runtime when the policy detects it per node; containerd (the
 * default variant) for an unknown one. */
static enum gpc_runtime node_runtime(const struct gpc_policy *p, const struct gpc_node *n) {
  if (p->toolkit.runtime != GPC_RUNTIME_DETECT) return p->toolkit.runtime;
  if (strcmp(n->runtime, "crio") == 0) return GPC_RUNTIME_CRIO;
  if (strcmp(n->runtime, "docker") == 0) return GPC_RUNTIME_DOCKER;
  return GPC_RUNTIME_CONTAINERD;
}

/* The node's driver OS when the driver image is chosen per node, else NULL
 * (digest version, driver disabled). Unknown: the version's OS, or the
 * default. */
static const char *node_os(const struct gpc_policy *p, const struct gpc_node *n) {
  const struct gpc_operand_spec *d = &p->operands[GPC_OP_DRIVER];
  if (!d->enabled || strncmp(d->version, "sha256:", 7) == 0) return NULL;
  if (n->os[0]) return n->os;
  const char *def = render_version_os(d->version);
  return def ? def : GPC_DEFAULT_OS;
}

/* The OS of the driver's plain DaemonSet: the version's, else the default. */
static const char *default_os(const struct gpc_policy *p) {
  const char *def = render_version_os(p->operands[GPC_OP_DRIVER].version);
  return def ? def : GPC_DEFAULT_OS;
}

/* The variant labels a node of this policy carries: only where it differs
 * from the default variant, so a homogeneous fleet gets none. */
static size_t want_variant_labels(const struct gpc_policy *p, const struct gpc_node *n,
                                  struct label_want *want) {
  enum gpc_runtime rt = node_runtime(p, n);
  const char *rt_label = p->toolkit.runtime == GPC_RUNTIME_DETECT && rt != GPC_RUNTIME_CONTAINERD
                             ? gpc_runtime_name(rt)
                             : NULL;
  const char *os = node_os(p, n);
  const char *os_label = os && strcmp(default_os(p), os) != 0 ? os : NULL;
  want[0] = (struct label_want){GPC_LABEL_RUNTIME, rt_label};
  want[1] = (struct label_want){GPC_LABEL_OS, os_label};
  return 2;
}

/* The operands whose gpupolicy.dev/<operand> label the patch for `node`
 * sets to "true" (from unset or another value), a bit per operand. */
static unsigned unlock_bits(const struct gpc_node *node, const struct label_want *want, size_t n) {
  const size_t plen = strlen(GPC_LABEL_PREFIX);
  unsigned bits = 0;
  for (size_t i = 0; i < n; i++) {
    if (!want[i].value || strcmp(want[i].value, "true") != 0) continue;
    if (strncmp(want[i].key, GPC_LABEL_PREFIX, plen) != 0) continue;
    const char *cur = gpc_labels_get(&node->labels, want[i].key);
    if (cur && strcmp(cur, "true") == 0) continue; /* no change: not in the patch */
    int op = gpc_operand_from_name(want[i].key + plen);
    if (op >= 0) bits |= 1u << op;
  }
  return bits;
}

/* Appends a patch for `node` holding every key whose current value differs
 * from the wanted one; nothing when all agree. */
/* The node's merge patch when a label changes. `driver_pod` (NULL: leave as
 * is, "": remove) rides along only then: recording the Ready driver pod
 * never costs a write of its own, and the unlock after a driver became
 * Ready always is one. */
static void emit_patch(struct gpc_plan *plan, size_t *cap, const struct gpc_node *node,
                       const struct label_want *want, size_t n, const char *driver_pod) {
  json_t *labels = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *cur = gpc_labels_get(&node->labels, want[i].key);
    bool same = want[i].value ? (cur && strcmp(cur, want[i].value) == 0) : cur == NULL;
    if (same) continue;
    if (!labels) labels = json_object();
    json_object_set_new(labels, want[i].key,
                        want[i].value ? json_string(want[i].value) : json_null());
  }
  if (!labels) return;
  gpc_grow((void **)&plan->patches, cap, plan->n_patches + 1, sizeof(*plan->patches));
  struct gpc_node_patch *np = &plan->patches[plan->n_patches++];
  np->node = gpc_strdup(node->name);
  np->patch = json_pack("{s:{s:o}}", "metadata", "labels", labels);
  np->unlocks = unlock_bits(node, want, n);
  if (driver_pod && strcmp(driver_pod, node->driver_pod) != 0)
    json_object_set_new(json_object_get(np->patch, "metadata"), "annotations",
                        json_pack("{s:o}", GPC_ANNOTATION_DRIVER_POD,
                                  *driver_pod ? json_string(driver_pod) : json_null()));
}

/* Every label of ours off `node`: the policy label and the "true" unlocks
 * (opt-outs, "false", stay). */
static size_t want_none(const struct gpc_node *node, struct label_want *want,
                        char keys[GPC_OP_COUNT][96]) {
  size_t n = 0;
  want[n++] = (struct label_want){GPC_LABEL_POLICY, NULL};
  want[n++] = (struct label_want){GPC_LABEL_RUNTIME, NULL};
  want[n++] = (struct label_want){GPC_LABEL_OS, NULL};
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    op_label_key((enum gpc_operand)op, keys[op], sizeof(keys[op]));
    const char *cur = gpc_labels_get(&node->labels, keys[op]);
    if (cur && strcmp(cur, "true") == 0) want[n++] = (struct label_want){keys[op], NULL};
  }
  return n;
}

struct plan_ctx {
  const struct gpc_plan_input *in;
  struct gpc_plan *plan;
  const struct gpc_pod **pods; /* [node * GPC_OP_COUNT + op] */
  size_t patch_cap, failing_cap;
};

/* A driver pod that is not Ready and is not the one the later stages were
 * unlocked against: the driver was replaced (deleted, upgraded), not
 * restarted (a crash or a reboot restarts the same pod). Its first step
 * unloads the modules, which fails while those operands hold the GPUs, so
 * every later stage leaves the node until it is Ready, then comes back in
 * stage order. The node's driver-pod annotation names that pod; without it
 * (a node unlocked by an older controller) a driver pod newer than a later
 * operand's pod was replaced — creationTimestamp has whole seconds, so a
 * replacement within the second those pods were made goes unseen there, which
 * is why the annotation exists. */
static bool driver_replaced(const struct plan_ctx *c, size_t ni) {
  const struct gpc_pod *drv = c->pods[ni * GPC_OP_COUNT + GPC_OP_DRIVER];
  if (!c->in->policy->operands[GPC_OP_DRIVER].enabled || !drv || drv->ready) return false;
  const char *ran = c->in->nodes[ni]->driver_pod;
  if (ran[0]) return strcmp(drv->name, ran) != 0;
  if (!drv->created[0]) return false;
  for (int op = GPC_OP_DRIVER + 1; op < GPC_OP_COUNT; op++) {
    const struct gpc_pod *q = c->pods[ni * GPC_OP_COUNT + (size_t)op];
    if (q && q->created[0] && strcmp(drv->created, q->created) > 0) return true;
  }
  return false;
}

static struct gpc_failing_node *add_entry(struct gpc_plan *plan, size_t *cap,
                                          const struct gpc_node *node, enum gpc_operand op,
                                          const char *reason, const char *message) {
  gpc_grow((void **)&plan->failing, cap, plan->n_failing + 1, sizeof(*plan->failing));
  struct gpc_failing_node *f = &plan->failing[plan->n_failing++];
  *f = (struct gpc_failing_node){.node = gpc_strdup(node->name),
                                 .op = op,
                                 .reason = gpc_strdup(reason),
                                 .message = gpc_strdup(message)};
  return f;
}

static void add_failing(struct gpc_plan *plan, size_t *cap, const struct gpc_node *node,
                        enum gpc_operand op, const struct gpc_pod *pod) {
  add_entry(plan, cap, node, op, pod->reason[0] ? pod->reason : pod->phase, pod->message);
}

/* An unlocked operand with no pod on a Ready node: when a taint keeps the
 * DaemonSet's pod off the node, say which, since there is no pod to describe. */
static void check_taints(struct plan_ctx *c, const struct gpc_node *node, enum gpc_operand op) {
  const struct gpc_taint *t =
      taint_blocking_daemon_pod(c->in->policy->daemonsets.tolerations, node);
  if (!t) return;
  char msg[512];
  snprintf(msg, sizeof msg,
           "taint %s%s%s:%s is not tolerated by spec.daemonsets.tolerations, so the DaemonSet "
           "creates no %s pod on this node",
           t->key, t->value[0] ? "=" : "", t->value, t->no_execute ? "NoExecute" : "NoSchedule",
           gpc_operand_name(op));
  c->plan->operands[op].nodes_failing++;
  add_entry(c->plan, &c->failing_cap, node, op, "UntoleratedTaint", msg);
}

/* A NotReady node is listed with the node controller's or kubelet's word, under
 * the first stage it holds back; it does not make the policy not Ready (a node
 * outage is not the stack's failure; status.c counts it apart). */
static void add_node_down(struct plan_ctx *c, const struct gpc_node *node, int first_unready) {
  struct gpc_failing_node *f =
      add_entry(c->plan, &c->failing_cap, node,
                (enum gpc_operand)(first_unready >= 0 ? first_unready : GPC_OP_DRIVER),
                taint_unreachable(node) ? "Unreachable" : "NodeNotReady", node->down_message);
  f->node_down = true;
}

/* Stage gating on a node this policy owns. */
static void plan_owned_node(struct plan_ctx *c, size_t ni) {
  const struct gpc_policy *p = c->in->policy;
  const struct gpc_node *node = c->in->nodes[ni];
  struct gpc_plan *plan = c->plan;
  char keys[GPC_OP_COUNT][96];
  struct label_want want[3 + GPC_OP_COUNT];
  size_t nw = 0;
  want[nw++] = (struct label_want){GPC_LABEL_POLICY, p->name};
  nw += want_variant_labels(p, node, want + nw);
  /* Unlocks are sticky only for labels this policy wrote, and not while the
   * driver is replaced (design.md §3 "Node side"). */
  const char *owner_label = gpc_labels_get(&node->labels, GPC_LABEL_POLICY);
  bool ours = owner_label && strcmp(owner_label, p->name) == 0;
  bool replaced = driver_replaced(c, ni);
  bool gate = true, gate_last = true, node_ready = true;
  int first_unready = -1;
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    op_label_key((enum gpc_operand)op, keys[op], sizeof(keys[op]));
    struct gpc_operand_summary *s = &plan->operands[op];
    const char *cur = gpc_labels_get(&node->labels, keys[op]);
    bool opted_out = cur && strcmp(cur, "false") == 0;
    bool satisfied = true;
    if (op == GPC_OP_DCGM_EXPORTER) gate_last = gate; /* both last-stage operands share it */
    bool unlocked_by_stages = op >= GPC_OP_DCGM_EXPORTER ? gate_last : gate;
    if (!p->operands[op].enabled) {
      if (cur && strcmp(cur, "true") == 0) want[nw++] = (struct label_want){keys[op], NULL};
    } else if (!opted_out) {
      s->nodes_wanted++;
      bool sticky = ours && cur && strcmp(cur, "true") == 0 && !(replaced && op > GPC_OP_DRIVER);
      bool unlocked = unlocked_by_stages || sticky;
      want[nw++] = (struct label_want){keys[op], unlocked ? "true" : NULL};
      const struct gpc_pod *pod = c->pods[ni * GPC_OP_COUNT + (size_t)op];
      /* A Terminating pod is going away: it never unlocks the next stage. */
      satisfied = unlocked && pod && pod->ready && !pod->deleting;
      if (unlocked) s->nodes_unlocked++;
      if (satisfied) s->nodes_ready++;
      if (unlocked && !node->ready && !satisfied) s->nodes_down++;
      if (pod && pod->deleting && !node->ready && !s->blocked_node)
        s->blocked_node = gpc_strdup(node->name);
      /* A NotReady node's pods are not waited for: their passing states
       * (nobody reports their progress) never turn into failures. */
      bool failing = pod && pod_failing(c->in, pod) && (node->ready || !pod->progressing);
      if (unlocked && failing) {
        s->nodes_failing++;
        add_failing(plan, &c->failing_cap, node, (enum gpc_operand)op, pod);
      } else if (unlocked && !pod && node->ready) {
        check_taints(c, node, (enum gpc_operand)op);
      } else if (unlocked && pod && !pod->ready && !pod->deleting && node->ready) {
        int64_t due = pod_deadline(c->in, pod);
        if (c->in->now > 0 && due > c->in->now && (!plan->recheck_at || due < plan->recheck_at))
          plan->recheck_at = due;
      }
    }
    if (!satisfied && first_unready < 0) first_unready = op;
    if (!satisfied) node_ready = false;
    if (op < GPC_OP_DCGM_EXPORTER) gate = gate && satisfied;
  }
  plan->matched++;
  if (!node->ready) {
    plan->not_ready++;
    if (!plan->not_ready_first) plan->not_ready_first = gpc_strdup(node->name);
    add_node_down(c, node, first_unready);
  }
  if (node_ready && node->ready) plan->ready++;
  if (node->gpu_allocatable > 0) plan->gpus += node->gpu_allocatable;
  /* The driver pod the unlocks now stand on (design.md §3): a live Ready
   * one; none to name without a driver of ours on the node. */
  const struct gpc_pod *drv = c->pods[ni * GPC_OP_COUNT + GPC_OP_DRIVER];
  const char *drv_name = NULL;
  const char *drv_label = gpc_labels_get(&node->labels, keys[GPC_OP_DRIVER]);
  if (!p->operands[GPC_OP_DRIVER].enabled || (drv_label && strcmp(drv_label, "false") == 0))
    drv_name = "";
  else if (drv && drv->ready && !drv->deleting)
    drv_name = drv->name;
  emit_patch(plan, &c->patch_cap, node, want, nw, drv_name);
}

static void plan_node(struct plan_ctx *c, size_t ni) {
  const struct gpc_policy *p = c->in->policy;
  const struct gpc_node *node = c->in->nodes[ni];
  const char *label = gpc_labels_get(&node->labels, GPC_LABEL_POLICY);
  bool labeled_ours = label && strcmp(label, p->name) == 0;
  char keys[GPC_OP_COUNT][96];
  struct label_want want[3 + GPC_OP_COUNT];
  if (p->deleting) {
    if (labeled_ours)
      emit_patch(c->plan, &c->patch_cap, node, want, want_none(node, want, keys), "");
    return;
  }
  const struct gpc_policy *owner =
      owner_of(p, c->in->policies, c->in->n_policies, node); /* p itself when it wins */
  if (owner == p) {
    const char *all = gpc_labels_get(&node->labels, GPC_LABEL_OPERANDS);
    if (all && strcmp(all, "false") == 0) {
      c->plan->opted_out++;
      emit_patch(c->plan, &c->patch_cap, node, want, want_none(node, want, keys), "");
      return;
    }
    plan_owned_node(c, ni);
    return;
  }
  if (plan_node_matches(p, node)) {
    /* Default detection yields to an explicit selector: that node is simply
     * not ours (its labels are the owner's to rewrite). */
    if (owner && p->node_selector_empty && !owner->node_selector_empty) return;
    c->plan->conflicted++;
    if (!c->plan->conflict_owner && owner) c->plan->conflict_owner = gpc_strdup(owner->name);
    return;
  }
  /* Stopped matching: clean up unless another policy has taken it over. */
  if (labeled_ours && !owner)
    emit_patch(c->plan, &c->patch_cap, node, want, want_none(node, want, keys), "");
}

/* ---- objects and operand summaries ------------------------------------------- */

/* The RuntimeClass `nvidia` is shared: the oldest policy renders and owns
 * it. Also without our toolkit: containerd hosts whose own toolkit has the
 * handler (`nvidia-ctk runtime configure`) are named it too. */
static bool shared_owner(const struct gpc_plan_input *in) {
  const struct gpc_policy *p = in->policy;
  if (p->deleting) return false;
  for (size_t i = 0; i < in->n_policies; i++) {
    const struct gpc_policy *o = in->policies[i];
    if (!o || o->deleting || strcmp(o->name, p->name) == 0) continue;
    if (plan_policy_older(o, p)) return false;
  }
  return true;
}

/* The runtimes and driver OSes among the nodes this policy owns: one
 * DaemonSet variant each (render.c). */
static void owned_variants(const struct gpc_plan_input *in, struct gpc_render_opts *ro,
                           const char *oses[GPC_MAX_OS_VARIANTS]) {
  const struct gpc_policy *p = in->policy;
  ro->oses = oses;
  for (size_t i = 0; i < in->n_nodes; i++) {
    const struct gpc_node *n = in->nodes[i];
    if (owner_of(p, in->policies, in->n_policies, n) != p) continue;
    const char *all = gpc_labels_get(&n->labels, GPC_LABEL_OPERANDS);
    if (all && strcmp(all, "false") == 0) continue;
    ro->runtimes |= 1u << node_runtime(p, n);
    const char *os = node_os(p, n);
    bool seen = !os;
    for (size_t k = 0; !seen && k < ro->n_oses; k++)
      seen = strcmp(oses[k], os) == 0;
    if (!seen && ro->n_oses < GPC_MAX_OS_VARIANTS) oses[ro->n_oses++] = os;
  }
  /* Sorted, so the objects do not depend on the order nodes arrive in. */
  for (size_t a = 1; a < ro->n_oses; a++)
    for (size_t b = a; b > 0 && strcmp(oses[b - 1], oses[b]) > 0; b--) {
      const char *t = oses[b];
      oses[b] = oses[b - 1];
      oses[b - 1] = t;
    }
}

static void summarize_operand(const struct gpc_plan_input *in, struct gpc_plan *plan,
                              enum gpc_operand op) {
  const struct gpc_policy *p = in->policy;
  struct gpc_operand_summary *s = &plan->operands[op];
  if (!p->operands[op].enabled) {
    s->state = GPC_STATE_DISABLED;
    s->daemonset[0] = '\0';
    return;
  }
  /* Summed over the operand's variants (one DaemonSet per runtime / OS):
   * current when every desired one is in the cache with its desired hash. */
  size_t i;
  json_t *o;
  bool first = true, all_found = true, all_current = true;
  json_array_foreach(plan->objects, i, o) {
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const json_t *md = json_object_get(o, "metadata");
    const char *comp = json_string_value(
        json_object_get(json_object_get(md, "labels"), "app.kubernetes.io/component"));
    const char *name = json_string_value(json_object_get(md, "name"));
    if (!kind || !comp || !name || strcmp(kind, "DaemonSet") != 0 ||
        strcmp(comp, gpc_operand_name(op)) != 0)
      continue;
    if (first) snprintf(s->daemonset, sizeof(s->daemonset), "%s", name);
    first = false;
    const struct gpc_daemonset *d = NULL;
    for (size_t k = 0; k < in->n_daemonsets && !d; k++) {
      const struct gpc_daemonset *c = in->daemonsets[k];
      if (c->operand != (int)op || strcmp(c->policy, p->name) != 0 || strcmp(c->name, name) != 0)
        continue;
      if (in->namespace && c->namespace[0] && strcmp(c->namespace, in->namespace) != 0) continue;
      d = c;
    }
    if (!d) {
      all_found = false;
      continue;
    }
    s->desired += d->desired;
    s->ready += d->ready;
    s->updated += d->updated;
    s->available += d->available;
    if (strcmp(d->render_hash, render_hash_of(o)) != 0 || d->observed_generation < d->generation)
      all_current = false;
  }
  if (first) render_object_name(p->name, gpc_operand_name(op), s->daemonset);
  s->ds_found = !first && all_found;
  s->ds_current = s->ds_found && all_current;
  bool on_delete = op == GPC_OP_DRIVER || p->daemonsets.update_strategy == GPC_UPDATE_ON_DELETE;
  if (on_delete && s->desired > s->updated) s->pending_update = s->desired - s->updated;
  if (s->blocked_node && (on_delete || s->updated >= s->desired)) {
    free(s->blocked_node); /* nothing to roll: a Terminating pod blocks nothing */
    s->blocked_node = NULL;
  }
  /* OnDelete pods keep the old template until someone deletes them: that is
   * reported (pending_update) but does not hold the operand back. */
  /* Pods on NotReady nodes stay unavailable: not waited for. */
  int32_t down = (int32_t)s->nodes_down;
  bool rolled = on_delete ? s->available + down >= s->desired
                          : s->updated >= s->desired && s->available + down >= s->desired;
  if (s->nodes_failing > 0)
    s->state = GPC_STATE_DEGRADED;
  else if (s->ds_current && rolled && s->nodes_ready + s->nodes_down >= s->nodes_wanted)
    s->state = GPC_STATE_READY;
  else
    s->state = GPC_STATE_PROGRESSING;
}

/* ---- objects to delete ---------------------------------------------------- */

bool plan_is_daemonset(const json_t *obj) {
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  return kind && strcmp(kind, "DaemonSet") == 0;
}

static bool daemonset_desired(const json_t *objects, const char *name) {
  size_t i;
  const json_t *o;
  json_array_foreach(objects, i, o) {
    const char *n = json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
    if (plan_is_daemonset(o) && strcmp(n ? n : "", name) == 0) return true;
  }
  return false;
}

static void add_delete(struct gpc_plan *plan, size_t *cap, json_t *ref, bool cached) {
  gpc_grow((void **)&plan->deletes, cap, plan->n_deletes + 1, sizeof(*plan->deletes));
  plan->deletes[plan->n_deletes++] = (struct gpc_plan_delete){ref, cached};
}

/* "apiVersion/kind/namespace/name" of a generated object (caller frees). */
static char *object_id(const json_t *o) {
  const json_t *md = json_object_get(o, "metadata");
  const char *av = json_string_value(json_object_get(o, "apiVersion"));
  const char *kind = json_string_value(json_object_get(o, "kind"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  const char *name = json_string_value(json_object_get(md, "name"));
  return gpc_asprintf("%s/%s/%s/%s", av ? av : "", kind ? kind : "", ns ? ns : "",
                      name ? name : "");
}

/* Known objects a live policy no longer renders. Only namespaced ones: the
 * cluster-scoped RuntimeClass is shared between policies, and DaemonSets
 * come from the cache above. */
static void prune_known(const struct gpc_plan_input *in, struct gpc_plan *plan, size_t *cap) {
  if (!in->known || !json_array_size(in->known)) return;
  struct strmap *wanted = strmap_new();
  size_t i;
  const json_t *o;
  json_array_foreach(plan->objects, i, o) {
    char *id = object_id(o);
    strmap_put(wanted, id, (void *)1);
    free(id);
  }
  json_array_foreach(in->known, i, o) {
    const char *ns =
        json_string_value(json_object_get(json_object_get(o, "metadata"), "namespace"));
    if (!ns || !*ns || plan_is_daemonset(o)) continue;
    char *id = object_id(o);
    if (!strmap_get(wanted, id)) add_delete(plan, cap, json_incref((json_t *)o), false);
    free(id);
  }
  strmap_free(wanted, NULL, NULL);
}

/* plan->deletes and plan->cleanup_left (plan.h). */
static void plan_deletes(const struct gpc_plan_input *in, struct gpc_plan *plan) {
  const struct gpc_policy *p = in->policy;
  size_t cap = 0;
  for (size_t k = 0; k < in->n_daemonsets; k++) {
    const struct gpc_daemonset *d = in->daemonsets[k];
    if (strcmp(d->policy, p->name) != 0) continue;
    if (p->deleting) plan->cleanup_left = true;
    if (daemonset_desired(plan->objects, d->name)) continue;
    add_delete(plan, &cap,
               json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "apps/v1", "kind", "DaemonSet",
                         "metadata", "name", d->name, "namespace", d->namespace),
               true);
  }
  if (!p->deleting) {
    prune_known(in, plan, &cap);
    return;
  }
  for (size_t i = 0; i < in->n_nodes; i++) {
    const char *owner = gpc_labels_get(&in->nodes[i]->labels, GPC_LABEL_POLICY);
    if (owner && strcmp(owner, p->name) == 0) plan->cleanup_left = true;
  }
  /* A template that no longer renders leaves nothing to delete here. */
  json_t *objs = NULL;
  struct gpc_error ignored = {0};
  struct gpc_render_opts ro = {.namespace = in->namespace, .include_shared = false};
  if (render_policy(p, in->templates, &ro, &objs, &ignored) == GPC_OK) {
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o) {
      if (!plan_is_daemonset(o)) add_delete(plan, &cap, json_incref(o), false);
    }
  }
  json_decref(objs);
}

static int cmp_failing(const void *a, const void *b) {
  const struct gpc_failing_node *x = a, *y = b;
  int c = strcmp(x->node, y->node);
  return c ? c : (int)x->op - (int)y->op;
}

int plan_compute(const struct gpc_plan_input *in, struct gpc_plan *out, struct gpc_error *err) {
  memset(out, 0, sizeof(*out));
  const struct gpc_policy *p = in->policy;
  out->deleting = p->deleting;
  if (p->deleting) {
    out->objects = json_array();
  } else {
    struct gpc_render_opts ro = {.namespace = in->namespace, .include_shared = shared_owner(in)};
    const char *oses[GPC_MAX_OS_VARIANTS];
    owned_variants(in, &ro, oses);
    int rc = render_policy(p, in->templates, &ro, &out->objects, err);
    if (rc) return rc;
  }
  struct strmap *ix = index_build(in->nodes, in->n_nodes);
  struct plan_ctx c = {.in = in, .plan = out, .pods = pods_by_node(in, ix)};
  for (size_t i = 0; i < in->n_nodes; i++)
    plan_node(&c, i);
  free(c.pods);
  strmap_free(ix, NULL, NULL);
  for (int op = 0; op < GPC_OP_COUNT; op++)
    summarize_operand(in, out, (enum gpc_operand)op);
  if (out->n_failing > 1) qsort(out->failing, out->n_failing, sizeof(*out->failing), cmp_failing);
  plan_deletes(in, out);
  return GPC_OK;
}

void plan_gone(const char *name, const struct gpc_node *const *nodes, size_t n,
               struct gpc_plan *out) {
  memset(out, 0, sizeof(*out));
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gpc_node *node = nodes[i];
    const char *owner = gpc_labels_get(&node->labels, GPC_LABEL_POLICY);
    if (!owner || strcmp(owner, name) != 0) continue;
    json_t *labels = json_object();
    json_object_set_new(labels, GPC_LABEL_POLICY, json_null());
    for (int op = 0; op < GPC_OP_COUNT; op++) {
      char k[96];
      op_label_key((enum gpc_operand)op, k, sizeof(k));
      const char *v = gpc_labels_get(&node->labels, k);
      if (v && strcmp(v, "true") == 0) json_object_set_new(labels, k, json_null());
    }
    gpc_grow((void **)&out->patches, &cap, out->n_patches + 1, sizeof(*out->patches));
    struct gpc_node_patch *np = &out->patches[out->n_patches++];
    np->node = gpc_strdup(node->name);
    np->patch = json_pack("{s:{s:o}}", "metadata", "labels", labels);
    np->unlocks = 0;
  }
}

unsigned plan_stages_to_announce(struct gpc_stages_announced *a, int64_t generation,
                                 const unsigned *unlocks) {
  if (a->generation != generation) {
    a->generation = generation;
    a->bits = 0;
  }
  unsigned now = 0;
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    if (!unlocks[op] || (a->bits & (1u << op))) continue;
    a->bits |= 1u << op;
    now |= 1u << op;
  }
  return now;
}

json_t *plan_finalizers_add(const struct gpc_policy *p, const json_t *cur) {
  if (p->has_finalizer) return NULL;
  json_t *fins = json_array();
  size_t i;
  const json_t *f;
  json_array_foreach(cur, i, f) json_array_append(fins, (json_t *)f);
  json_array_append_new(fins, json_string(GPC_POLICY_FINALIZER));
  return fins;
}

json_t *plan_finalizers_drop(const json_t *cur) {
  json_t *fins = json_array();
  size_t i;
  const json_t *f;
  json_array_foreach(cur, i, f) {
    if (!json_is_string(f) || strcmp(json_string_value(f), GPC_POLICY_FINALIZER) != 0)
      json_array_append(fins, (json_t *)f);
  }
  return fins;
}

void plan_release(struct gpc_plan *p) {
  json_decref(p->objects);
  for (size_t i = 0; i < p->n_patches; i++) {
    free(p->patches[i].node);
    json_decref(p->patches[i].patch);
  }
  free(p->patches);
  for (size_t i = 0; i < p->n_deletes; i++)
    json_decref(p->deletes[i].ref);
  free(p->deletes);
  for (size_t i = 0; i < p->n_failing; i++) {
    free(p->failing[i].node);
    free(p->failing[i].reason);
    free(p->failing[i].message);
  }
  free(p->failing);
  free(p->conflict_owner);
  free(p->not_ready_first);
  for (int op = 0; op < GPC_OP_COUNT; op++)
    free(p->operands[op].blocked_node);
  memset(p, 0, sizeof(*p));
}
