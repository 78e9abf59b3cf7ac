/* report.c — collecting checks and printing them as text or JSON. */
#include "report.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void report_init(struct val_report *r) {
  memset(r, 0, sizeof *r);
}

void report_free(struct val_report *r) {
  for (size_t i = 0; i < r->nchecks; i++) {
    free(r->checks[i].name);
    free(r->checks[i].detail);
  }
  for (size_t i = 0; i < r->ndevices; i++) {
    free(r->devices[i].name);
    free(r->devices[i].uuid);
  }
  free(r->checks);
  free(r->devices);
  free(r->driver_version);
  free(r->cuda_driver_version);
  free(r->reason);
  memset(r, 0, sizeof *r);
}

void report_set_string(char **slot, const char *value) {
  free(*slot);
  *slot = value ? gpc_strdup(value) : NULL;
}

/* vasprintf through alloc.h, which aborts on exhaustion. Most details fit
 * the stack buffer, so they are formatted once. */
static char *vformat(const char *fmt, va_list ap) {
  char buf[256];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return gpc_strdup("");
  if ((size_t)n < sizeof buf) return gpc_strdup(buf);
  char *s = gpc_malloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

/* Reasons and details go into a one-line termination message and a log
 * line, so a newline from a driver string must not split them. */
static void one_line(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r') *s = ' ';
}

void report_check(struct val_report *r, const char *name, bool ok, const char *fmt, ...) {
  gpc_grow((void **)&r->checks, &r->checks_cap, r->nchecks + 1, sizeof *r->checks);
  struct val_check *c = &r->checks[r->nchecks++];
  c->name = gpc_strdup(name);
  c->ok = ok;
  va_list ap;
  va_start(ap, fmt);
  c->detail = vformat(fmt, ap);
  va_end(ap);
  one_line(c->detail);
}

void report_fail(struct val_report *r, enum val_exit code, const char *fmt, ...) {
  if (r->exit_code != VAL_OK && code != VAL_TIMEOUT) return;
  va_list ap;
  va_start(ap, fmt);
  char *detail = vformat(fmt, ap);
  va_end(ap);
  char *reason = gpc_asprintf("%s: %s", report_result_name(code), detail);
  free(detail);
  one_line(reason);
  free(r->reason);
  r->reason = reason;
  r->exit_code = code;
}

struct val_device *report_device(struct val_report *r, int index) {
  for (size_t i = 0; i < r->ndevices; i++)
    if (r->devices[i].index == index) return &r->devices[i];
  gpc_grow((void **)&r->devices, &r->devices_cap, r->ndevices + 1, sizeof *r->devices);
  struct val_device *d = &r->devices[r->ndevices++];
  memset(d, 0, sizeof *d);
  d->index = index;
  return d;
}

const char *report_result_name(int exit_code) {
  switch (exit_code) {
  case VAL_OK:
    return "ok";
  case VAL_USAGE:
    return "UsageError";
  case VAL_NO_LIBRARY:
    return "NoDriverLibrary";
  case VAL_NVML:
    return "NVMLError";
  case VAL_NO_DEVICE:
    return "NoDevice";
  case VAL_CUDA:
    return "CUDAError";
  case VAL_WRONG_RESULT:
    return "WrongResult";
  case VAL_PLUGIN:
    return "PluginNotAdvertising";
  case VAL_TIMEOUT:
    return "Timeout";
  default:
    return "Failed";
  }
}

void report_print_text(const struct val_report *r, FILE *out) {
  for (size_t i = 0; i < r->nchecks; i++) {
    const struct val_check *c = &r->checks[i];
    fprintf(out, "%-4s  %-20s %s\n", c->ok ? "ok" : "FAIL", c->name, c->detail);
  }
  if (r->exit_code == VAL_OK)
    fprintf(out, "result: ok\n");
  else
    fprintf(out, "result: failed (exit %d) %s\n", r->exit_code, r->reason ? r->reason : "");
}

/* Strings come from drivers and file paths; jansson refuses invalid UTF-8,
 * so such bytes are replaced rather than losing the whole field. */
static json_t *jstr(const char *s) {
  json_t *j = json_string(s);
  if (j) return j;
  char *copy = gpc_strdup(s);
  for (char *p = copy; *p; p++)
    if ((unsigned char)*p >= 0x80) *p = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *string_or_null(const char *s) {
  return s ? jstr(s) : json_null();
}

static json_t *device_json(const struct val_device *d) {
  json_t *o = json_object();
  json_object_set_new(o, "index", json_integer(d->index));
  json_object_set_new(o, "name", string_or_null(d->name));
  json_object_set_new(o, "uuid", string_or_null(d->uuid));
  json_object_set_new(o, "memoryTotalMiB",
                      d->have_memory ? json_integer((json_int_t)d->memory_total_mib) : json_null());
  json_object_set_new(o, "memoryUsedMiB",
                      d->have_memory ? json_integer((json_int_t)d->memory_used_mib) : json_null());
  json_object_set_new(o, "temperatureC",
                      d->have_temperature ? json_integer(d->temperature_c) : json_null());
  if (d->have_cc) {
    char cc[32];
    snprintf(cc, sizeof cc, "%d.%d", d->cc_major, d->cc_minor);
    json_object_set_new(o, "computeCapability", json_string(cc));
  } else {
    json_object_set_new(o, "computeCapability", json_null());
  }
  if (d->vectoradd_ran)
    json_object_set_new(o, "vectorAdd",
                        json_pack("{s:b,s:I,s:f}", "ok", d->vectoradd_ok, "elements",
                                  (json_int_t)d->vectoradd_elements, "ms", d->vectoradd_ms));
  else
    json_object_set_new(o, "vectorAdd", json_null());
  return o;
}

json_t *report_json(const struct val_report *r) {
  json_t *checks = json_array();
  for (size_t i = 0; i < r->nchecks; i++) {
    json_t *c = json_object();
    json_object_set_new(c, "name", jstr(r->checks[i].name));
    json_object_set_new(c, "ok", json_boolean(r->checks[i].ok));
    json_object_set_new(c, "detail", jstr(r->checks[i].detail));
    json_array_append_new(checks, c);
  }
  json_t *devices = json_array();
  for (size_t i = 0; i < r->ndevices; i++)
    json_array_append_new(devices, device_json(&r->devices[i]));
  json_t *o = json_object();
  json_object_set_new(o, "checks", checks);
  json_object_set_new(o, "driverVersion", string_or_null(r->driver_version));
  json_object_set_new(o, "cudaDriverVersion", string_or_null(r->cuda_driver_version));
  json_object_set_new(o, "devices", devices);
  json_object_set_new(o, "result", jstr(report_result_name(r->exit_code)));
  json_object_set_new(o, "reason", string_or_null(r->reason));
  json_object_set_new(o, "exitCode", json_integer(r->exit_code));
  return o;
}
