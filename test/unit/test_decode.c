/* test_decode.c — projections keep what the planner reads; predicates ignore heartbeats. */
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
#include "decode.h"

static json_t *parse(const char *s) {
  json_error_t je;
  json_t *j = json_loads(s, 0, &je);
  if (!j) fail_msg("bad test JSON: %s (line %d)", je.text, je.line);
  return j;
}

static const char *NODE =
    "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"gpu-1\",\"uid\":\"u1\","
    "\"resourceVersion\":\"10\",\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
    "\"labels\":{\"kubernetes.io/hostname\":\"gpu-1\",\"nvidia.com/gpu.present\":\"true\"}},"
    "\"status\":{\"allocatable\":{\"cpu\":\"63500m\",\"nvidia.com/gpu\":\"8\"},"
    "\"conditions\":[{\"type\":\"MemoryPressure\",\"status\":\"False\"},"
    "{\"type\":\"Ready\",\"status\":\"True\",\"lastHeartbeatTime\":\"2026-01-01T00:00:10Z\"}]}}";

static void test_node(void **state) {
  (void)state;
  json_t *j = parse(NODE);
  struct gpc_node *n = decode_node_new(j);
  assert_string_equal(n->name, "gpu-1");
  assert_string_equal(n->uid, "u1");
  assert_string_equal(n->resource_version, "10");
  assert_string_equal(n->creation_timestamp, "2026-01-01T00:00:00Z");
  assert_int_equal(n->gpu_allocatable, 8);
  assert_true(n->ready);
  assert_string_equal(gpc_labels_get(&n->labels, "nvidia.com/gpu.present"), "true");

  /* A heartbeat: new resourceVersion and heartbeat time only. */
  json_object_set_new(json_object_get(j, "metadata"), "resourceVersion", json_string("11"));
  json_t *ready = json_array_get(json_object_get(json_object_get(j, "status"), "conditions"), 1);
  json_object_set_new(ready, "lastHeartbeatTime", json_string("2026-01-01T00:00:20Z"));
  struct gpc_node *n2 = decode_node_new(j);
  assert_false(decode_node_changed(n, n2));

  /* Label change matters. */
  json_object_set_new(json_object_get(json_object_get(j, "metadata"), "labels"),
                      "gpupolicy.dev/policy", json_string("p"));
  struct gpc_node *n3 = decode_node_new(j);
  assert_true(decode_node_changed(n2, n3));
  /* Readiness change matters. */
  json_object_set_new(ready, "status", json_string("Unknown"));
  decode_node(n2, j);
  assert_false(n2->ready);
  assert_true(decode_node_changed(n3, n2));
  /* Allocatable change matters. */
  decode_node(n3, j);
  json_object_del(json_object_get(json_object_get(j, "status"), "allocatable"), "nvidia.com/gpu");
  decode_node(n2, j);
  assert_int_equal(n2->gpu_allocatable, -1);
  assert_true(decode_node_changed(n3, n2));

  decode_node_free(n);
  decode_node_free(n2);
  decode_node_free(n3);
  json_decref(j);
}

static void test_node_minimal(void **state) {
  (void)state;
  json_t *j = parse("{\"metadata\":{\"name\":\"bare\"}}");
  struct gpc_node *n = decode_node_new(j);
  assert_string_equal(n->name, "bare");
  assert_string_equal(n->uid, "");
  assert_int_equal(n->gpu_allocatable, -1);
  assert_false(n->ready);
  assert_int_equal(n->labels.count, 0);
  decode_node_free(n);
  json_decref(j);
  /* Not even an object: empty projection, no crash. */
  j = json_integer(3);
  n = decode_node_new(j);
  assert_string_equal(n->name, "");
  decode_node_free(n);
  json_decref(j);
}

/* Driver upgrades: spec.unschedulable and the upgrade annotations are
 * projected and count as changes; a pod's owner and template generation. */
static void test_upgrade_fields(void **state) {
  (void)state;
  json_t *j = parse("{\"metadata\":{\"name\":\"n\",\"annotations\":{"
                    "\"gpupolicy.dev/driver-upgrade-cordoned\":\"true\","
                    "\"gpupolicy.dev/driver-upgrade-since\":\"1700000000\","
                    "\"gpupolicy.dev/driver-upgrade-target\":\"abc\","
                    "\"gpupolicy.dev/driver-upgrade-reason\":\"DrainTimeout: x\"}},"
                    "\"spec\":{\"unschedulable\":true}}");
  struct gpc_node *a = decode_node_new(j);
  assert_true(a->unschedulable);
  assert_true(a->upg_cordoned);
  assert_int_equal(a->upg_since, 1700000000);
  assert_string_equal(a->upg_target, "abc");
  assert_string_equal(a->upg_reason, "DrainTimeout: x");
  json_object_del(json_object_get(j, "spec"), "unschedulable");
  struct gpc_node *b = decode_node_new(j);
  assert_false(b->unschedulable);
  assert_true(decode_node_changed(a, b));
  assert_false(decode_node_changed(a, a));
  decode_node_free(a);
  decode_node_free(b);
  json_decref(j);
  j = parse("{\"metadata\":{\"name\":\"d-1\",\"namespace\":\"ns\",\"labels\":"
            "{\"pod-template-generation\":\"3\"},\"ownerReferences\":[{\"kind\":\"DaemonSet\","
            "\"name\":\"gpus-driver\",\"controller\":true}]}}");
  struct gpc_pod *p = decode_pod_new(j);
  assert_string_equal(p->owner, "gpus-driver");
  assert_int_equal(p->template_generation, 3);
  json_object_set_new(json_object_get(json_object_get(j, "metadata"), "labels"),
                      "pod-template-generation", json_string("4"));
  struct gpc_pod *q = decode_pod_new(j);
  assert_true(decode_pod_changed(p, q));
  decode_pod_free(p);
  decode_pod_free(q);
  json_decref(j);
}

/* Taints that keep pods off are kept (PreferNoSchedule is not), and a node
 * that is not Ready keeps what its Ready condition says; both count as
 * changes, a heartbeat does not. */
static void test_node_taints_and_down_message(void **state) {
  (void)state;
  json_t *j = parse("{\"metadata\":{\"name\":\"n\",\"uid\":\"u\"},\"spec\":{\"taints\":["
                    "{\"key\":\"dedicated\",\"value\":\"ml\",\"effect\":\"NoSchedule\"},"
                    "{\"key\":\"soft\",\"effect\":\"PreferNoSchedule\"},"
                    "{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\"},"
                    "{\"effect\":\"NoSchedule\"}]},"
                    "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"Unknown\","
                    "\"message\":\"Kubelet stopped posting node status.\"}]}}");
  struct gpc_node *n = decode_node_new(j);
  assert_false(n->ready);
  assert_string_equal(n->down_message, "Kubelet stopped posting node status.");
  assert_int_equal(n->n_taints, 2);
  assert_string_equal(n->taints[0].key, "dedicated");
  assert_string_equal(n->taints[0].value, "ml");
  assert_false(n->taints[0].no_execute);
  assert_string_equal(n->taints[1].key, "node.kubernetes.io/unreachable");
  assert_string_equal(n->taints[1].value, "");
  assert_true(n->taints[1].no_execute);
  /* same taints: no change; one taint fewer: a change */
  struct gpc_node *same = decode_node_new(j);
  assert_false(decode_node_changed(n, same));
  json_array_remove(json_object_get(json_object_get(j, "spec"), "taints"), 0);
  struct gpc_node *fewer = decode_node_new(j);
  assert_true(decode_node_changed(n, fewer));
  decode_node_free(fewer);
  decode_node_free(same);
  decode_node_free(n);
  json_decref(j);
  /* Ready: no message kept */
  j = parse("{\"metadata\":{\"name\":\"n\"},\"status\":{\"conditions\":[{\"type\":\"Ready\","
            "\"status\":\"True\",\"message\":\"kubelet is posting ready status\"}]}}");
  n = decode_node_new(j);
  assert_true(n->ready);
  assert_string_equal(n->down_message, "");
  assert_int_equal(n->n_taints, 0);
  decode_node_free(n);
  json_decref(j);
}

static void test_quantity(void **state) {
  (void)state;
  struct {
    const char *in;
    int64_t want;
  } cases[] = {{"\"8\"", 8},     {"4", 4},
               {"\"2k\"", 2000}, {"\"1Ki\"", 1024},
               {"\"500m\"", -1}, {"\"\"", -1},
               {"\"x\"", -1},    {"null", -1},
               {"\"-1\"", -1},   {"\"99999999999999999999\"", -1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *q = json_loads(cases[i].in, JSON_DECODE_ANY, NULL);
    int64_t got = decode_quantity_int(q);
    if (got != cases[i].want)
      fail_msg("%s: got %lld want %lld", cases[i].in, (long long)got, (long long)cases[i].want);
    json_decref(q);
  }
}

static const char *DS =
    "{\"metadata\":{\"name\":\"p-driver\",\"namespace\":\"gpu-policy-system\",\"generation\":3,"
    "\"labels\":{\"gpupolicy.dev/policy\":\"p\",\"app.kubernetes.io/component\":\"driver\"},"
    "\"annotations\":{\"gpupolicy.dev/render-hash\":\"abc\"}},"
    "\"status\":{\"currentNumberScheduled\":4,\"desiredNumberScheduled\":4,\"numberReady\":3,"
    "\"numberMisscheduled\":0,\"observedGeneration\":3,\"updatedNumberScheduled\":4}}";

static void test_daemonset(void **state) {
  (void)state;
  json_t *j = parse(DS);
  struct gpc_daemonset *d = decode_daemonset_new(j);
  assert_string_equal(d->name, "p-driver");
  assert_string_equal(d->namespace, "gpu-policy-system");
  assert_string_equal(d->policy, "p");
  assert_int_equal(d->operand, GPC_OP_DRIVER);
  assert_string_equal(d->render_hash, "abc");
  assert_int_equal(d->generation, 3);
  assert_int_equal(d->observed_generation, 3);
  assert_int_equal(d->desired, 4);
  assert_int_equal(d->ready, 3);
  assert_int_equal(d->updated, 4);
  assert_int_equal(d->available, 0); /* omitempty: absent = 0 */

  struct gpc_daemonset *same = decode_daemonset_new(j);
  assert_false(decode_daemonset_changed(d, same));
  json_object_set_new(json_object_get(j, "status"), "numberReady", json_integer(4));
  struct gpc_daemonset *more = decode_daemonset_new(j);
  assert_true(decode_daemonset_changed(d, more));
  json_object_set_new(json_object_get(json_object_get(j, "metadata"), "annotations"),
                      "gpupolicy.dev/render-hash", json_string("def"));
  decode_daemonset(same, j);
  assert_true(decode_daemonset_changed(more, same));
  decode_daemonset_free(d);
  decode_daemonset_free(same);
  decode_daemonset_free(more);
  json_decref(j);
}

static const char *POD =
    "{\"metadata\":{\"name\":\"p-driver-x\",\"namespace\":\"gpu-policy-system\","
    "\"labels\":{\"gpupolicy.dev/policy\":\"p\",\"app.kubernetes.io/name\":\"device-plugin\"}},"
    "\"spec\":{\"nodeName\":\"gpu-2\"},"
    "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],"
    "\"initContainerStatuses\":[{\"name\":\"init\",\"ready\":true,\"restartCount\":0,"
    "\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}}],"
    "\"containerStatuses\":[{\"name\":\"a\",\"ready\":false,\"restartCount\":5,"
    "\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\",\"message\":\"back-off 40s\"}},"
    "\"lastState\":{\"terminated\":{\"exitCode\":1,\"reason\":\"Error\",\"message\":\"no GPU\"}}},"
    "{\"name\":\"b\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}}}]}}";

static void test_pod(void **state) {
  (void)state;
  json_t *j = parse(POD);
  struct gpc_pod *p = decode_pod_new(j);
  assert_string_equal(p->name, "p-driver-x");
  assert_string_equal(p->node_name, "gpu-2");
  assert_string_equal(p->policy, "p");
  assert_int_equal(p->operand, GPC_OP_DEVICE_PLUGIN); /* name label fallback */
  assert_false(p->ready);
  assert_string_equal(p->phase, "Running");
  /* The Completed init container explains nothing; the crash loop's
   * termination message does ("no GPU" names no result, so the terminated
   * reason goes with it). */
  assert_string_equal(p->reason, "Error");
  assert_string_equal(p->message, "no GPU");
  assert_int_equal(p->restart_count, 7);

  /* Only the message changes: does not matter. */
  json_t *cs =
      json_array_get(json_object_get(json_object_get(j, "status"), "containerStatuses"), 0);
  json_object_set_new(json_object_get(json_object_get(cs, "state"), "waiting"), "message",
                      json_string("back-off 80s"));
  json_object_set_new(cs, "restartCount", json_integer(6));
  struct gpc_pod *p2 = decode_pod_new(j);
  assert_false(decode_pod_changed(p, p2));

  /* Running but not ready, no waiting state: restarted, inside its start-up
   * window, so progressing, not failing; lastState explains it for when the
   * window runs out. */
  assert_false(p->progressing);
  json_object_set_new(cs, "state", json_pack("{s:{}}", "running"));
  decode_pod(p2, j);
  assert_string_equal(p2->reason, "Error");
  assert_string_equal(p2->message, "no GPU");
  assert_true(p2->progressing);
  assert_true(decode_pod_changed(p, p2)); /* failing -> progressing */
  /* Nothing in the termination log: the waiting reason again. */
  json_object_set_new(cs, "state", json_pack("{s:{s:s}}", "waiting", "reason", "CrashLoopBackOff"));
  json_object_del(json_object_get(json_object_get(cs, "lastState"), "terminated"), "message");
  decode_pod(p2, j);
  assert_string_equal(p2->reason, "CrashLoopBackOff");
  assert_string_equal(p2->message, "");
  assert_true(decode_pod_changed(p, p2));

  /* Ready: no reason kept, and readiness matters. */
  json_object_set_new(
      json_array_get(json_object_get(json_object_get(j, "status"), "conditions"), 0), "status",
      json_string("True"));
  decode_pod(p2, j);
  assert_true(p2->ready);
  assert_string_equal(p2->reason, "");
  assert_true(decode_pod_changed(p, p2));
  decode_pod_free(p);
  decode_pod_free(p2);
  json_decref(j);

  /* Evicted pod: the pod-level reason. */
  j = parse(
      "{\"metadata\":{\"name\":\"e\"},\"status\":{\"phase\":\"Failed\",\"reason\":\"Evicted\","
      "\"message\":\"low on memory\"}}");
  p = decode_pod_new(j);
  assert_string_equal(p->reason, "Evicted");
  assert_string_equal(p->message, "low on memory");
  assert_int_equal(p->operand, -1);
  decode_pod_free(p);
  json_decref(j);
}

/* A validator pod as a kubelet shows it after the validator wrote its result
 * to the termination log and exited: `cs` is its one containerStatuses
 * entry. */
static json_t *crashing_pod(bool pod_ready, const char *cs) {
  char buf[2048];
  snprintf(buf, sizeof buf,
           "{\"metadata\":{\"name\":\"v\",\"labels\":{\"app.kubernetes.io/component\":"
           "\"validator\"}},\"spec\":{\"nodeName\":\"gpu-3\"},\"status\":{\"phase\":"
           "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\"}],"
           "\"containerStatuses\":[%s]}}",
           pod_ready ? "True" : "False", cs);
  return parse(buf);
}

static void test_pod_termination_message(void **state) {
  (void)state;
  static const struct {
    bool pod_ready;
    const char *cs, *reason, *message;
  } cases[] = {
      /* the validator's one line: its result names the reason */
      {false,
       "{\"name\":\"validator\",\"ready\":false,\"restartCount\":3,\"state\":{\"waiting\":"
       "{\"reason\":\"CrashLoopBackOff\",\"message\":\"back-off 40s\"}},\"lastState\":{"
       "\"terminated\":{\"exitCode\":12,\"reason\":\"Error\",\"message\":"
       "\"NoDevice: NVML reports 0 devices\\n\"}}}",
       "NoDevice", "NoDevice: NVML reports 0 devices"},
      /* between exit and restart: state.terminated */
      {false,
       "{\"name\":\"validator\",\"ready\":false,\"state\":{\"terminated\":{\"exitCode\":14,"
       "\"reason\":\"Error\",\"message\":\"WrongResult: c[17] = 3, want 5\"}}}",
       "WrongResult", "WrongResult: c[17] = 3, want 5"},
      /* restarted, running, not ready yet (--wait): the last crash explains it */
      {false,
       "{\"name\":\"validator\",\"ready\":false,\"state\":{\"running\":{}},\"lastState\":{"
       "\"terminated\":{\"exitCode\":11,\"reason\":\"Error\",\"message\":"
       "\"NVMLError: Driver Not Loaded\"}}}",
       "NVMLError", "NVMLError: Driver Not Loaded"},
      /* not one CamelCase token before ':': the terminated reason */
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":1,\"reason\":"
       "\"Error\",\"message\":\"exit status 1: boom\"}}}",
       "Error", "exit status 1: boom"},
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":1,\"reason\":"
       "\"OOMKilled\",\"message\":\"nvml: failed\"}}}",
       "OOMKilled", "nvml: failed"},
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":1,\"reason\":"
       "\"Error\",\"message\":\"No-Device: x\"}}}",
       "Error", "No-Device: x"},
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":1,\"reason\":"
       "\"Error\",\"message\":\": x\"}}}",
       "Error", ": x"},
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":1,\"reason\":"
       "\"Error\",\"message\":\"NoDevice\"}}}",
       "Error", "NoDevice"},
      /* no terminated reason: the waiting one stays */
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":1,"
       "\"message\":\"it broke\"}}}",
       "CrashLoopBackOff", "it broke"},
      /* a newer waiting reason than the old crash wins */
      {false,
       "{\"name\":\"validator\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"ImagePullBackOff\",\"message\":\"pull failed\"}},\"lastState\":{\"terminated\":{"
       "\"exitCode\":12,\"reason\":\"Error\",\"message\":\"NoDevice: 0 devices\"}}}",
       "ImagePullBackOff", "pull failed"},
      /* ready: the old crash is history */
      {true,
       "{\"name\":\"validator\",\"ready\":true,\"state\":{\"running\":{}},\"lastState\":{"
       "\"terminated\":{\"exitCode\":12,\"reason\":\"Error\",\"message\":"
       "\"NoDevice: 0 devices\"}}}",
       "", ""},
      /* an empty termination message says nothing */
      {false,
       "{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\",\"message\":\"back-off\"}},\"lastState\":{\"terminated\":{"
       "\"exitCode\":1,\"reason\":\"Error\",\"message\":\"\"}}}",
       "CrashLoopBackOff", "back-off"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *j = crashing_pod(cases[i].pod_ready, cases[i].cs);
    struct gpc_pod *p = decode_pod_new(j);
    if (strcmp(p->reason, cases[i].reason) != 0 || strcmp(p->message, cases[i].message) != 0)
      fail_msg("case %zu: got reason \"%s\" message \"%s\"", i, p->reason, p->message);
    decode_pod_free(p);
    json_decref(j);
  }

  /* A different result on the next crash re-plans (failingNodes follows). */
  json_t *a = crashing_pod(false, cases[0].cs), *b = crashing_pod(false, cases[2].cs);
  struct gpc_pod *pa = decode_pod_new(a), *pb = decode_pod_new(b);
  assert_true(decode_pod_changed(pa, pb));
  decode_pod_free(pa);
  decode_pod_free(pb);
  json_decref(a);
  json_decref(b);
}

/* The states a pod passes through (issue 14), with the fields kubesim and a
 * real kubelet/scheduler write: each projected as progressing since the
 * right timestamp, or as failing at once. */
static void test_pod_lifecycle_states(void **state) {
  (void)state;
  assert_int_equal(decode_time("2024-07-01T12:00:00Z"), 1719835200);
  assert_int_equal(decode_time("2024-01-01T12:00:00Z"), 1704110400);
  assert_int_equal(decode_time("yesterday"), 0);
  assert_int_equal(decode_time(NULL), 0);
  static const struct {
    const char *json, *node, *reason, *message;
    bool bound, deleting, progressing;
    int64_t since;
    int32_t window;
  } cases[] = {
      /* Terminating (and Ready: the prober forced startup success) */
      {"{\"metadata\":{\"name\":\"a\",\"deletionTimestamp\":\"2024-07-01T12:02:00Z\","
       "\"deletionGracePeriodSeconds\":120},\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":"
       "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
       "n1", "", "", true, true, false, 0, 0},
      /* unbound, the scheduler could not place it: node from the affinity */
      {"{\"metadata\":{\"name\":\"b\",\"creationTimestamp\":\"2024-07-01T11:00:00Z\"},\"spec\":{"
       "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
       "\"nodeSelectorTerms\":[{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\","
       "\"values\":[\"n2\"]}]}]}}}},\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":"
       "\"PodScheduled\",\"status\":\"False\",\"reason\":\"Unschedulable\",\"message\":\"0/3 nodes "
       "are available: 1 Insufficient cpu.\",\"lastTransitionTime\":\"2024-07-01T12:00:00Z\"}]}}",
       "n2", "Unschedulable", "0/3 nodes are available: 1 Insufficient cpu.", false, false, true,
       1719835200, 0},
      /* unbound, no attempt recorded yet */
      {"{\"metadata\":{\"name\":\"c\",\"creationTimestamp\":\"2024-07-01T12:00:00Z\"},\"spec\":{"
       "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
       "\"nodeSelectorTerms\":[{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\","
       "\"values\":[\"n3\"]}]}]}}}},\"status\":{\"phase\":\"Pending\"}}",
       "n3", "Unscheduled", "not bound to its node by the scheduler yet", false, false, true,
       1719835200, 0},
      /* no sandbox (unknown runtime handler) */
      {"{\"metadata\":{\"name\":\"d\"},\"spec\":{\"nodeName\":\"n4\"},\"status\":{\"phase\":"
       "\"Pending\",\"conditions\":[{\"type\":\"PodReadyToStartContainers\",\"status\":\"False\","
       "\"lastTransitionTime\":\"2024-07-01T12:00:00Z\"},{\"type\":\"Ready\",\"status\":\"False\"}]"
       ","
       "\"containerStatuses\":[{\"name\":\"x\",\"ready\":false,\"state\":{\"waiting\":{\"reason\":"
       "\"ContainerCreating\"}}}]}}",
       "n4", "FailedCreatePodSandBox",
       "pod sandbox not created (PodReadyToStartContainers=False); the pod's "
       "FailedCreatePodSandBox events say why",
       true, false, true, 1719835200, 0},
      /* an image that never arrived: failing at once */
      {"{\"metadata\":{\"name\":\"e\"},\"spec\":{\"nodeName\":\"n5\"},\"status\":{\"phase\":"
       "\"Pending\",\"conditions\":[{\"type\":\"PodReadyToStartContainers\",\"status\":\"True\"}],"
       "\"containerStatuses\":[{\"name\":\"x\",\"ready\":false,\"restartCount\":0,\"state\":{"
       "\"waiting\":{\"reason\":\"ImagePullBackOff\",\"message\":\"Back-off pulling image\"}}}]}}",
       "n5", "ImagePullBackOff", "Back-off pulling image", true, false, false, 0, 0},
      /* an init container crash-looping: its termination log, Init: reason */
      {"{\"metadata\":{\"name\":\"f\"},\"spec\":{\"nodeName\":\"n6\"},\"status\":{\"phase\":"
       "\"Pending\",\"conditions\":[{\"type\":\"Initialized\",\"status\":\"False\","
       "\"lastTransitionTime\":\"2024-07-01T12:00:00Z\"}],\"initContainerStatuses\":[{\"name\":"
       "\"wait\",\"ready\":false,\"restartCount\":4,\"state\":{\"waiting\":{\"reason\":"
       "\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":{\"exitCode\":2,\"reason\":\"Error\","
       "\"message\":\"driver not ready\\n\"}}}],\"containerStatuses\":[{\"name\":\"x\",\"ready\":"
       "false,\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}}]}}",
       "n6", "Init:CrashLoopBackOff", "driver not ready", true, false, true, 1719835200, 0},
      /* restarted, inside the startup probe's window (60 + 120 x 10 s) */
      {"{\"metadata\":{\"name\":\"g\"},\"spec\":{\"nodeName\":\"n7\",\"containers\":[{\"name\":"
       "\"drv\",\"startupProbe\":{\"initialDelaySeconds\":60,\"periodSeconds\":10,"
       "\"failureThreshold\":120}}]},\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":"
       "\"Ready\",\"status\":\"False\"}],\"containerStatuses\":[{\"name\":\"drv\",\"ready\":false,"
       "\"started\":false,\"restartCount\":1,\"state\":{\"running\":{\"startedAt\":"
       "\"2024-07-01T12:00:00Z\"}},\"lastState\":{\"terminated\":{\"exitCode\":255,\"reason\":"
       "\"Unknown\"}}}]}}",
       "n7", "Starting", "container running, not ready yet (inside its start-up window)", true,
       false, true, 1719835200, 1260},
      /* Failed (node shutdown): transient, the DaemonSet controller replaces it */
      {"{\"metadata\":{\"name\":\"h\"},\"spec\":{\"nodeName\":\"n8\"},\"status\":{\"phase\":"
       "\"Failed\",\"reason\":\"Terminated\",\"message\":\"Pod was terminated in response to "
       "imminent node shutdown.\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
       "\"lastTransitionTime\":\"2024-07-01T12:00:00Z\"}]}}",
       "n8", "Terminated", "Pod was terminated in response to imminent node shutdown.", true, false,
       true, 1719835200, 0},
      /* running again after a reboot (its last run lasted days): starting */
      {"{\"metadata\":{\"name\":\"j\"},\"spec\":{\"nodeName\":\"n10\"},\"status\":{\"phase\":"
       "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],"
       "\"containerStatuses\":[{\"name\":\"x\",\"ready\":false,\"restartCount\":3,\"state\":{"
       "\"running\":{\"startedAt\":\"2024-07-01T12:00:00Z\"}},\"lastState\":{\"terminated\":{"
       "\"exitCode\":255,\"reason\":\"Unknown\",\"startedAt\":\"2024-06-20T00:00:00Z\","
       "\"finishedAt\":\"2024-07-01T11:50:00Z\"}}}]}}",
       "n10", "Starting", "container running, not ready yet (inside its start-up window)", true,
       false, true, 1719835200, 0},
      /* running between two back-offs of a crash loop (runs of seconds): failing,
       * with the crash loop's reason, not flapping to progressing */
      {"{\"metadata\":{\"name\":\"k\"},\"spec\":{\"nodeName\":\"n11\"},\"status\":{\"phase\":"
       "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],"
       "\"containerStatuses\":[{\"name\":\"x\",\"ready\":false,\"restartCount\":5,\"state\":{"
       "\"running\":{\"startedAt\":\"2024-07-01T12:00:00Z\"}},\"lastState\":{\"terminated\":{"
       "\"exitCode\":1,\"reason\":\"Error\",\"startedAt\":\"2024-07-01T11:54:00Z\","
       "\"finishedAt\":\"2024-07-01T11:54:03Z\"}}}]}}",
       "n11", "CrashLoopBackOff", "restarted repeatedly, each run ending within minutes", true,
       false, false, 1719835200, 0},
      /* every container ready, the pod not: its node stopped reporting */
      {"{\"metadata\":{\"name\":\"i\"},\"spec\":{\"nodeName\":\"n9\"},\"status\":{\"phase\":"
       "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],"
       "\"containerStatuses\":[{\"name\":\"x\",\"ready\":true,\"state\":{\"running\":{}}}]}}",
       "n9", "", "", true, false, false, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *j = parse(cases[i].json);
    struct gpc_pod *p = decode_pod_new(j);
    if (strcmp(p->node_name, cases[i].node) != 0 || strcmp(p->reason, cases[i].reason) != 0 ||
        strcmp(p->message, cases[i].message) != 0 || p->bound != cases[i].bound ||
        p->deleting != cases[i].deleting || p->progressing != cases[i].progressing ||
        p->since != cases[i].since || p->window_s != cases[i].window)
      fail_msg("case %zu: node %s reason \"%s\" message \"%s\" bound %d deleting %d progressing "
               "%d since %lld window %d",
               i, p->node_name, p->reason, p->message, p->bound, p->deleting, p->progressing,
               (long long)p->since, p->window_s);
    decode_pod_free(p);
    json_decref(j);
  }
}

static void test_policy_changed(void **state) {
  (void)state;
  json_t *a = parse(
      "{\"metadata\":{\"name\":\"p\",\"uid\":\"u\",\"generation\":1,\"resourceVersion\":\"5\"},"
      "\"spec\":{\"driver\":{\"version\":\"1\"}},\"status\":{}}");
  json_t *b = json_deep_copy(a);
  /* status-only write (our own): no reconcile */
  json_object_set_new(json_object_get(b, "metadata"), "resourceVersion", json_string("6"));
  json_object_set_new(b, "status", json_pack("{s:s}", "nodesSummary", "1/1"));
  assert_false(decode_policy_changed(a, b));
  json_t *c = json_deep_copy(b);
  json_object_set_new(json_object_get(c, "metadata"), "finalizers",
                      json_pack("[s]", "gpupolicy.dev/cleanup"));
  assert_true(decode_policy_changed(b, c));
  json_t *d = json_deep_copy(c);
  json_object_set_new(json_object_get(d, "metadata"), "deletionTimestamp",
                      json_string("2026-01-01T00:00:00Z"));
  assert_true(decode_policy_changed(c, d));
  json_t *e = json_deep_copy(d);
  json_object_set_new(json_object_get(e, "metadata"), "generation", json_integer(2));
  assert_true(decode_policy_changed(d, e));
  json_decref(a);
  json_decref(b);
  json_decref(c);
  json_decref(d);
  json_decref(e);
}

static bool keep_gpu(const char *key, void *ud) {
  (void)ud;
  return strncmp(key, "nvidia.com/", 11) == 0;
}

static void add_key(const char *key, void *ud) {
  json_array_append_new(ud, json_string(key));
}

static void test_label_filter_and_selector_keys(void **state) {
  (void)state;
  json_t *j = parse(NODE);
  struct gpc_node *n = decode_node_new_filtered(j, keep_gpu, NULL);
  assert_int_equal(n->labels.count, 1);
  assert_string_equal(gpc_labels_get(&n->labels, "nvidia.com/gpu.present"), "true");
  assert_null(gpc_labels_get(&n->labels, "kubernetes.io/hostname"));
  assert_int_equal(n->gpu_allocatable, 8);
  decode_node_free(n);
  json_decref(j);

  json_t *p = parse(
      "{\"spec\":{\"nodeSelector\":{\"matchLabels\":{\"a\":\"1\",\"b/c\":\"2\"},"
      "\"matchExpressions\":[{\"key\":\"d\",\"operator\":\"Exists\"},{\"operator\":\"In\"}]}}}");
  json_t *keys = json_array();
  decode_selector_keys(p, add_key, keys);
  assert_int_equal(json_array_size(keys), 3);
  assert_string_equal(json_string_value(json_array_get(keys, 0)), "a");
  assert_string_equal(json_string_value(json_array_get(keys, 2)), "d");
  json_decref(keys);
  json_decref(p);
  /* No selector, odd shapes: nothing, no crash. */
  keys = json_array();
  p = parse("{\"spec\":{\"nodeSelector\":{\"matchLabels\":3,\"matchExpressions\":{}}}}");
  decode_selector_keys(p, add_key, keys);
  decode_selector_keys(NULL, add_key, keys);
  assert_int_equal(json_array_size(keys), 0);
  json_decref(keys);
  json_decref(p);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_node),
      cmocka_unit_test(test_node_taints_and_down_message),
      cmocka_unit_test(test_node_minimal),
      cmocka_unit_test(test_upgrade_fields),
      cmocka_unit_test(test_quantity),
      cmocka_unit_test(test_daemonset),
      cmocka_unit_test(test_pod),
      cmocka_unit_test(test_pod_termination_message),
      cmocka_unit_test(test_pod_lifecycle_states),
      cmocka_unit_test(test_policy_changed),
      cmocka_unit_test(test_label_filter_and_selector_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
