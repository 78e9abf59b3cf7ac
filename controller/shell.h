/* shell.h — the operational shell around the controller: the metrics
 * registry with the metric families of design.md §5, the health/metrics HTTP
 * server, and Lease leader election, wired to the controller's hooks.
 *
 * Lifecycle (main.c):
 *   rt = shell_new(&cfg, &err)        binds the HTTP ports (errors name the flag)
 *   kube_client_config.observe = shell_observe_request, .observe_ud = rt
 *   shell_attach(rt, ctrl)            before controller_start: observer,
 *                                       readiness, and (with --leader-elect)
 *                                       the controller starts as non-leader
 *   shell_start(rt, &err)             starts campaigning for the Lease
 *   ... SIGTERM: controller_stop, drain writes ...
 *   shell_shutdown(rt, done, ud)      releases the Lease if held, then done()
 *   controller_free, kube_client_free, shell_free
 *
 * Metrics (names and labels as controller-runtime, so existing dashboards
 * work): controller_runtime_reconcile_total{controller,result},
 * controller_runtime_reconcile_errors_total{controller},
 * controller_runtime_reconcile_time_seconds{controller} (histogram),
 * workqueue_depth/adds_total/retries_total{name},
 * rest_client_requests_total{code,method} (code "<error>" when no response),
 * leader_election_master_status{name}, and gpupolicy_nodes{policy,state}
 * (state: matched, ready, conflicted, opted_out, not_ready),
 * gpupolicy_operand_ready{policy,operand} (1 when the operand is Ready on
 * every node that runs it; disabled operands have no series),
 * gpupolicy_gpus_allocatable{policy}, gpupolicy_driver_upgrade_nodes{policy,state}
 * (every upgrade state, while a policy has an upgrade to show); a deleted policy's series
 * disappear; and the usual process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_start_time_seconds.
 *
 * Memory: the config's pointers are borrowed and must outlive the runtime;
 * the runtime owns its registry, server, elector and the elector's own
 * kube_client.
 */
#ifndef GPC_RUNTIME_H
#define GPC_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct gpc_loop;
struct kubeconfig;
struct controller;
struct metrics;
struct shell;

#define RUNTIME_LEASE_NAME "gpu-policy-controller-leader"
#define RUNTIME_CONTROLLER_NAME "clustergpupolicy"

struct shell_config {
  struct gpc_loop *loop;
  struct kubeconfig *kc; /* for the elector's client */
  const char *namespace; /* where the Lease lives */
  const char *metrics_bind;
  const char *health_bind;
  bool leader_elect;
  const char *lease_name; /* NULL = RUNTIME_LEASE_NAME */
  /* Test knobs: 0 = 15 s / 10 s / 2 s. */
  unsigned lease_ms, renew_deadline_ms, retry_ms;
};

struct shell *shell_new(const struct shell_config *cfg, struct gpc_error *err);
void shell_attach(struct shell *rt, struct controller *ctrl);
int shell_start(struct shell *rt, struct gpc_error *err);
typedef void (*shell_done_cb)(void *ud);
void shell_shutdown(struct shell *rt, shell_done_cb done, void *ud);
void shell_free(struct shell *rt);

/* kube_client_observe_cb for every API client (ud = the runtime). */
void shell_observe_request(const char *method, long code, double seconds, void *ud);

/* The registry (owned by rt; valid until shell_free). */
struct metrics *shell_metrics(struct shell *rt);
int shell_health_port(const struct shell *rt);
int shell_metrics_port(const struct shell *rt);

#endif
