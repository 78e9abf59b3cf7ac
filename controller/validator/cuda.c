/* cuda.c — dlopen'd CUDA driver API: resolve, init, device queries. */
#include "cuda.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Drivers since CUDA 11 export cuDevicePrimaryCtxRelease_v2 (what cuda.h's
 * macro names); older ones only the unversioned symbol. */
static bool resolve_release(struct cuda *c, const char *lib, struct gpc_error *err) {
  void *sym = dlsym(c->dl, "cuDevicePrimaryCtxRelease_v2");
  if (sym) {
    memcpy(&c->primary_ctx_release, &sym, sizeof sym);
    return true;
  }
  return resolve(c->dl, lib, "cuDevicePrimaryCtxRelease", &c->primary_ctx_release, err);
}

static bool resolve_all(struct cuda *c, const char *lib, struct gpc_error *err) {
  void *dl = c->dl;
  return resolve(dl, lib, "cuInit", &c->init, err) &&
         resolve(dl, lib, "cuDriverGetVersion", &c->driver_version, err) &&
         resolve(dl, lib, "cuDeviceGetCount", &c->device_count, err) &&
         resolve(dl, lib, "cuDeviceGet", &c->device_get, err) &&
         resolve(dl, lib, "cuDeviceGetName", &c->device_name, err) &&
         resolve(dl, lib, "cuDeviceGetAttribute", &c->device_attribute, err) &&
         resolve(dl, lib, "cuDevicePrimaryCtxRetain", &c->primary_ctx_retain, err) &&
         resolve_release(c, lib, err) &&
         resolve(dl, lib, "cuCtxSetCurrent", &c->ctx_set_current, err) &&
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
}

int cuda_open(struct cuda *c, const char *path, struct gpc_error *err) {
  memset(c, 0, sizeof *c);
  const char *lib = path ? path : CUDA_DEFAULT_LIB;
  /* NVML numbers GPUs in PCI bus order, CUDA fastest-first unless told
   * otherwise; asking for bus order makes "device 1" mean the same GPU in
   * both halves of the report. A value the user set is kept. */
  setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 0);
  /* cuInit starts driver threads that live until the process exits;
   * unmapping their code on dlclose would crash them, so the library stays
   * mapped (dlclose still drops the handle, and a later dlopen reuses it). */
  c->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!c->dl) {
    const char *why = dlerror();
    return gpc_fail(err, GPC_E_NOT_FOUND, "%s", why ? why : lib);
  }
  if (!resolve_all(c, lib, err)) {
    dlclose(c->dl);
    memset(c, 0, sizeof *c);
    return GPC_E_NOT_FOUND;
  }
  return GPC_OK;
}

int cuda_fail(const struct cuda *c, struct gpc_error *err, const char *call, int rc) {
  const char *text = NULL;
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

int cuda_device_info(struct cuda *c, int ordinal, char *name, int len, int *cc_major, int *cc_minor,
                     struct gpc_error *err) {
  int dev = 0;
  int rc = c->device_get(&dev, ordinal);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGet", rc);
  rc = c->device_name(name, len, dev);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetName", rc);
  name[len - 1] = '\0';
  rc = c->device_attribute(cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetAttribute", rc);
  rc = c->device_attribute(cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGetAttribute", rc);
  return GPC_OK;
}

void cuda_close(struct cuda *c) {
  if (c->dl) dlclose(c->dl);
  memset(c, 0, sizeof *c);
}
