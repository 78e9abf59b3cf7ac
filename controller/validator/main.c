/* main.c — gpu-policy-validator: command line, --wait/--hold, outputs.
 *
 * The checks themselves live in checks.c; this file decides how often to
 * run them, where the results go (stdout, the status file, the termination
 * log) and with which exit code the process ends.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "checks.h"
#include "log.h"
#include "report.h"
#include "statefile.h"
#include "phase.h"
#include "vectoradd.h"

#define DEFAULT_TERMINATION_LOG "/dev/termination-log"

static const char usage_text[] =
    "usage: gpu-policy-validator [options]\n"
    "       gpu-policy-validator --probe --status-file PATH\n"
    "\n"
    "Checks that this node's GPU stack works: NVML (driver version, GPUs, memory,\n"
    "temperature), the CUDA driver (version, compute capability), a vectorAdd\n"
    "kernel JIT-compiled from embedded PTX and verified on the host on every GPU,\n"
    "and optionally that the device plugin advertises the GPUs to Kubernetes.\n"
    "\n"
    "  --json                 print one JSON object instead of text lines\n"
    "  --wait                 retry until the checks pass or --timeout passes\n"
    "  --timeout SECONDS      limit for --wait (default 300)\n"
    "  --interval SECONDS     pause between --wait attempts (default 5)\n"
    "  --phase-timeout SECONDS  limit for each check process (NVML, one device's\n"
    "                         vectorAdd, the device-plugin query; default 120)\n"
    "  --recheck-interval SECONDS  with --hold, how often a busy GPU is tried again\n"
    "                         (default 60)\n"
    "  --check-plugin         require node allocatable nvidia.com/gpu >= GPU count\n"
    "  --check-allocation     run a one-shot pod on this node that asks for\n"
    "                         nvidia.com/gpu: 1 and runs the checks there; it is\n"
    "                         deleted afterwards (needs --namespace and --pod-name)\n"
    "  --node NAME            node for --check-plugin/--check-allocation\n"
    "                         (default $NODE_NAME)\n"
    "  --namespace NS         the validator's namespace (default $POD_NAMESPACE)\n"
    "  --pod-name NAME        the validator's Pod (default $POD_NAME): the one-shot\n"
    "                         pod copies its image, runtime class, tolerations and\n"
    "                         security context and is owned by it\n"
    "  --kubeconfig PATH      API access for --check-plugin (default: in-cluster,\n"
    "                         else $KUBECONFIG or ~/.kube/config)\n"
    "  --hold                 after success keep running until SIGTERM (exit 0)\n"
    "  --status-file PATH     write each attempt's JSON report there (atomically)\n"
    "  --probe                exit 0 iff --status-file records success (readiness)\n"
    "  --termination-log PATH write the failure reason there (default\n"
    "                         /dev/termination-log when writable)\n"
    "  --nvml-lib PATH        NVML library (default libnvidia-ml.so.1, env GPC_NVML_LIB)\n"
    "  --cuda-lib PATH        CUDA driver library (default libcuda.so.1, env GPC_CUDA_LIB)\n"
    "  --elements N           vectorAdd elements per GPU (default 4194304)\n"
    "  --dump-ptx             print the embedded vectorAdd PTX and exit\n"
    "  --help, --version\n"
    "\n"
    "Exit codes: 0 ok, 2 usage, 10 no driver library, 11 NVML error, 12 no device,\n"
    "13 CUDA error, 14 wrong result, 15 device plugin not advertising the GPUs,\n"
    "16 timeout in --wait (the reason carries the last failure), or a check process\n"
    "still running at its phase's limit (killed; the reason names the phase),\n"
    "17 GPU busy (not a failure: in use by others; the probe counts it as ready),\n"
    "18 allocation failed (the one-shot pod was not admitted, did not finish, or\n"
    "its checks failed).\n";

struct cli {
  struct val_options checks;
  bool json, wait, hold, probe, dump_ptx;
  double timeout_s, interval_s, recheck_s;
  const char *status_file;
  const char *termination_log;
};

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int signo) {
  stop_signal = signo;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  fprintf(stderr, "gpu-policy-validator: ");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\ntry gpu-policy-validator --help\n");
  return VAL_USAGE;
}

/* Seconds as a finite number in [min_s, 1e6]. */
static bool parse_seconds(const char *s, double min_s, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < min_s || v > 1e6) return false;
  *out = v;
  return true;
}

static bool parse_elements(const char *s, size_t *out) {
  char *end = NULL;
  errno = 0;
  if (*s < '0' || *s > '9') return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v == 0 || v > VECTORADD_MAX_ELEMENTS) return false;
  *out = (size_t)v;
  return true;
}

enum {
  OPT_JSON = 256,
  OPT_WAIT,
  OPT_TIMEOUT,
  OPT_INTERVAL,
  OPT_CHECK_PLUGIN,
  OPT_NODE,
  OPT_KUBECONFIG,
  OPT_HOLD,
  OPT_STATUS_FILE,
  OPT_TERMINATION_LOG,
  OPT_NVML_LIB,
  OPT_CUDA_LIB,
  OPT_ELEMENTS,
  OPT_PROBE,
  OPT_DUMP_PTX,
  OPT_HELP,
  OPT_VERSION,
  OPT_PHASE_TIMEOUT,
  OPT_RECHECK,
  OPT_CHECK_ALLOCATION,
  OPT_NAMESPACE,
  OPT_POD_NAME,
};

static const struct option long_opts[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"check-plugin", no_argument, NULL, OPT_CHECK_PLUGIN},
    {"node", required_argument, NULL, OPT_NODE},
    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
    {"hold", no_argument, NULL, OPT_HOLD},
    {"status-file", required_argument, NULL, OPT_STATUS_FILE},
    {"termination-log", required_argument, NULL, OPT_TERMINATION_LOG},
    {"nvml-lib", required_argument, NULL, OPT_NVML_LIB},
    {"cuda-lib", required_argument, NULL, OPT_CUDA_LIB},
    {"elements", required_argument, NULL, OPT_ELEMENTS},
    {"probe", no_argument, NULL, OPT_PROBE},
    {"dump-ptx", no_argument, NULL, OPT_DUMP_PTX},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"phase-timeout", required_argument, NULL, OPT_PHASE_TIMEOUT},
    {"recheck-interval", required_argument, NULL, OPT_RECHECK},
    {"check-allocation", no_argument, NULL, OPT_CHECK_ALLOCATION},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"pod-name", required_argument, NULL, OPT_POD_NAME},
    {NULL, 0, NULL, 0},
};

static const char *env_or_null(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* Fills *cli from argv and the environment. Returns -1 to go on, or an exit
 * code (0 after --help/--version, VAL_USAGE on a bad command line). */
static int parse_cli(int argc, char **argv, struct cli *cli) {
  memset(cli, 0, sizeof *cli);
  cli->timeout_s = 300;
  cli->interval_s = 5;
  cli->recheck_s = 60;
  cli->checks.phase_timeout_s = 120;
  cli->checks.elements = VECTORADD_DEFAULT_ELEMENTS;
  cli->checks.api_timeout_ms = 10000;
  cli->checks.nvml_lib = env_or_null("GPC_NVML_LIB");
  cli->checks.cuda_lib = env_or_null("GPC_CUDA_LIB");
  cli->checks.node = env_or_null("NODE_NAME");
  cli->checks.ns = env_or_null("POD_NAMESPACE");
  cli->checks.pod = env_or_null("POD_NAME");
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
    switch (ch) {
    case OPT_JSON:
      cli->json = true;
      break;
    case OPT_WAIT:
      cli->wait = true;
      break;
    case OPT_TIMEOUT:
      if (!parse_seconds(optarg, 0, &cli->timeout_s))
        return usage_error("--timeout: \"%s\" is not a number of seconds", optarg);
      break;
    case OPT_INTERVAL:
      if (!parse_seconds(optarg, 0.01, &cli->interval_s))
        return usage_error("--interval: \"%s\" is not a number of seconds >= 0.01", optarg);
      break;
    case OPT_PHASE_TIMEOUT:
      if (!parse_seconds(optarg, 0.01, &cli->checks.phase_timeout_s))
        return usage_error("--phase-timeout: \"%s\" is not a number of seconds >= 0.01", optarg);
      break;
    case OPT_RECHECK:
      if (!parse_seconds(optarg, 0.01, &cli->recheck_s))
        return usage_error("--recheck-interval: \"%s\" is not a number of seconds >= 0.01", optarg);
      break;
    case OPT_CHECK_PLUGIN:
      cli->checks.check_plugin = true;
      break;
    case OPT_CHECK_ALLOCATION:
      cli->checks.check_allocation = true;
      break;
    case OPT_NAMESPACE:
      cli->checks.ns = optarg;
      break;
    case OPT_POD_NAME:
      cli->checks.pod = optarg;
      break;
    case OPT_NODE:
      cli->checks.node = optarg;
      break;
    case OPT_KUBECONFIG:
      cli->checks.kubeconfig = optarg;
      break;
    case OPT_HOLD:
      cli->hold = true;
      break;
    case OPT_STATUS_FILE:
      cli->status_file = optarg;
      break;
    case OPT_TERMINATION_LOG:
      cli->termination_log = optarg;
      break;
    case OPT_NVML_LIB:
      cli->checks.nvml_lib = optarg;
      break;
    case OPT_CUDA_LIB:
      cli->checks.cuda_lib = optarg;
      break;
    case OPT_ELEMENTS:
      if (!parse_elements(optarg, &cli->checks.elements))
        return usage_error("--elements: \"%s\" is not an integer in 1..268435456", optarg);
      break;
    case OPT_PROBE:
      cli->probe = true;
      break;
    case OPT_DUMP_PTX:
      cli->dump_ptx = true;
      break;
    case OPT_HELP:
      fputs(usage_text, stdout);
      return 0;
    case OPT_VERSION:
      printf("gpu-policy-validator %s\n", GPC_VERSION);
      return 0;
    default:
      return usage_error("unknown or incomplete option %s", argv[optind - 1]);
    }
  }
  if (optind < argc) return usage_error("unexpected argument %s", argv[optind]);
  if (cli->probe && !cli->status_file) return usage_error("--probe needs --status-file");
  if (cli->checks.check_plugin && !cli->checks.node)
    return usage_error("--check-plugin needs --node or $NODE_NAME");
  if (cli->checks.check_allocation && (!cli->checks.node || !cli->checks.ns || !cli->checks.pod))
    return usage_error(
        "--check-allocation needs --node, --namespace and --pod-name (or $NODE_NAME, "
        "$POD_NAMESPACE, $POD_NAME)");
  if (!cli->termination_log && access(DEFAULT_TERMINATION_LOG, W_OK) == 0)
    cli->termination_log = DEFAULT_TERMINATION_LOG;
  return -1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps `seconds` unless SIGTERM/SIGINT arrives first. */
static void pause_for(double seconds) {
  double until = now_s() + seconds;
  while (!stop_signal) {
    double left = until - now_s();
    if (left <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)left,
                          .tv_nsec = (long)((left - (double)(time_t)left) * 1e9)};
    nanosleep(&ts, NULL); /* EINTR: the loop re-checks stop_signal */
  }
}

static void write_status(const struct cli *cli, const struct val_report *r, int attempt) {
  if (!cli->status_file) return;
  json_t *o = report_json(r);
  json_object_set_new(o, "attempt", json_integer(attempt));
  struct gpc_error err = {0};
  if (statefile_write(cli->status_file, o, &err) != GPC_OK)
    log_error("validator", "cannot write status file", KV_S("error", err.msg));
  json_decref(o);
}

/* The margin past --timeout before a still-running attempt is cut off: the
 * timeout itself, clamped to 1..30 s, so a short --timeout in tests stays
 * short and a real GPU's slow first JIT is never cut off. */
static double attempt_margin(double timeout_s) {
  return timeout_s < 1 ? 1 : timeout_s > 30 ? 30 : timeout_s;
}

/* One attempt, no check process running past `deadline`. Returns false when
 * a killed check process could not be reaped (stuck in the driver): trying
 * again would only add another one. */
static bool attempt(const struct cli *cli, double deadline, struct val_report *r, int n) {
  struct val_limits lim = {.deadline = deadline, .stop = &stop_signal};
  report_init(r);
  checks_run(&cli->checks, &lim, r);
  write_status(cli, r, n);
  return !lim.unreaped;
}

/* Runs the checks once, or until success (or busy)/timeout/signal with
 * --wait. Leaves the last attempt's report in *r. */
static void run_attempts(const struct cli *cli, struct val_report *r) {
  double start = now_s();
  double deadline = start + cli->timeout_s + attempt_margin(cli->timeout_s);
  for (int n = 1;; n++) {
    bool can_retry = attempt(cli, deadline, r, n);
    if (report_outcome_ready(r->exit_code) || !cli->wait || stop_signal) return;
    double elapsed = now_s() - start;
    if (!can_retry || elapsed + cli->interval_s > cli->timeout_s) {
      /* A check killed at its limit already says "Timeout: phase ...". */
      if (r->exit_code == VAL_TIMEOUT) return;
      char *last = gpc_strdup(r->reason);
      report_fail(r, VAL_TIMEOUT, "no success within %gs (%d attempts), last failure: %s",
                  cli->timeout_s, n, last);
      free(last);
      write_status(cli, r, n);
      return;
    }
    log_warn("validator", "check failed, retrying", KV_I("attempt", n), KV_S("reason", r->reason),
             KV_D("retryInSeconds", cli->interval_s));
    pause_for(cli->interval_s);
    if (stop_signal) return;
    report_release(r);
  }
}

static void print_report(const struct cli *cli, const struct val_report *r) {
  if (cli->json) {
    json_t *o = report_json(r);
    char *s = json_dumps(o, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    report_print_text(r, stdout);
  }
  fflush(stdout);
}

/* --hold: stay up (and Ready) until the kubelet stops the pod. The signals
 * are blocked between the check and sigsuspend so none can be missed. */
static void hold_until_signal(void) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &old);
  while (!stop_signal)
    sigsuspend(&old);
  sigprocmask(SIG_SETMASK, &old, NULL);
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

static int probe(const struct cli *cli) {
  struct gpc_error why = {0};
  int rc = statefile_probe(cli->status_file, &why);
  if (rc != 0)
    printf("validator not ready: %s\n", why.msg);
  else if (strncmp(why.msg, "GPUBusy:", 8) == 0)
    printf("validator ready, GPU busy: %s\n", why.msg);
  return rc;
}

static void write_termination_log(const struct cli *cli, const struct val_report *r) {
  if (r->exit_code == VAL_OK || !cli->termination_log) return;
  struct gpc_error err = {0};
  if (statefile_termlog_write(cli->termination_log, r->reason, &err) != GPC_OK) {
    /* A full or read-only disk must not hide the outcome: it is still on
     * stdout and in the exit code. */
    log_error("validator", "cannot write termination log", KV_S("error", err.msg));
    fprintf(stderr, "gpu-policy-validator: %s\n", err.msg);
  }
}

/* --hold after a busy outcome: the checks run again every --recheck-interval
 * (each in its own processes, so nothing is held in between) until they
 * pass; a real failure then ends the hold with its code. Returns the exit
 * code to hold with (0 or VAL_BUSY after a signal), or the failure's. */
static int recheck_busy(const struct cli *cli, int attempts) {
  int rc = VAL_BUSY;
  while (rc == VAL_BUSY && !stop_signal) {
    pause_for(cli->recheck_s);
    if (stop_signal) break;
    struct val_report r;
    double deadline = now_s() + cli->timeout_s + attempt_margin(cli->timeout_s);
    attempt(cli, deadline, &r, ++attempts);
    if (stop_signal && !report_outcome_ready(r.exit_code)) {
      report_release(&r);
      break;
    }
    rc = r.exit_code;
    log_info("validator", rc == VAL_BUSY ? "GPU still busy" : "busy GPU checked again",
             KV_S("result", report_result_name(rc)), KV_S("reason", r.reason ? r.reason : ""));
    if (!report_outcome_ready(rc)) {
      print_report(cli, &r);
      write_termination_log(cli, &r);
    }
    report_release(&r);
  }
  return rc == VAL_BUSY ? 0 : rc;
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  log_configure(env_or_null("GPC_LOG") ? getenv("GPC_LOG") : "info");
  struct cli cli;
  int rc = parse_cli(argc, argv, &cli);
  if (rc >= 0) return rc;
  if (cli.probe) return probe(&cli);
  if (cli.dump_ptx) {
    fputs(vectoradd_ptx, stdout);
    return 0;
  }
  install_signals();
  struct val_report r;
  run_attempts(&cli, &r);
  print_report(&cli, &r);
  rc = r.exit_code;
  bool holding = report_outcome_ready(rc) && cli.hold && !stop_signal;
  if (!holding) write_termination_log(&cli, &r);
  report_release(&r);
  if (holding) {
    if (rc == VAL_BUSY) {
      log_info("validator", "GPU busy, holding and checking again",
               KV_D("recheckSeconds", cli.recheck_s));
      rc = recheck_busy(&cli, 1);
      if (rc != VAL_OK) return rc;
    }
    log_info("validator", "checks passed, holding until SIGTERM");
    hold_until_signal();
    return VAL_OK;
  }
  return rc;
}
