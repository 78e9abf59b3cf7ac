/* main.c — gpu-policy-controller entry point.
 *
 * Parses flags (options.h), configures logging, dispatches the `render` and
 * `apply` subcommands, then runs the controller (with shell.h: metrics,
 * probes, leader election) until SIGTERM/SIGINT. Exit codes:
 * 0 clean shutdown or --help/--version, 1 runtime failure, 2 configuration
 * error (one line on stderr naming the flag or file).
 *
 * Shutdown: the first SIGTERM/SIGINT stops the informers and the queue, then
 * the loop keeps running until the writes in flight have completed or
 * --shutdown-grace seconds have passed, then releases the Lease when it
 * holds it (shell_shutdown); a second signal exits at once.
 */
#include "alloc.h"
#include "apply_cmd.h"
#include "controller.h"
#include "kube_client.h"
#include "kubeconfig.h"
#include "log.h"
#include "loop.h"
#include "options.h"
#include "render_cmd.h"
#include "shell.h"
#include "templates.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_CONFIG 2
#define DRAIN_POLL_MS 50

struct app {
  struct gpc_options opts;
  struct gpc_loop *loop;
  struct kubeconfig kc;
  struct kube_client *client;
  struct gpc_templates *templates;
  struct controller *ctrl;
  struct shell *rt; /* metrics, /healthz /readyz /metrics, leader election */
  bool stopping;
  uint64_t drain_deadline_ms;
};

static int config_error(const char *msg) {
  fprintf(stderr, "gpu-policy-controller: %s\n", msg);
  return EXIT_CONFIG;
}

static void stop_loop(void *ud) {
  struct app *app = ud;
  gpc_loop_stop(app->loop);
}

static void drain_tick(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)id;
  struct app *app = ud;
  unsigned left = controller_in_flight(app->ctrl);
  if (left == 0 || gpc_loop_now_ms() >= app->drain_deadline_ms) {
    if (left) log_warn("main", "abandoning writes in flight", KV_I("writes", left));
    shell_shutdown(app->rt, stop_loop, app); /* release the Lease, then stop */
    return;
  }
  gpc_loop_add_timer(loop, DRAIN_POLL_MS, drain_tick, app);
}

static void on_signal(struct gpc_loop *loop, int signo, void *ud) {
  struct app *app = ud;
  if (app->stopping) {
    log_warn("main", "second signal, exiting now", KV_I("signal", signo));
    gpc_loop_stop(loop);
    return;
  }
  app->stopping = true;
  log_info("main", "shutting down", KV_I("signal", signo),
           KV_I("writes_in_flight", controller_in_flight(app->ctrl)));
  controller_stop(app->ctrl);
  app->drain_deadline_ms = gpc_loop_now_ms() + (uint64_t)app->opts.shutdown_grace_s * 1000u;
  drain_tick(loop, 0, app);
}

static char *identity(void) {
  char host[256] = "";
  const char *pod = getenv("POD_NAME");
  if (pod && *pod) return gpc_strdup(pod);
  if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "gpu-policy-controller");
  return gpc_strdup(host);
}

/* Builds everything; returns 0, EXIT_CONFIG or 1 with the reason logged. */
static int setup(struct app *app, char *ident) {
  struct gpc_error err = {0};
  if (kubeconfig_load_auto(&app->kc, app->opts.kubeconfig, app->opts.context, &err) != GPC_OK)
    return config_error(err.msg);
  if (templates_load(app->opts.templates_dir, &app->templates, &err) != GPC_OK)
    return config_error(err.msg);
  app->loop = gpc_loop_new(&err);
  if (!app->loop) {
    log_error("main", "event loop", KV_S("error", err.msg));
    return 1;
  }
  struct shell_config rc = {
      .loop = app->loop,
      .kc = &app->kc,
      .namespace = app->opts.leader_namespace ? app->opts.leader_namespace : app->opts.namespace,
      .metrics_bind = app->opts.metrics_bind,
      .health_bind = app->opts.health_bind,
      .leader_elect = app->opts.leader_elect,
      .lease_ms = (unsigned)(app->opts.leader_lease_s * 1000),
      .renew_deadline_ms = (unsigned)(app->opts.leader_renew_s * 1000),
      .retry_ms = (unsigned)(app->opts.leader_retry_s * 1000),
  };
  app->rt = shell_new(&rc, &err);
  if (!app->rt) return config_error(err.msg);
  struct kube_client_config kcc = {
      .kc = &app->kc,
      .qps = app->opts.qps,
      .burst = app->opts.burst,
      .observe = shell_observe_request,
      .observe_ud = app->rt,
  };
  app->client = kube_client_new(app->loop, &kcc, &err);
  if (!app->client) {
    log_error("main", "API client", KV_S("error", err.msg));
    return 1;
  }
  struct controller_config cc = {
      .loop = app->loop,
      .client = app->client,
      .templates = app->templates,
      .namespace = app->opts.namespace,
      .identity = ident,
      .watch_timeout_s = app->opts.watch_timeout_s,
      .pod_grace_s = app->opts.pod_grace_s,
  };
  app->ctrl = controller_new(&cc, &err);
  if (!app->ctrl) {
    log_error("main", "controller", KV_S("error", err.msg));
    return 1;
  }
  shell_attach(app->rt, app->ctrl);
  gpc_loop_add_signal(app->loop, SIGTERM, on_signal, app);
  gpc_loop_add_signal(app->loop, SIGINT, on_signal, app);
  if (controller_start(app->ctrl, &err) != GPC_OK) {
    log_error("main", "start", KV_S("error", err.msg));
    return 1;
  }
  if (shell_start(app->rt, &err) != GPC_OK) {
    log_error("main", "leader election", KV_S("error", err.msg));
    return 1;
  }
  return 0;
}

static void teardown(struct app *app) {
  controller_free(app->ctrl);
  kube_client_free(app->client);
  shell_free(app->rt);
  gpc_loop_free(app->loop);
  templates_free(app->templates);
  kubeconfig_free(&app->kc);
  options_release(&app->opts);
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  if (argc > 1 && strcmp(argv[1], "render") == 0) return render_cmd_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "apply") == 0) return apply_cmd_main(argc - 1, argv + 1);

  struct app app;
  memset(&app, 0, sizeof app);
  struct gpc_error err = {0};
  options_init(&app.opts);
  if (options_parse(&app.opts, argc, argv, &err) != GPC_OK) {
    options_release(&app.opts);
    return config_error(err.msg);
  }
  if (app.opts.help || app.opts.version) {
    if (app.opts.help)
      options_usage(stdout, "gpu-policy-controller");
    else
      printf("gpu-policy-controller %s\n", GPC_VERSION);
    options_release(&app.opts);
    return 0;
  }
  if (log_configure(app.opts.log_level) != 0 || log_set_format_name(app.opts.log_format) != 0) {
    options_release(&app.opts);
    return config_error("invalid --log-level or --log-format");
  }
  char *ident = identity();
  int rc = setup(&app, ident);
  if (rc == 0) {
    log_info("main", "started", KV_S("version", GPC_VERSION), KV_S("namespace", app.opts.namespace),
             KV_S("server", kube_client_server(app.client)));
    if (gpc_loop_run(app.loop) != GPC_OK) rc = 1;
    log_info("main", "stopped");
  }
  teardown(&app);
  free(ident);
  return rc;
}
