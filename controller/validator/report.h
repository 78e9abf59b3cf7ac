/* report.h — what one validation attempt found, and how it is printed.
 *
 * A report is an ordered list of checks (name, ok, detail), the versions,
 * one entry per GPU, and the outcome: the exit code and one-line reason of
 * the first failure (later failures are still listed as checks, but the
 * first one decides, because it is usually the cause of the rest).
 *
 * Pure: no I/O except printing to a caller-given FILE. All strings are
 * copied in and owned by the report; report_release() frees them.
 *
 * Lifecycle (git's names): report_init sets a struct up in place,
 * report_release frees what it holds and leaves it initialized (empty) again;
 * the struct itself is the caller's (usually on the stack).
 */
#ifndef GPC_VALIDATOR_REPORT_H
#define GPC_VALIDATOR_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "errors.h"

/* Exit codes, documented in --help and docs/validator.md. */
enum val_exit {
  VAL_OK = 0,
  VAL_USAGE = 2,
  VAL_NO_LIBRARY = 10,
  VAL_NVML = 11,
  VAL_NO_DEVICE = 12,
  VAL_CUDA = 13,
  VAL_WRONG_RESULT = 14,
  VAL_PLUGIN = 15,
  VAL_TIMEOUT = 16,
  /* Not a failure: everything works, but a GPU is in use by someone else
   * (compute mode prohibited / exclusive-process and taken, memory full),
   * so vectorAdd could not run there. Reported, and checked again later. */
  VAL_BUSY = 17,
  /* The one-shot pod that asks for nvidia.com/gpu: 1 was not admitted, did
   * not finish, or its vectorAdd failed (--check-allocation). */
  VAL_ALLOCATION = 18,
};

struct val_check {
  char *name;
  bool ok;
  bool busy; /* not ok, but busy rather than failed */
  char *detail;
};

/* A GPU (mig_index -1) or a MIG device of GPU `index` (mig_index 0..). */
struct val_device {
  int index;
  int mig_index;
  char *name;
  char *uuid;
  char *pci_bus_id;   /* NVML's, "00000000:3B:00.0"; NULL when unknown */
  char *compute_mode; /* "Default", "ExclusiveProcess", ...; NULL when unknown */
  bool mig_enabled;   /* a GPU in MIG mode: its MIG devices are checked instead */
  bool busy;
  bool have_memory;
  unsigned long long memory_total_mib;
  unsigned long long memory_used_mib;
  bool have_temperature;
  int temperature_c;
  bool have_cc;
  int cc_major, cc_minor;
  bool vectoradd_ran;
  bool vectoradd_ok;
  size_t vectoradd_elements;
  double vectoradd_ms;
};

struct val_report {
  struct val_check *checks;
  size_t nchecks, checks_cap;
  struct val_device *devices;
  size_t ndevices, devices_cap;
  char *driver_version;      /* NVML's, e.g. "550.54.15"; NULL until known */
  char *cuda_driver_version; /* "12.4"; NULL until known */
  int exit_code;             /* VAL_OK until the first failure */
  char *reason;              /* "NVMLError: ..."; NULL while ok */
  char *busy;                /* the first busy GPU's reason; NULL when none */
};

void report_init(struct val_report *r);
void report_release(struct val_report *r);

/* Appends a check; detail is printf-formatted (may be "" but not NULL). */
void report_check(struct val_report *r, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records a failure: the first one sets exit_code and reason
 * ("<Result>: <detail>", e.g. "NVMLError: nvmlInit_v2: Driver Not Loaded (9)").
 * Later calls are ignored, except VAL_TIMEOUT, which wraps the reason. */
void report_fail(struct val_report *r, enum val_exit code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends a busy check and remembers the first busy reason (printf-formatted
 * detail, also the reason's text). A busy GPU does not fail the attempt. */
void report_busy(struct val_report *r, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends an attempt: when nothing failed but a GPU was busy, the outcome is
 * VAL_BUSY with reason "GPUBusy: <first busy reason>". */
void report_finish(struct val_report *r);
/* The device entry (index, mig_index), created (zeroed) when missing.
 * Borrowed: the entry lives in the report's device array, so the pointer is
 * valid only until the next report_device call (which may move the array)
 * or report_release; strings stored in it (report_set_string) become the
 * report's. */
struct val_device *report_device(struct val_report *r, int index, int mig_index);
/* Replaces *slot (freeing the old string) with a copy of value (NULL allowed). */
void report_set_string(char **slot, const char *value);
/* "gpu-1" or "gpu-0/mig-2", for check names and reasons. */
void report_device_label(const struct val_device *d, char *buf, size_t len);

/* "ok", "NoDriverLibrary", "NVMLError", "NoDevice", "CUDAError",
 * "WrongResult", "PluginNotAdvertising", "Timeout", "GPUBusy", "AllocationFailed",
 * "UsageError" (static strings). */
const char *report_result_name(int exit_code);
/* True for the outcomes after which a node counts as working (ok, busy). */
bool report_outcome_ready(int exit_code);

/* Human summary: one line per check, then "result: ...". */
void report_print_text(const struct val_report *r, FILE *out);
/* The --json object (new reference): checks, driverVersion,
 * cudaDriverVersion, devices, busy, result, reason, exitCode. */
json_t *report_json(const struct val_report *r);
/* The inverse of report_json, for the report a check process sends back:
 * fills *r (report_init'ed by the caller). GPC_E_INVAL naming the field when
 * `o` is not such an object; *r is then partly filled: report_release it. */
int report_from_json(const json_t *o, struct val_report *r, struct gpc_error *err);

#endif
