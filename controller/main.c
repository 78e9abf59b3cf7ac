/* main.c — gpu-policy-controller entry point.
 *
 * Parses flags (options.h), configures logging, dispatches the `render`
 * subcommand, then runs the controller until SIGTERM/SIGINT. Exit codes:
 * 0 clean shutdown or --help/--version, 1 runtime failure, 2 configuration
 * error (one line on stderr naming the flag or file).
 */
#include "alloc.h"
#include "log.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

#define EXIT_CONFIG 2

static int config_error(const char *msg) {
  fprintf(stderr, "gpu-policy-controller: %s\n", msg);
  return EXIT_CONFIG;
}

int main(int argc, char **argv) {
  gpc_alloc_init();

  struct gpc_options opts;
  struct gpc_error err = {0};
  options_init(&opts);
  if (options_parse(&opts, argc, argv, &err) != GPC_OK) {
    options_release(&opts);
    return config_error(err.msg);
  }
  if (opts.help) {
    options_usage(stdout, "gpu-policy-controller");
    options_release(&opts);
    return 0;
  }
  if (opts.version) {
    printf("gpu-policy-controller %s\n", GPC_VERSION);
    options_release(&opts);
    return 0;
  }
  if (log_configure(opts.log_level) != 0 || log_set_format_name(opts.log_format) != 0) {
    options_release(&opts);
    return config_error("invalid --log-level or --log-format");
  }
  log_error("main", "controller not built yet");
  options_release(&opts);
  return 1;
}
