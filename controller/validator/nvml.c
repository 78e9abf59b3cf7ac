/* nvml.c — dlopen'd NVML: resolve, init, query, shut down. */
#include "nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Resolves `name` into *slot; returns false (err set) when it is missing.
 * The function pointer is written through memcpy because ISO C has no
 * conversion from void * to a function pointer; POSIX guarantees the
 * representation is the same. */
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

int nvml_open(struct nvml *n, const char *path, struct gpc_error *err) {
  memset(n, 0, sizeof *n);
  const char *lib = path ? path : NVML_DEFAULT_LIB;
  n->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!n->dl) {
    const char *why = dlerror();
    return gpc_fail(err, GPC_E_NOT_FOUND, "%s", why ? why : lib);
  }
  bool ok = resolve(n->dl, lib, "nvmlInit_v2", &n->init, err) &&
            resolve(n->dl, lib, "nvmlShutdown", &n->shutdown, err) &&
            resolve(n->dl, lib, "nvmlSystemGetDriverVersion", &n->driver_version, err) &&
            resolve(n->dl, lib, "nvmlDeviceGetCount_v2", &n->device_count, err) &&
            resolve(n->dl, lib, "nvmlDeviceGetHandleByIndex_v2", &n->device_by_index, err) &&
            resolve(n->dl, lib, "nvmlDeviceGetName", &n->device_name, err) &&
            resolve(n->dl, lib, "nvmlDeviceGetUUID", &n->device_uuid, err) &&
            resolve(n->dl, lib, "nvmlDeviceGetMemoryInfo", &n->device_memory, err) &&
            resolve(n->dl, lib, "nvmlDeviceGetTemperature", &n->device_temperature, err) &&
            resolve(n->dl, lib, "nvmlErrorString", &n->error_string, err);
  if (!ok) {
    dlclose(n->dl);
    memset(n, 0, sizeof *n);
    return GPC_E_NOT_FOUND;
  }
  return GPC_OK;
}

const char *nvml_strerror(const struct nvml *n, int rc) {
  const char *s = n->error_string ? n->error_string(rc) : NULL;
  return s ? s : "unknown NVML error";
}

/* "call: NVML's message (code)", the form every NVML failure is reported in. */
static int nvml_failed(const struct nvml *n, struct gpc_error *err, const char *call, int rc) {
  return gpc_fail(err, GPC_E_IO, "%s: %s (%d)", call, nvml_strerror(n, rc), rc);
}

int nvml_init(struct nvml *n, struct gpc_error *err) {
  int rc = n->init();
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlInit_v2", rc);
  n->initialized = true;
  return GPC_OK;
}

int nvml_driver_version(struct nvml *n, char *buf, unsigned len, struct gpc_error *err) {
  int rc = n->driver_version(buf, len);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlSystemGetDriverVersion", rc);
  buf[len - 1] = '\0';
  return GPC_OK;
}

int nvml_device_count(struct nvml *n, unsigned *count, struct gpc_error *err) {
  int rc = n->device_count(count);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetCount_v2", rc);
  return GPC_OK;
}

int nvml_device_query(struct nvml *n, unsigned index, struct nvml_device_info *info,
                      struct gpc_error *err) {
  memset(info, 0, sizeof *info);
  void *dev = NULL;
  int rc = n->device_by_index(index, &dev);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetHandleByIndex_v2", rc);
  rc = n->device_name(dev, info->name, sizeof info->name);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetName", rc);
  info->name[sizeof info->name - 1] = '\0';
  rc = n->device_uuid(dev, info->uuid, sizeof info->uuid);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetUUID", rc);
  info->uuid[sizeof info->uuid - 1] = '\0';

  struct nvml_memory mem = {0};
  rc = n->device_memory(dev, &mem);
  if (rc == NVML_SUCCESS) {
    info->have_memory = true;
    info->memory_total = mem.total;
    info->memory_used = mem.used;
  } else if (rc != NVML_ERROR_NOT_SUPPORTED) {
    return nvml_failed(n, err, "nvmlDeviceGetMemoryInfo", rc);
  }
  rc = n->device_temperature(dev, NVML_TEMPERATURE_GPU, &info->temperature_c);
  if (rc == NVML_SUCCESS)
    info->have_temperature = true;
  else if (rc != NVML_ERROR_NOT_SUPPORTED)
    return nvml_failed(n, err, "nvmlDeviceGetTemperature", rc);
  return GPC_OK;
}

void nvml_close(struct nvml *n) {
  if (n->initialized && n->shutdown) n->shutdown();
  if (n->dl) dlclose(n->dl);
  memset(n, 0, sizeof *n);
}
