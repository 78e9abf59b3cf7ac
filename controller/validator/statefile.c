/* statefile.c — atomic status file, readiness probe, termination log. */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "report.h"

static int write_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

int statefile_write(const char *path, const json_t *report, struct gpc_error *err) {
  char *text = json_dumps(report, JSON_COMPACT);
  char *tmp = gpc_asprintf("%s.tmp.%ld", path, (long)getpid());
  int rc = GPC_OK;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = gpc_fail(err, GPC_E_IO, "status file %s: %s", tmp, strerror(errno));
    goto out;
  }
  if (!text || write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0) {
    rc = gpc_fail(err, GPC_E_IO, "status file %s: %s", tmp, text ? strerror(errno) : "encode");
    close(fd);
    unlink(tmp);
    goto out;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    rc = gpc_fail(err, GPC_E_IO, "status file %s: %s", path, strerror(errno));
    unlink(tmp);
  }
out:
  free(tmp);
  free(text);
  return rc;
}

int statefile_probe(const char *path, struct gpc_error *why) {
  /* The validator writes a few KiB; anything huge is not its file. */
  struct stat st;
  if (stat(path, &st) == 0 && st.st_size > STATEFILE_MAX_BYTES) {
    gpc_fail(why, GPC_E_TOO_LARGE, "status file %s: over %d bytes", path, STATEFILE_MAX_BYTES);
    return 1;
  }
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root) {
    gpc_fail(why, GPC_E_NOT_FOUND, "status file %s: %s", path, jerr.text);
    return 1;
  }
  json_t *code = json_object_get(root, "exitCode");
  const char *reason = json_string_value(json_object_get(root, "reason"));
  int rc;
  if (!json_is_integer(code) || json_integer_value(code) < 0 || json_integer_value(code) > 255) {
    gpc_fail(why, GPC_E_INVAL, "status file %s: exitCode: not an exit code", path);
    rc = 1;
  } else if (json_integer_value(code) == 0) {
    gpc_fail(why, GPC_OK, "ok");
    rc = 0;
  } else if (json_integer_value(code) == VAL_BUSY) {
    /* Busy is not a failure: the node works, its GPUs are in use. */
    gpc_fail(why, GPC_OK, "%s", reason ? reason : "GPUBusy");
    rc = 0;
  } else {
    rc = (int)json_integer_value(code);
    gpc_fail(why, GPC_E_INVAL, "%s", reason ? reason : "failed");
  }
  json_decref(root);
  return rc;
}

int statefile_termlog_write(const char *path, const char *reason, struct gpc_error *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return gpc_fail(err, GPC_E_IO, "termination log %s: %s", path, strerror(errno));
  int rc = GPC_OK;
  if (write_all(fd, reason, strlen(reason)) != 0 || write_all(fd, "\n", 1) != 0)
    rc = gpc_fail(err, GPC_E_IO, "termination log %s: %s", path, strerror(errno));
  if (close(fd) != 0 && rc == GPC_OK)
    rc = gpc_fail(err, GPC_E_IO, "termination log %s: %s", path, strerror(errno));
  return rc;
}
