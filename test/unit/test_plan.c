/* test_plan.c — the planner: matching, ownership, gating, opt-outs, cleanup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "selector.h"
#include "templates.h"
#include "yaml2json.h"

#define NS "gpu-policy-system"
static struct gpc_templates *tpl;

/* ---- fixture ------------------------------------------------------------------ */

struct world {
  struct gpc_policy *pol[4];
  size_t n_pol;
  struct gpc_node node[32];
  size_t n_node;
  struct gpc_pod pod[64];
  size_t n_pod;
  struct gpc_daemonset ds[8];
  size_t n_ds;
  int64_t now;         /* plan input's clock (0: unknown) */
  int32_t grace_s;     /* plan input's pod grace period (0: default) */
  const json_t *known; /* plan input `known` (borrowed) */
};

static struct gpc_policy *mk_policy(const char *name, const char *created, const char *spec) {
  char yaml[2048];
  snprintf(yaml, sizeof(yaml),
           "metadata: {name: %s, uid: uid-%s, creationTimestamp: \"%s\", generation: 2}\n"
           "spec: %s\n",
           name, name, created, spec);
  struct gpc_error err = {0};
  json_t *j = yaml2json_parse(yaml, strlen(yaml), 0, &err);
  if (!j) fail_msg("yaml: %s", err.msg);
  struct gpc_policy *p = NULL;
  if (policy_from_json(j, &p, &err)) fail_msg("policy: %s", err.msg);
  json_decref(j);
  return p;
}

/* labels as "k=v,k=v" */
static struct gpc_node *add_node(struct world *w, const char *name, const char *labels) {
  struct gpc_node *n = &w->node[w->n_node++];
  gpc_node_init(n);
  free(n->name);
  n->name = gpc_strdup(name);
  json_t *o = json_object();
  char *copy = gpc_strdup(labels), *save = NULL;
  for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    *eq = '\0';
    json_object_set_new(o, kv, json_string(eq + 1));
  }
  free(copy);
  gpc_labels_set_json(&n->labels, o);
  json_decref(o);
  n->ready = true;
  return n;
}

static struct gpc_pod *add_pod(struct world *w, const char *policy, const char *node,
                               enum gpc_operand op, bool ready, const char *reason) {
  struct gpc_pod *p = &w->pod[w->n_pod++];
  gpc_pod_init(p);
  free(p->policy);
  p->policy = gpc_strdup(policy);
  free(p->node_name);
  p->node_name = gpc_strdup(node);
  free(p->namespace);
  p->namespace = gpc_strdup(NS);
  free(p->phase);
  p->phase = gpc_strdup("Running");
  p->operand = (int)op;
  p->ready = ready;
  if (reason) {
    free(p->reason);
    p->reason = gpc_strdup(reason);
    free(p->message);
    p->message = gpc_strdup("back-off restarting failed container");
  }
  return p;
}

static void world_free(struct world *w) {
  for (size_t i = 0; i < w->n_pol; i++)
    policy_free(w->pol[i]);
  for (size_t i = 0; i < w->n_node; i++)
    gpc_node_release(&w->node[i]);
  for (size_t i = 0; i < w->n_pod; i++)
    gpc_pod_release(&w->pod[i]);
  for (size_t i = 0; i < w->n_ds; i++)
    gpc_daemonset_release(&w->ds[i]);
}

static void run_plan(struct world *w, size_t which, struct gpc_plan *out) {
  const struct gpc_policy *pols[4];
  const struct gpc_node *nodes[32];
  const struct gpc_pod *pods[64];
  const struct gpc_daemonset *dss[8];
  for (size_t i = 0; i < w->n_pol; i++)
    pols[i] = w->pol[i];
  for (size_t i = 0; i < w->n_node; i++)
    nodes[i] = &w->node[i];
  for (size_t i = 0; i < w->n_pod; i++)
    pods[i] = &w->pod[i];
  for (size_t i = 0; i < w->n_ds; i++)
    dss[i] = &w->ds[i];
  struct gpc_plan_input in = {.policy = w->pol[which],
                              .policies = pols,
                              .n_policies = w->n_pol,
                              .nodes = nodes,
                              .n_nodes = w->n_node,
                              .pods = pods,
                              .n_pods = w->n_pod,
                              .daemonsets = dss,
                              .n_daemonsets = w->n_ds,
                              .templates = tpl,
                              .namespace = NS,
                              .now = w->now,
                              .pod_grace_s = w->grace_s,
                              .known = w->known};
  struct gpc_error err = {0};
  if (plan_compute(&in, out, &err)) fail_msg("plan: %s", err.msg);
}

static const struct gpc_node_patch *find_patch(const struct gpc_plan *p, const char *node) {
  for (size_t i = 0; i < p->n_patches; i++)
    if (strcmp(p->patches[i].node, node) == 0) return &p->patches[i];
  return NULL;
}

/* The labels the plan's patch for `node` sets, as compact JSON, or NULL. */
static char *patch_for(const struct gpc_plan *p, const char *node) {
  const struct gpc_node_patch *np = find_patch(p, node);
  return np ? json_dumps(json_object_get(json_object_get(np->patch, "metadata"), "labels"),
                         JSON_SORT_KEYS | JSON_COMPACT)
            : NULL;
}

static void expect_patch(const struct gpc_plan *p, const char *node, const char *want) {
  char *got = patch_for(p, node);
  if (!want) {
    if (got) fail_msg("%s: unexpected patch %s", node, got);
    return;
  }
  if (!got) fail_msg("%s: no patch, wanted %s", node, want);
  if (strcmp(got, want) != 0) fail_msg("%s: patch %s, wanted %s", node, got, want);
  free(got);
}

static size_t count_kind(const json_t *objs, const char *kind) {
  size_t n = 0, i;
  json_t *o;
  json_array_foreach(objs, i, o) {
    if (strcmp(json_string_value(json_object_get(o, "kind")), kind) == 0) n++;
  }
  return n;
}

#define GPU "nvidia.com/gpu.present=true"
#define NFD "feature.node.kubernetes.io/pci-10de.present=true"

/* ---- tests ------------------------------------------------------------------------ */

static void test_default_detection_and_first_stage(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "gpu-1", GPU);
  add_node(&w, "gpu-2", NFD);
  add_node(&w, "gpu-3", "feature.node.kubernetes.io/pci-0302_10de.present=true");
  add_node(&w, "cpu-1", "kubernetes.io/os=linux");
  add_node(&w, "cpu-2", "nvidia.com/gpu.present=false");
  /* managed clouds without NFD */
  add_node(&w, "gke", "cloud.google.com/gke-accelerator=nvidia-tesla-t4");
  add_node(&w, "aks", "kubernetes.azure.com/accelerator=nvidia");
  add_node(&w, "tpu", "cloud.google.com/gke-accelerator=tpu-v5-lite-podslice");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  const char *first = "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/policy\":\"gpus\"}";
  expect_patch(&p, "gpu-1", first);
  expect_patch(&p, "gpu-2", first);
  expect_patch(&p, "gpu-3", first);
  expect_patch(&p, "gke", first);
  expect_patch(&p, "aks", first);
  expect_patch(&p, "cpu-1", NULL);
  expect_patch(&p, "cpu-2", NULL);
  expect_patch(&p, "tpu", NULL);
  assert_int_equal(p.n_patches, 5);
  assert_int_equal(p.matched, 5);
  assert_int_equal(p.ready, 0);
  assert_int_equal(count_kind(p.objects, "DaemonSet"), 5);
  assert_int_equal(count_kind(p.objects, "RuntimeClass"), 1);
  assert_int_equal(count_kind(p.objects, "Service"), 1);
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_unlocked, 5);
  assert_int_equal(p.operands[GPC_OP_TOOLKIT].nodes_unlocked, 0);
  assert_string_equal(p.operands[GPC_OP_DRIVER].daemonset, "gpus-driver");
  plan_release(&p);
  world_free(&w);
}

static void test_gating_per_node(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *l1 = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true";
  add_node(&w, "a", l1);
  add_node(&w, "b", l1);
  add_node(&w, "c",
           GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
               "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true");
  add_pod(&w, "gpus", "a", GPC_OP_DRIVER, true, NULL);  /* a: driver ready */
  add_pod(&w, "gpus", "b", GPC_OP_DRIVER, false, NULL); /* b: still starting */
  add_pod(&w, "other", "b", GPC_OP_DRIVER, true, NULL); /* another policy's pod */
  add_pod(&w, "gpus", "c", GPC_OP_DRIVER, true, NULL);  /* c: three stages ready */
  add_pod(&w, "gpus", "c", GPC_OP_TOOLKIT, true, NULL);
  add_pod(&w, "gpus", "c", GPC_OP_DEVICE_PLUGIN, true, NULL);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "a", "{\"gpupolicy.dev/container-toolkit\":\"true\"}");
  expect_patch(&p, "b", NULL); /* one broken/slow node never holds the others back */
  /* both last-stage operands unlock together, in one patch */
  expect_patch(&p, "c",
               "{\"gpupolicy.dev/dcgm-exporter\":\"true\",\"gpupolicy.dev/validator\":\"true\"}");
  assert_int_equal(p.ready, 0);
  assert_int_equal(p.n_failing, 0);
  plan_release(&p);

  /* everything Ready on c -> c is ready; nothing more to write there */
  add_pod(&w, "gpus", "c", GPC_OP_DCGM_EXPORTER, true, NULL);
  add_pod(&w, "gpus", "c", GPC_OP_VALIDATOR, true, NULL);
  struct gpc_node *c = &w.node[2];
  json_t *lj = gpc_labels_to_json(&c->labels);
  json_object_set_new(lj, "gpupolicy.dev/dcgm-exporter", json_string("true"));
  json_object_set_new(lj, "gpupolicy.dev/validator", json_string("true"));
  gpc_labels_set_json(&c->labels, lj);
  json_decref(lj);
  c->gpu_allocatable = 8;
  run_plan(&w, 0, &p);
  expect_patch(&p, "c", NULL);
  assert_int_equal(p.ready, 1);
  assert_int_equal(p.gpus, 8);
  plan_release(&p);
  world_free(&w);
}

static void test_disabled_operands_unlock_at_once(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("pre", "2026-01-01T00:00:00Z",
                               "{driver: {enabled: false}, toolkit: {enabled: false}}");
  add_node(&w, "n", GPU ",gpupolicy.dev/driver=true"); /* left over from before: removed */
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "n",
               "{\"gpupolicy.dev/device-plugin\":\"true\",\"gpupolicy.dev/driver\":null,"
               "\"gpupolicy.dev/policy\":\"pre\"}");
  assert_int_equal(count_kind(p.objects, "DaemonSet"), 3);
  /* the host's own toolkit has the handler: containerd pods still name it */
  assert_int_equal(count_kind(p.objects, "RuntimeClass"), 1);
  assert_int_equal(p.operands[GPC_OP_DRIVER].state, GPC_STATE_DISABLED);
  plan_release(&p);
  world_free(&w);
}

static void test_operand_opt_out(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "n", GPU ",gpupolicy.dev/driver=false");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  /* the opt-out is never overwritten and counts as satisfied */
  expect_patch(&p, "n",
               "{\"gpupolicy.dev/container-toolkit\":\"true\",\"gpupolicy.dev/policy\":\"gpus\"}");
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_wanted, 0);
  plan_release(&p);
  world_free(&w);
}

static void test_all_operands_opt_out(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "n",
           GPU ",gpupolicy.dev/operands=false,gpupolicy.dev/policy=gpus,"
               "gpupolicy.dev/driver=true,gpupolicy.dev/validator=false");
  add_node(&w, "clean", GPU ",gpupolicy.dev/operands=false");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "n", "{\"gpupolicy.dev/driver\":null,\"gpupolicy.dev/policy\":null}");
  expect_patch(&p, "clean", NULL);
  assert_int_equal(p.matched, 0);
  assert_int_equal(p.opted_out, 2);
  plan_release(&p);
  world_free(&w);
}

static void test_conflict_oldest_wins(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("young", "2026-02-01T00:00:00Z", "{}");
  w.pol[w.n_pol++] = mk_policy("old", "2026-01-01T00:00:00Z", "{}");
  w.pol[w.n_pol++] = mk_policy("aaa-same-time", "2026-02-01T00:00:00Z", "{}");
  add_node(&w, "n", GPU);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "n", NULL);
  assert_int_equal(p.conflicted, 1);
  assert_int_equal(p.matched, 0);
  assert_string_equal(p.conflict_owner, "old");
  /* only the oldest policy with the toolkit owns the shared RuntimeClass */
  assert_int_equal(count_kind(p.objects, "RuntimeClass"), 0);
  plan_release(&p);
  run_plan(&w, 1, &p);
  expect_patch(&p, "n", "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/policy\":\"old\"}");
  assert_int_equal(p.conflicted, 0);
  assert_int_equal(count_kind(p.objects, "RuntimeClass"), 1);
  plan_release(&p);
  /* same timestamp: the name breaks the tie */
  assert_true(plan_policy_older(w.pol[2], w.pol[0]));
  assert_ptr_equal(plan_node_owner((const struct gpc_policy *const *)w.pol, 3, &w.node[0]),
                   w.pol[1]);
  world_free(&w);
}

/* One policy per pool plus one for "the rest": the pool's explicit selector
 * wins its nodes from the older default-detection policy, which neither
 * touches them nor reports a conflict. */
static void test_explicit_selector_outranks_default_detection(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("rest", "2026-01-01T00:00:00Z", "{}");
  w.pol[w.n_pol++] =
      mk_policy("pool", "2026-02-01T00:00:00Z", "{nodeSelector: {matchLabels: {pool: h100}}}");
  add_node(&w, "in-pool", GPU ",pool=h100");
  add_node(&w, "other", GPU);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "other",
               "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/policy\":\"rest\"}");
  expect_patch(&p, "in-pool", NULL);
  assert_int_equal(p.matched, 1);
  assert_int_equal(p.conflicted, 0);
  assert_null(p.conflict_owner);
  plan_release(&p);
  run_plan(&w, 1, &p);
  expect_patch(&p, "in-pool",
               "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/policy\":\"pool\"}");
  assert_int_equal(p.matched, 1);
  plan_release(&p);
  assert_ptr_equal(plan_node_owner((const struct gpc_policy *const *)w.pol, 2, &w.node[0]),
                   w.pol[1]);
  /* two explicit selectors on one node: still the oldest, and a conflict */
  w.pol[w.n_pol++] =
      mk_policy("pool-2", "2026-03-01T00:00:00Z", "{nodeSelector: {matchLabels: {pool: h100}}}");
  run_plan(&w, 2, &p);
  assert_int_equal(p.conflicted, 1);
  assert_string_equal(p.conflict_owner, "pool");
  plan_release(&p);
  world_free(&w);
}

static void test_takeover_is_not_sticky(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("old", "2026-01-01T00:00:00Z", "{}");
  /* labels written by a younger policy before the older one existed */
  add_node(&w, "n",
           GPU ",gpupolicy.dev/policy=young,gpupolicy.dev/driver=true,"
               "gpupolicy.dev/container-toolkit=true");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "n",
               "{\"gpupolicy.dev/container-toolkit\":null,\"gpupolicy.dev/policy\":\"old\"}");
  plan_release(&p);
  world_free(&w);
}

/* A driver pod newer than the later operands' pods and not Ready yet was
 * replaced: the later stages leave the node (their unlocks stop being
 * sticky) until it is Ready; the same pod restarting (crash, reboot) keeps
 * them. Mixed fleets: variant labels only where a node differs. */
static void test_replaced_driver_and_variants(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *all = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
                        "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true,"
                        "gpupolicy.dev/dcgm-exporter=true,gpupolicy.dev/validator=true";
  add_node(&w, "new", all);
  add_node(&w, "same", all);
  struct gpc_node *crio = add_node(&w, "crio", GPU);
  snprintf(crio->runtime, sizeof(crio->runtime), "crio");
  snprintf(crio->os, sizeof(crio->os), "rhel9.4");
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    struct gpc_pod *a = add_pod(&w, "gpus", "new", op, op != GPC_OP_DRIVER, NULL);
    struct gpc_pod *b = add_pod(&w, "gpus", "same", op, op != GPC_OP_DRIVER, "CrashLoopBackOff");
    snprintf(a->created, sizeof(a->created), "%s",
             op == GPC_OP_DRIVER ? "2026-01-02T00:00:00Z" : "2026-01-01T10:00:00Z");
    snprintf(b->created, sizeof(b->created), "2026-01-01T09:00:00Z");
  }
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "new",
               "{\"gpupolicy.dev/container-toolkit\":null,\"gpupolicy.dev/dcgm-exporter\":null,"
               "\"gpupolicy.dev/device-plugin\":null,\"gpupolicy.dev/validator\":null}");
  assert_null(patch_for(&p, "same"));
  expect_patch(&p, "crio",
               "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/os\":\"rhel9.4\","
               "\"gpupolicy.dev/policy\":\"gpus\",\"gpupolicy.dev/runtime\":\"crio\"}");
  /* one DaemonSet per runtime / driver OS among the nodes */
  assert_int_equal(count_kind(p.objects, "DaemonSet"), 2 + 2 * 4);
  plan_release(&p);
  world_free(&w);
}

/* The driver-pod annotation on the node, as the plan's patch sets it:
 * "(none)" when the patch leaves it, "null" when it removes it. */
static const char *driver_pod_in_patch(const struct gpc_plan *p, const char *node) {
  const struct gpc_node_patch *np = find_patch(p, node);
  if (!np) return "(no patch)";
  json_t *a = json_object_get(json_object_get(np->patch, "metadata"), "annotations");
  json_t *v = json_object_get(a, GPC_ANNOTATION_DRIVER_POD);
  return !v ? "(none)" : json_is_null(v) ? "null" : json_string_value(v);
}

static void set_name(struct gpc_pod *pod, const char *name, const char *created) {
  free(pod->name);
  pod->name = gpc_strdup(name);
  snprintf(pod->created, sizeof(pod->created), "%s", created);
}

/* creationTimestamp has whole seconds: a driver pod replaced within the
 * second its later stages were made looks no newer than them. The node's
 * driver-pod annotation (written with the unlock that follows a Ready driver)
 * tells a replacement from a restart anyway, and is never a write alone. */
static void test_replaced_driver_within_one_second(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *all = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
                        "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true,"
                        "gpupolicy.dev/dcgm-exporter=true,gpupolicy.dev/validator=true";
  const char *sec = "2026-01-01T10:00:00Z";
  struct gpc_node *tie = add_node(&w, "tie", all);
  struct gpc_node *crash = add_node(&w, "crash", all);
  add_node(&w, "record", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  add_node(&w, "steady", all);
  free(tie->driver_pod);
  tie->driver_pod = gpc_strdup("drv-old");
  free(crash->driver_pod);
  crash->driver_pod = gpc_strdup("drv-crash");
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    bool drv = op == GPC_OP_DRIVER;
    set_name(add_pod(&w, "gpus", "tie", op, !drv, NULL), drv ? "drv-new" : "later", sec);
    set_name(add_pod(&w, "gpus", "crash", op, !drv, drv ? "CrashLoopBackOff" : NULL),
             drv ? "drv-crash" : "later", sec);
    set_name(add_pod(&w, "gpus", "steady", op, true, NULL), drv ? "drv-steady" : "later", sec);
  }
  set_name(add_pod(&w, "gpus", "record", GPC_OP_DRIVER, true, NULL), "drv-rec", sec);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  /* replaced within the second: the later stages leave; the record stays */
  expect_patch(&p, "tie",
               "{\"gpupolicy.dev/container-toolkit\":null,\"gpupolicy.dev/dcgm-exporter\":null,"
               "\"gpupolicy.dev/device-plugin\":null,\"gpupolicy.dev/validator\":null}");
  assert_string_equal(driver_pod_in_patch(&p, "tie"), "(none)");
  /* the same pod crashing is a restart: nothing moves */
  assert_null(patch_for(&p, "crash"));
  /* a Ready driver unlocks the next stage and is recorded in that patch */
  expect_patch(&p, "record", "{\"gpupolicy.dev/container-toolkit\":\"true\"}");
  assert_string_equal(driver_pod_in_patch(&p, "record"), "drv-rec");
  /* no label to change: no write for the record alone */
  assert_null(patch_for(&p, "steady"));
  plan_release(&p);
  /* leaving the policy takes the record along with the labels */
  w.pol[0]->deleting = true;
  run_plan(&w, 0, &p);
  assert_string_equal(driver_pod_in_patch(&p, "tie"), "null");
  assert_string_equal(driver_pod_in_patch(&p, "steady"), "(none)");
  plan_release(&p);
  world_free(&w);
}

static json_t *ref(const char *api_version, const char *kind, const char *ns, const char *name) {
  return ns ? json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", api_version, "kind", kind,
                        "metadata", "name", name, "namespace", ns)
            : json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", api_version, "kind", kind, "metadata",
                        "name", name);
}

/* A live policy deletes the generated objects the controller knows exist
 * (apply's memory: the caches do not show Services or ServiceMonitors) and
 * that it no longer renders; never the shared cluster-scoped RuntimeClass,
 * never a DaemonSet (those come from the cache), never what it still renders.
 * (Moved from test_apply.c's prune decision, now the plan's.) */
static void test_live_policy_prunes_known_objects_it_no_longer_renders(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "gpu-1", GPU);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_deletes, 0); /* nothing known: nothing to prune */
  const json_t *svc = NULL;
  size_t i;
  const json_t *o;
  json_array_foreach(p.objects, i, o) {
    const char *kind = json_string_value(json_object_get(o, "kind"));
    if (kind && strcmp(kind, "Service") == 0) svc = o;
  }
  assert_non_null(svc); /* dcgm-exporter's Service */
  json_t *known = json_array();
  json_array_append(known, (json_t *)svc); /* still rendered */
  json_array_append_new(known, ref("v1", "Service", NS, "gpus-old-exporter"));
  json_array_append_new(
      known, ref("monitoring.coreos.com/v1", "ServiceMonitor", NS, "gpus-dcgm-exporter"));
  json_array_append_new(known, ref("node.k8s.io/v1", "RuntimeClass", NULL, "nvidia"));
  json_array_append_new(known, ref("apps/v1", "DaemonSet", NS, "gpus-old"));
  plan_release(&p);
  w.known = known;
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_deletes, 2);
  assert_string_equal(json_string_value(json_object_get(p.deletes[0].ref, "kind")), "Service");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(p.deletes[0].ref, "metadata"), "name")),
      "gpus-old-exporter");
  assert_string_equal(json_string_value(json_object_get(p.deletes[1].ref, "kind")),
                      "ServiceMonitor");
  assert_false(p.deletes[0].cached || p.deletes[1].cached);
  plan_release(&p);
  json_decref(known);
  world_free(&w);
}

static void test_sticky_unlock_and_failing(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *all = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
                        "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true,"
                        "gpupolicy.dev/dcgm-exporter=true,gpupolicy.dev/validator=true";
  add_node(&w, "z-bad", all);
  add_node(&w, "a-bad", all);
  add_node(&w, "good", all);
  add_pod(&w, "gpus", "z-bad", GPC_OP_DRIVER, false, "CrashLoopBackOff");
  add_pod(&w, "gpus", "a-bad", GPC_OP_DRIVER, false, "ImagePullBackOff");
  add_pod(&w, "gpus", "a-bad", GPC_OP_VALIDATOR, false, "Error");
  for (int op = 0; op < GPC_OP_COUNT; op++)
    add_pod(&w, "gpus", "good", op, true, NULL);
  /* a starting pod is not failing */
  add_pod(&w, "gpus", "z-bad", GPC_OP_TOOLKIT, false, "ContainerCreating");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  /* a crashing driver does not tear down the unlocked stages above it */
  assert_int_equal(p.n_patches, 0);
  assert_int_equal(p.n_failing, 3);
  assert_string_equal(p.failing[0].node, "a-bad");
  assert_int_equal(p.failing[0].op, GPC_OP_DRIVER);
  assert_string_equal(p.failing[1].node, "a-bad");
  assert_int_equal(p.failing[1].op, GPC_OP_VALIDATOR);
  assert_string_equal(p.failing[2].node, "z-bad");
  assert_string_equal(p.failing[2].reason, "CrashLoopBackOff");
  assert_int_equal(p.operands[GPC_OP_DRIVER].state, GPC_STATE_DEGRADED);
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_failing, 2);
  assert_int_equal(p.ready, 1);
  assert_int_equal(p.matched, 3);
  plan_release(&p);
  world_free(&w);
}

static void test_stop_matching_and_deletion(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  /* lost its GPU label: every label we wrote goes, the opt-out stays */
  add_node(&w, "gone",
           "gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
           "gpupolicy.dev/container-toolkit=false");
  /* someone else's node: untouched */
  add_node(&w, "theirs", "gpupolicy.dev/policy=other,gpupolicy.dev/driver=true");
  add_node(&w, "mine", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "gone", "{\"gpupolicy.dev/driver\":null,\"gpupolicy.dev/policy\":null}");
  expect_patch(&p, "theirs", NULL);
  expect_patch(&p, "mine", NULL);
  plan_release(&p);

  /* deleting: no objects, labels off every node of ours */
  w.pol[0]->deleting = true;
  run_plan(&w, 0, &p);
  assert_true(p.deleting);
  assert_int_equal(json_array_size(p.objects), 0);
  expect_patch(&p, "gone", "{\"gpupolicy.dev/driver\":null,\"gpupolicy.dev/policy\":null}");
  expect_patch(&p, "mine", "{\"gpupolicy.dev/driver\":null,\"gpupolicy.dev/policy\":null}");
  expect_patch(&p, "theirs", NULL);
  plan_release(&p);
  world_free(&w);
}

static void test_node_moves_to_other_policy(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("young", "2026-02-01T00:00:00Z", "{}");
  w.pol[w.n_pol++] = mk_policy("old", "2026-01-01T00:00:00Z", "{}");
  /* labeled by young, now owned by old: young leaves it to old's plan */
  add_node(&w, "n", GPU ",gpupolicy.dev/policy=young,gpupolicy.dev/driver=true");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "n", NULL);
  assert_int_equal(p.conflicted, 1);
  plan_release(&p);
  world_free(&w);
}

/* A Terminating pod never satisfies a stage and loses to a live one; a
 * progressing pod fails only after its window + grace; a rollout held by a
 * Terminating pod on a NotReady node names that node. */
static void test_terminating_and_progressing(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  w.now = 100000;
  w.grace_s = 300;
  /* fresh node whose only driver pod is Ready but Terminating: no unlock */
  add_node(&w, "term", GPU);
  add_pod(&w, "gpus", "term", GPC_OP_DRIVER, true, NULL)->deleting = true;
  /* a Ready Terminating driver pod beside its not-ready replacement */
  add_node(&w, "repl", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  add_pod(&w, "gpus", "repl", GPC_OP_DRIVER, true, NULL)->deleting = true;
  struct gpc_pod *r = add_pod(&w, "gpus", "repl", GPC_OP_DRIVER, false, "ContainerCreating");
  r->progressing = true;
  r->since = w.now - 10;
  /* unschedulable for 299 s: not yet failing; for 300 s: failing */
  add_node(&w, "young", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  struct gpc_pod *y = add_pod(&w, "gpus", "young", GPC_OP_DRIVER, false, "Unschedulable");
  y->progressing = true;
  y->since = w.now - 299;
  add_node(&w, "old", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  struct gpc_pod *o = add_pod(&w, "gpus", "old", GPC_OP_DRIVER, false, "Unschedulable");
  o->progressing = true;
  o->since = w.now - 300;
  /* on a NotReady node nobody reports progress: never failing */
  add_node(&w, "down", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true")->ready = false;
  struct gpc_pod *dn = add_pod(&w, "gpus", "down", GPC_OP_DRIVER, false, "ContainerCreating");
  dn->progressing = true;
  dn->since = w.now - 5000;
  /* starting inside a 1260 s startup window (+ grace): progressing */
  add_node(&w, "boot", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  struct gpc_pod *b = add_pod(&w, "gpus", "boot", GPC_OP_DRIVER, false, "Starting");
  b->progressing = true;
  b->since = w.now - 1500;
  b->window_s = 1260;
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  char *lab = patch_for(&p, "term");
  assert_non_null(lab);
  assert_string_equal(lab, "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/policy\":\"gpus\"}");
  free(lab);
  assert_null(patch_for(&p, "repl")); /* the replacement decides: not ready, no unlock */
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_ready, 0);
  /* the NotReady node is listed as such, not as a failing pod */
  assert_int_equal(p.n_failing, 2);
  assert_string_equal(p.failing[0].node, "down");
  assert_string_equal(p.failing[0].reason, "NodeNotReady");
  assert_true(p.failing[0].node_down);
  assert_string_equal(p.failing[1].node, "old");
  assert_string_equal(p.failing[1].reason, "Unschedulable");
  assert_false(p.failing[1].node_down);
  /* the next deadline: "young" in 1 s */
  assert_int_equal(p.recheck_at, w.now + 1);
  plan_release(&p);
  /* without a clock, progressing pods never fail */
  w.now = 0;
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_failing, 1); /* only the NotReady node, as such */
  assert_true(p.failing[0].node_down);
  assert_int_equal(p.recheck_at, 0);
  plan_release(&p);
  world_free(&w);

  /* RollingUpdate device plugin held by a Terminating pod on a NotReady node */
  struct world v = {0};
  v.pol[v.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *all = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
                        "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true";
  add_node(&v, "up", all);
  add_node(&v, "down", all)->ready = false;
  for (int op = GPC_OP_DRIVER; op <= GPC_OP_DEVICE_PLUGIN; op++) {
    add_pod(&v, "gpus", "up", (enum gpc_operand)op, true, NULL);
    add_pod(&v, "gpus", "down", (enum gpc_operand)op, false, NULL)->deleting =
        op == GPC_OP_DEVICE_PLUGIN;
  }
  struct gpc_daemonset *d = &v.ds[v.n_ds++];
  gpc_daemonset_init(d);
  free(d->policy);
  d->policy = gpc_strdup("gpus");
  free(d->name);
  d->name = gpc_strdup("gpus-device-plugin"); /* variants are matched by name */
  d->operand = GPC_OP_DEVICE_PLUGIN;
  d->desired = 1;
  d->updated = 0;
  run_plan(&v, 0, &p);
  assert_non_null(p.operands[GPC_OP_DEVICE_PLUGIN].blocked_node);
  assert_string_equal(p.operands[GPC_OP_DEVICE_PLUGIN].blocked_node, "down");
  assert_null(p.operands[GPC_OP_DRIVER].blocked_node);
  plan_release(&p);
  d->updated = 1; /* rolled: nothing blocked */
  run_plan(&v, 0, &p);
  assert_null(p.operands[GPC_OP_DEVICE_PLUGIN].blocked_node);
  plan_release(&p);
  world_free(&v);
}

static void test_daemonset_summary(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "n", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  add_pod(&w, "gpus", "n", GPC_OP_DRIVER, true, NULL);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  /* DaemonSet not in the cache yet */
  assert_false(p.operands[GPC_OP_DRIVER].ds_found);
  assert_int_equal(p.operands[GPC_OP_DRIVER].state, GPC_STATE_PROGRESSING);
  /* now it is, with the rendered hash, one pod on the old template (OnDelete) */
  struct gpc_daemonset *d = &w.ds[w.n_ds++];
  gpc_daemonset_init(d);
  free(d->policy);
  d->policy = gpc_strdup("gpus");
  free(d->name);
  d->name = gpc_strdup("gpus-driver"); /* variants are matched by name */
  free(d->render_hash);
  const char *h = "";
  size_t i;
  json_t *o;
  json_array_foreach(p.objects, i, o) {
    if (strcmp(json_string_value(json_object_get(o, "kind")), "DaemonSet") == 0) {
      h = render_hash_of(o);
      break;
    }
  }
  d->render_hash = gpc_strdup(h);
  d->operand = GPC_OP_DRIVER;
  d->generation = d->observed_generation = 2;
  d->desired = d->ready = d->available = 1;
  d->updated = 0;
  plan_release(&p);
  run_plan(&w, 0, &p);
  assert_true(p.operands[GPC_OP_DRIVER].ds_current);
  assert_int_equal(p.operands[GPC_OP_DRIVER].pending_update, 1);
  assert_int_equal(p.operands[GPC_OP_DRIVER].state, GPC_STATE_READY);
  assert_int_equal(p.operands[GPC_OP_DRIVER].desired, 1);
  plan_release(&p);
  world_free(&w);
}

static void test_not_ready_node_not_waited_for(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *all = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
                        "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true,"
                        "gpupolicy.dev/dcgm-exporter=true,gpupolicy.dev/validator=true";
  add_node(&w, "up", all);
  struct gpc_node *down = add_node(&w, "down", all);
  down->ready = false;
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    add_pod(&w, "gpus", "up", op, true, NULL);
    add_pod(&w, "gpus", "down", op, false, NULL);
  }
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  assert_int_equal(p.matched, 2);
  assert_int_equal(p.ready, 1);
  assert_int_equal(p.not_ready, 1);
  assert_string_equal(p.not_ready_first, "down");
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_down, 1);
  assert_int_equal(p.n_patches, 0);
  /* listed with the kubelet's word, as NodeNotReady, not as a failing stage */
  assert_int_equal(p.n_failing, 1);
  assert_string_equal(p.failing[0].node, "down");
  assert_string_equal(p.failing[0].reason, "NodeNotReady");
  assert_int_equal(p.failing[0].op, GPC_OP_DRIVER);
  assert_true(p.failing[0].node_down);
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_failing, 0);
  plan_release(&p);
  /* the node controller's unreachable taint says Unreachable */
  down->taints = gpc_calloc(1, sizeof *down->taints);
  down->taints[0] = (struct gpc_taint){.key = gpc_strdup("node.kubernetes.io/unreachable"),
                                       .value = gpc_strdup(""),
                                       .no_execute = true};
  down->n_taints = 1;
  free(down->down_message);
  down->down_message = gpc_strdup("Kubelet stopped posting node status.");
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_failing, 1);
  assert_string_equal(p.failing[0].reason, "Unreachable");
  assert_string_equal(p.failing[0].message, "Kubelet stopped posting node status.");
  plan_release(&p);
  world_free(&w);
}

/* A taint the policy does not tolerate: the DaemonSet makes no pod, so the
 * node is named with the taint instead of waiting forever. */
static void test_untolerated_taint_is_named(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  const char *unlocked = GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true";
  struct gpc_node *t = add_node(&w, "tainted", unlocked);
  struct gpc_node *ok = add_node(&w, "tolerated", unlocked);
  struct gpc_node *sys = add_node(&w, "cordoned", unlocked);
  t->taints = gpc_calloc(1, sizeof *t->taints);
  t->taints[0] = (struct gpc_taint){
      .key = gpc_strdup("dedicated"), .value = gpc_strdup("ml"), .no_execute = false};
  t->n_taints = 1;
  /* the default toleration (nvidia.com/gpu Exists NoSchedule) covers this one */
  ok->taints = gpc_calloc(1, sizeof *ok->taints);
  ok->taints[0] = (struct gpc_taint){
      .key = gpc_strdup("nvidia.com/gpu"), .value = gpc_strdup("present"), .no_execute = false};
  ok->n_taints = 1;
  /* the DaemonSet controller's own tolerations cover this one */
  sys->taints = gpc_calloc(1, sizeof *sys->taints);
  sys->taints[0] = (struct gpc_taint){.key = gpc_strdup("node.kubernetes.io/unschedulable"),
                                      .value = gpc_strdup(""),
                                      .no_execute = false};
  sys->n_taints = 1;
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_failing, 1);
  assert_string_equal(p.failing[0].node, "tainted");
  assert_string_equal(p.failing[0].reason, "UntoleratedTaint");
  assert_int_equal(p.failing[0].op, GPC_OP_DRIVER);
  assert_non_null(strstr(p.failing[0].message, "taint dedicated=ml:NoSchedule is not tolerated"));
  assert_int_equal(p.operands[GPC_OP_DRIVER].nodes_failing, 1);
  plan_release(&p);
  /* tolerating it in the spec clears it */
  policy_free(w.pol[0]);
  w.pol[0] =
      mk_policy("gpus", "2026-01-01T00:00:00Z",
                "{daemonsets: {tolerations: [{key: dedicated, operator: Equal, value: ml}]}}");
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_failing, 1); /* now the nvidia.com/gpu taint is not tolerated */
  assert_string_equal(p.failing[0].node, "tolerated");
  plan_release(&p);
  world_free(&w);
}

static void test_node_selector(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] =
      mk_policy("pool", "2026-01-01T00:00:00Z", "{nodeSelector: {matchLabels: {pool: h100}}}");
  /* policy.c compiles the selector once it uses selector.c; until then do it here */
  struct label_selector *own = NULL;
  if (!w.pol[0]->selector) {
    struct gpc_error err = {0};
    own = w.pol[0]->selector =
        selector_from_json(w.pol[0]->node_selector, "spec.nodeSelector", &err);
    assert_non_null(own);
  }
  add_node(&w, "h", "pool=h100");
  add_node(&w, "g", GPU);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  expect_patch(&p, "h", "{\"gpupolicy.dev/driver\":\"true\",\"gpupolicy.dev/policy\":\"pool\"}");
  expect_patch(&p, "g", NULL);
  plan_release(&p);
  if (own) {
    w.pol[0]->selector = NULL;
    selector_free(own);
  }
  world_free(&w);
}

/* ---- decisions the controller executes ---------------------------------------- */

static struct gpc_daemonset *add_ds(struct world *w, const char *policy, const char *name) {
  struct gpc_daemonset *d = &w->ds[w->n_ds++];
  gpc_daemonset_init(d);
  free(d->policy);
  d->policy = gpc_strdup(policy);
  free(d->name);
  d->name = gpc_strdup(name);
  free(d->namespace);
  d->namespace = gpc_strdup(NS);
  return d;
}

/* The stage unlocks of a patch are data (a bit per operand): the controller
 * counts them per sent patch instead of reading the patch JSON back. */
static void test_patch_unlocks_as_data(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "new", GPU);
  add_node(&w, "a", GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  add_node(&w, "c",
           GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
               "gpupolicy.dev/container-toolkit=true,gpupolicy.dev/device-plugin=true");
  add_node(&w, "gone", "gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true");
  add_pod(&w, "gpus", "a", GPC_OP_DRIVER, true, NULL);
  add_pod(&w, "gpus", "c", GPC_OP_DRIVER, true, NULL);
  add_pod(&w, "gpus", "c", GPC_OP_TOOLKIT, true, NULL);
  add_pod(&w, "gpus", "c", GPC_OP_DEVICE_PLUGIN, true, NULL);
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  /* the policy label is no stage; the driver label is */
  assert_int_equal(find_patch(&p, "new")->unlocks, 1u << GPC_OP_DRIVER);
  /* driver=true already there: only what changes counts */
  assert_int_equal(find_patch(&p, "a")->unlocks, 1u << GPC_OP_TOOLKIT);
  assert_int_equal(find_patch(&p, "c")->unlocks,
                   (1u << GPC_OP_DCGM_EXPORTER) | (1u << GPC_OP_VALIDATOR));
  /* removals unlock nothing */
  assert_int_equal(find_patch(&p, "gone")->unlocks, 0);
  plan_release(&p);
  world_free(&w);
}

/* Cached DaemonSets of the policy that the plan no longer renders are
 * deleted; desired ones and other policies' stay. */
static void test_daemonset_pruning(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  add_node(&w, "n", GPU);
  add_ds(&w, "gpus", "gpus-driver");
  add_ds(&w, "gpus", "gpus-retired");
  add_ds(&w, "other", "other-retired");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  assert_int_equal(p.n_deletes, 1);
  assert_true(p.deletes[0].cached);
  char *ref = json_dumps(p.deletes[0].ref, JSON_COMPACT);
  assert_string_equal(ref, "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":"
                           "{\"name\":\"gpus-retired\",\"namespace\":\"" NS "\"}}");
  free(ref);
  assert_false(p.cleanup_left); /* a live policy has no cleanup */
  plan_release(&p);
  world_free(&w);
}

/* Deleting: every DaemonSet of the policy, then every uncached object it
 * renders to (not the shared RuntimeClass); cleanup is left while a node
 * carries its label or a DaemonSet of it is cached. */
static void test_deletion_deletes_and_progress(void **state) {
  (void)state;
  struct world w = {0};
  w.pol[w.n_pol++] = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  w.pol[0]->deleting = true;
  add_node(&w, "n", GPU ",gpupolicy.dev/policy=gpus");
  add_ds(&w, "gpus", "gpus-driver");
  add_ds(&w, "other", "other-driver");
  struct gpc_plan p;
  run_plan(&w, 0, &p);
  assert_true(p.cleanup_left);
  assert_true(p.n_deletes >= 2);
  assert_true(p.deletes[0].cached);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(p.deletes[0].ref, "metadata"), "name")),
      "gpus-driver");
  size_t services = 0;
  for (size_t i = 1; i < p.n_deletes; i++) {
    assert_false(p.deletes[i].cached);
    const char *kind = json_string_value(json_object_get(p.deletes[i].ref, "kind"));
    assert_string_not_equal(kind, "DaemonSet");
    assert_string_not_equal(kind, "RuntimeClass");
    if (strcmp(kind, "Service") == 0) services++;
  }
  assert_int_equal(services, 1);
  plan_release(&p);

  /* the DaemonSet is gone from the cache: the node label still holds it */
  gpc_daemonset_release(&w.ds[0]);
  w.ds[0] = w.ds[1];
  w.n_ds = 1;
  run_plan(&w, 0, &p);
  assert_true(p.cleanup_left);
  assert_false(p.deletes[0].cached);
  plan_release(&p);

  /* and the label is off: nothing left the cache shows */
  json_t *empty = json_object();
  gpc_labels_set_json(&w.node[0].labels, empty);
  json_decref(empty);
  run_plan(&w, 0, &p);
  assert_false(p.cleanup_left);
  plan_release(&p);
  world_free(&w);
}

/* A policy gone from the cache: the policy label and the "true" unlocks come
 * off its nodes, opt-outs and other policies' nodes stay. */
static void test_gone_policy_patches(void **state) {
  (void)state;
  struct world w = {0};
  add_node(&w, "mine",
           GPU ",gpupolicy.dev/policy=gpus,gpupolicy.dev/driver=true,"
               "gpupolicy.dev/container-toolkit=false");
  add_node(&w, "theirs", GPU ",gpupolicy.dev/policy=other,gpupolicy.dev/driver=true");
  add_node(&w, "free", GPU);
  const struct gpc_node *nodes[] = {&w.node[0], &w.node[1], &w.node[2]};
  struct gpc_plan p;
  plan_gone("gpus", nodes, 3, &p);
  assert_int_equal(p.n_patches, 1);
  char *got = json_dumps(p.patches[0].patch, JSON_COMPACT);
  assert_string_equal(got, "{\"metadata\":{\"labels\":{\"gpupolicy.dev/policy\":null,"
                           "\"gpupolicy.dev/driver\":null}}}");
  free(got);
  assert_string_equal(p.patches[0].node, "mine");
  assert_int_equal(p.patches[0].unlocks, 0);
  plan_release(&p);
  world_free(&w);
}

/* The finalizer goes on once (others kept, in order) and comes off alone. */
static void test_finalizer_edits(void **state) {
  (void)state;
  struct gpc_policy *pol = mk_policy("gpus", "2026-01-01T00:00:00Z", "{}");
  json_t *cur = json_pack("[s]", "example.com/keep");
  json_t *added = plan_finalizers_add(pol, cur);
  char *s = json_dumps(added, JSON_COMPACT);
  assert_string_equal(s, "[\"example.com/keep\",\"" GPC_POLICY_FINALIZER "\"]");
  free(s);
  json_t *none = plan_finalizers_add(pol, NULL);
  s = json_dumps(none, JSON_COMPACT);
  assert_string_equal(s, "[\"" GPC_POLICY_FINALIZER "\"]");
  free(s);
  json_decref(none);
  pol->has_finalizer = true;
  assert_null(plan_finalizers_add(pol, added));
  json_t *dropped = plan_finalizers_drop(added);
  s = json_dumps(dropped, JSON_COMPACT);
  assert_string_equal(s, "[\"example.com/keep\"]");
  free(s);
  json_decref(dropped);
  dropped = plan_finalizers_drop(NULL);
  assert_int_equal(json_array_size(dropped), 0);
  json_decref(dropped);
  json_decref(added);
  json_decref(cur);
  policy_free(pol);
}

/* One StageUnlocked per operand per generation. */
static void test_stage_announcements(void **state) {
  (void)state;
  struct gpc_stages_announced a = {0};
  unsigned unlocks[GPC_OP_COUNT] = {0};
  assert_int_equal(plan_stages_to_announce(&a, 2, unlocks), 0);
  unlocks[GPC_OP_DRIVER] = 3;
  assert_int_equal(plan_stages_to_announce(&a, 2, unlocks), 1u << GPC_OP_DRIVER);
  unlocks[GPC_OP_TOOLKIT] = 1;
  assert_int_equal(plan_stages_to_announce(&a, 2, unlocks), 1u << GPC_OP_TOOLKIT);
  assert_int_equal(plan_stages_to_announce(&a, 2, unlocks), 0);
  /* a new generation announces again */
  assert_int_equal(plan_stages_to_announce(&a, 3, unlocks),
                   (1u << GPC_OP_DRIVER) | (1u << GPC_OP_TOOLKIT));
}

static int setup(void **state) {
  (void)state;
  struct gpc_error err = {0};
  return templates_load(NULL, &tpl, &err) ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  templates_free(tpl);
  return 0;
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_detection_and_first_stage),
      cmocka_unit_test(test_gating_per_node),
      cmocka_unit_test(test_disabled_operands_unlock_at_once),
      cmocka_unit_test(test_operand_opt_out),
      cmocka_unit_test(test_all_operands_opt_out),
      cmocka_unit_test(test_conflict_oldest_wins),
      cmocka_unit_test(test_explicit_selector_outranks_default_detection),
      cmocka_unit_test(test_takeover_is_not_sticky),
      cmocka_unit_test(test_sticky_unlock_and_failing),
      cmocka_unit_test(test_replaced_driver_and_variants),
      cmocka_unit_test(test_replaced_driver_within_one_second),
      cmocka_unit_test(test_live_policy_prunes_known_objects_it_no_longer_renders),
      cmocka_unit_test(test_stop_matching_and_deletion),
      cmocka_unit_test(test_node_moves_to_other_policy),
      cmocka_unit_test(test_daemonset_summary),
      cmocka_unit_test(test_terminating_and_progressing),
      cmocka_unit_test(test_not_ready_node_not_waited_for),
      cmocka_unit_test(test_untolerated_taint_is_named),
      cmocka_unit_test(test_node_selector),
      cmocka_unit_test(test_patch_unlocks_as_data),
      cmocka_unit_test(test_daemonset_pruning),
      cmocka_unit_test(test_deletion_deletes_and_progress),
      cmocka_unit_test(test_gone_policy_patches),
      cmocka_unit_test(test_finalizer_edits),
      cmocka_unit_test(test_stage_announcements),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
