/* shell.c — metrics families, HTTP endpoints and leader election wired to
 * the controller (see shell.h). */
#include "shell.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "controller.h"
#include "http_server.h"
#include "kube_client.h"
#include "leader.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "upgrade.h"
#include "plan.h"
#include "policy.h"

#define COMP "runtime"

struct shell {
  struct shell_config cfg;
  char *lease_name;
  struct metrics *m;
  struct metric_family *reconcile_total, *reconcile_errors, *reconcile_time;
  struct metric_family *wq_depth, *wq_adds, *wq_retries;
  struct metric_family *rest_requests, *leader_status;
  struct metric_family *pol_nodes, *pol_operand_ready, *pol_gpus;
  struct metric_family *pol_upgrade;
  struct metric_family *proc_cpu, *proc_rss, *proc_vm, *proc_fds, *proc_start;
  double start_time;
  struct http_server *http;
  struct controller *ctrl;
  struct kube_client *lease_client;
  struct leader *leader;
  char *identity;
  shell_done_cb done;
  void *done_ud;
};

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
#define V(...) ((const char *const[]){__VA_ARGS__})

static struct metric_family *reg(struct shell *rt, enum metric_type t, const char *name,
                                 const char *help, const char *const *labels) {
  struct gpc_error err = {0};
  struct metric_family *f = metrics_register(rt->m, t, name, help, labels, NULL, 0, &err);
  if (!f) log_error(COMP, "metric registration", KV_S("error", err.msg));
  return f;
}

static void register_families(struct shell *rt) {
  rt->reconcile_total =
      reg(rt, METRIC_COUNTER, "controller_runtime_reconcile_total",
          "Total number of reconciliations per controller", L("controller", "result"));
  rt->reconcile_errors =
      reg(rt, METRIC_COUNTER, "controller_runtime_reconcile_errors_total",
          "Total number of reconciliation errors per controller", L("controller"));
  rt->reconcile_time = reg(rt, METRIC_HISTOGRAM, "controller_runtime_reconcile_time_seconds",
                           "Length of time per reconciliation per controller", L("controller"));
  rt->wq_depth = reg(rt, METRIC_GAUGE, "workqueue_depth", "Current depth of workqueue", L("name"));
  rt->wq_adds = reg(rt, METRIC_COUNTER, "workqueue_adds_total",
                    "Total number of adds handled by workqueue", L("name"));
  rt->wq_retries = reg(rt, METRIC_COUNTER, "workqueue_retries_total",
                       "Total number of retries handled by workqueue", L("name"));
  rt->rest_requests =
      reg(rt, METRIC_COUNTER, "rest_client_requests_total",
          "Number of HTTP requests, partitioned by status code and method", L("code", "method"));
  rt->leader_status = reg(rt, METRIC_GAUGE, "leader_election_master_status",
                          "1 when this replica leads (writes), 0 when it stands by", L("name"));
  rt->pol_nodes = reg(rt, METRIC_GAUGE, "gpupolicy_nodes",
                      "Nodes of a ClusterGPUPolicy by state (matched, ready, conflicted, "
                      "opted_out, not_ready)",
                      L("policy", "state"));
  rt->pol_operand_ready =
      reg(rt, METRIC_GAUGE, "gpupolicy_operand_ready",
          "1 when the operand is Ready on every node of the policy that runs it, else 0",
          L("policy", "operand"));
  rt->pol_gpus = reg(rt, METRIC_GAUGE, "gpupolicy_gpus_allocatable",
                     "Sum of allocatable nvidia.com/gpu over the policy's nodes", L("policy"));
  rt->pol_upgrade = reg(rt, METRIC_GAUGE, "gpupolicy_driver_upgrade_nodes",
                        "Nodes of a ClusterGPUPolicy by driver upgrade state (pending, cordoned, "
                        "wait-jobs, pod-deletion, drain, restarting, validating, done, failed)",
                        L("policy", "state"));
  rt->proc_cpu = reg(rt, METRIC_COUNTER, "process_cpu_seconds_total",
                     "Total user and system CPU time spent in seconds", NULL);
  rt->proc_rss =
      reg(rt, METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes", NULL);
  rt->proc_vm =
      reg(rt, METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes", NULL);
  rt->proc_fds = reg(rt, METRIC_GAUGE, "process_open_fds", "Number of open file descriptors", NULL);
  rt->proc_start = reg(rt, METRIC_GAUGE, "process_start_time_seconds",
                       "Start time of the process since unix epoch in seconds", NULL);
  static const char *const results[] = {"success", "error", "requeue", "requeue_after"};
  for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
    metrics_touch(rt->reconcile_total, V(RUNTIME_CONTROLLER_NAME, results[i]));
  metrics_touch(rt->reconcile_errors, V(RUNTIME_CONTROLLER_NAME));
  metrics_touch(rt->wq_adds, V(RUNTIME_CONTROLLER_NAME));
  metrics_touch(rt->wq_retries, V(RUNTIME_CONTROLLER_NAME));
  metrics_set(rt->wq_depth, V(RUNTIME_CONTROLLER_NAME), 0);
}

static void set_leader_gauge(struct shell *rt, bool leading) {
  metrics_set(rt->leader_status, V(rt->lease_name), leading ? 1 : 0);
}

/* ---- controller hooks ---- */

static void on_reconciled(const char *policy, const char *result, double seconds, void *ud) {
  (void)policy;
  struct shell *rt = ud;
  metrics_counter_add(rt->reconcile_total, V(RUNTIME_CONTROLLER_NAME, result), 1);
  if (strcmp(result, "error") == 0)
    metrics_counter_add(rt->reconcile_errors, V(RUNTIME_CONTROLLER_NAME), 1);
  metrics_observe(rt->reconcile_time, V(RUNTIME_CONTROLLER_NAME), seconds);
}

static void on_planned(const char *policy, const struct gpc_plan *pl, void *ud) {
  struct shell *rt = ud;
  metrics_set(rt->pol_nodes, V(policy, "matched"), pl->matched);
  metrics_set(rt->pol_nodes, V(policy, "ready"), pl->ready);
  metrics_set(rt->pol_nodes, V(policy, "conflicted"), pl->conflicted);
  metrics_set(rt->pol_nodes, V(policy, "opted_out"), pl->opted_out);
  metrics_set(rt->pol_nodes, V(policy, "not_ready"), pl->not_ready);
  metrics_set(rt->pol_gpus, V(policy), (double)pl->gpus);
  metrics_drop_matching(rt->pol_operand_ready, "policy", policy);
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    const struct gpc_operand_summary *s = &pl->operands[op];
    if (s->state == GPC_STATE_DISABLED) continue;
    metrics_set(rt->pol_operand_ready, V(policy, gpc_operand_name((enum gpc_operand)op)),
                s->state == GPC_STATE_READY ? 1 : 0);
  }
}

static void on_upgrading(const char *policy, const uint32_t *counts, size_t n, void *ud) {
  struct shell *rt = ud;
  metrics_drop_matching(rt->pol_upgrade, "policy", policy);
  for (size_t s = 1; counts && s < n; s++)
    metrics_set(rt->pol_upgrade, V(policy, upgrade_state_name((enum gpc_upg_state)s)), counts[s]);
}

static void on_forgotten(const char *policy, void *ud) {
  struct shell *rt = ud;
  metrics_drop_matching(rt->pol_upgrade, "policy", policy);
  metrics_drop_matching(rt->pol_nodes, "policy", policy);
  metrics_drop_matching(rt->pol_operand_ready, "policy", policy);
  metrics_drop_matching(rt->pol_gpus, "policy", policy);
}

/* The standard process_* gauges, from /proc (Linux only; absent elsewhere). */
static void collect_process(struct shell *rt) {
  long page = sysconf(_SC_PAGESIZE), tck = sysconf(_SC_CLK_TCK);
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long vm = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &vm, &rss) == 2) {
      metrics_set(rt->proc_vm, NULL, (double)vm * (double)page);
      metrics_set(rt->proc_rss, NULL, (double)rss * (double)page);
    }
    fclose(f);
  }
  char buf[1024];
  f = fopen("/proc/self/stat", "r");
  if (f) {
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    /* fields after the parenthesised command: state is field 3, utime 14, stime 15 */
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && tck > 0 &&
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
      metrics_set(rt->proc_cpu, NULL, (double)(ut + st) / (double)tck);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int fds = 0;
    struct dirent *e;
    while ((e = readdir(d)))
      if (e->d_name[0] != '.') fds++;
    closedir(d);
    metrics_set(rt->proc_fds, NULL, fds - 1); /* not counting the one reading the dir */
  }
  metrics_set(rt->proc_start, NULL, rt->start_time);
}

/* Mirrors the workqueue counters and process figures when scraped. */
static void collect(struct metrics *m, void *ud) {
  (void)m;
  struct shell *rt = ud;
  collect_process(rt);
  if (!rt->ctrl) return;
  struct controller_stats st;
  controller_get_stats(rt->ctrl, &st);
  metrics_set(rt->wq_depth, V(RUNTIME_CONTROLLER_NAME), st.queue_depth);
  metrics_set(rt->wq_adds, V(RUNTIME_CONTROLLER_NAME), (double)st.queue_adds);
  metrics_set(rt->wq_retries, V(RUNTIME_CONTROLLER_NAME), (double)st.queue_retries);
}

void shell_observe_request(const char *method, long code, double seconds, void *ud) {
  (void)seconds;
  struct shell *rt = ud;
  char c[24];
  if (code > 0)
    snprintf(c, sizeof c, "%ld", code);
  else
    snprintf(c, sizeof c, "<error>");
  metrics_counter_add(rt->rest_requests, V(c, method), 1);
}

/* ---- HTTP callbacks ---- */

static bool ready_cb(void *ud, const char **why) {
  struct shell *rt = ud;
  if (!rt->ctrl) {
    *why = "controller not started";
    return false;
  }
  if (!controller_synced(rt->ctrl)) {
    *why = "informers not synced";
    return false;
  }
  return true;
}

static char *metrics_cb(void *ud, size_t *len) {
  struct shell *rt = ud;
  return metrics_render(rt->m, len);
}

/* ---- leader election ---- */

static void on_leader_change(bool leading, void *ud) {
  struct shell *rt = ud;
  set_leader_gauge(rt, leading);
  if (rt->ctrl) controller_set_leader(rt->ctrl, leading);
}

/* ---- lifecycle ---- */

struct shell *shell_new(const struct shell_config *cfg, struct gpc_error *err) {
  struct shell *rt = gpc_calloc(1, sizeof *rt);
  rt->cfg = *cfg;
  rt->lease_name = gpc_strdup(cfg->lease_name ? cfg->lease_name : RUNTIME_LEASE_NAME);
  rt->m = metrics_new();
  struct timeval tv;
  gettimeofday(&tv, NULL);
  rt->start_time = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
  register_families(rt);
  metrics_add_collector(rt->m, collect, rt);
  set_leader_gauge(rt, !cfg->leader_elect);
  struct http_server_config hc = {
      .loop = cfg->loop,
      .health_bind = cfg->health_bind,
      .metrics_bind = cfg->metrics_bind,
      .ready = ready_cb,
      .metrics = metrics_cb,
      .ud = rt,
  };
  rt->http = http_server_new(&hc, err);
  if (!rt->http) {
    shell_free(rt);
    return NULL;
  }
  return rt;
}

void shell_attach(struct shell *rt, struct controller *ctrl) {
  rt->ctrl = ctrl;
  struct controller_observer o = {
      .reconciled = on_reconciled,
      .planned = on_planned,
      .forgotten = on_forgotten,
      .upgrading = on_upgrading,
      .ud = rt,
  };
  controller_set_observer(ctrl, &o);
  /* With election, nobody writes until the Lease says so. */
  if (rt->cfg.leader_elect) controller_set_leader(ctrl, false);
}

int shell_start(struct shell *rt, struct gpc_error *err) {
  if (!rt->cfg.leader_elect) return GPC_OK;
  char ua[128];
  snprintf(ua, sizeof ua, "gpu-policy-controller/%s leader-election", GPC_VERSION);
  /* Its own client: renewals never wait behind the controller's writes in
   * the token bucket, and one attempt each (the elector retries itself). */
  struct kube_client_config kcc = {
      .kc = rt->cfg.kc,
      .qps = 5,
      .burst = 10,
      .max_attempts = 1,
      .user_agent = ua,
      .observe = shell_observe_request,
      .observe_ud = rt,
  };
  rt->lease_client = kube_client_new(rt->cfg.loop, &kcc, err);
  if (!rt->lease_client) return err->code ? err->code : GPC_E_IO;
  rt->identity = leader_make_identity();
  struct leader_config lc = {
      .loop = rt->cfg.loop,
      .client = rt->lease_client,
      .namespace = rt->cfg.namespace,
      .name = rt->lease_name,
      .identity = rt->identity,
      .lease_ms = rt->cfg.lease_ms,
      .renew_deadline_ms = rt->cfg.renew_deadline_ms,
      .retry_ms = rt->cfg.retry_ms,
      .on_change = on_leader_change,
      .ud = rt,
  };
  rt->leader = leader_new(&lc, err);
  if (!rt->leader) return err->code ? err->code : GPC_E_INVAL;
  leader_start(rt->leader);
  return GPC_OK;
}

static void released(void *ud) {
  struct shell *rt = ud;
  shell_done_cb done = rt->done;
  rt->done = NULL;
  if (done) done(rt->done_ud);
}

void shell_shutdown(struct shell *rt, shell_done_cb done, void *ud) {
  rt->done = done;
  rt->done_ud = ud;
  if (rt->leader)
    leader_resign(rt->leader, released, rt);
  else
    released(rt);
}

void shell_free(struct shell *rt) {
  if (!rt) return;
  leader_free(rt->leader);
  kube_client_free(rt->lease_client);
  http_server_free(rt->http);
  metrics_free(rt->m);
  free(rt->identity);
  free(rt->lease_name);
  free(rt);
}

struct metrics *shell_metrics(struct shell *rt) {
  return rt->m;
}

int shell_health_port(const struct shell *rt) {
  return http_server_health_port(rt->http);
}

int shell_metrics_port(const struct shell *rt) {
  return http_server_metrics_port(rt->http);
}
