/* fuzz_render.c — render every operand of any policy that decodes.
 *
 * Invariants: rendering a valid policy never fails except for the policy
 * name check; every object is named by a valid DNS-1035 label of at most 63
 * characters (or keeps its template name when cluster-scoped); its
 * render-hash annotation matches a recomputation; a DaemonSet's selector
 * selects its own pod template. Also feeds the raw bytes to the name and
 * label-value sanitizers, whose output must stay in bounds and valid. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"
#include "render.h"
#include "templates.h"

static struct gpc_templates *tpl;

static void check_label_value(const char *v) {
  size_t n = strlen(v);
  if (n > 63) abort();
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (!(isalnum(c) || c == '-' || c == '_' || c == '.')) abort();
  }
  if (n && (!isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[n - 1]))) abort();
}

static void check_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > GPC_NAME_MAX || !islower((unsigned char)s[0]) || s[n - 1] == '-') abort();
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-')) abort();
}

static void check_object(const json_t *o) {
  const char *kind = json_string_value(json_object_get(o, "kind"));
  const json_t *md = json_object_get(o, "metadata");
  const char *name = json_string_value(json_object_get(md, "name"));
  if (!kind || !name) abort();
  if (strcmp(kind, "RuntimeClass") != 0) check_name(name);
  char h[65];
  render_hash(o, h);
  if (strcmp(h, render_hash_of(o)) != 0) abort();
  if (strcmp(kind, "DaemonSet") != 0) return;
  const json_t *spec = json_object_get(o, "spec");
  const json_t *sel = json_object_get(json_object_get(spec, "selector"), "matchLabels");
  const json_t *tl =
      json_object_get(json_object_get(json_object_get(spec, "template"), "metadata"), "labels");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)sel, k, v) {
    if (!json_equal(v, json_object_get(tl, k))) abort();
  }
  json_object_foreach((json_t *)tl, k, v) check_label_value(json_string_value(v));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!tpl) {
    gpc_alloc_init();
    struct gpc_error e = {0};
    if (templates_load(NULL, &tpl, &e)) abort();
  }
  /* sanitizers on raw bytes */
  char *s = gpc_strndup((const char *)data, size < 300 ? size : 300);
  char lv[64], nm[GPC_NAME_MAX + 1];
  render_label_value(s, lv);
  check_label_value(lv);
  if (s[0]) {
    render_object_name(s, "container-toolkit", nm);
    check_name(nm);
  }
  free(s);

  json_error_t jerr;
  json_t *obj = json_loadb((const char *)data, size, 0, &jerr);
  if (!obj) return 0;
  struct gpc_policy *p = NULL;
  struct gpc_error err = {0};
  if (policy_from_json(obj, &p, &err) == GPC_OK) {
    for (int shared = 0; shared < 2; shared++) {
      struct gpc_render_opts o = {.namespace = "gpu-policy-system", .include_shared = shared};
      json_t *objs = NULL;
      if (render_policy(p, tpl, &o, &objs, &err) != GPC_OK) {
        if (!strstr(err.msg, "metadata.name")) abort();
        continue;
      }
      size_t i;
      json_t *it;
      json_array_foreach(objs, i, it) check_object(it);
      json_decref(objs);
    }
    policy_free(p);
  }
  json_decref(obj);
  return 0;
}
