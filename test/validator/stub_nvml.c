/* stub_nvml.c — a fake libnvidia-ml.so.1 for the validator tests (see
 * stub_common.h for the switches). It exports the symbols the validator
 * resolves, with NVML's signatures (NVIDIA/go-nvml gen/nvml/nvml.h). */
#include <stdint.h>
#include <unistd.h>

#include "stub_common.h"

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_DRIVER_NOT_LOADED 9

#define MIG_HANDLE_BASE 0x1000u

struct nvml_memory {
  unsigned long long total, free, used;
};

struct nvml_pci_info {
  char bus_id_legacy[16];
  unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[32];
};

static int initialized;
static int device_fd = -1;

int nvmlInit_v2(void) {
  if (stub_is("nvml_fail")) return NVML_ERROR_DRIVER_NOT_LOADED;
  long until = stub_env_long("STUB_FAIL_UNTIL", 0);
  if (until > 0 && stub_bump("STUB_COUNTER") < until) return NVML_ERROR_DRIVER_NOT_LOADED;
  if (!initialized) device_fd = stub_open_device_file();
  initialized++;
  return NVML_SUCCESS;
}

int nvmlShutdown(void) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (--initialized == 0 && device_fd >= 0) {
    close(device_fd);
    device_fd = -1;
  }
  return NVML_SUCCESS;
}

const char *nvmlErrorString(int rc) {
  switch (rc) {
  case NVML_SUCCESS:
    return "Success";
  case NVML_ERROR_UNINITIALIZED:
    return "Uninitialized";
  case NVML_ERROR_INVALID_ARGUMENT:
    return "Invalid Argument";
  case NVML_ERROR_NOT_SUPPORTED:
    return "Not Supported";
  case NVML_ERROR_NO_PERMISSION:
    return "Insufficient Permissions";
  case NVML_ERROR_NOT_FOUND:
    return "Not Found";
  case NVML_ERROR_DRIVER_NOT_LOADED:
    return "Driver Not Loaded";
  default:
    return "Unknown Error";
  }
}

int nvmlSystemGetDriverVersion(char *version, unsigned len) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  snprintf(version, len, "550.54.15");
  return NVML_SUCCESS;
}

int nvmlDeviceGetCount_v2(unsigned *count) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  *count = (unsigned)stub_gpus();
  return NVML_SUCCESS;
}

/* A GPU's handle is its index + 1, a MIG device's MIG_HANDLE_BASE + j + 1,
 * so NULL is never a valid handle. */
int nvmlDeviceGetHandleByIndex_v2(unsigned index, void **device) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (index >= (unsigned)stub_gpus()) return NVML_ERROR_INVALID_ARGUMENT;
  if (stub_no_access((int)index)) return NVML_ERROR_NO_PERMISSION;
  *device = (void *)(uintptr_t)(index + 1);
  return NVML_SUCCESS;
}

/* GPU index, or -1; *mig receives the MIG index or -1. */
static int dev_index(void *device, int *mig) {
  uintptr_t h = (uintptr_t)device;
  *mig = -1;
  if (h > MIG_HANDLE_BASE && h <= MIG_HANDLE_BASE + (uintptr_t)stub_migs()) {
    *mig = (int)(h - MIG_HANDLE_BASE - 1);
    return 0;
  }
  return initialized && h >= 1 && h <= (uintptr_t)stub_gpus() ? (int)(h - 1) : -1;
}

int nvmlDeviceGetName(void *device, char *name, unsigned len) {
  int mig;
  if (dev_index(device, &mig) < 0) return NVML_ERROR_INVALID_ARGUMENT;
  snprintf(name, len, mig < 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA H100 80GB HBM3 MIG 1g.10gb");
  return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(void *device, char *uuid, unsigned len) {
  int mig, i = dev_index(device, &mig);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  stub_uuid(uuid, len, i, mig);
  return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(void *device, struct nvml_memory *mem) {
  int mig, i = dev_index(device, &mig);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  /* nvml.h: in MIG mode a parent GPU's aggregate needs privileges. */
  if (mig < 0 && i == 0 && stub_migs() > 0) return NVML_ERROR_NO_PERMISSION;
  mem->total = (mig < 0 ? 81559ull : 9856ull) << 20;
  mem->used = (unsigned long long)(1 + i + (mig < 0 ? 0 : 10 + mig)) << 20;
  if (stub_is("busy_oom") && mig < 0 && i == stub_busy_device()) mem->used = mem->total;
  mem->free = mem->total - mem->used;
  return NVML_SUCCESS;
}

int nvmlDeviceGetTemperature(void *device, int sensor, unsigned *celsius) {
  int mig, i = dev_index(device, &mig);
  if (i < 0 || sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
  if (mig >= 0) return NVML_ERROR_NOT_SUPPORTED;
  *celsius = 30u + (unsigned)i;
  return NVML_SUCCESS;
}

int nvmlDeviceGetPciInfo_v3(void *device, struct nvml_pci_info *pci) {
  int mig, i = dev_index(device, &mig);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  memset(pci, 0, sizeof *pci);
  pci->bus = 0x3Bu + (unsigned)i;
  snprintf(pci->bus_id, sizeof pci->bus_id, "00000000:%02X:00.0", pci->bus);
  snprintf(pci->bus_id_legacy, sizeof pci->bus_id_legacy, "0000:%02X:00.0", pci->bus);
  return NVML_SUCCESS;
}

int nvmlDeviceGetComputeMode(void *device, int *mode) {
  int mig, i = dev_index(device, &mig);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  if (mig >= 0) return NVML_ERROR_NOT_SUPPORTED;
  *mode = 0;
  if (i == stub_busy_device() && stub_is("busy_prohibited")) *mode = 2;
  if (i == stub_busy_device() && stub_is("busy_exclusive")) *mode = 3;
  return NVML_SUCCESS;
}

int nvmlDeviceGetMigMode(void *device, unsigned *current, unsigned *pending) {
  int mig, i = dev_index(device, &mig);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  if (mig >= 0) return NVML_ERROR_NOT_SUPPORTED;
  *current = *pending = i == 0 && stub_migs() > 0;
  return NVML_SUCCESS;
}

int nvmlDeviceGetMaxMigDeviceCount(void *device, unsigned *count) {
  int mig, i = dev_index(device, &mig);
  if (i < 0 || mig >= 0) return NVML_ERROR_INVALID_ARGUMENT;
  *count = i == 0 && stub_migs() > 0 ? 7 : 0;
  return NVML_SUCCESS;
}

/* The MIG devices sit in the even slots; the odd ones are empty. */
int nvmlDeviceGetMigDeviceHandleByIndex(void *device, unsigned index, void **mig_device) {
  int mig, i = dev_index(device, &mig);
  if (i != 0 || mig >= 0 || stub_migs() == 0) return NVML_ERROR_INVALID_ARGUMENT;
  if (index % 2 || index / 2 >= (unsigned)stub_migs()) return NVML_ERROR_NOT_FOUND;
  *mig_device = (void *)(uintptr_t)(MIG_HANDLE_BASE + index / 2 + 1);
  return NVML_SUCCESS;
}

/* An init without a shutdown is a leak the tests look for on stderr. */
__attribute__((destructor)) static void stub_nvml_unload(void) {
  if (initialized) fprintf(stderr, "stub-nvml: leaked %d nvmlInit\n", initialized);
}
