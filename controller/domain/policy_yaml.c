/* policy_yaml.c — reading a ClusterGPUPolicy from a YAML or JSON file.
 *
 * Separate from policy.c so that code decoding policies from the API server
 * does not link the YAML reader. */
#include "policy.h"
#include "yaml2json.h"

int policy_from_file(const char *path, struct gpc_policy **out, struct gpc_error *err) {
  *out = NULL;
  json_t *obj = yaml2json_file(path, 0, err);
  if (!obj) return err ? (int)err->code : GPC_E_INVAL;
  int rc = policy_from_json(obj, out, err);
  json_decref(obj);
  return rc;
}
