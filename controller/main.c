/* main.c — gpu-policy-controller entry point (filled in by the reconciler). */
#include "alloc.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  gpc_alloc_init();
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("gpu-policy-controller %s\n", GPC_VERSION);
    return 0;
  }
  log_error("main", "controller not built yet");
  return 1;
}
