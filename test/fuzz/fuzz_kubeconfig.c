/* fuzz_kubeconfig.c — kubeconfig parsing: errors, never crashes or leaks.
 * Relative file references resolve under a directory that does not exist. */
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "kubeconfig.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    gpc_alloc_init();
    log_configure("error");
    init = 1;
  }
  struct kubeconfig kc;
  struct gpc_error err;
  if (kubeconfig_load_mem(&kc, (const char *)data, size, NULL, "/nonexistent-fuzz-dir", &err) ==
      GPC_OK)
    kubeconfig_free(&kc);
  if (kubeconfig_load_mem(&kc, (const char *)data, size, "prod", NULL, &err) == GPC_OK)
    kubeconfig_free(&kc);
  return 0;
}
