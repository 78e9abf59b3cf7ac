/* plan_bench.c — cost of one plan over a large fleet (figures, no asserts).
 *
 * usage: plan_bench NODES ITERATIONS
 * Builds NODES GPU nodes with ~45 realistic labels each (NFD, kubelet,
 * cloud), every stage unlocked and one Ready pod per operand per node (the
 * converged state the controller re-plans on every event), then times
 * plan_compute(). Prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "templates.h"
#include "yaml2json.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static json_t *node_labels(size_t i) {
  json_t *l = json_object();
  char buf[128];
  snprintf(buf, sizeof(buf), "gpu-%05zu", i);
  json_object_set_new(l, "kubernetes.io/hostname", json_string(buf));
  json_object_set_new(l, "kubernetes.io/os", json_string("linux"));
  json_object_set_new(l, "kubernetes.io/arch", json_string("amd64"));
  json_object_set_new(l, "node.kubernetes.io/instance-type", json_string("p4d.24xlarge"));
  json_object_set_new(l, "topology.kubernetes.io/region", json_string("us-east-1"));
  json_object_set_new(l, "topology.kubernetes.io/zone", json_string("us-east-1a"));
  json_object_set_new(l, "feature.node.kubernetes.io/pci-10de.present", json_string("true"));
  json_object_set_new(l, "nvidia.com/gpu.present", json_string("true"));
  for (int k = 0; k < 30; k++) {
    snprintf(buf, sizeof(buf), "feature.node.kubernetes.io/cpu-cpuid.AVX512_%02d", k);
    json_object_set_new(l, buf, json_string("true"));
  }
  json_object_set_new(l, GPC_LABEL_POLICY, json_string("gpus"));
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    snprintf(buf, sizeof(buf), GPC_LABEL_PREFIX "%s", gpc_operand_name(op));
    json_object_set_new(l, buf, json_string("true"));
  }
  return l;
}

static struct gpc_policy *bench_policy(struct gpc_error *err) {
  const char *y = "metadata: {name: gpus, uid: u, creationTimestamp: \"2026-01-01T00:00:00Z\"}\n"
                  "spec: {}\n";
  json_t *pj = yaml2json_parse(y, strlen(y), 0, err);
  struct gpc_policy *p = NULL;
  if (!pj || policy_from_json(pj, &p, err)) p = NULL;
  json_decref(pj);
  return p;
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 5000;
  int iters = argc > 2 ? atoi(argv[2]) : 20;
  struct gpc_error err = {0};
  struct gpc_templates *t = NULL;
  struct gpc_policy *p = bench_policy(&err);
  if (!p || templates_load(NULL, &t, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  struct gpc_node *nodes = gpc_calloc(n, sizeof(*nodes));
  const struct gpc_node **np = gpc_calloc(n, sizeof(*np));
  size_t npods = n * GPC_OP_COUNT, label_bytes = 0;
  struct gpc_pod *pods = gpc_calloc(npods, sizeof(*pods));
  const struct gpc_pod **pp = gpc_calloc(npods, sizeof(*pp));
  for (size_t i = 0; i < n; i++) {
    gpc_node_init(&nodes[i]);
    free(nodes[i].name);
    nodes[i].name = gpc_asprintf("gpu-%05zu", i);
    json_t *l = node_labels(i);
    gpc_labels_set_json(&nodes[i].labels, l);
    json_decref(l);
    label_bytes += nodes[i].labels.len;
    nodes[i].gpu_allocatable = 8;
    np[i] = &nodes[i];
    for (int op = 0; op < GPC_OP_COUNT; op++) {
      struct gpc_pod *pod = &pods[i * GPC_OP_COUNT + (size_t)op];
      gpc_pod_init(pod);
      free(pod->node_name);
      pod->node_name = gpc_strdup(nodes[i].name);
      free(pod->policy);
      pod->policy = gpc_strdup("gpus");
      pod->operand = op;
      pod->ready = true;
      pp[i * GPC_OP_COUNT + (size_t)op] = pod;
    }
  }
  const struct gpc_policy *pols[] = {p};
  struct gpc_plan_input in = {.policy = p,
                              .policies = pols,
                              .n_policies = 1,
                              .nodes = np,
                              .n_nodes = n,
                              .pods = pp,
                              .n_pods = npods,
                              .templates = t,
                              .namespace = "gpu-policy-system"};
  double best = 1e18, total = 0;
  size_t patches = 0, ready = 0;
  for (int it = 0; it < iters; it++) {
    struct gpc_plan plan;
    double t0 = now_ms();
    if (plan_compute(&in, &plan, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double dt = now_ms() - t0;
    total += dt;
    if (dt < best) best = dt;
    patches = plan.n_patches;
    ready = plan.ready;
    plan_release(&plan);
  }
  printf("{\"nodes\": %zu, \"pods\": %zu, \"iterations\": %d, \"plan_ms_best\": %.3f, "
         "\"plan_ms_mean\": %.3f, \"patches\": %zu, \"ready\": %zu, "
         "\"label_arena_bytes_per_node\": %.1f, \"node_struct_bytes\": %zu, "
         "\"pod_struct_bytes\": %zu}\n",
         n, npods, iters, best, total / iters, patches, ready, (double)label_bytes / (double)n,
         sizeof(struct gpc_node), sizeof(struct gpc_pod));
  for (size_t i = 0; i < n; i++)
    gpc_node_release(&nodes[i]);
  for (size_t i = 0; i < npods; i++)
    gpc_pod_release(&pods[i]);
  free(nodes);
  free(np);
  free(pods);
  free(pp);
  policy_free(p);
  templates_free(t);
  return 0;
}
