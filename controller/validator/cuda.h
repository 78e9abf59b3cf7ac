/* cuda.h — the CUDA driver API entry points the validator uses, via dlopen.
 *
 * No CUDA toolkit is needed to build: CUresult is an int, CUdevice an int,
 * contexts/modules/functions opaque pointers and CUdeviceptr a 64-bit
 * integer, which is the driver's ABI on 64-bit Linux. Versioned symbols
 * (cuMemAlloc_v2, ...) are resolved by their exported names, as cuda.h's
 * macros would.
 *
 * Declarations checked against cuda.h (CUDA 12.4 and 13.0). cuDeviceGetUuid_v2
 * (the MIG UUID for a MIG device; cuda.h maps cuDeviceGetUuid to it),
 * cuDeviceGetPCIBusId and cuModuleLoadDataEx are optional: without them a
 * device is matched by bus id only, or the JIT log is not captured.
 *
 * Ownership: struct cuda lives on the caller's stack; cuda_close() dlcloses
 * the library (contexts are released by whoever retained them). The library
 * is opened RTLD_NODELETE: the driver's own threads outlive cuInit's caller.
 * That is why every CUDA check runs in a child process (checks.h): nothing
 * of the driver outlives the check in the long-running validator.
 */
#ifndef GPC_VALIDATOR_CUDA_H
#define GPC_VALIDATOR_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

#define CUDA_DEFAULT_LIB "libcuda.so.1"
#define CUDA_SUCCESS 0
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
/* CUresult values that mean "someone else is using the GPU": the device is
 * unavailable (compute mode exclusive-process / prohibited), its context is
 * in use, or its memory is full. cuda.h: CUDA_ERROR_OUT_OF_MEMORY = 2,
 * CUDA_ERROR_DEVICE_UNAVAILABLE = 46, CUDA_ERROR_CONTEXT_ALREADY_IN_USE = 216. */
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_DEVICE_UNAVAILABLE 46
#define CUDA_ERROR_CONTEXT_ALREADY_IN_USE 216
/* CUjit_option values for cuModuleLoadDataEx. */
#define CU_JIT_ERROR_LOG_BUFFER 5
#define CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6
#define CUDA_UUID_LEN 37 /* 36 hex-and-dash characters and a NUL */
#define CUDA_BUS_ID_LEN 32

typedef unsigned long long cuda_devptr; /* CUdeviceptr on 64-bit hosts */

struct cuda {
  void *dl;
  int last_rc; /* the CUresult cuda_fail() last reported (busy or broken?) */
  /* Called (when set) before each long or hang-prone driver call with its
   * name, so the parent of a check can say where a hung one stopped. */
  void (*step)(const char *what);
  int (*init)(unsigned flags);
  int (*driver_version)(int *version);
  int (*device_count)(int *count);
  int (*device_get)(int *device, int ordinal);
  int (*device_name)(char *name, int len, int device);
  int (*device_attribute)(int *value, int attribute, int device);
  int (*primary_ctx_retain)(void **ctx, int device);
  int (*primary_ctx_release)(int device);
  int (*ctx_set_current)(void *ctx);
  int (*module_load_data)(void **module, const void *image);
  int (*module_get_function)(void **function, void *module, const char *name);
  int (*module_unload)(void *module);
  int (*mem_alloc)(cuda_devptr *ptr, size_t bytes);
  int (*mem_free)(cuda_devptr ptr);
  int (*memcpy_htod)(cuda_devptr dst, const void *src, size_t bytes);
  int (*memcpy_dtoh)(void *dst, cuda_devptr src, size_t bytes);
  int (*launch_kernel)(void *function, unsigned grid_x, unsigned grid_y, unsigned grid_z,
                       unsigned block_x, unsigned block_y, unsigned block_z, unsigned shared_bytes,
                       void *stream, void **params, void **extra);
  int (*ctx_synchronize)(void);
  int (*get_error_string)(int rc, const char **text);
  /* Optional (NULL when the driver lacks them). */
  int (*device_uuid)(unsigned char uuid[16], int device);
  int (*device_pci_bus_id)(char *bus_id, int len, int device);
  int (*module_load_data_ex)(void **module, const void *image, unsigned n_options, int *options,
                             void **values);
};

/* What the validator learns about one CUDA device. */
struct cuda_device_info {
  char name[256];
  char uuid[CUDA_UUID_LEN];         /* "xxxxxxxx-xxxx-...", no GPU-/MIG- prefix; "" unknown */
  char pci_bus_id[CUDA_BUS_ID_LEN]; /* "0000:3B:00.0"; "" unknown */
  int cc_major, cc_minor;
};

/* dlopens `path` (NULL: libcuda.so.1, then driverlib.h's directories) and
 * resolves the entry points. GPC_E_NOT_FOUND (err carries dlerror() or the
 * missing symbol) otherwise; nothing stays open then. *opened: the path
 * that loaded. */
int cuda_open(struct cuda *c, const char *path, const char **opened, struct gpc_error *err);
/* True for the CUresults that mean the GPU is busy, not broken. */
bool cuda_is_busy(int rc);
/* Sets err to "call: <driver's message> (code)" and returns GPC_E_IO. */
int cuda_fail(struct cuda *c, struct gpc_error *err, const char *call, int rc);
/* cuInit(0) then the driver version ("12.4") and the device count. */
int cuda_init(struct cuda *c, int *version, int *count, struct gpc_error *err);
/* Device `ordinal`'s name, UUID, PCI bus id and compute capability. */
int cuda_device_info(struct cuda *c, int ordinal, struct cuda_device_info *info,
                     struct gpc_error *err);

/* dlclose; safe on a zeroed struct. */
void cuda_close(struct cuda *c);

#endif
