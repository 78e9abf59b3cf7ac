/* embedded.h — operand templates compiled into the binary.
 *
 * The table is generated at build time from the templates/ YAML files by
 * scripts/embed-templates.py and ends with an entry whose name is NULL.
 * The data is static and read-only; callers never free it.
 */
#ifndef GPC_EMBEDDED_H
#define GPC_EMBEDDED_H

#include <stddef.h>

struct gpc_embedded_file {
  const char *name; /* basename, e.g. "driver.yaml" */
  const char *data; /* file contents, not NUL-terminated in general */
  size_t len;
};

extern const struct gpc_embedded_file gpc_embedded_templates[];

/* Returns the embedded file called `name`, or NULL when there is none.
 * Static data: never freed, valid for the life of the process. */
const struct gpc_embedded_file *gpc_embedded_find(const char *name);

#endif
