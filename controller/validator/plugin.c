/* plugin.c — the node's allocatable nvidia.com/gpu, read through kube_client. */
#include "plugin.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "kube_client.h"
#include "kubeconfig.h"
#include "loop.h"

#define FIELD "status.allocatable[\"" PLUGIN_RESOURCE "\"]"

int plugin_parse_allocatable(const char *body, size_t len, long *gpus, struct gpc_error *err) {
  json_error_t jerr;
  json_t *node = json_loadb(body, len, 0, &jerr);
  if (!node) return gpc_fail(err, GPC_E_INVAL, "node: invalid JSON: %s", jerr.text);
  int rc = GPC_OK;
  *gpus = 0;
  const char *kind = json_string_value(json_object_get(node, "kind"));
  if (!json_is_object(node) || (kind && strcmp(kind, "Node") != 0)) {
    rc = gpc_fail(err, GPC_E_INVAL, "node: expected a Node object, got %s", kind ? kind : "?");
    goto out;
  }
  json_t *q = json_object_get(json_object_get(json_object_get(node, "status"), "allocatable"),
                              PLUGIN_RESOURCE);
  if (!q) goto out; /* not advertised (yet): 0 */
  /* Extended resources are integer quantities; the API server writes
   * them as plain decimal strings. */
  const char *s = json_string_value(q);
  if (!s || !*s || strlen(s) > 18) {
    rc = gpc_fail(err, GPC_E_INVAL, FIELD ": not an integer quantity");
    goto out;
  }
  for (const char *p = s; *p; p++)
    if (!isdigit((unsigned char)*p)) {
      rc = gpc_fail(err, GPC_E_INVAL, FIELD ": \"%s\" is not an integer quantity", s);
      goto out;
    }
  *gpus = strtol(s, NULL, 10);
out:
  json_decref(node);
  return rc;
}

/* One request's outcome, filled by the done callback. */
struct plugin_call {
  struct gpc_loop *loop;
  bool done;
  int rc;
  long gpus;
  struct gpc_error err;
};

static void plugin_done_cb(struct kube_client *c, const struct kube_response *resp, void *ud) {
  struct plugin_call *call = ud;
  call->done = true;
  gpc_loop_stop(call->loop);
  if (resp->rc != GPC_OK) {
    const char *msg = resp->status && resp->status->message ? resp->status->message
                      : resp->error                         ? resp->error
                                                            : gpc_strerror(resp->rc);
    call->rc = gpc_fail(&call->err, resp->rc, "HTTP %ld: %s", resp->http_code, msg);
    return;
  }
  call->rc = plugin_parse_allocatable(resp->body, resp->body_len, &call->gpus, &call->err);
}

int plugin_node_gpus(const char *kubeconfig, const char *node, long timeout_ms, long *gpus,
                     struct gpc_error *err) {
  struct kubeconfig kc = {0};
  struct gpc_loop *loop = NULL;
  struct kube_client *client = NULL;
  struct plugin_call call = {0};
  int rc = kubeconfig_load_auto(&kc, kubeconfig, NULL, err);
  if (rc != GPC_OK) goto out;
  loop = gpc_loop_new(err);
  if (!loop) {
    rc = GPC_E_IO;
    goto out;
  }
  struct kube_client_config cfg = {
      .kc = &kc,
      .timeout_ms = timeout_ms,
      .max_attempts = 3,
      .user_agent = "gpu-policy-validator/" GPC_VERSION,
  };
  client = kube_client_new(loop, &cfg, err);
  if (!client) {
    rc = GPC_E_IO;
    goto out;
  }
  struct kube_request req = {.verb = KUBE_GET, .version = "v1", .resource = "nodes", .name = node};
  call.loop = loop;
  if (!kube_client_submit(client, &req, plugin_done_cb, NULL, &call, err)) {
    rc = GPC_E_INVAL;
    goto out;
  }
  /* The client guarantees one callback per request (its own timeouts and
   * retry limit), so this returns. */
  while (!call.done)
    if (gpc_loop_run(loop) != GPC_OK) break;
  if (!call.done) {
    rc = gpc_fail(err, GPC_E_IO, "GET node %s: event loop failed", node);
    goto out;
  }
  rc = call.rc;
  if (rc != GPC_OK)
    gpc_fail(err, (enum gpc_err)rc, "GET node %s: %s", node, call.err.msg);
  else
    *gpus = call.gpus;
out:
  if (client) kube_client_free(client);
  if (loop) gpc_loop_free(loop);
  kubeconfig_free(&kc);
  return rc;
}
