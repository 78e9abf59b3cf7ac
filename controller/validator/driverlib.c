/* driverlib.c — dlopen by name, then by absolute path in the toolkit's dirs. */
#include "driverlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#else
#define MULTIARCH "x86_64-linux-gnu"
#endif

const char *const driverlib_dirs[] = {
    "/usr/lib/" MULTIARCH, /* Debian, Ubuntu hosts */
    "/usr/lib64",          /* RHEL, Rocky, Amazon Linux, SLES hosts */
    "/lib/" MULTIARCH,     "/lib64", "/usr/lib", NULL,
};

void *driverlib_open(const char *name, int flags, const char **opened, struct gpc_error *err) {
  static char path[4096];
  void *dl = dlopen(name, flags);
  if (dl) {
    *opened = name;
    return dl;
  }
  char first[512];
  const char *why = dlerror();
  snprintf(first, sizeof first, "%s", why ? why : name);
  if (strchr(name, '/')) {
    gpc_fail(err, GPC_E_NOT_FOUND, "%s", first);
    return NULL;
  }
  char tried[512] = "";
  size_t used = 0;
  for (size_t i = 0; driverlib_dirs[i]; i++) {
    snprintf(path, sizeof path, "%s/%s", driverlib_dirs[i], name);
    int n =
        snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", driverlib_dirs[i]);
    if (n > 0 && (size_t)n < sizeof tried - used) used += (size_t)n;
    if (access(path, F_OK) != 0) continue;
    dl = dlopen(path, flags);
    if (dl) {
      *opened = path;
      return dl;
    }
    why = dlerror();
    gpc_fail(err, GPC_E_NOT_FOUND, "%s", why ? why : path);
    return NULL;
  }
  gpc_fail(err, GPC_E_NOT_FOUND, "%s (not in %s either)", first, tried);
  return NULL;
}
