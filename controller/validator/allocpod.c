/* allocpod.c — the allocation check's one-shot pod (see allocpod.h). */
#include "allocpod.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "kube_client.h"
#include "kubeconfig.h"
#include "loop.h"
#include "phase.h"
#include "plugin.h"

/* ---- pure
 * ------------------------------------------------------------------------------------------ */

void allocpod_name(const char *node, char *buf, size_t len) {
  size_t plen = strlen(ALLOCPOD_PREFIX), nlen = strlen(node);
  if (plen + nlen <= ALLOCPOD_NAME_MAX) {
    snprintf(buf, len, "%s%s", ALLOCPOD_PREFIX, node);
    return;
  }
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = node; *p; p++) {
    h ^= (unsigned char)*p;
    h *= 16777619u;
  }
  /* prefix + head + "-" + 8 hex = 63; the head must not end in '.' or '-'
   * before our '-', which a node name's head may. */
  int head = (int)(ALLOCPOD_NAME_MAX - plen - 9);
  while (head > 0 && (node[head - 1] == '.' || node[head - 1] == '-'))
    head--;
  snprintf(buf, len, "%s%.*s-%08x", ALLOCPOD_PREFIX, head, node, h);
  /* a node name may hold '.', which a DNS label may not: the pod name is a
   * DNS subdomain, but keep it label-shaped for hostnames and logs */
  for (char *p = buf; *p; p++)
    if (*p == '.') *p = '-';
}

void allocpod_self_release(struct allocpod_self *s) {
  free(s->uid);
  free(s->image);
  free(s->runtime_class);
  json_decref(s->tolerations);
  json_decref(s->pod_security);
  json_decref(s->container_security);
  memset(s, 0, sizeof *s);
}

static char *dup_str(const json_t *v) {
  const char *s = json_string_value(v);
  return s && *s ? gpc_strdup(s) : NULL;
}

static json_t *copy_of(json_t *v, int (*is)(const json_t *)) {
  return v && is(v) ? json_deep_copy(v) : NULL;
}

static int is_object(const json_t *v) {
  return json_is_object(v);
}
static int is_array(const json_t *v) {
  return json_is_array(v);
}

int allocpod_self_from_pod(const char *body, size_t len, const char *container,
                           struct allocpod_self *s, struct gpc_error *err) {
  memset(s, 0, sizeof *s);
  json_error_t jerr;
  json_t *pod = json_loadb(body, len, 0, &jerr);
  if (!pod) return gpc_fail(err, GPC_E_INVAL, "pod: invalid JSON: %s", jerr.text);
  int rc = GPC_OK;
  const char *kind = json_string_value(json_object_get(pod, "kind"));
  json_t *spec = json_object_get(pod, "spec");
  json_t *ctrs = json_object_get(spec, "containers");
  if (!json_is_object(pod) || (kind && strcmp(kind, "Pod") != 0) || !json_is_array(ctrs) ||
      json_array_size(ctrs) == 0) {
    rc = gpc_fail(err, GPC_E_INVAL, "pod: expected a Pod with containers, got %s",
                  kind ? kind : "?");
    goto out;
  }
  json_t *ctr = json_array_get(ctrs, 0), *c;
  size_t i;
  json_array_foreach(ctrs, i, c) {
    const char *n = json_string_value(json_object_get(c, "name"));
    if (container && n && strcmp(n, container) == 0) {
      ctr = c;
      break;
    }
  }
  s->uid = dup_str(json_object_get(json_object_get(pod, "metadata"), "uid"));
  s->image = dup_str(json_object_get(ctr, "image"));
  if (!s->uid || !s->image) {
    rc = gpc_fail(err, GPC_E_INVAL, "pod: %s is missing",
                  s->uid ? "the container's image" : "metadata.uid");
    goto out;
  }
  s->runtime_class = dup_str(json_object_get(spec, "runtimeClassName"));
  s->tolerations = copy_of(json_object_get(spec, "tolerations"), is_array);
  s->pod_security = copy_of(json_object_get(spec, "securityContext"), is_object);
  s->container_security = copy_of(json_object_get(ctr, "securityContext"), is_object);
out:
  json_decref(pod);
  if (rc != GPC_OK) allocpod_self_release(s);
  return rc;
}

json_t *allocpod_manifest(const char *name, const char *ns, const char *node, const char *owner,
                          const struct allocpod_self *s) {
  json_t *labels = json_pack("{s:s, s:s}", "app.kubernetes.io/name", "gpu-policy-allocation-check",
                             "app.kubernetes.io/managed-by", "gpu-policy-validator");
  /* No blockOwnerDeletion: that would need update on pods/finalizers
   * (OwnerReferencesPermissionEnforcement), and the GC needs none of it. */
  json_t *owners = json_pack("[{s:s, s:s, s:s, s:s}]", "apiVersion", "v1", "kind", "Pod", "name",
                             owner, "uid", s->uid);
  json_t *meta = json_pack("{s:s, s:s, s:o, s:o}", "name", name, "namespace", ns, "labels", labels,
                           "ownerReferences", owners);
  /* Only the device plugin decides what this container sees: no
   * NVIDIA_VISIBLE_DEVICES here (the plugin's Allocate sets it). */
  json_t *ctr = json_pack(
      "{s:s, s:s, s:s, s:[s, s], s:[{s:s, s:s}], s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:s}", "name",
      ALLOCPOD_CONTAINER, "image", s->image, "imagePullPolicy", "IfNotPresent", "command",
      "gpu-policy-validator", "--json", "env", "name", "NVIDIA_DRIVER_CAPABILITIES", "value",
      "compute,utility", "resources", "limits", PLUGIN_RESOURCE, "1", "memory", "256Mi", "requests",
      "cpu", "10m", "memory", "32Mi", "terminationMessagePolicy", "FallbackToLogsOnError");
  if (s->container_security)
    json_object_set_new(ctr, "securityContext", json_deep_copy(s->container_security));
  json_t *spec = json_pack("{s:s, s:s, s:b, s:b, s:i, s:[o]}", "nodeName", node, "restartPolicy",
                           "Never", "automountServiceAccountToken", 0, "enableServiceLinks", 0,
                           "terminationGracePeriodSeconds", 5, "containers", ctr);
  if (s->runtime_class)
    json_object_set_new(spec, "runtimeClassName", json_string(s->runtime_class));
  if (s->tolerations) json_object_set_new(spec, "tolerations", json_deep_copy(s->tolerations));
  if (s->pod_security)
    json_object_set_new(spec, "securityContext", json_deep_copy(s->pod_security));
  return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", meta,
                   "spec", spec);
}

static const char *str_or(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s && *s ? s : dflt;
}

/* The one-shot container's status (by name, else the first). */
static json_t *container_status(json_t *status) {
  json_t *all = json_object_get(status, "containerStatuses"), *c;
  size_t i;
  json_array_foreach(all, i, c) {
    if (strcmp(str_or(c, "name", ""), ALLOCPOD_CONTAINER) == 0) return c;
  }
  return json_array_get(all, 0);
}

int allocpod_interpret(const char *body, size_t len, struct allocpod_result *res,
                       struct gpc_error *err) {
  memset(res, 0, sizeof *res);
  res->exit_code = -1;
  json_error_t jerr;
  json_t *pod = json_loadb(body, len, 0, &jerr);
  if (!pod) return gpc_fail(err, GPC_E_INVAL, "pod: invalid JSON: %s", jerr.text);
  const char *kind = json_string_value(json_object_get(pod, "kind"));
  if (!json_is_object(pod) || (kind && strcmp(kind, "Pod") != 0)) {
    gpc_fail(err, GPC_E_INVAL, "pod: expected a Pod, got %s", kind ? kind : "?");
    json_decref(pod);
    return GPC_E_INVAL;
  }
  json_t *status = json_object_get(pod, "status");
  const char *phase = str_or(status, "phase", "Pending");
  json_t *cs = container_status(status);
  json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");
  json_t *waiting = json_object_get(json_object_get(cs, "state"), "waiting");
  if (json_is_integer(json_object_get(term, "exitCode")))
    res->exit_code = (int)json_integer_value(json_object_get(term, "exitCode"));
  const char *reason = str_or(status, "reason", NULL);
  if (strcmp(phase, "Succeeded") == 0) {
    res->state = ALLOCPOD_SUCCEEDED;
    snprintf(res->detail, sizeof res->detail, "exit 0");
  } else if (strcmp(phase, "Failed") == 0 && (reason || !term)) {
    /* The kubelet rejected it (admission: no free device, no such
     * resource) or ended it (eviction, node shutdown): its container's
     * verdict is not the outcome. */
    res->state = ALLOCPOD_REJECTED;
    snprintf(res->detail, sizeof res->detail, "%s: %s", reason ? reason : "Failed",
             str_or(status, "message", "no message"));
  } else if (strcmp(phase, "Failed") == 0) {
    res->state = ALLOCPOD_FAILED;
    snprintf(res->detail, sizeof res->detail, "%s",
             str_or(term, "message", str_or(term, "reason", "no termination message")));
  } else {
    res->state = ALLOCPOD_WAITING;
    json_t *c;
    size_t i;
    const char *why = NULL, *msg = NULL;
    json_array_foreach(json_object_get(status, "conditions"), i, c) {
      if (strcmp(str_or(c, "type", ""), "PodScheduled") == 0 &&
          strcmp(str_or(c, "status", ""), "False") == 0) {
        why = str_or(c, "reason", "Unschedulable");
        msg = str_or(c, "message", "");
      }
    }
    if (!why && waiting) {
      why = str_or(waiting, "reason", "Waiting");
      msg = str_or(waiting, "message", "");
    }
    if (why)
      snprintf(res->detail, sizeof res->detail, "phase %s, %s%s%s", phase, why, *msg ? ": " : "",
               msg);
    else
      snprintf(res->detail, sizeof res->detail, "phase %s", phase);
  }
  json_decref(pod);
  return GPC_OK;
}

/* ---- API calls
 * ---------------------------------------------------------------------------------------- */

struct api {
  struct kubeconfig kc;
  struct gpc_loop *loop;
  struct kube_client *client;
};

struct call {
  struct gpc_loop *loop;
  bool done;
  int rc;
  long code;
  char *body;
  size_t len;
  char msg[512];
};

static void call_done(struct kube_client *c, const struct kube_response *resp, void *ud) {
  (void)c;
  struct call *k = ud;
  k->done = true;
  k->rc = resp->rc;
  k->code = resp->http_code;
  k->body = gpc_malloc(resp->body_len + 1);
  if (resp->body_len) memcpy(k->body, resp->body, resp->body_len);
  k->body[resp->body_len] = 0;
  k->len = resp->body_len;
  const char *msg = resp->status && resp->status->message ? resp->status->message
                    : resp->error                         ? resp->error
                                                          : gpc_strerror(resp->rc);
  snprintf(k->msg, sizeof k->msg, "%s", msg);
  gpc_loop_stop(k->loop);
}

static int api_open(struct api *a, const struct allocpod_opts *o, struct gpc_error *err) {
  memset(a, 0, sizeof *a);
  int rc = kubeconfig_load_auto(&a->kc, o->kubeconfig, NULL, err);
  if (rc != GPC_OK) return rc;
  a->loop = gpc_loop_new(err);
  if (!a->loop) return GPC_E_IO;
  struct kube_client_config cfg = {
      .kc = &a->kc,
      .timeout_ms = o->api_timeout_ms,
      .max_attempts = 3,
      .user_agent = "gpu-policy-validator/" GPC_VERSION,
  };
  a->client = kube_client_new(a->loop, &cfg, err);
  return a->client ? GPC_OK : GPC_E_IO;
}

static void api_close(struct api *a) {
  if (a->client) kube_client_free(a->client);
  if (a->loop) gpc_loop_free(a->loop);
  kubeconfig_free(&a->kc);
}

/* One request, answered synchronously; k->body is the caller's to free. */
static void api_call(struct api *a, const struct kube_request *req, struct call *k) {
  memset(k, 0, sizeof *k);
  k->loop = a->loop;
  struct gpc_error err = {0};
  if (!kube_client_submit(a->client, req, call_done, NULL, k, &err)) {
    k->done = true;
    k->rc = GPC_E_INVAL;
    snprintf(k->msg, sizeof k->msg, "%s", err.msg);
    return;
  }
  while (!k->done)
    if (gpc_loop_run(a->loop) != GPC_OK) break;
  if (!k->done) {
    k->rc = GPC_E_IO;
    snprintf(k->msg, sizeof k->msg, "event loop failed");
  }
}

static double now_s(void) {
  return phase_now();
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

static const char delete_opts[] =
    "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"gracePeriodSeconds\":0,"
    "\"propagationPolicy\":\"Background\"}";

/* DELETE the pod; 404 counts as done. */
static int delete_pod(struct api *a, const char *ns, const char *name, struct gpc_error *err) {
  struct kube_request req = {.verb = KUBE_DELETE,
                             .version = "v1",
                             .resource = "pods",
                             .namespace = ns,
                             .name = name,
                             .body = delete_opts,
                             .body_len = sizeof delete_opts - 1};
  struct call k;
  api_call(a, &req, &k);
  free(k.body);
  if (k.rc == GPC_OK || k.code == 404) return GPC_OK;
  return gpc_fail(err, GPC_E_IO, "delete pod %s: HTTP %ld: %s", name, k.code, k.msg);
}

int allocpod_delete(const struct allocpod_opts *o, struct gpc_error *err) {
  char name[ALLOCPOD_NAME_MAX + 1];
  allocpod_name(o->node, name, sizeof name);
  struct api a;
  int rc = api_open(&a, o, err);
  if (rc == GPC_OK) rc = delete_pod(&a, o->ns, name, err);
  api_close(&a);
  return rc;
}

static void fail(struct val_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct val_report *r, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  report_check(r, "allocation", false, "%s", msg);
  report_fail(r, VAL_ALLOCATION, "%s", msg);
}

/* Creates the pod, deleting a leftover of a crashed validator first. */
static bool create_pod(struct api *a, const struct allocpod_opts *o, const char *name,
                       const char *body, double deadline, struct val_report *r) {
  struct gpc_error err = {0};
  if (delete_pod(a, o->ns, name, &err) != GPC_OK) {
    fail(r, "%s", err.msg);
    return false;
  }
  for (;;) {
    struct kube_request req = {.verb = KUBE_CREATE,
                               .version = "v1",
                               .resource = "pods",
                               .namespace = o->ns,
                               .body = body,
                               .body_len = strlen(body)};
    struct call k;
    api_call(a, &req, &k);
    free(k.body);
    if (k.rc == GPC_OK) return true;
    /* 409: the leftover is still being removed */
    if (k.code != 409 || now_s() + 0.5 > deadline) {
      fail(r, "create pod %s/%s: HTTP %ld: %s", o->ns, name, k.code, k.msg);
      return false;
    }
    sleep_s(0.5);
  }
}

void allocpod_check(const struct allocpod_opts *o, struct val_report *r) {
  double deadline = now_s() + o->wait_s;
  char name[ALLOCPOD_NAME_MAX + 1];
  allocpod_name(o->node, name, sizeof name);
  struct api a;
  struct gpc_error err = {0};
  phase_step("API client");
  if (api_open(&a, o, &err) != GPC_OK) {
    fail(r, "%s", err.msg);
    api_close(&a);
    return;
  }
  struct allocpod_self self = {0};
  bool created = false;
  phase_step("GET own pod");
  struct kube_request get_self = {
      .verb = KUBE_GET, .version = "v1", .resource = "pods", .namespace = o->ns, .name = o->self};
  struct call k;
  api_call(&a, &get_self, &k);
  if (k.rc != GPC_OK) {
    fail(r, "GET pod %s/%s: HTTP %ld: %s", o->ns, o->self, k.code, k.msg);
    free(k.body);
    goto out;
  }
  int rc = allocpod_self_from_pod(k.body, k.len, "validator", &self, &err);
  free(k.body);
  if (rc != GPC_OK) {
    fail(r, "%s/%s: %s", o->ns, o->self, err.msg);
    goto out;
  }
  json_t *pod = allocpod_manifest(name, o->ns, o->node, o->self, &self);
  char *body = json_dumps(pod, JSON_COMPACT);
  json_decref(pod);
  phase_step("create pod");
  /* From here on the pod may exist (a create whose answer was lost too):
   * it is deleted at the end whatever happens. */
  created = true;
  bool ok = create_pod(&a, o, name, body, deadline, r);
  free(body);
  if (!ok) goto out;
  phase_step("wait for pod");
  struct allocpod_result res = {
      .state = ALLOCPOD_WAITING, .exit_code = -1, .detail = "not read yet"};
  for (;;) {
    struct kube_request get = {
        .verb = KUBE_GET, .version = "v1", .resource = "pods", .namespace = o->ns, .name = name};
    api_call(&a, &get, &k);
    if (k.rc == GPC_OK) {
      if (allocpod_interpret(k.body, k.len, &res, &err) != GPC_OK)
        snprintf(res.detail, sizeof res.detail, "%s", err.msg);
    } else if (k.code == 404) {
      free(k.body);
      fail(r, "pod %s/%s on node %s was deleted by someone else before it ended", o->ns, name,
           o->node);
      created = false;
      goto out;
    } else {
      snprintf(res.detail, sizeof res.detail, "GET pod: HTTP %ld: %s", k.code, k.msg);
    }
    free(k.body);
    if (res.state != ALLOCPOD_WAITING || now_s() + 0.5 > deadline) break;
    sleep_s(0.5);
  }
  switch (res.state) {
  case ALLOCPOD_SUCCEEDED:
    report_check(r, "allocation", true,
                 "pod %s on node %s got one " PLUGIN_RESOURCE ", vectorAdd passed", name, o->node);
    break;
  case ALLOCPOD_REJECTED:
    /* The device manager's "requested number of devices unavailable" (K:
     * pkg/kubelet/cm/devicemanager/manager.go devicesToAllocate) means other
     * pods hold every GPU: busy, as a GPU in use is for the other checks,
     * not a broken node. Any other rejection is a failure. */
    if (strstr(res.detail, "requested number of devices unavailable"))
      report_busy(r, "allocation",
                  "every " PLUGIN_RESOURCE " of node %s is allocated to other pods (pod %s not "
                  "admitted: %s)",
                  o->node, name, res.detail);
    else
      fail(r, "pod %s asking for one " PLUGIN_RESOURCE " was not admitted on node %s: %s", name,
           o->node, res.detail);
    break;
  case ALLOCPOD_FAILED:
    fail(r, "vectorAdd failed in pod %s with one " PLUGIN_RESOURCE " on node %s (exit %d): %s",
         name, o->node, res.exit_code, res.detail);
    break;
  case ALLOCPOD_WAITING:
    fail(r, "pod %s asking for one " PLUGIN_RESOURCE " did not finish on node %s within %gs: %s",
         name, o->node, o->wait_s, res.detail);
    break;
  }
out:
  if (created) {
    phase_step("delete pod");
    if (delete_pod(&a, o->ns, name, &err) != GPC_OK) fail(r, "%s", err.msg);
  }
  allocpod_self_release(&self);
  api_close(&a);
}
