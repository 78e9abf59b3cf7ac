/* fuzz_policy.c — policy_from_json on arbitrary JSON.
 *
 * Any input must give either a fully populated policy (every pointer the
 * renderer dereferences is set) or an error message; never a crash, a leak
 * or an unterminated message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"

static void check_policy(const struct gpc_policy *p) {
  if (!p->name || !p->uid || !p->node_selector || !p->daemonsets.tolerations ||
      !p->daemonsets.labels || !p->daemonsets.annotations || !p->daemonsets.max_unavailable ||
      !p->toolkit.runtime_config || !p->dcgm_exporter.service_monitor.interval)
    abort();
  for (int i = 0; i < GPC_OP_COUNT; i++) {
    const struct gpc_operand_spec *s = &p->operands[i];
    if (!s->image_ref || !s->env || !s->args || !s->resources || !s->image_pull_secrets) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialized;
  if (!initialized) {
    gpc_alloc_init();
    initialized = 1;
  }
  json_error_t jerr;
  json_t *obj = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (!obj) return 0;
  struct gpc_policy *p = NULL;
  struct gpc_error err;
  memset(&err, 0, sizeof err);
  if (policy_from_json(obj, &p, &err) == GPC_OK) {
    check_policy(p);
    policy_free(p);
  } else if (p != NULL || memchr(err.msg, '\0', sizeof err.msg) == NULL || err.msg[0] == '\0') {
    abort();
  }
  json_decref(obj);
  return 0;
}
