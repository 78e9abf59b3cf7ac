/* templates.h — the operand templates, loaded and checked.
 *
 * One YAML file per operand, named after it (driver.yaml,
 * container-toolkit.yaml, device-plugin.yaml, dcgm-exporter.yaml,
 * validator.yaml): plain Kubernetes objects, exactly one of them a DaemonSet
 * whose first container is the operand's main container (the one render
 * puts the image, env, args and resources on). The files are compiled into
 * the binary (embedded.h); a --templates-dir overrides them file by file, so
 * a site can replace one operand's template and keep the others.
 *
 * Does not own: any transform (render.c).
 *
 * Memory: templates_load() returns a new set owned by the caller
 * (templates_free()); templates_get() returns a borrowed array that lives as
 * long as the set. The set is immutable after loading, so one set can serve
 * every reconcile.
 */
#ifndef GPC_TEMPLATES_H
#define GPC_TEMPLATES_H

#include <jansson.h>

#include "errors.h"
#include "policy.h"

/* Largest template file accepted. */
#define GPC_TEMPLATE_MAX_BYTES (1024 * 1024)

struct gpc_templates;

/* Loads every operand's template: from `dir`/<operand>.yaml when `dir` is
 * non-NULL and that file exists, else the embedded copy. Each document must
 * be an object with apiVersion, kind and metadata.name; each file must hold
 * exactly one DaemonSet with at least one container. Returns GPC_OK with
 * *out set, or an error whose message names the file (and the line for
 * YAML errors), with *out NULL. */
int templates_load(const char *dir, struct gpc_templates **out, struct gpc_error *err);

/* The documents of `op`'s template: a JSON array of objects (borrowed). */
const json_t *templates_get(const struct gpc_templates *t, enum gpc_operand op);

/* Where `op`'s template came from: "embedded:driver.yaml" or the file path. */
const char *templates_source(const struct gpc_templates *t, enum gpc_operand op);

void templates_free(struct gpc_templates *t);

#endif
