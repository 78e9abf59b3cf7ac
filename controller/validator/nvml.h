/* nvml.h — the few NVML entry points the validator uses, loaded with dlopen.
 *
 * No NVIDIA header is needed to build: the handful of types NVML's ABI uses
 * (an int return code, an opaque device handle, the v1 memory struct) are
 * declared here. Only the symbols listed in struct nvml are resolved, so a
 * driver that is older or newer than anything we know still loads as long
 * as it has those.
 *
 * Ownership: struct nvml lives on the caller's stack; nvml_close() shuts
 * NVML down when nvml_init() succeeded and dlcloses the library. Strings
 * returned by nvml_strerror() belong to the library and are valid until
 * nvml_close().
 */
#ifndef GPC_VALIDATOR_NVML_H
#define GPC_VALIDATOR_NVML_H

#include <stdbool.h>

#include "errors.h"

#define NVML_DEFAULT_LIB "libnvidia-ml.so.1"
#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_TEMPERATURE_GPU 0
/* NVML_DEVICE_NAME_V2_BUFFER_SIZE / NVML_DEVICE_UUID_V2_BUFFER_SIZE. */
#define NVML_NAME_LEN 96
#define NVML_UUID_LEN 96
#define NVML_VERSION_LEN 80

/* nvmlMemory_t (v1): bytes. */
struct nvml_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct nvml {
  void *dl;
  bool initialized;
  int (*init)(void);
  int (*shutdown)(void);
  int (*driver_version)(char *version, unsigned len);
  int (*device_count)(unsigned *count);
  int (*device_by_index)(unsigned index, void **device);
  int (*device_name)(void *device, char *name, unsigned len);
  int (*device_uuid)(void *device, char *uuid, unsigned len);
  int (*device_memory)(void *device, struct nvml_memory *mem);
  int (*device_temperature)(void *device, int sensor, unsigned *celsius);
  const char *(*error_string)(int rc);
};

/* What the validator reports per device. have_* say which optional queries
 * the device supports (memory and temperature are NOT_SUPPORTED on some
 * virtual GPUs and MIG setups; that is not a failure). */
struct nvml_device_info {
  char name[NVML_NAME_LEN];
  char uuid[NVML_UUID_LEN];
  bool have_memory;
  unsigned long long memory_total;
  unsigned long long memory_used;
  bool have_temperature;
  unsigned temperature_c;
};

/* dlopens `path` (NULL: libnvidia-ml.so.1) and resolves the entry points.
 * GPC_E_NOT_FOUND when the library cannot be loaded (err carries dlerror())
 * or lacks a symbol (err names it); nothing stays open then. */
int nvml_open(struct nvml *n, const char *path, struct gpc_error *err);
/* nvmlInit_v2. GPC_E_IO with "nvmlInit_v2: <NVML's message>" on failure. */
int nvml_init(struct nvml *n, struct gpc_error *err);
/* NVML's text for a return code; never NULL. */
const char *nvml_strerror(const struct nvml *n, int rc);
/* The driver version and device count, with errors naming the call. */
int nvml_driver_version(struct nvml *n, char *buf, unsigned len, struct gpc_error *err);
int nvml_device_count(struct nvml *n, unsigned *count, struct gpc_error *err);
/* Fills *info for device `index`. Name and UUID are required; memory and
 * temperature are optional (NOT_SUPPORTED), other errors fail. */
int nvml_device_query(struct nvml *n, unsigned index, struct nvml_device_info *info,
                      struct gpc_error *err);
/* nvmlShutdown (when initialised) and dlclose; safe on a zeroed struct. */
void nvml_close(struct nvml *n);

#endif
