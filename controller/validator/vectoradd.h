/* vectoradd.h — run c = a + b on one CUDA device and check it on the host.
 *
 * The kernel is PTX written by hand for .target sm_50 / ISA 6.0, embedded as
 * text and JIT-compiled by the driver (cuModuleLoadData), so one binary
 * works on every GPU from Maxwell on without a CUDA toolkit at build time.
 * The inputs vary per element so that a kernel reading the wrong index, or
 * a copy that misses a page, gives a wrong sum somewhere.
 *
 * Ownership: everything a run allocates (host buffers, device memory, the
 * module, the retained primary context) is released before it returns,
 * on every path.
 */
#ifndef GPC_VALIDATOR_VECTORADD_H
#define GPC_VALIDATOR_VECTORADD_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda.h"

#define VECTORADD_DEFAULT_ELEMENTS ((size_t)1 << 22)
#define VECTORADD_MAX_ELEMENTS ((size_t)1 << 28)

/* The embedded PTX (NUL-terminated text), for --dump-ptx and tests. */
extern const char vectoradd_ptx[];

enum vectoradd_status {
  VECTORADD_OK = 0,
  VECTORADD_CUDA_ERROR, /* a driver call failed; reason names it */
  VECTORADD_WRONG,      /* the kernel ran but an element is wrong */
  VECTORADD_BUSY,       /* a driver call said the GPU is in use (cuda_is_busy) */
};

struct vectoradd_result {
  enum vectoradd_status status;
  size_t elements;
  double ms; /* kernel launch to synchronize, host clock */
  /* WrongResult details: first bad element. */
  size_t bad_index;
  float expected;
  float got;
};

/* Pure: the inputs for element i, and the first index where c differs from
 * a + b by more than a relative 1e-6, or is NaN (n when none). The inputs
 * are recomputed rather than kept, so a run holds one host array, not three. */
float vectoradd_input_a(size_t i);
float vectoradd_input_b(size_t i);
size_t vectoradd_check(const float *c, size_t n);

/* Runs the kernel on device `ordinal` over `n` elements (1..VECTORADD_MAX_ELEMENTS).
 * Returns GPC_OK with out->status VECTORADD_OK or VECTORADD_WRONG, or
 * GPC_E_IO with out->status VECTORADD_CUDA_ERROR (or VECTORADD_BUSY when the
 * failing call's CUresult means "in use") and err naming the call; a PTX JIT
 * failure carries the JIT's error log. */
int vectoradd_run(struct cuda *c, int ordinal, size_t n, struct vectoradd_result *out,
                  struct gpc_error *err);

#endif
