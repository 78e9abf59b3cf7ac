/* cuda.c — dlopen'd CUDA driver API: resolve, init, device queries. */
#include "cuda.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driverlib.h"

/* See nvml.c: POSIX lets a void * from dlsym carry a function pointer. */
static bool resolve(void *dl, const char *lib, const char *name, void *slot,
                    struct gpc_error *err) {
  void *sym = dlsym(dl, name);
  if (!sym) {
    gpc_fail(err, GPC_E_NOT_FOUND, "%s lacks %s", lib, name);
    return false;
  }
  memcpy(slot, &sym, sizeof sym);
  return true;
}

/* The first of `names` the driver exports, or false. */
static bool resolve_first(void *dl, const char *const *names, void *slot) {
  for (; *names; names++) {
    void *sym = dlsym(dl, *names);
    if (sym) {
      memcpy(slot, &sym, sizeof sym);
      return true;
    }
  }
  return false;
}

static bool resolve_all(struct cuda *c, const char *lib, struct gpc_error *err) {
  void *dl = c->dl;
  /* Drivers since CUDA 11 export cuDevicePrimaryCtxRelease_v2 (what cuda.h's
   * macro names); older ones only the unversioned symbol. */
  static const char *const release[] = {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease",
                                        NULL};
  /* cuDeviceGetUuid_v2 (CUDA 11.4+) gives a MIG device's own UUID. */
  static const char *const uuid[] = {"cuDeviceGetUuid_v2", "cuDeviceGetUuid", NULL};
  static const char *const bus[] = {"cuDeviceGetPCIBusId", NULL};
  static const char *const load_ex[] = {"cuModuleLoadDataEx", NULL};
  bool ok = resolve(dl, lib, "cuInit", &c->init, err) &&
            resolve(dl, lib, "cuDriverGetVersion", &c->driver_version, err) &&
            resolve(dl, lib, "cuDeviceGetCount", &c->device_count, err) &&
            resolve(dl, lib, "cuDeviceGet", &c->device_get, err) &&
            resolve(dl, lib, "cuDeviceGetName", &c->device_name, err) &&
            resolve(dl, lib, "cuDeviceGetAttribute", &c->device_attribute, err) &&
            resolve(dl, lib, "cuDevicePrimaryCtxRetain", &c->primary_ctx_retain, err);
  if (ok && !resolve_first(dl, release, &c->primary_ctx_release)) {
    gpc_fail(err, GPC_E_NOT_FOUND, "%s lacks cuDevicePrimaryCtxRelease", lib);
    return false;
  }
  ok = ok && resolve(dl, lib, "cuCtxSetCurrent", &c->ctx_set_current, err) &&
       resolve(dl, lib, "cuModuleLoadData", &c->module_load_data, err) &&
       resolve(dl, lib, "cuModuleGetFunction", &c->module_get_function, err) &&
       resolve(dl, lib, "cuModuleUnload", &c->module_unload, err) &&
       resolve(dl, lib, "cuMemAlloc_v2", &c->mem_alloc, err) &&
       resolve(dl, lib, "cuMemFree_v2", &c->mem_free, err) &&
       resolve(dl, lib, "cuMemcpyHtoD_v2", &c->memcpy_htod, err) &&
       resolve(dl, lib, "cuMemcpyDtoH_v2", &c->memcpy_dtoh, err) &&
       resolve(dl, lib, "cuLaunchKernel", &c->launch_kernel, err) &&
       resolve(dl, lib, "cuCtxSynchronize", &c->ctx_synchronize, err) &&
       resolve(dl, lib, "cuGetErrorString", &c->get_error_string, err);
  if (!ok) return false;
  resolve_first(dl, uuid, &c->device_uuid);
  resolve_first(dl, bus, &c->device_pci_bus_id);
  resolve_first(dl, load_ex, &c->module_load_data_ex);
  return true;
}

int cuda_open(struct cuda *c, const char *path, const char **opened, struct gpc_error *err) {
  memset(c, 0, sizeof *c);
  const char *lib = path ? path : CUDA_DEFAULT_LIB;
  *opened = lib;
  /* cuInit starts driver threads that live until the process exits;
   * unmapping their code on dlclose would crash them, so the library stays
   * mapped (dlclose still drops the handle). The process is a child that
   * exits after the check, which is what releases the GPU. */
  c->dl = driverlib_open(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE, opened, err);
  if (!c->dl) return GPC_E_NOT_FOUND;
  if (!resolve_all(c, lib, err)) {
    dlclose(c->dl);
    memset(c, 0, sizeof *c);
    return GPC_E_NOT_FOUND;
  }
  return GPC_OK;
}

bool cuda_is_busy(int rc) {
  return rc == CUDA_ERROR_OUT_OF_MEMORY || rc == CUDA_ERROR_DEVICE_UNAVAILABLE ||
         rc == CUDA_ERROR_CONTEXT_ALREADY_IN_USE;
}

int cuda_fail(struct cuda *c, struct gpc_error *err, const char *call, int rc) {
  const char *text = NULL;
  c->last_rc = rc;
  if (!c->get_error_string || c->get_error_string(rc, &text) != CUDA_SUCCESS || !text)
    text = "unknown CUDA error";
  return gpc_fail(err, GPC_E_IO, "%s: %s (%d)", call, text, rc);
}

int cuda_init(struct cuda *c, int *version, int *count, struct gpc_error *err) {
  int rc = c->init(0);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuInit", rc);
  rc = c->driver_version(version);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDriverGetVersion", rc);
  rc = c->device_count(count);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetCount", rc);
  return GPC_OK;
}

int cuda_device_info(struct cuda *c, int ordinal, struct cuda_device_info *info,
                     struct gpc_error *err) {
  memset(info, 0, sizeof *info);
  int dev = 0;
  int rc = c->device_get(&dev, ordinal);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGet", rc);
  rc = c->device_name(info->name, (int)sizeof info->name, dev);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetName", rc);
  info->name[sizeof info->name - 1] = '\0';
  rc = c->device_attribute(&info->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetAttribute", rc);
  rc = c->device_attribute(&info->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetAttribute", rc);
  if (c->device_uuid) {
    unsigned char u[16];
    rc = c->device_uuid(u, dev);
    if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetUuid", rc);
    snprintf(info->uuid, sizeof info->uuid,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
  }
  if (c->device_pci_bus_id) {
    rc = c->device_pci_bus_id(info->pci_bus_id, (int)sizeof info->pci_bus_id, dev);
    if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetPCIBusId", rc);
    info->pci_bus_id[sizeof info->pci_bus_id - 1] = '\0';
  }
  return GPC_OK;
}

void cuda_close(struct cuda *c) {
  if (c->dl) dlclose(c->dl);
  memset(c, 0, sizeof *c);
}
