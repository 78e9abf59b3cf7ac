/* options.h — the controller's command-line flags, as one declarative table.
 *
 * Owns: parsing argv into struct gpc_options (kubebuilder flag names, design.md
 * §5), validating every value, and printing --help from the same table, so
 * the usage text can never drift from what is parsed.
 *
 * Does not own: acting on the flags (main.c), the `render` subcommand (it has
 * its own flags, render_cmd.h).
 *
 * Accepted forms: `--flag value`, `--flag=value`; booleans also bare
 * (`--leader-elect`) or `--leader-elect=false`. Anything else — unknown flag,
 * missing or bad value, positional argument — is a configuration error with
 * one line naming the flag; main exits 2 on it.
 *
 * Memory: every string in struct gpc_options is owned by it (options_release).
 */
#ifndef GPC_OPTIONS_H
#define GPC_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

#include "errors.h"

#define GPC_DEFAULT_NAMESPACE "gpu-policy-system"

struct gpc_options {
  char *kubeconfig;       /* NULL: $KUBECONFIG / in-cluster / ~/.kube/config */
  char *context;          /* NULL: current-context */
  char *namespace;        /* where operands live, default gpu-policy-system */
  char *metrics_bind;     /* default "127.0.0.1:8080" (loopback: design.md §7); "0" disables */
  char *health_bind;      /* default ":8081"; "0" disables */
  bool leader_elect;      /* default false */
  char *leader_namespace; /* the Lease's namespace; NULL: namespace */
  /* Lease timings in seconds (kube-controller-manager's flag names), default
   * 15 / 10 / 2; must satisfy lease > renew deadline > 1.2 x retry. */
  double leader_lease_s;
  double leader_renew_s;
  double leader_retry_s;
  char *templates_dir;  /* NULL: embedded templates */
  char *log_level;      /* log_configure() spec, default "info" */
  char *log_format;     /* "json" (default) or "text" */
  double qps;           /* client-side rate, default 50, > 0 */
  int burst;            /* default 100, >= 1 */
  int watch_timeout_s;  /* 0 = the informer's randomized default */
  int shutdown_grace_s; /* how long SIGTERM waits for in-flight writes, default 10 */
  int pod_grace_s;      /* --pod-grace-period: seconds a pod may stay unscheduled, without a
                         * sandbox, failing an init container or starting before it counts as
                         * failing; default 300 */
  bool help;
  bool version;
};

/* Sets the defaults (all strings owned). */
void options_init(struct gpc_options *o);
/* Parses argv[1..argc-1] into `o` (call options_init first). Returns GPC_OK,
 * or GPC_E_INVAL with err->msg one line naming the flag, e.g.
 * `--qps: invalid value "fast" (want a number > 0)`. */
int options_parse(struct gpc_options *o, int argc, char **argv, struct gpc_error *err);
/* Frees the strings and zeroes the struct. */
void options_release(struct gpc_options *o);
/* Writes the usage text (flags, defaults, one line of help each). */
void options_usage(FILE *out, const char *prog);

/* A bind address is "0" (disabled), ":PORT", "HOST:PORT" or "[V6]:PORT"
 * with 0 <= PORT <= 65535. */
bool options_valid_bind_address(const char *s);
/* RFC 1123 label: lower-case alphanumerics and '-', 1..63 chars, no leading
 * or trailing '-'. */
bool options_valid_dns_label(const char *s);

#endif
