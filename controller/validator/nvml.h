/* nvml.h — the few NVML entry points the validator uses, loaded with dlopen.
 *
 * No NVIDIA header is needed to build: the handful of types NVML's ABI uses
 * (an int return code, an opaque device handle, the v1 memory struct, the
 * v3 PCI info struct) are declared here, checked against nvml.h as shipped
 * in NVIDIA/go-nvml (gen/nvml/nvml.h). The required symbols exist in every
 * driver since R450; the MIG, PCI and compute-mode queries are optional (a
 * driver without them reports no MIG, no bus id and an unknown mode).
 *
 * Optional per-device queries (memory, temperature, compute mode, MIG mode,
 * PCI info) treat NVML_ERROR_NOT_SUPPORTED and NVML_ERROR_NO_PERMISSION the
 * same: "n/a". nvml.h documents NO_PERMISSION for nvmlDeviceGetMemoryInfo on
 * a MIG-mode parent GPU queried without privileges — the validator's case.
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
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_TEMPERATURE_GPU 0
/* nvmlComputeMode_t */
#define NVML_COMPUTEMODE_DEFAULT 0
#define NVML_COMPUTEMODE_EXCLUSIVE_THREAD 1
#define NVML_COMPUTEMODE_PROHIBITED 2
#define NVML_COMPUTEMODE_EXCLUSIVE_PROCESS 3
#define NVML_DEVICE_MIG_ENABLE 1
/* NVML_DEVICE_NAME_V2_BUFFER_SIZE / NVML_DEVICE_UUID_V2_BUFFER_SIZE. */
#define NVML_NAME_LEN 96
#define NVML_UUID_LEN 96
#define NVML_VERSION_LEN 80
#define NVML_BUS_ID_LEN 32 /* NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE */
/* MIG devices per GPU the validator looks at (A100/H100 have at most 7). */
#define NVML_MAX_MIG 16

/* nvmlMemory_t (v1): bytes. */
struct nvml_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

/* nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v3. */
struct nvml_pci_info {
  char bus_id_legacy[16];
  unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[NVML_BUS_ID_LEN];
};

struct nvml {
  void *dl;
  bool initialized;
  int last_rc; /* the NVML return code of the last failure reported */
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
  /* Optional (NULL when the driver lacks them). */
  int (*device_pci_info)(void *device, struct nvml_pci_info *pci);
  int (*device_compute_mode)(void *device, int *mode);
  int (*device_mig_mode)(void *device, unsigned *current, unsigned *pending);
  int (*device_max_mig)(void *device, unsigned *count);
  int (*device_mig_by_index)(void *device, unsigned index, void **mig);
};

/* What the validator reports per device (GPU or MIG device). have_* say
 * which optional queries answered. */
struct nvml_device_info {
  char name[NVML_NAME_LEN];
  char uuid[NVML_UUID_LEN];
  char pci_bus_id[NVML_BUS_ID_LEN]; /* "" when unknown */
  bool have_memory;
  unsigned long long memory_total;
  unsigned long long memory_used;
  bool have_temperature;
  unsigned temperature_c;
  int compute_mode; /* NVML_COMPUTEMODE_*, or -1 when unknown */
  bool mig_enabled; /* a GPU whose current MIG mode is enabled */
};

/* dlopens `path` (NULL: libnvidia-ml.so.1, then the fallback directories of
 * driverlib.h) and resolves the entry points. GPC_E_NOT_FOUND when the
 * library cannot be loaded (err carries dlerror()) or lacks a required
 * symbol (err names it); nothing stays open then. *opened receives the path
 * that loaded (static storage or `path`). */
int nvml_open(struct nvml *n, const char *path, const char **opened, struct gpc_error *err);
/* nvmlInit_v2. GPC_E_IO with "nvmlInit_v2: <NVML's message>" on failure. */
int nvml_init(struct nvml *n, struct gpc_error *err);
/* NVML's text for a return code; never NULL. */
const char *nvml_strerror(const struct nvml *n, int rc);
/* True for the codes an optional query may answer with (NOT_SUPPORTED,
 * NO_PERMISSION): the value is then "n/a", not a failure. */
bool nvml_optional_unavailable(int rc);
/* The driver version and device count, with errors naming the call. */
int nvml_driver_version(struct nvml *n, char *buf, unsigned len, struct gpc_error *err);
int nvml_device_count(struct nvml *n, unsigned *count, struct gpc_error *err);
/* GPU `index`'s handle. NO_PERMISSION (n->last_rc) means the GPU exists but
 * this container may not use it: nvml.h says nvmlDeviceGetCount_v2 counts
 * such GPUs too. */
int nvml_device_handle(struct nvml *n, unsigned index, void **dev, struct gpc_error *err);
/* Fills *info for a GPU or MIG device handle. Name and UUID are required;
 * everything else is optional (see the top of this file). */
int nvml_device_query(struct nvml *n, void *dev, struct nvml_device_info *info,
                      struct gpc_error *err);
/* The MIG device handles under a MIG-enabled GPU (up to `max`), skipping
 * empty slots (NOT_FOUND). *count is 0 when the driver has no MIG API. */
int nvml_mig_devices(struct nvml *n, void *gpu, void **migs, unsigned max, unsigned *count,
                     struct gpc_error *err);
/* "Default", "Prohibited", "ExclusiveProcess", "ExclusiveThread", or NULL. */
const char *nvml_compute_mode_name(int mode);
/* nvmlShutdown (when initialised) and dlclose; safe on a zeroed struct. */
void nvml_close(struct nvml *n);

#endif
