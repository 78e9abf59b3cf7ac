/* templates.c — load operand templates from the embedded table or a directory. */
#include "templates.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dynbuf.h"
#include "embedded.h"
#include "yaml2json.h"

struct gpc_templates {
  json_t *docs[GPC_OP_COUNT];
  char *source[GPC_OP_COUNT];
};

/* Reads a whole file, refusing anything over the cap. */
static int read_file(const char *path, char **data, size_t *len, struct gpc_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return gpc_fail(err, GPC_E_IO, "%s: %s", path, strerror(errno));
  struct dynbuf b = DYNBUF_INIT(GPC_TEMPLATE_MAX_BYTES);
  int rc = dynbuf_read_stream(&b, f);
  fclose(f);
  if (rc != GPC_OK) {
    dynbuf_release(&b);
    if (rc == GPC_E_TOO_LARGE)
      return gpc_fail(err, GPC_E_TOO_LARGE, "%s: larger than %d bytes", path,
                      GPC_TEMPLATE_MAX_BYTES);
    return gpc_fail(err, GPC_E_IO, "%s: read error", path);
  }
  *data = dynbuf_detach(&b, len);
  return GPC_OK;
}

/* Structural checks render relies on, so that a broken override fails at
 * start-up with the file named instead of producing odd objects later. */
static int check_docs(const char *src, const json_t *docs, struct gpc_error *err) {
  size_t i, daemonsets = 0;
  json_t *d;
  json_array_foreach(docs, i, d) {
    if (!json_is_object(d))
      return gpc_fail(err, GPC_E_INVAL, "%s: document %zu: not a mapping", src, i + 1);
    const char *fields[] = {"apiVersion", "kind"};
    for (size_t f = 0; f < 2; f++)
      if (!json_is_string(json_object_get(d, fields[f])))
        return gpc_fail(err, GPC_E_INVAL, "%s: document %zu: %s: required string", src, i + 1,
                        fields[f]);
    if (!json_is_string(json_object_get(json_object_get(d, "metadata"), "name")))
      return gpc_fail(err, GPC_E_INVAL, "%s: document %zu: metadata.name: required string", src,
                      i + 1);
    if (strcmp(json_string_value(json_object_get(d, "kind")), "DaemonSet") != 0) continue;
    daemonsets++;
    json_t *pod = json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "spec");
    json_t *ctrs = json_object_get(pod, "containers");
    if (!json_is_array(ctrs) || json_array_size(ctrs) == 0 ||
        !json_is_object(json_array_get(ctrs, 0)))
      return gpc_fail(err, GPC_E_INVAL,
                      "%s: document %zu: spec.template.spec.containers: at least one container "
                      "required",
                      src, i + 1);
  }
  if (daemonsets != 1)
    return gpc_fail(err, GPC_E_INVAL, "%s: exactly one DaemonSet required, found %zu", src,
                    daemonsets);
  return GPC_OK;
}

static int parse(const char *src, const char *data, size_t len, json_t **out,
                 struct gpc_error *err) {
  struct gpc_error yerr = {0};
  json_t *docs = yaml2json_parse_docs(data, len, GPC_TEMPLATE_MAX_BYTES, &yerr);
  if (!docs) return gpc_fail(err, yerr.code ? yerr.code : GPC_E_INVAL, "%s: %s", src, yerr.msg);
  int rc = check_docs(src, docs, err);
  if (rc) {
    json_decref(docs);
    return rc;
  }
  *out = docs;
  return GPC_OK;
}

static int load_one(struct gpc_templates *t, enum gpc_operand op, const char *dir,
                    struct gpc_error *err) {
  char file[64];
  snprintf(file, sizeof(file), "%s.yaml", gpc_operand_name(op));
  if (dir) {
    char *path = gpc_asprintf("%s/%s", dir, file);
    struct stat st;
    if (stat(path, &st) == 0) {
      char *data = NULL;
      size_t len = 0;
      int rc = read_file(path, &data, &len, err);
      if (rc == GPC_OK) rc = parse(path, data, len, &t->docs[op], err);
      free(data);
      if (rc) {
        free(path);
        return rc;
      }
      t->source[op] = path;
      return GPC_OK;
    }
    free(path);
  }
  const struct gpc_embedded_file *f = gpc_embedded_find(file);
  if (!f) return gpc_fail(err, GPC_E_NOT_FOUND, "template %s: not embedded in this build", file);
  t->source[op] = gpc_asprintf("embedded:%s", file);
  return parse(t->source[op], f->data, f->len, &t->docs[op], err);
}

int templates_load(const char *dir, struct gpc_templates **out, struct gpc_error *err) {
  *out = NULL;
  if (dir) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
      return gpc_fail(err, GPC_E_NOT_FOUND, "--templates-dir %s: not a directory", dir);
  }
  struct gpc_templates *t = gpc_calloc(1, sizeof(*t));
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    int rc = load_one(t, (enum gpc_operand)op, dir, err);
    if (rc) {
      templates_free(t);
      return rc;
    }
  }
  *out = t;
  return GPC_OK;
}

const json_t *templates_get(const struct gpc_templates *t, enum gpc_operand op) {
  if (!t || (int)op < 0 || op >= GPC_OP_COUNT) return NULL;
  return t->docs[op];
}

const char *templates_source(const struct gpc_templates *t, enum gpc_operand op) {
  if (!t || (int)op < 0 || op >= GPC_OP_COUNT) return NULL;
  return t->source[op];
}

void templates_free(struct gpc_templates *t) {
  if (!t) return;
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    json_decref(t->docs[op]);
    free(t->source[op]);
  }
  free(t);
}
