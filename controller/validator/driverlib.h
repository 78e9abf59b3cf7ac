/* driverlib.h — finding the driver's libraries however the container
 * toolkit put them into the container.
 *
 * The NVIDIA container toolkit mounts libnvidia-ml.so.1 and libcuda.so.1 at
 * the host's own paths: /usr/lib/x86_64-linux-gnu on Debian and Ubuntu
 * hosts, /usr/lib64 on the RHEL family. Its update-ldcache hook then runs
 * ldconfig in the container, but (toolkit v1.16/v1.17) only rebuilds
 * /etc/ld.so.cache when the image already has one
 * (cmd/nvidia-cdi-hook/update-ldcache/update-ldcache.go: no cache -> `-N`).
 * The image ships a cache and an ld.so.conf for that; this module is the
 * second line: when dlopen by name fails, the same name is tried in each
 * directory a toolkit may have used.
 */
#ifndef GPC_VALIDATOR_DRIVERLIB_H
#define GPC_VALIDATOR_DRIVERLIB_H

#include "errors.h"

/* The directories tried after the plain name, NULL-terminated. */
extern const char *const driverlib_dirs[];

/* dlopen(name, flags); when that fails and `name` has no '/', dlopen of
 * "<dir>/<name>" for each of driverlib_dirs. Returns the handle, with
 * *opened set to the name or the full path that loaded (static storage,
 * valid until the next call), or NULL with err set: the error of a fallback
 * file that exists but does not load (a missing dependency, the wrong
 * architecture) when there is one, else the plain name's dlerror() followed
 * by the directories tried. */
void *driverlib_open(const char *name, int flags, const char **opened, struct gpc_error *err);

#endif
