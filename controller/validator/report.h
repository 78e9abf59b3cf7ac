/* report.h — what one validation attempt found, and how it is printed.
 *
 * A report is an ordered list of checks (name, ok, detail), the versions,
 * one entry per GPU, and the outcome: the exit code and one-line reason of
 * the first failure (later failures are still listed as checks, but the
 * first one decides, because it is usually the cause of the rest).
 *
 * Pure: no I/O except printing to a caller-given FILE. All strings are
 * copied in and owned by the report; report_free() releases them.
 */
#ifndef GPC_VALIDATOR_REPORT_H
#define GPC_VALIDATOR_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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
};

struct val_check {
  char *name;
  bool ok;
  char *detail;
};

struct val_device {
  int index;
  char *name;
  char *uuid;
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
};

void report_init(struct val_report *r);
void report_free(struct val_report *r);

/* Appends a check; detail is printf-formatted (may be "" but not NULL). */
void report_check(struct val_report *r, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records a failure: the first one sets exit_code and reason
 * ("<Result>: <detail>", e.g. "NVMLError: nvmlInit_v2: Driver Not Loaded (9)").
 * Later calls are ignored, except VAL_TIMEOUT, which wraps the reason. */
void report_fail(struct val_report *r, enum val_exit code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The device entry with this index, created (zeroed) when missing. */
struct val_device *report_device(struct val_report *r, int index);
void report_set_string(char **slot, const char *value);

/* "ok", "NoDriverLibrary", "NVMLError", "NoDevice", "CUDAError",
 * "WrongResult", "PluginNotAdvertising", "Timeout", "UsageError". */
const char *report_result_name(int exit_code);

/* Human summary: one line per check, then "result: ...". */
void report_print_text(const struct val_report *r, FILE *out);
/* The --json object (new reference): checks, driverVersion,
 * cudaDriverVersion, devices, result, reason, exitCode. */
json_t *report_json(const struct val_report *r);

#endif
