/* cuda.h — the CUDA driver API entry points the validator uses, via dlopen.
 *
 * No CUDA toolkit is needed to build: CUresult is an int, CUdevice an int,
 * contexts/modules/functions opaque pointers and CUdeviceptr a 64-bit
 * integer, which is the driver's ABI on 64-bit Linux. Versioned symbols
 * (cuMemAlloc_v2, ...) are resolved by their exported names, as cuda.h's
 * macros would.
 *
 * Ownership: struct cuda lives on the caller's stack; cuda_close() dlcloses
 * the library (contexts are released by whoever retained them). The library
 * is opened RTLD_NODELETE: the driver's own threads outlive cuInit's caller.
 */
#ifndef GPC_VALIDATOR_CUDA_H
#define GPC_VALIDATOR_CUDA_H

#include <stddef.h>

#include "errors.h"

#define CUDA_DEFAULT_LIB "libcuda.so.1"
#define CUDA_SUCCESS 0
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76

typedef unsigned long long cuda_devptr; /* CUdeviceptr on 64-bit hosts */

struct cuda {
  void *dl;
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
};

/* dlopens `path` (NULL: libcuda.so.1) and resolves the entry points.
 * GPC_E_NOT_FOUND (err carries dlerror() or the missing symbol) otherwise;
 * nothing stays open then. */
int cuda_open(struct cuda *c, const char *path, struct gpc_error *err);
/* Sets err to "call: <driver's message> (code)" and returns GPC_E_IO. */
int cuda_fail(const struct cuda *c, struct gpc_error *err, const char *call, int rc);
/* cuInit(0) then the driver version ("12.4") and the device count. */
int cuda_init(struct cuda *c, int *version, int *count, struct gpc_error *err);
/* Device `ordinal`'s name (NUL-terminated in len bytes) and compute capability. */
int cuda_device_info(struct cuda *c, int ordinal, char *name, int len, int *cc_major, int *cc_minor,
                     struct gpc_error *err);
/* dlclose; safe on a zeroed struct. */
void cuda_close(struct cuda *c);

#endif
