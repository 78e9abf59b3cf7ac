/* decode.c — JSON → model.h projections and change predicates (see decode.h). */
#include "decode.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "policy.h"

static const json_t *get_va(const json_t *obj, va_list ap) {
  const char *key;
  while (obj && (key = va_arg(ap, const char *)) != NULL)
    obj = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  return obj;
}

const json_t *decode_get(const json_t *obj, ...) {
  va_list ap;
  va_start(ap, obj);
  const json_t *v = get_va(obj, ap);
  va_end(ap);
  return v;
}

const char *decode_unknown_key(const json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    bool ok = false;
    for (const char *const *a = allowed; *a && !ok; a++)
      ok = strcmp(*a, key) == 0;
    if (!ok) return key;
  }
  return NULL;
}

const char *decode_str(const json_t *obj, ...) {
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

int64_t decode_quantity_int(const json_t *q) {
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
  const json_t *conds = decode_get(obj, "status", "conditions", PJ_END);
  size_t i;
  const json_t *c;
  if (!json_is_array(conds)) return NULL;
  json_array_foreach(conds, i, c) {
    const char *t = decode_str(c, "type", PJ_END);
    if (t && strcmp(t, type) == 0) return decode_str(c, "status", PJ_END);
  }
  return NULL;
}

/* The condition object of `type` in status.conditions, or NULL. */
static const json_t *condition(const json_t *obj, const char *type) {
  const json_t *conds = decode_get(obj, "status", "conditions", PJ_END);
  size_t i;
  const json_t *c;
  if (!json_is_array(conds)) return NULL;
  json_array_foreach(conds, i, c) {
    const char *t = decode_str(c, "type", PJ_END);
    if (t && strcmp(t, type) == 0) return c;
  }
  return NULL;
}

int64_t decode_time(const char *s) {
  int y, mo, d, h, mi, sec;
  char z = 0;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z) < 6) return 0;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970) return 0;
  struct tm tm = {.tm_year = y - 1900,
                  .tm_mon = mo - 1,
                  .tm_mday = d,
                  .tm_hour = h,
                  .tm_min = mi,
                  .tm_sec = sec};
  time_t t = timegm(&tm); /* UTC: never mktime() and a timezone offset */
  return t < 0 ? 0 : (int64_t)t;
}

static bool condition_true(const json_t *obj, const char *type) {
  const char *s = condition_status(obj, type);
  return s && strcmp(s, "True") == 0;
}

/* A node's taints that keep pods off (NoSchedule, NoExecute). The count is
 * capped: a node with more taints than that is still reported by its first. */
#define PROJECT_MAX_TAINTS 32
static void decode_taints(struct gpc_node *out, const json_t *taints) {
  gpc_node_clear_taints(out);
  size_t i;
  const json_t *t;
  if (!json_is_array(taints)) return;
  json_array_foreach(taints, i, t) {
    const char *key = decode_str(t, "key", PJ_END), *effect = decode_str(t, "effect", PJ_END);
    if (!key || !effect || out->n_taints == PROJECT_MAX_TAINTS) continue;
    bool no_execute = strcmp(effect, "NoExecute") == 0;
    if (!no_execute && strcmp(effect, "NoSchedule") != 0) continue;
    if (!out->taints) out->taints = gpc_calloc(PROJECT_MAX_TAINTS, sizeof *out->taints);
    const char *value = decode_str(t, "value", PJ_END);
    out->taints[out->n_taints++] = (struct gpc_taint){
        .key = gpc_strdup(key), .value = gpc_strdup(value ? value : ""), .no_execute = no_execute};
  }
}

static bool taints_equal(const struct gpc_node *a, const struct gpc_node *b) {
  if (a->n_taints != b->n_taints) return false;
  for (size_t i = 0; i < a->n_taints; i++)
    if (strcmp(a->taints[i].key, b->taints[i].key) != 0 ||
        strcmp(a->taints[i].value, b->taints[i].value) != 0 ||
        a->taints[i].no_execute != b->taints[i].no_execute)
      return false;
  return true;
}

void decode_node(struct gpc_node *out, const json_t *obj) {
  decode_node_filtered(out, obj, NULL, NULL);
}

/* "containerd://1.7.19" -> "containerd", "cri-o://1.30.4" -> "crio",
 * "docker://26.1.4" -> "docker"; anything else "". */
static void node_runtime(const json_t *obj, char out[16]) {
  const char *v = decode_str(obj, "status", "nodeInfo", "containerRuntimeVersion", PJ_END);
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
  const json_t *labels = decode_get(obj, "metadata", "labels", PJ_END);
  const char *id = decode_str(labels, "feature.node.kubernetes.io/system-os_release.ID", PJ_END);
  const char *ver =
      decode_str(labels, "feature.node.kubernetes.io/system-os_release.VERSION_ID", PJ_END);
  out[0] = '\0';
  size_t li = id ? strlen(id) : 0, lv = ver ? strlen(ver) : 0;
  if (li && lv && li + lv < 32) {
    memcpy(out, id, li);
    memcpy(out + li, ver, lv + 1);
    return;
  }
  const char *img = decode_str(obj, "status", "nodeInfo", "osImage", PJ_END);
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

void decode_node_filtered(struct gpc_node *out, const json_t *obj, decode_label_keep_fn keep,
                          void *ud) {
  const json_t *md = json_object_get(obj, "metadata");
  set_str(&out->name, decode_str(md, "name", PJ_END));
  set_str(&out->uid, decode_str(md, "uid", PJ_END));
  set_str(&out->resource_version, decode_str(md, "resourceVersion", PJ_END));
  set_str(&out->creation_timestamp, decode_str(md, "creationTimestamp", PJ_END));
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
      decode_quantity_int(decode_get(obj, "status", "allocatable", GPC_RESOURCE_GPU, PJ_END));
  out->ready = condition_true(obj, "Ready");
  node_runtime(obj, out->runtime);
  node_os(obj, out->os);
  const char *down = NULL;
  if (!out->ready) {
    down = decode_str(condition(obj, "Ready"), "message", PJ_END);
    if (!down || !*down) down = "the node is not Ready";
  }
  set_str(&out->down_message, down);
  decode_taints(out, decode_get(obj, "spec", "taints", PJ_END));
  out->unschedulable = json_is_true(decode_get(obj, "spec", "unschedulable", PJ_END));
  const json_t *ann = json_object_get(md, "annotations");
  const char *v = decode_str(ann, "gpupolicy.dev/driver-upgrade-cordoned", PJ_END);
  out->upg_cordoned = v && strcmp(v, "true") == 0;
  v = decode_str(ann, "gpupolicy.dev/driver-upgrade-since", PJ_END);
  out->upg_since = v ? strtoll(v, NULL, 10) : 0;
  set_str(&out->upg_target, decode_str(ann, "gpupolicy.dev/driver-upgrade-target", PJ_END));
  set_str(&out->upg_reason, decode_str(ann, "gpupolicy.dev/driver-upgrade-reason", PJ_END));
  set_str(&out->driver_pod, decode_str(ann, GPC_ANNOTATION_DRIVER_POD, PJ_END));
}

/* Operand index from the component label, falling back to the name label. */
static int operand_of(const json_t *labels) {
  int op = gpc_operand_from_name(decode_str(labels, GPC_LABEL_COMPONENT, PJ_END));
  return op >= 0 ? op : gpc_operand_from_name(decode_str(labels, GPC_LABEL_NAME, PJ_END));
}

void decode_daemonset(struct gpc_daemonset *out, const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const json_t *labels = json_object_get(md, "labels");
  const json_t *st = json_object_get(obj, "status");
  set_str(&out->name, decode_str(md, "name", PJ_END));
  set_str(&out->namespace, decode_str(md, "namespace", PJ_END));
  set_str(&out->policy, decode_str(labels, GPC_LABEL_POLICY, PJ_END));
  set_str(&out->render_hash, decode_str(md, "annotations", GPC_ANNOTATION_RENDER_HASH, PJ_END));
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
static const json_t *container_state_with_reason(const json_t *obj, bool *init) {
  static const char *const lists[] = {"initContainerStatuses", "containerStatuses"};
  static const char *const states[][2] = {
      {"state", "waiting"}, {"state", "terminated"}, {"lastState", "terminated"}};
  for (size_t s = 0; s < 3; s++)
    for (size_t l = 0; l < 2; l++) {
      const json_t *arr = decode_get(obj, "status", lists[l], PJ_END);
      size_t i;
      const json_t *cs;
      if (!json_is_array(arr)) continue;
      json_array_foreach(arr, i, cs) {
        /* A finished init container (exit 0) explains nothing. */
        if (l == 0 && s > 0 &&
            json_int_or(decode_get(cs, states[s][0], states[s][1], "exitCode", PJ_END), 0) == 0)
          continue;
        /* A ready container's last crash is history, not the current reason;
         * so is a running one's: it restarted and is starting again. */
        if (s == 2 && (json_is_true(json_object_get(cs, "ready")) ||
                       json_is_object(decode_get(cs, "state", "running", PJ_END))))
          continue;
        const json_t *st = decode_get(cs, states[s][0], states[s][1], PJ_END);
        if (json_is_object(st) && decode_str(st, "reason", PJ_END)) {
          *init = l == 0;
          return st;
        }
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
 * not ready and is crash-looping or terminated: a waiting reason such as
 * ImagePullBackOff is newer news than an old crash, and a running one has
 * restarted and is starting again. */
static const json_t *termination_in(const json_t *arr) {
  size_t i;
  const json_t *cs;
  if (!json_is_array(arr)) return NULL;
  json_array_foreach(arr, i, cs) {
    if (json_is_true(json_object_get(cs, "ready"))) continue;
    if (json_is_object(decode_get(cs, "state", "running", PJ_END))) continue;
    const char *waiting = decode_str(cs, "state", "waiting", "reason", PJ_END);
    if (waiting && strcmp(waiting, "CrashLoopBackOff") != 0) continue;
    const json_t *t = decode_get(cs, "state", "terminated", PJ_END);
    if (!decode_str(t, "message", PJ_END)) t = decode_get(cs, "lastState", "terminated", PJ_END);
    const char *m = decode_str(t, "message", PJ_END);
    if (m && *m) return t;
  }
  return NULL;
}

/* Init containers first: an app container cannot have crashed while an
 * init container has not finished. */
static const json_t *termination_with_message(const json_t *obj) {
  static const char *const lists[] = {"initContainerStatuses", "containerStatuses"};
  for (size_t l = 0; l < 2; l++) {
    const json_t *t = termination_in(decode_get(obj, "status", lists[l], PJ_END));
    if (t) return t;
  }
  return NULL;
}

static int32_t restarts(const json_t *obj) {
  int64_t sum = 0;
  const json_t *arr = decode_get(obj, "status", "containerStatuses", PJ_END);
  size_t i;
  const json_t *cs;
  if (json_is_array(arr)) json_array_foreach(arr, i, cs) {
      sum += json_int_or(json_object_get(cs, "restartCount"), 0);
    }
  return sum > INT32_MAX ? INT32_MAX : (int32_t)sum;
}

/* The node an unbound DaemonSet pod is for: the single metadata.name its
 * required node affinity names (as the DaemonSet controller writes it;
 * GetTargetNodeName in pkg/controller/daemon/util). NULL when none. */
static const char *affinity_node(const json_t *obj) {
  const json_t *terms =
      decode_get(obj, "spec", "affinity", "nodeAffinity",
                 "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", PJ_END);
  size_t i, j;
  const json_t *t, *f;
  if (!json_is_array(terms)) return NULL;
  json_array_foreach(terms, i, t) {
    const json_t *fields = json_object_get(t, "matchFields");
    if (!json_is_array(fields)) continue;
    json_array_foreach(fields, j, f) {
      const char *key = decode_str(f, "key", PJ_END), *op = decode_str(f, "operator", PJ_END);
      const json_t *vals = json_object_get(f, "values");
      if (key && op && strcmp(key, "metadata.name") == 0 && strcmp(op, "In") == 0 &&
          json_array_size(vals) == 1 && json_is_string(json_array_get(vals, 0)))
        return json_string_value(json_array_get(vals, 0));
    }
  }
  return NULL;
}

static int64_t condition_since(const json_t *obj, const char *type) {
  return decode_time(decode_str(condition(obj, type), "lastTransitionTime", PJ_END));
}

/* The start-up window of a container: how long its startup probe may keep
 * failing before the kubelet kills it (initialDelaySeconds + failureThreshold
 * x periodSeconds, API defaults 0, 3, 10); 0 without a startup probe. */
static int32_t startup_window(const json_t *obj, const char *container) {
  const json_t *arr = decode_get(obj, "spec", "containers", PJ_END);
  size_t i;
  const json_t *c;
  if (!json_is_array(arr)) return 0;
  json_array_foreach(arr, i, c) {
    const char *n = decode_str(c, "name", PJ_END);
    if (!n || !container || strcmp(n, container) != 0) continue;
    const json_t *p = json_object_get(c, "startupProbe");
    if (!json_is_object(p)) return 0;
    int64_t w = json_int_or(json_object_get(p, "initialDelaySeconds"), 0) +
                json_int_or(json_object_get(p, "failureThreshold"), 3) *
                    json_int_or(json_object_get(p, "periodSeconds"), 10);
    return w < 0 ? 0 : w > 86400 ? 86400 : (int32_t)w;
  }
  return 0;
}

/* A container running but not ready (its probes have not passed yet since
 * it started or restarted), or NULL. */
static const json_t *running_not_ready(const json_t *obj) {
  const json_t *arr = decode_get(obj, "status", "containerStatuses", PJ_END);
  size_t i;
  const json_t *cs;
  if (!json_is_array(arr)) return NULL;
  json_array_foreach(arr, i, cs) {
    if (!json_is_true(json_object_get(cs, "ready")) &&
        json_is_object(decode_get(cs, "state", "running", PJ_END)))
      return cs;
  }
  return NULL;
}

/* A running container that has restarted at least twice and whose last run
 * lasted under CRASH_LOOP_RUN_S: it runs between two back-offs of a crash
 * loop. A restart after a long run (a reboot, a liveness kill after hours,
 * an OOM after days) is a normal start. */
#define CRASH_LOOP_RUN_S 600
static bool crash_looping(const json_t *cs) {
  if (json_int_or(json_object_get(cs, "restartCount"), 0) < 2) return false;
  const json_t *lt = decode_get(cs, "lastState", "terminated", PJ_END);
  int64_t started = decode_time(decode_str(lt, "startedAt", PJ_END));
  int64_t finished = decode_time(decode_str(lt, "finishedAt", PJ_END));
  return started && finished && finished >= started && finished - started < CRASH_LOOP_RUN_S;
}

static bool is_false(const json_t *cond) {
  const char *st = decode_str(cond, "status", PJ_END);
  return st && strcmp(st, "False") == 0;
}

static bool is_benign(const char *reason) {
  static const char *const benign[] = {"ContainerCreating", "PodInitializing", "Pending"};
  if (!reason || !*reason) return true;
  for (size_t i = 0; i < sizeof benign / sizeof benign[0]; i++)
    if (strcmp(reason, benign[i]) == 0) return true;
  return false;
}

/* Not ready: say why (reason/message) and whether that is a passing state
 * (progressing since `since`) or a failure now. */
static void classify(struct gpc_pod *out, const json_t *obj, const json_t *md) {
  int64_t created = decode_time(decode_str(md, "creationTimestamp", PJ_END));
  int64_t not_ready_since = condition_since(obj, "Ready");
  if (!not_ready_since) not_ready_since = created;
  const char *reason = NULL, *message = NULL;
  char *owned = NULL, *token = NULL;
  out->progressing = true;
  out->since = not_ready_since;
  out->window_s = 0;
  const json_t *sched = condition(obj, "PodScheduled");
  const json_t *sandbox = condition(obj, "PodReadyToStartContainers");
  if (strcmp(out->phase, "Failed") == 0) {
    /* Evicted, node shutdown, admission reject: the DaemonSet controller
     * deletes and replaces it (with back-off), so it is transient. */
    reason = decode_str(obj, "status", "reason", PJ_END);
    message = decode_str(obj, "status", "message", PJ_END);
    if (!reason) reason = "Failed";
  } else if (!out->bound) {
    if (is_false(sched)) {
      reason = decode_str(sched, "reason", PJ_END);
      message = decode_str(sched, "message", PJ_END);
      if (!reason) reason = "Unschedulable";
      int64_t t = condition_since(obj, "PodScheduled");
      if (t) out->since = t;
    } else {
      reason = "Unscheduled";
      message = "not bound to its node by the scheduler yet";
      out->since = created;
    }
  } else if (strcmp(out->phase, "Pending") == 0 && is_false(sandbox)) {
    /* RunPodSandbox keeps failing (an unknown runtime handler, CNI): the
     * error is only in the pod's events. */
    reason = "FailedCreatePodSandBox";
    message = "pod sandbox not created (PodReadyToStartContainers=False); the pod's "
              "FailedCreatePodSandBox events say why";
    int64_t t = condition_since(obj, "PodReadyToStartContainers");
    if (t) out->since = t;
  } else {
    bool init = false;
    const json_t *st = container_state_with_reason(obj, &init);
    reason = st ? decode_str(st, "reason", PJ_END) : NULL;
    message = st ? decode_str(st, "message", PJ_END) : NULL;
    if (!reason) { /* a pod-level reason (NodeLost, ...) when no container says more */
      reason = decode_str(obj, "status", "reason", PJ_END);
      message = decode_str(obj, "status", "message", PJ_END);
    }
    const json_t *term = termination_with_message(obj);
    if (term) {
      message = decode_str(term, "message", PJ_END);
      token = result_token(message);
      const char *treason = decode_str(term, "reason", PJ_END);
      if (!init) reason = token ? token : treason ? treason : reason;
    }
    const json_t *run = running_not_ready(obj);
    if (init && !is_benign(reason)) {
      /* An init container failing (kubectl: Init:CrashLoopBackOff): often it
       * waits for an earlier stage, so it gets the grace period too. */
      owned = gpc_asprintf("Init:%s", reason);
      reason = owned;
      int64_t t = condition_since(obj, "Initialized");
      if (t) out->since = t;
    } else if (!is_benign(reason)) {
      out->progressing = false; /* crash loop, image pull failure: failing now */
    } else if (run) {
      /* Started or restarted, probes not passed yet: its start-up window.
       * Its last crash's termination log, if any, says what it is waiting
       * for (the validator's --wait), for when the window runs out. */
      const json_t *lt = decode_get(run, "lastState", "terminated", PJ_END);
      const char *lm = decode_str(lt, "message", PJ_END);
      if (lm && *lm) {
        free(token);
        token = result_token(lm);
        const char *lr = decode_str(lt, "reason", PJ_END);
        reason = token ? token : lr ? lr : "Starting";
        message = lm;
      } else {
        reason = "Starting";
        message = "container running, not ready yet (inside its start-up window)";
      }
      int64_t t = decode_time(decode_str(run, "state", "running", "startedAt", PJ_END));
      if (t) out->since = t;
      out->window_s = startup_window(obj, decode_str(run, "name", PJ_END));
      if (crash_looping(run)) {
        /* Between two back-offs of a crash loop: still failing, with the
         * reason it has while waiting, so failingNodes does not flap. */
        out->progressing = false;
        if (!token && !(lm && *lm)) {
          reason = "CrashLoopBackOff";
          message = "restarted repeatedly, each run ending within minutes";
        }
      }
    } else if ((!reason || !*reason) && strcmp(out->phase, "Pending") == 0) {
      reason = "ContainerCreating";
    } else if (!reason || !*reason) {
      /* Running, every container ready, the pod not: the node lifecycle
       * controller marked it (its node stopped reporting). Not the pod's
       * failure; the node shows as NotReady. */
      out->progressing = false;
    }
  }
  set_str(&out->reason, reason);
  set_str(&out->message, message);
  if (out->message[0]) { /* termination logs usually end with a newline */
    size_t n = strlen(out->message);
    while (n > 0 && isspace((unsigned char)out->message[n - 1]))
      out->message[--n] = '\0';
  }
  free(token);
  free(owned);
}

void decode_pod(struct gpc_pod *out, const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const json_t *labels = json_object_get(md, "labels");
  set_str(&out->name, decode_str(md, "name", PJ_END));
  set_str(&out->namespace, decode_str(md, "namespace", PJ_END));
  const char *node = decode_str(obj, "spec", "nodeName", PJ_END);
  out->bound = node && *node;
  set_str(&out->node_name, out->bound ? node : affinity_node(obj));
  set_str(&out->policy, decode_str(labels, GPC_LABEL_POLICY, PJ_END));
  set_str(&out->phase, decode_str(obj, "status", "phase", PJ_END));
  out->operand = operand_of(labels);
  out->ready = condition_true(obj, "Ready");
  out->deleting = json_object_get(md, "deletionTimestamp") != NULL;
  out->restart_count = restarts(obj);
  const char *owner = NULL;
  size_t oi;
  const json_t *ref;
  json_array_foreach(json_object_get(md, "ownerReferences"), oi, ref) {
    if (json_is_true(json_object_get(ref, "controller")))
      owner = json_string_value(json_object_get(ref, "name"));
  }
  set_str(&out->owner, owner);
  const char *tg = decode_str(labels, "pod-template-generation", PJ_END);
  out->template_generation = tg ? strtoll(tg, NULL, 10) : 0;
  const char *created = decode_str(md, "creationTimestamp", PJ_END);
  snprintf(out->created, sizeof(out->created), "%s", created ? created : "");
  out->progressing = false;
  out->since = 0;
  out->window_s = 0;
  if (out->ready) {
    set_str(&out->reason, NULL);
    set_str(&out->message, NULL);
  } else {
    classify(out, obj, md);
  }
}

struct gpc_node *decode_node_new(const json_t *obj) {
  struct gpc_node *n = gpc_malloc(sizeof *n);
  gpc_node_init(n);
  decode_node(n, obj);
  return n;
}

struct gpc_node *decode_node_new_filtered(const json_t *obj, decode_label_keep_fn keep, void *ud) {
  struct gpc_node *n = gpc_malloc(sizeof *n);
  gpc_node_init(n);
  decode_node_filtered(n, obj, keep, ud);
  return n;
}

void decode_selector_keys(const json_t *policy, void (*add)(const char *key, void *ud), void *ud) {
  const json_t *sel = decode_get(policy, "spec", "nodeSelector", PJ_END);
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
      const char *key = decode_str(e, "key", PJ_END);
      if (key) add(key, ud);
    }
}

struct gpc_daemonset *decode_daemonset_new(const json_t *obj) {
  struct gpc_daemonset *d = gpc_malloc(sizeof *d);
  gpc_daemonset_init(d);
  decode_daemonset(d, obj);
  return d;
}

struct gpc_pod *decode_pod_new(const json_t *obj) {
  struct gpc_pod *p = gpc_malloc(sizeof *p);
  gpc_pod_init(p);
  decode_pod(p, obj);
  return p;
}

void decode_node_free(struct gpc_node *n) {
  if (!n) return;
  gpc_node_release(n);
  free(n);
}

void decode_daemonset_free(struct gpc_daemonset *d) {
  if (!d) return;
  gpc_daemonset_release(d);
  free(d);
}

void decode_pod_free(struct gpc_pod *p) {
  if (!p) return;
  gpc_pod_release(p);
  free(p);
}

bool decode_node_changed(const struct gpc_node *old, const struct gpc_node *cur) {
  return old->ready != cur->ready || old->gpu_allocatable != cur->gpu_allocatable ||
         strcmp(old->uid, cur->uid) != 0 || !gpc_labels_equal(&old->labels, &cur->labels) ||
         strcmp(old->runtime, cur->runtime) != 0 || strcmp(old->os, cur->os) != 0 ||
         !taints_equal(old, cur) || old->unschedulable != cur->unschedulable ||
         old->upg_cordoned != cur->upg_cordoned || old->upg_since != cur->upg_since ||
         strcmp(old->upg_target, cur->upg_target) != 0 ||
         strcmp(old->upg_reason, cur->upg_reason) != 0 ||
         strcmp(old->driver_pod, cur->driver_pod) != 0;
}

bool decode_daemonset_changed(const struct gpc_daemonset *old, const struct gpc_daemonset *cur) {
  return old->generation != cur->generation ||
         old->observed_generation != cur->observed_generation || old->desired != cur->desired ||
         old->current != cur->current || old->ready != cur->ready || old->updated != cur->updated ||
         old->available != cur->available || old->unavailable != cur->unavailable ||
         old->operand != cur->operand || strcmp(old->render_hash, cur->render_hash) != 0 ||
         strcmp(old->policy, cur->policy) != 0;
}

bool decode_pod_changed(const struct gpc_pod *old, const struct gpc_pod *cur) {
  return old->ready != cur->ready || old->operand != cur->operand ||
         old->deleting != cur->deleting || old->bound != cur->bound ||
         old->progressing != cur->progressing || old->since != cur->since ||
         old->window_s != cur->window_s || strcmp(old->phase, cur->phase) != 0 ||
         strcmp(old->reason, cur->reason) != 0 || strcmp(old->node_name, cur->node_name) != 0 ||
         strcmp(old->policy, cur->policy) != 0 ||
         old->template_generation != cur->template_generation;
}

static bool json_same(const json_t *a, const json_t *b) {
  return (a == NULL && b == NULL) || (a && b && json_equal((json_t *)a, (json_t *)b));
}

bool decode_policy_changed(const json_t *old, const json_t *cur) {
  const json_t *om = json_object_get(old, "metadata"), *cm = json_object_get(cur, "metadata");
  static const char *const keys[] = {"generation", "deletionTimestamp", "finalizers", "uid"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (!json_same(json_object_get(om, keys[i]), json_object_get(cm, keys[i]))) return true;
  /* CRs without the status subresource (a stale CRD) bump nothing on a spec
   * change but the spec itself; compare it too. */
  return !json_same(json_object_get(old, "spec"), json_object_get(cur, "spec"));
}
