/* nvml.c — dlopen'd NVML: resolve, init, query, shut down. */
#include "nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "driverlib.h"

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

/* An optional symbol: *slot stays NULL when the driver lacks it. */
static void resolve_optional(void *dl, const char *name, void *slot) {
  void *sym = dlsym(dl, name);
  if (sym) memcpy(slot, &sym, sizeof sym);
}

int nvml_open(struct nvml *n, const char *path, const char **opened, struct gpc_error *err) {
  memset(n, 0, sizeof *n);
  const char *lib = path ? path : NVML_DEFAULT_LIB;
  *opened = lib;
  n->dl = driverlib_open(lib, RTLD_NOW | RTLD_LOCAL, opened, err);
  if (!n->dl) return GPC_E_NOT_FOUND;
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
  resolve_optional(n->dl, "nvmlDeviceGetPciInfo_v3", &n->device_pci_info);
  resolve_optional(n->dl, "nvmlDeviceGetComputeMode", &n->device_compute_mode);
  resolve_optional(n->dl, "nvmlDeviceGetMigMode", &n->device_mig_mode);
  resolve_optional(n->dl, "nvmlDeviceGetMaxMigDeviceCount", &n->device_max_mig);
  resolve_optional(n->dl, "nvmlDeviceGetMigDeviceHandleByIndex", &n->device_mig_by_index);
  return GPC_OK;
}

const char *nvml_strerror(const struct nvml *n, int rc) {
  const char *s = n->error_string ? n->error_string(rc) : NULL;
  return s ? s : "unknown NVML error";
}

bool nvml_optional_unavailable(int rc) {
  return rc == NVML_ERROR_NOT_SUPPORTED || rc == NVML_ERROR_NO_PERMISSION;
}

/* "call: NVML's message (code)", the form every NVML failure is reported in. */
static int nvml_failed(struct nvml *n, struct gpc_error *err, const char *call, int rc) {
  n->last_rc = rc;
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

int nvml_device_handle(struct nvml *n, unsigned index, void **dev, struct gpc_error *err) {
  *dev = NULL;
  int rc = n->device_by_index(index, dev);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetHandleByIndex_v2", rc);
  return GPC_OK;
}

int nvml_device_query(struct nvml *n, void *dev, struct nvml_device_info *info,
                      struct gpc_error *err) {
  memset(info, 0, sizeof *info);
  info->compute_mode = -1;
  int rc = n->device_name(dev, info->name, sizeof info->name);
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
  } else if (!nvml_optional_unavailable(rc)) {
    return nvml_failed(n, err, "nvmlDeviceGetMemoryInfo", rc);
  }
  rc = n->device_temperature(dev, NVML_TEMPERATURE_GPU, &info->temperature_c);
  if (rc == NVML_SUCCESS)
    info->have_temperature = true;
  else if (!nvml_optional_unavailable(rc))
    return nvml_failed(n, err, "nvmlDeviceGetTemperature", rc);
  if (n->device_pci_info) {
    struct nvml_pci_info pci;
    memset(&pci, 0, sizeof pci);
    rc = n->device_pci_info(dev, &pci);
    if (rc == NVML_SUCCESS) {
      pci.bus_id[sizeof pci.bus_id - 1] = '\0';
      snprintf(info->pci_bus_id, sizeof info->pci_bus_id, "%s", pci.bus_id);
    } else if (!nvml_optional_unavailable(rc)) {
      return nvml_failed(n, err, "nvmlDeviceGetPciInfo_v3", rc);
    }
  }
  if (n->device_compute_mode) {
    int mode = -1;
    rc = n->device_compute_mode(dev, &mode);
    if (rc == NVML_SUCCESS)
      info->compute_mode = mode;
    else if (!nvml_optional_unavailable(rc))
      return nvml_failed(n, err, "nvmlDeviceGetComputeMode", rc);
  }
  if (n->device_mig_mode) {
    unsigned current = 0, pending = 0;
    rc = n->device_mig_mode(dev, &current, &pending);
    if (rc == NVML_SUCCESS)
      info->mig_enabled = current == NVML_DEVICE_MIG_ENABLE;
    else if (!nvml_optional_unavailable(rc))
      return nvml_failed(n, err, "nvmlDeviceGetMigMode", rc);
  }
  return GPC_OK;
}

int nvml_mig_devices(struct nvml *n, void *gpu, void **migs, unsigned max, unsigned *count,
                     struct gpc_error *err) {
  *count = 0;
  if (!n->device_max_mig || !n->device_mig_by_index) return GPC_OK;
  unsigned slots = 0;
  int rc = n->device_max_mig(gpu, &slots);
  if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetMaxMigDeviceCount", rc);
  for (unsigned i = 0; i < slots && *count < max; i++) {
    void *mig = NULL;
    rc = n->device_mig_by_index(gpu, i, &mig);
    if (rc == NVML_ERROR_NOT_FOUND) continue; /* an empty slot */
    if (rc != NVML_SUCCESS) return nvml_failed(n, err, "nvmlDeviceGetMigDeviceHandleByIndex", rc);
    migs[(*count)++] = mig;
  }
  return GPC_OK;
}

const char *nvml_compute_mode_name(int mode) {
  switch (mode) {
  case NVML_COMPUTEMODE_DEFAULT:
    return "Default";
  case NVML_COMPUTEMODE_EXCLUSIVE_THREAD:
    return "ExclusiveThread";
  case NVML_COMPUTEMODE_PROHIBITED:
    return "Prohibited";
  case NVML_COMPUTEMODE_EXCLUSIVE_PROCESS:
    return "ExclusiveProcess";
  default:
    return NULL;
  }
}

void nvml_close(struct nvml *n) {
  if (n->initialized && n->shutdown) n->shutdown();
  if (n->dl) dlclose(n->dl);
  memset(n, 0, sizeof *n);
}
