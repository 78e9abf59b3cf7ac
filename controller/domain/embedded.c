/* embedded.c — lookup in the generated table of embedded templates. */
#include "embedded.h"

#include <string.h>

const struct gpc_embedded_file *gpc_embedded_find(const char *name) {
  for (const struct gpc_embedded_file *f = gpc_embedded_templates; f->name; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}
