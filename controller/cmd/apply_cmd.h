/* apply_cmd.h — `gpu-policy-controller apply`: server-side apply of manifest
 * files through the project's own client, for machines without kubectl
 * (scripts/demo.sh uses it then).
 *
 *   gpu-policy-controller apply [--kubeconfig P] [--context C] [-n NS] -f FILE|DIR|- ...
 *
 * Every YAML/JSON document (a `kind: *List` is expanded into its items; a
 * directory contributes its *.yaml, *.yml and *.json files in name order, not
 * recursively, as kubectl) is applied in order with
 * PATCH application/apply-patch+yaml, fieldManager gpu-policy-controller-cli,
 * force=true. apiVersion/kind become a resource through discovery
 * (GET /api/v1, /apis/G/V, cached per group version); once this run has
 * applied a CRD, a kind not served yet is looked up again for up to 10 s.
 * Prints one line per object, as kubectl does:
 *   customresourcedefinition.apiextensions.k8s.io/clustergpupolicies.gpupolicy.dev created
 *   clustergpupolicy.gpupolicy.dev/default unchanged
 * ("unchanged" when the resourceVersion did not move).
 * Exit: 0 all applied, 1 some object failed (one "error: ..." line each),
 * 2 usage or unreadable input.
 */
#ifndef GPC_APPLY_CMD_H
#define GPC_APPLY_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "errors.h"

int apply_cmd_main(int argc, char **argv);
int apply_cmd_main_io(int argc, char **argv, FILE *out, FILE *errf);

/* ---- pure helpers ---- */

/* Appends the documents of `path` (file, directory or "-" for stdin) to
 * `docs` as {"source": "file:N", "object": {...}}. */
int apply_cmd_load_path(const char *path, json_t *docs, struct gpc_error *err);
/* The plural resource serving `kind` in an APIResourceList (subresources
 * skipped), or NULL; *namespaced gets its scope. Borrowed from `list`. */
const char *apply_cmd_discovery_find(const json_t *list, const char *kind, bool *namespaced);
/* "apps/v1" -> group "apps", version "v1"; "v1" -> "", "v1". Caller frees
 * both. GPC_E_INVAL when malformed. */
int apply_cmd_split_api_version(const char *api_version, char **group, char **version);

#endif
