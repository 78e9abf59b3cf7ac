/* options.c — flag table, parser and usage text (see options.h). */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "xmacro.h"

/* X(enum value, the argument word --help prints after the flag) (xmacro.h) */
#define OPT_TYPE_MAP(X)                                                                            \
  X(OPT_STRING, " string")                                                                         \
  X(OPT_BOOL, "")                                                                                  \
  X(OPT_DOUBLE, " float")                                                                          \
  X(OPT_INT, " int")
enum opt_type { OPT_TYPE_MAP(GPC_X_ENUM) };
static const char *const opt_type_args[] = {OPT_TYPE_MAP(GPC_X_NAME)};

/* One row per flag: the parser, the validator and --help all read it. */
struct opt_def {
  const char *name;
  enum opt_type type;
  size_t offset;
  const char *defval; /* shown in --help; NULL: no default */
  const char *help;
  /* Extra check of the parsed value; returns a reason or NULL when fine. */
  const char *(*check)(const struct gpc_options *o);
};

static const char *check_namespace(const struct gpc_options *o) {
  return options_valid_dns_label(o->namespace) ? NULL
                                               : "want an RFC 1123 label, e.g. gpu-policy-system";
}
static const char *check_le_namespace(const struct gpc_options *o) {
  return !o->leader_namespace || options_valid_dns_label(o->leader_namespace)
             ? NULL
             : "want an RFC 1123 label, e.g. gpu-policy-system";
}
static const char *check_metrics(const struct gpc_options *o) {
  return options_valid_bind_address(o->metrics_bind) ? NULL
                                                     : "want \"0\", \":PORT\" or \"HOST:PORT\"";
}
static const char *check_health(const struct gpc_options *o) {
  return options_valid_bind_address(o->health_bind) ? NULL
                                                    : "want \"0\", \":PORT\" or \"HOST:PORT\"";
}
static const char *check_level(const struct gpc_options *o) {
  static char why[256]; /* options are parsed once, on one thread */
  return log_check_spec(o->log_level, why, sizeof why);
}
static const char *check_format(const struct gpc_options *o) {
  return strcmp(o->log_format, "json") == 0 || strcmp(o->log_format, "text") == 0
             ? NULL
             : "want json or text";
}
static const char *check_qps(const struct gpc_options *o) {
  return o->qps > 0 && isfinite(o->qps) ? NULL : "want a number > 0";
}
static const char *check_pod_grace(const struct gpc_options *o) {
  return o->pod_grace_s >= 1 && o->pod_grace_s <= 86400 ? NULL : "want an integer from 1 to 86400";
}

static const char *check_burst(const struct gpc_options *o) {
  return o->burst >= 1 ? NULL : "want an integer >= 1";
}
static const char *check_nonneg(int v) {
  return v >= 0 ? NULL : "want an integer >= 0";
}
static const char *check_watch_timeout(const struct gpc_options *o) {
  return check_nonneg(o->watch_timeout_s);
}
static const char *check_positive(double v) {
  return v > 0 && isfinite(v) && v <= 3600 ? NULL : "want seconds, > 0 and <= 3600";
}
static const char *check_le_lease(const struct gpc_options *o) {
  return check_positive(o->leader_lease_s);
}
static const char *check_le_renew(const struct gpc_options *o) {
  return check_positive(o->leader_renew_s);
}
static const char *check_le_retry(const struct gpc_options *o) {
  return check_positive(o->leader_retry_s);
}
static const char *check_grace(const struct gpc_options *o) {
  return check_nonneg(o->shutdown_grace_s);
}

#define OFF(f) offsetof(struct gpc_options, f)
static const struct opt_def opt_table[] = {
    {"kubeconfig", OPT_STRING, OFF(kubeconfig), NULL,
     "path to a kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)", NULL},
    {"context", OPT_STRING, OFF(context), NULL, "kubeconfig context (default: current-context)",
     NULL},
    {"namespace", OPT_STRING, OFF(namespace), GPC_DEFAULT_NAMESPACE,
     "namespace of the operand DaemonSets", check_namespace},
    {"metrics-bind-address", OPT_STRING, OFF(metrics_bind), "127.0.0.1:8080",
     "address of /metrics; loopback by default (serve it off-pod through an authenticating proxy, "
     "docs/operations.md), \"0\" disables",
     check_metrics},
    {"health-probe-bind-address", OPT_STRING, OFF(health_bind), ":8081",
     "address of /healthz and /readyz, \"0\" disables", check_health},
    {"leader-elect", OPT_BOOL, OFF(leader_elect), "false",
     "elect a leader with a Lease so only one replica writes", NULL},
    {"leader-election-namespace", OPT_STRING, OFF(leader_namespace), NULL,
     "namespace of the leader-election Lease (default: --namespace); the install runs the "
     "controller in its own restricted namespace, apart from the privileged operands",
     check_le_namespace},
    {"leader-elect-lease-duration", OPT_DOUBLE, OFF(leader_lease_s), "15",
     "seconds a non-leader waits after the last renewal it saw before taking over", check_le_lease},
    {"leader-elect-renew-deadline", OPT_DOUBLE, OFF(leader_renew_s), "10",
     "seconds the leader keeps trying to renew before it stops writing", check_le_renew},
    {"leader-elect-retry-period", OPT_DOUBLE, OFF(leader_retry_s), "2",
     "seconds between attempts to acquire or renew the Lease", check_le_retry},
    {"templates-dir", OPT_STRING, OFF(templates_dir), NULL,
     "directory whose <operand>.yaml files override the built-in templates", NULL},
    {"log-level", OPT_STRING, OFF(log_level), "info",
     "error|warn|info|debug, with per-component overrides: info,informer=debug", check_level},
    {"log-format", OPT_STRING, OFF(log_format), "json", "json (one object a line) or text",
     check_format},
    {"qps", OPT_DOUBLE, OFF(qps), "50", "API requests per second (client-side limit)", check_qps},
    {"burst", OPT_INT, OFF(burst), "100", "API request burst above --qps", check_burst},
    {"watch-timeout", OPT_INT, OFF(watch_timeout_s), "0",
     "seconds a watch asks the server to stay open (0: random 300-600)", check_watch_timeout},
    {"shutdown-grace", OPT_INT, OFF(shutdown_grace_s), "10",
     "seconds SIGTERM waits for in-flight writes", check_grace},
    {"pod-grace-period", OPT_INT, OFF(pod_grace_s), "300",
     "seconds an operand pod may stay unscheduled, without a sandbox, failing an init container "
     "or starting before failingNodes lists it",
     check_pod_grace},
    {"help", OPT_BOOL, OFF(help), NULL, "print this help and exit", NULL},
    {"version", OPT_BOOL, OFF(version), NULL, "print the version and exit", NULL},
};
#undef OFF
#define OPT_COUNT (sizeof opt_table / sizeof opt_table[0])

void options_init(struct gpc_options *o) {
  memset(o, 0, sizeof *o);
  o->namespace = gpc_strdup(GPC_DEFAULT_NAMESPACE);
  o->metrics_bind = gpc_strdup("127.0.0.1:8080");
  o->health_bind = gpc_strdup(":8081");
  o->log_level = gpc_strdup("info");
  o->log_format = gpc_strdup("json");
  o->qps = 50;
  o->burst = 100;
  o->shutdown_grace_s = 10;
  o->pod_grace_s = 300;
  o->leader_lease_s = 15;
  o->leader_renew_s = 10;
  o->leader_retry_s = 2;
}

void options_release(struct gpc_options *o) {
  for (size_t i = 0; i < OPT_COUNT; i++)
    if (opt_table[i].type == OPT_STRING) free(*(char **)((char *)o + opt_table[i].offset));
  memset(o, 0, sizeof *o);
}

static const struct opt_def *find_opt(const char *name, size_t len) {
  for (size_t i = 0; i < OPT_COUNT; i++)
    if (strlen(opt_table[i].name) == len && strncmp(opt_table[i].name, name, len) == 0)
      return &opt_table[i];
  return NULL;
}

static int parse_bool(const char *v, bool *out) {
  if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
    *out = true;
    return 0;
  }
  if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
    *out = false;
    return 0;
  }
  return -1;
}

/* Stores `v` into the field of `d`; returns a reason on a malformed value. */
static const char *store_value(struct gpc_options *o, const struct opt_def *d, const char *v) {
  void *field = (char *)o + d->offset;
  char *end = NULL;
  switch (d->type) {
  case OPT_STRING:
    free(*(char **)field);
    *(char **)field = gpc_strdup(v);
    return NULL;
  case OPT_BOOL:
    return parse_bool(v, (bool *)field) == 0 ? NULL : "want true or false";
  case OPT_DOUBLE: {
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) return "want a number";
    *(double *)field = x;
    return NULL;
  }
  case OPT_INT: {
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < -1000000000L || x > 1000000000L) return "want an integer";
    *(int *)field = (int)x;
    return NULL;
  }
  }
  return "unsupported flag type";
}

int options_parse(struct gpc_options *o, int argc, char **argv, struct gpc_error *err) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
      return gpc_fail(err, GPC_E_INVAL, "unexpected argument \"%s\" (flags start with --)", arg);
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const struct opt_def *d = find_opt(name, nlen);
    if (!d) return gpc_fail(err, GPC_E_INVAL, "unknown flag: --%.*s", (int)nlen, name);
    const char *val = eq ? eq + 1 : NULL;
    if (!val && d->type == OPT_BOOL) {
      val = "true";
    } else if (!val) {
      if (i + 1 >= argc) return gpc_fail(err, GPC_E_INVAL, "flag needs an argument: --%s", d->name);
      val = argv[++i];
    }
    const char *why = store_value(o, d, val);
    if (!why && d->check) why = d->check(o);
    if (why)
      return gpc_fail(err, GPC_E_INVAL, "--%s: invalid value \"%s\" (%s)", d->name, val, why);
  }
  if (!(o->leader_lease_s > o->leader_renew_s && o->leader_renew_s > 1.2 * o->leader_retry_s))
    return gpc_fail(err, GPC_E_INVAL,
                    "--leader-elect-renew-deadline: want --leader-elect-lease-duration > "
                    "--leader-elect-renew-deadline > 1.2 x --leader-elect-retry-period");
  return GPC_OK;
}

void options_usage(FILE *out, const char *prog) {
  fprintf(out,
          "Usage: %s [flags]\n"
          "       %s render -f policy.yaml [--nodes nodes.json] [--templates-dir DIR] "
          "[--namespace NS]\n"
          "       %s apply -f FILE|DIR|- [--kubeconfig PATH] [--context NAME] [-n NS]\n\n"
          "Reconciles ClusterGPUPolicy objects (gpupolicy.dev/v1alpha1) into GPU operand\n"
          "DaemonSets rolled out node by node.\n\nFlags:\n",
          prog, prog, prog);
  for (size_t i = 0; i < OPT_COUNT; i++) {
    const struct opt_def *d = &opt_table[i];
    fprintf(out, "  --%s%s\n        %s", d->name, opt_type_args[d->type], d->help);
    if (d->defval) fprintf(out, " (default \"%s\")", d->defval);
    fputc('\n', out);
  }
}

bool options_valid_bind_address(const char *s) {
  if (!s || !*s) return false;
  if (strcmp(s, "0") == 0) return true;
  const char *colon = strrchr(s, ':');
  if (!colon || colon[1] == '\0') return false;
  if (s[0] == '[' && (colon == s || colon[-1] != ']')) return false;
  for (const char *p = colon + 1; *p; p++)
    if (!isdigit((unsigned char)*p)) return false;
  if (strlen(colon + 1) > 5 || atoi(colon + 1) > 65535) return false;
  for (const char *p = s; p < colon; p++)
    if (isspace((unsigned char)*p)) return false;
  return true;
}

bool options_valid_dns_label(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
      return false;
  return true;
}
