/* project.c — JSON → model.h projections and change predicates (see project.h). */
#include "project.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"

static const json_t *get_va(const json_t *obj, va_list ap) {
  const char *key;
  while (obj && (key = va_arg(ap, const char *)) != NULL)
    obj = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  return obj;
}

const json_t *project_get(const json_t *obj, ...) {
  va_list ap;
  va_start(ap, obj);
  const json_t *v = get_va(obj, ap);
  va_end(ap);
  return v;
}

const char *project_str(const json_t *obj, ...) {
  va_list ap;
  va_start(ap, obj);
  const json_t *v = get_va(obj, ap);
  va_end(ap);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Replaces *dst with a copy of src ("" when NULL). */
static void set_str(char **dst, const char *src) {
  free(*dst);
  *dst = gpc_strdup(src ? src : "");
}

static int64_t json_int_or(const json_t *v, int64_t dflt) {
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int64_t project_quantity_int(const json_t *q) {
  if (json_is_integer(q)) return (int64_t)json_integer_value(q);
  if (!json_is_string(q)) return -1;
  const char *s = json_string_value(q);
  if (!isdigit((unsigned char)*s)) return -1;
  char *end = NULL;
  errno = 0;
  long long n = strtoll(s, &end, 10);
  if (errno) return -1;
  static const struct {
    const char *suffix;
    long long mult;
  } suffixes[] = {{"", 1},
                  {"k", 1000LL},
                  {"M", 1000000LL},
                  {"G", 1000000000LL},
                  {"Ki", 1024LL},
                  {"Mi", 1024LL * 1024},
                  {"Gi", 1024LL * 1024 * 1024}};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
    if (strcmp(end, suffixes[i].suffix) == 0) {
      if (n > INT64_MAX / suffixes[i].mult) return -1;
      return (int64_t)(n * suffixes[i].mult);
    }
  return -1;
}

/* The status of condition `type` in status.conditions, or NULL. */
static const char *condition_status(const json_t *obj, const char *type) {
  const json_t *conds = project_get(obj, "status", "conditions", PJ_END);
  size_t i;
  const json_t *c;
  if (!json_is_array(conds)) return NULL;
  json_array_foreach(conds, i, c) {
    const char *t = project_str(c, "type", PJ_END);
    if (t && strcmp(t, type) == 0) return project_str(c, "status", PJ_END);
  }
  return NULL;
}

static bool condition_true(const json_t *obj, const char *type) {
  const char *s = condition_status(obj, type);
  return s && strcmp(s, "True") == 0;
}

void project_node(struct gpc_node *out, const json_t *obj) {
  project_node_filtered(out, obj, NULL, NULL);
}

/* "containerd://1.7.19" -> "containerd", "cri-o://1.30.4" -> "crio",
 * "docker://26.1.4" -> "docker"; anything else "". */
static void node_runtime(const json_t *obj, char out[16]) {
  const char *v = project_str(obj, "status", "nodeInfo", "containerRuntimeVersion", PJ_END);
  static const char *const known[][2] = {
      {"containerd://", "containerd"}, {"cri-o://", "crio"}, {"docker://", "docker"}};
  out[0] = '\0';
  for (size_t i = 0; v && i < sizeof known / sizeof known[0]; i++)
    if (strncmp(v, known[i][0], strlen(known[i][0])) == 0) snprintf(out, 16, "%s", known[i][1]);
}

/* The OS as driver image tags name it: NFD's os_release ID + VERSION_ID
 * ("ubuntu" "22.04" -> "ubuntu22.04"), else nodeInfo.osImage
 * ("Ubuntu 22.04.4 LTS" -> "ubuntu22.04", "Red Hat Enterprise Linux 9.4
 * (Plow)" -> "rhel9.4"); "" when neither says. */
static void node_os(const json_t *obj, char out[32]) {
  const json_t *labels = project_get(obj, "metadata", "labels", PJ_END);
  const char *id = project_str(labels, "feature.node.kubernetes.io/system-os_release.ID", PJ_END);
  const char *ver =
      project_str(labels, "feature.node.kubernetes.io/system-os_release.VERSION_ID", PJ_END);
  out[0] = '\0';
  size_t li = id ? strlen(id) : 0, lv = ver ? strlen(ver) : 0;
  if (li && lv && li + lv < 32) {
    memcpy(out, id, li);
    memcpy(out + li, ver, lv + 1);
    return;
  }
  const char *img = project_str(obj, "status", "nodeInfo", "osImage", PJ_END);
  if (!img) return;
  static const char *const names[][2] = {
      {"Ubuntu ", "ubuntu"}, {"Red Hat Enterprise Linux ", "rhel"}, {"Rocky Linux ", "rocky"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    size_t n = strlen(names[i][0]);
    if (strncmp(img, names[i][0], n) != 0) continue;
    const char *v = img + n;
    size_t len = 0, dots = 0;
    /* Ubuntu keeps major.minor ("22.04.4" -> "22.04"), RHEL major.minor */
    while (isdigit((unsigned char)v[len]) || (v[len] == '.' && dots++ < 1))
      len++;
    while (len > 0 && v[len - 1] == '.')
      len--;
    if (len > 0 && len < 16) snprintf(out, 32, "%s%.*s", names[i][1], (int)len, v);
    return;
  }
}

void project_node_filtered(struct gpc_node *out, const json_t *obj, project_label_keep_fn keep,
                           void *ud) {
  const json_t *md = json_object_get(obj, "metadata");
  set_str(&out->name, project_str(md, "name", PJ_END));
  set_str(&out->uid, project_str(md, "uid", PJ_END));
  set_str(&out->resource_version, project_str(md, "resourceVersion", PJ_END));
  set_str(&out->creation_timestamp, project_str(md, "creationTimestamp", PJ_END));
  const json_t *labels = json_object_get(md, "labels");
  if (keep && json_is_object(labels)) {
    json_t *kept = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)labels, k, v) {
      if (keep(k, ud)) json_object_set(kept, k, v);
    }
    gpc_labels_set_json(&out->labels, kept);
    json_decref(kept);
  } else {
    gpc_labels_set_json(&out->labels, labels);
  }
  out->gpu_allocatable =
      project_quantity_int(project_get(obj, "status", "allocatable", GPC_RESOURCE_GPU, PJ_END));
  out->ready = condition_true(obj, "Ready");
  node_runtime(obj, out->runtime);
  node_os(obj, out->os);
}

/* Operand index from the component label, falling back to the name label. */
static int operand_of(const json_t *labels) {
  int op = gpc_operand_from_name(project_str(labels, GPC_LABEL_COMPONENT, PJ_END));
  return op >= 0 ? op : gpc_operand_from_name(project_str(labels, GPC_LABEL_NAME, PJ_END));
}

void project_daemonset(struct gpc_daemonset *out, const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const json_t *labels = json_object_get(md, "labels");
  const json_t *st = json_object_get(obj, "status");
  set_str(&out->name, project_str(md, "name", PJ_END));
  set_str(&out->namespace, project_str(md, "namespace", PJ_END));
  set_str(&out->policy, project_str(labels, GPC_LABEL_POLICY, PJ_END));
  set_str(&out->render_hash, project_str(md, "annotations", GPC_ANNOTATION_RENDER_HASH, PJ_END));
  out->operand = operand_of(labels);
  out->generation = json_int_or(json_object_get(md, "generation"), 0);
  /* Absent status fields are omitempty zeros (docs/wire-spec.md §9). */
  out->observed_generation = json_int_or(json_object_get(st, "observedGeneration"), 0);
  out->desired = (int32_t)json_int_or(json_object_get(st, "desiredNumberScheduled"), 0);
  out->current = (int32_t)json_int_or(json_object_get(st, "currentNumberScheduled"), 0);
  out->ready = (int32_t)json_int_or(json_object_get(st, "numberReady"), 0);
  out->updated = (int32_t)json_int_or(json_object_get(st, "updatedNumberScheduled"), 0);
  out->available = (int32_t)json_int_or(json_object_get(st, "numberAvailable"), 0);
  out->unavailable = (int32_t)json_int_or(json_object_get(st, "numberUnavailable"), 0);
}

/* First container (init containers first) with a waiting, then terminated,
 * then last-terminated reason: the most specific explanation of "not ready". */
static const json_t *container_state_with_reason(const json_t *obj) {
  static const char *const lists[] = {"initContainerStatuses", "containerStatuses"};
  static const char *const states[][2] = {
      {"state", "waiting"}, {"state", "terminated"}, {"lastState", "terminated"}};
  for (size_t s = 0; s < 3; s++)
    for (size_t l = 0; l < 2; l++) {
      const json_t *arr = project_get(obj, "status", lists[l], PJ_END);
      size_t i;
      const json_t *cs;
      if (!json_is_array(arr)) continue;
      json_array_foreach(arr, i, cs) {
        /* A finished init container (exit 0) explains nothing. */
        if (l == 0 && s > 0 &&
            json_int_or(project_get(cs, states[s][0], states[s][1], "exitCode", PJ_END), 0) == 0)
          continue;
        /* A ready container's last crash is history, not the current reason. */
        if (s == 2 && json_is_true(json_object_get(cs, "ready"))) continue;
        const json_t *st = project_get(cs, states[s][0], states[s][1], PJ_END);
        if (json_is_object(st) && project_str(st, "reason", PJ_END)) return st;
      }
    }
  return NULL;
}

/* "NoDevice: NVML reports 0 devices" -> "NoDevice": the leading word before
 * ':' when it is one CamelCase token (how gpu-policy-validator and similar
 * tools name their result); NULL otherwise. Caller frees. */
static char *result_token(const char *msg) {
  const char *colon = strchr(msg, ':');
  size_t n = colon ? (size_t)(colon - msg) : 0;
  if (n == 0 || n > 63 || !isupper((unsigned char)msg[0])) return NULL;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char)msg[i])) return NULL;
  return gpc_strndup(msg, n);
}

/* A crashing container's termination log (lastState.terminated.message, or
 * state.terminated.message between exit and restart) says why it failed,
 * better than the kubelet's CrashLoopBackOff. Only for a container that is
 * not ready and is crash-looping, running or terminated: a waiting reason
 * such as ImagePullBackOff is newer news than an old crash. */
static const json_t *termination_with_message(const json_t *obj) {
  const json_t *arr = project_get(obj, "status", "containerStatuses", PJ_END);
  size_t i;
  const json_t *cs;
  if (!json_is_array(arr)) return NULL;
  json_array_foreach(arr, i, cs) {
    if (json_is_true(json_object_get(cs, "ready"))) continue;
    const char *waiting = project_str(cs, "state", "waiting", "reason", PJ_END);
    if (waiting && strcmp(waiting, "CrashLoopBackOff") != 0) continue;
    const json_t *t = project_get(cs, "state", "terminated", PJ_END);
    if (!project_str(t, "message", PJ_END)) t = project_get(cs, "lastState", "terminated", PJ_END);
    const char *m = project_str(t, "message", PJ_END);
    if (m && *m) return t;
  }
  return NULL;
}

static int32_t restarts(const json_t *obj) {
  int64_t sum = 0;
  const json_t *arr = project_get(obj, "status", "containerStatuses", PJ_END);
  size_t i;
  const json_t *cs;
  if (json_is_array(arr)) json_array_foreach(arr, i, cs) {
      sum += json_int_or(json_object_get(cs, "restartCount"), 0);
    }
  return sum > INT32_MAX ? INT32_MAX : (int32_t)sum;
}

void project_pod(struct gpc_pod *out, const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const json_t *labels = json_object_get(md, "labels");
  set_str(&out->name, project_str(md, "name", PJ_END));
  set_str(&out->namespace, project_str(md, "namespace", PJ_END));
  set_str(&out->node_name, project_str(obj, "spec", "nodeName", PJ_END));
  set_str(&out->policy, project_str(labels, GPC_LABEL_POLICY, PJ_END));
  set_str(&out->phase, project_str(obj, "status", "phase", PJ_END));
  out->operand = operand_of(labels);
  out->ready = condition_true(obj, "Ready");
  out->restart_count = restarts(obj);
  const char *created = project_str(md, "creationTimestamp", PJ_END);
  snprintf(out->created, sizeof(out->created), "%s", created ? created : "");
  const json_t *st = out->ready ? NULL : container_state_with_reason(obj);
  const char *reason = st ? project_str(st, "reason", PJ_END) : NULL;
  const char *message = st ? project_str(st, "message", PJ_END) : NULL;
  /* A pod-level reason (Evicted, NodeLost, ...) when no container says more. */
  if (!out->ready && !reason) {
    reason = project_str(obj, "status", "reason", PJ_END);
    message = project_str(obj, "status", "message", PJ_END);
  }
  const json_t *term = out->ready ? NULL : termination_with_message(obj);
  char *token = NULL;
  if (term) {
    message = project_str(term, "message", PJ_END);
    token = result_token(message);
    const char *treason = project_str(term, "reason", PJ_END);
    reason = token ? token : treason ? treason : reason;
  }
  set_str(&out->reason, reason);
  set_str(&out->message, message);
  if (out->message[0]) { /* termination logs usually end with a newline */
    size_t n = strlen(out->message);
    while (n > 0 && isspace((unsigned char)out->message[n - 1]))
      out->message[--n] = '\0';
  }
  free(token);
}

struct gpc_node *project_node_new(const json_t *obj) {
  struct gpc_node *n = gpc_malloc(sizeof *n);
  gpc_node_init(n);
  project_node(n, obj);
  return n;
}

struct gpc_node *project_node_new_filtered(const json_t *obj, project_label_keep_fn keep,
                                           void *ud) {
  struct gpc_node *n = gpc_malloc(sizeof *n);
  gpc_node_init(n);
  project_node_filtered(n, obj, keep, ud);
  return n;
}

void project_selector_keys(const json_t *policy, void (*add)(const char *key, void *ud), void *ud) {
  const json_t *sel = project_get(policy, "spec", "nodeSelector", PJ_END);
  const json_t *ml = json_object_get(sel, "matchLabels");
  const char *k;
  json_t *v;
  if (json_is_object(ml)) json_object_foreach((json_t *)ml, k, v) {
      add(k, ud);
    }
  const json_t *me = json_object_get(sel, "matchExpressions");
  size_t i;
  const json_t *e;
  if (json_is_array(me)) json_array_foreach(me, i, e) {
      const char *key = project_str(e, "key", PJ_END);
      if (key) add(key, ud);
    }
}

struct gpc_daemonset *project_daemonset_new(const json_t *obj) {
  struct gpc_daemonset *d = gpc_malloc(sizeof *d);
  gpc_daemonset_init(d);
  project_daemonset(d, obj);
  return d;
}

struct gpc_pod *project_pod_new(const json_t *obj) {
  struct gpc_pod *p = gpc_malloc(sizeof *p);
  gpc_pod_init(p);
  project_pod(p, obj);
  return p;
}

void project_node_free(struct gpc_node *n) {
  if (!n) return;
  gpc_node_release(n);
  free(n);
}

void project_daemonset_free(struct gpc_daemonset *d) {
  if (!d) return;
  gpc_daemonset_release(d);
  free(d);
}

void project_pod_free(struct gpc_pod *p) {
  if (!p) return;
  gpc_pod_release(p);
  free(p);
}

bool project_node_changed(const struct gpc_node *old, const struct gpc_node *cur) {
  return old->ready != cur->ready || old->gpu_allocatable != cur->gpu_allocatable ||
         strcmp(old->uid, cur->uid) != 0 || !gpc_labels_equal(&old->labels, &cur->labels) ||
         strcmp(old->runtime, cur->runtime) != 0 || strcmp(old->os, cur->os) != 0;
}

bool project_daemonset_changed(const struct gpc_daemonset *old, const struct gpc_daemonset *cur) {
  return old->generation != cur->generation ||
         old->observed_generation != cur->observed_generation || old->desired != cur->desired ||
         old->current != cur->current || old->ready != cur->ready || old->updated != cur->updated ||
         old->available != cur->available || old->unavailable != cur->unavailable ||
         old->operand != cur->operand || strcmp(old->render_hash, cur->render_hash) != 0 ||
         strcmp(old->policy, cur->policy) != 0;
}

bool project_pod_changed(const struct gpc_pod *old, const struct gpc_pod *cur) {
  return old->ready != cur->ready || old->operand != cur->operand ||
         strcmp(old->phase, cur->phase) != 0 || strcmp(old->reason, cur->reason) != 0 ||
         strcmp(old->node_name, cur->node_name) != 0 || strcmp(old->policy, cur->policy) != 0;
}

static bool json_same(const json_t *a, const json_t *b) {
  return (a == NULL && b == NULL) || (a && b && json_equal((json_t *)a, (json_t *)b));
}

bool project_policy_changed(const json_t *old, const json_t *cur) {
  const json_t *om = json_object_get(old, "metadata"), *cm = json_object_get(cur, "metadata");
  static const char *const keys[] = {"generation", "deletionTimestamp", "finalizers", "uid"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (!json_same(json_object_get(om, keys[i]), json_object_get(cm, keys[i]))) return true;
  /* CRs without the status subresource (a stale CRD) bump nothing on a spec
   * change but the spec itself; compare it too. */
  return !json_same(json_object_get(old, "spec"), json_object_get(cur, "spec"));
}
