/* plugin.h — does the device plugin advertise this node's GPUs?
 *
 * Reads the Node object from the API server with the client core
 * (kubeconfig.h + kube_client.h: in-cluster service-account config in a
 * pod, or a kubeconfig file) and returns status.allocatable["nvidia.com/gpu"].
 * The validator requires it to be at least the number of GPUs NVML sees.
 *
 * plugin_parse_allocatable() is the pure part (tested without a server);
 * plugin_node_gpus() runs one GET on a private event loop and returns when
 * it is answered, so the caller stays synchronous.
 */
#ifndef GPC_VALIDATOR_PLUGIN_H
#define GPC_VALIDATOR_PLUGIN_H

#include <stddef.h>

#include "errors.h"

#define PLUGIN_RESOURCE "nvidia.com/gpu"

/* Node JSON → *gpus (0 when the resource is not advertised at all).
 * GPC_E_INVAL naming the field when the body is not a Node or the quantity
 * is not a non-negative integer. */
int plugin_parse_allocatable(const char *body, size_t len, long *gpus, struct gpc_error *err);

/* GET /api/v1/nodes/<node>. `kubeconfig` NULL: in-cluster when
 * KUBERNETES_SERVICE_HOST is set, else the default kubeconfig file.
 * `timeout_ms` bounds each attempt. Errors say what failed: the config, the
 * request ("GET node x: HTTP 404: nodes \"x\" not found"), or the body. */
int plugin_node_gpus(const char *kubeconfig, const char *node, long timeout_ms, long *gpus,
                     struct gpc_error *err);

#endif
