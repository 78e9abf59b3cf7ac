/* yaml2json.c — YAML (libyaml event API) to jansson, and jansson back to YAML.
 *
 * The parser is driven event by event and builds JSON directly with an
 * explicit stack, so nesting depth costs heap, not C stack; the depth is
 * still capped because jansson's own dump/free/copy functions recurse.
 *
 * Plain scalars follow the YAML 1.2 core schema (null/~, true/false, ints in
 * decimal/0x/0o, floats incl. .inf/.nan) with one YAML 1.1 concession that
 * kubectl (go-yaml v2) also makes: a plain integer with a leading zero such
 * as `defaultMode: 0755` is octal. .inf/.nan have no JSON form and are
 * rejected with the position. Quoted scalars are always strings.
 */
#include "yaml2json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "alloc.h"
#include "dynbuf.h"

#define Y2J_DEFAULT_MAX (8u * 1024u * 1024u)
/* Deeper than any real manifest; keeps jansson's recursive helpers safe. */
#define Y2J_MAX_DEPTH 256
/* Nodes that alias expansion may add per stream ("billion laughs" guard). */
#define Y2J_MAX_ALIAS_NODES 100000u

struct anchor {
  char *name;
  json_t *value; /* own reference */
  size_t weight; /* nodes in value */
};

struct frame {
  json_t *node;       /* object or array being filled (own reference) */
  char *key;          /* pending mapping key, NULL when the next scalar is a key */
  char *anchor;       /* anchor to register when the collection ends */
  json_t *merges;     /* array of `<<` sources, applied at mapping end */
  bool merge_pending; /* the pending key is `<<` */
};

struct builder {
  struct frame stack[Y2J_MAX_DEPTH];
  int depth;
  struct anchor *anchors;
  size_t n_anchors, cap_anchors;
  json_t *anchor_index; /* name -> latest index in anchors, so lookups stay O(1) */
  size_t alias_nodes;
  json_t *root; /* completed document root */
  bool have_root;
};

/* ---- scalar typing ------------------------------------------------------ */

static bool all_in(const char *s, size_t n, const char *set) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr(set, s[i]) || s[i] == '\0') return false;
  return true;
}

static bool is_one_of(const char *s, const char *const *words) {
  for (; *words; words++)
    if (strcmp(s, *words) == 0) return true;
  return false;
}

static const char *const null_words[] = {"~", "null", "Null", "NULL", "", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {".inf", ".Inf", ".INF", NULL};
static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};

/* YAML 1.2 core float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float_text(const char *s) {
  const char *p = s;
  if (*p == '+' || *p == '-') p++;
  size_t digits = 0;
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9')
      p++, digits++;
    if (!digits) return false;
  } else {
    while (*p >= '0' && *p <= '9')
      p++, digits++;
    if (!digits) return false;
    if (*p == '.') {
      p++;
      while (*p >= '0' && *p <= '9')
        p++;
    }
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    size_t ed = 0;
    while (*p >= '0' && *p <= '9')
      p++, ed++;
    if (!ed) return false;
  }
  return *p == '\0';
}

enum scalar_kind { SK_STRING, SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_NONFINITE };

/* Classifies a plain scalar; for SK_INT/SK_FLOAT/SK_BOOL fills the value. */
static enum scalar_kind classify_plain(const char *s, size_t n, json_int_t *iv, double *dv,
                                       bool *bv) {
  if (strlen(s) != n) return SK_STRING; /* embedded NUL: only a string can hold it */
  if (is_one_of(s, null_words)) return SK_NULL;
  if (is_one_of(s, true_words)) return *bv = true, SK_BOOL;
  if (is_one_of(s, false_words)) return *bv = false, SK_BOOL;
  const char *p = s;
  bool neg = false;
  if (*p == '+' || *p == '-') neg = (*p++ == '-');
  if (is_one_of(p, inf_words)) return SK_NONFINITE;
  if (p == s && is_one_of(s, nan_words)) return SK_NONFINITE;
  int base = 0;
  const char *digits = p;
  if (p == s && p[0] == '0' && p[1] == 'x' &&
      all_in(p + 2, strlen(p + 2), "0123456789abcdefABCDEF"))
    base = 16, digits = p + 2;
  else if (p == s && p[0] == '0' && p[1] == 'o' && all_in(p + 2, strlen(p + 2), "01234567"))
    base = 8, digits = p + 2;
  else if (p[0] == '0' && p[1] && all_in(p, strlen(p), "01234567"))
    base = 8; /* YAML 1.1 octal, as kubectl reads `0755` */
  else if (all_in(p, strlen(p), "0123456789"))
    base = 10;
  if (base) {
    errno = 0;
    unsigned long long u = strtoull(digits, NULL, base);
    if (errno == 0 && u <= (unsigned long long)INT64_MAX + (neg ? 1u : 0u)) {
      *iv = neg ? (json_int_t)(0 - u) : (json_int_t)u;
      return SK_INT;
    }
    if (base != 10) return SK_STRING; /* out-of-range hex/octal: keep the text */
    *dv = strtod(s, NULL);            /* huge decimal: a float, like JSON parsers do */
    return SK_FLOAT;
  }
  if (is_float_text(s)) {
    *dv = strtod(s, NULL);
    return isfinite(*dv) ? SK_FLOAT : SK_NONFINITE;
  }
  return SK_STRING;
}

/* ---- wiping --------------------------------------------------------------
 * The same parser reads kubeconfigs (tokens, key data), so every copy of
 * input text that this file makes or that libyaml hands back is wiped
 * before it is freed: our per-scalar copies, each event's scalar value and
 * libyaml's input buffers. Best effort: libyaml's scanner also grows
 * temporary strings with realloc, whose old blocks no caller can reach. */

static void free_wiped(char *s) {
  if (!s) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

static void event_wipe(yaml_event_t *ev) {
  if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value)
    explicit_bzero(ev->data.scalar.value, ev->data.scalar.length);
}

static void parser_wipe(yaml_parser_t *p) {
  if (p->buffer.start) explicit_bzero(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
  if (p->raw_buffer.start)
    explicit_bzero(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
}

/* ---- builder ------------------------------------------------------------ */

static int fail_at(struct gpc_error *err, enum gpc_err code, const yaml_mark_t *m,
                   const char *what) {
  return gpc_fail(err, code, "line %zu column %zu: %s", m->line + 1, m->column + 1, what);
}

static void builder_reset_doc(struct builder *b) {
  for (int i = 0; i < b->depth; i++) {
    json_decref(b->stack[i].node);
    free(b->stack[i].key);
    free(b->stack[i].anchor);
    json_decref(b->stack[i].merges);
  }
  b->depth = 0;
  for (size_t i = 0; i < b->n_anchors; i++) {
    free(b->anchors[i].name);
    json_decref(b->anchors[i].value);
  }
  b->n_anchors = 0;
  json_object_clear(b->anchor_index);
  json_decref(b->root);
  b->root = NULL;
  b->have_root = false;
}

static void builder_free(struct builder *b) {
  builder_reset_doc(b);
  free(b->anchors);
  json_decref(b->anchor_index);
}

/* Nodes in `v`, counting no further than `limit`. */
static size_t json_weight(const json_t *v, size_t limit) {
  size_t n = 1;
  if (json_is_object(v)) {
    const char *k;
    json_t *c;
    json_object_foreach((json_t *)v, k, c) {
      n += json_weight(c, limit);
      if (n > limit) return n;
    }
  } else if (json_is_array(v)) {
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c) {
      n += json_weight(c, limit);
      if (n > limit) return n;
    }
  }
  return n;
}

static void register_anchor(struct builder *b, const char *name, json_t *value) {
  if (!name) return;
  /* A redefined anchor shadows the earlier one for later aliases. */
  gpc_grow((void **)&b->anchors, &b->cap_anchors, b->n_anchors + 1, sizeof *b->anchors);
  if (!b->anchor_index) b->anchor_index = json_object();
  json_object_set_new(b->anchor_index, name, json_integer((json_int_t)b->n_anchors));
  struct anchor *a = &b->anchors[b->n_anchors++];
  a->name = gpc_strdup(name);
  a->value = json_incref(value);
  a->weight = json_weight(value, SIZE_MAX);
}

static const struct anchor *find_anchor(const struct builder *b, const char *name) {
  json_t *i = json_object_get(b->anchor_index, name);
  if (i) return &b->anchors[json_integer_value(i)];
  return NULL;
}

/* Attaches a finished value (stealing the reference) to the current parent. */
static int attach(struct builder *b, json_t *v, const char *key_text, bool merge_key,
                  const yaml_mark_t *m, struct gpc_error *err) {
  if (b->depth == 0) {
    b->root = v;
    b->have_root = true;
    return GPC_OK;
  }
  struct frame *f = &b->stack[b->depth - 1];
  if (json_is_array(f->node)) {
    json_array_append_new(f->node, v);
    return GPC_OK;
  }
  if (!f->key) {
    /* This value is a key. */
    if (!key_text) {
      json_decref(v);
      return fail_at(err, GPC_E_INVAL, m, "mapping keys must be scalars");
    }
    json_decref(v);
    if (merge_key) {
      f->merge_pending = true;
      f->key = gpc_strdup(key_text);
      return GPC_OK;
    }
    if (json_object_get(f->node, key_text)) {
      char msg[160];
      snprintf(msg, sizeof msg, "duplicate key \"%.100s\"", key_text);
      return fail_at(err, GPC_E_INVAL, m, msg);
    }
    f->key = gpc_strdup(key_text);
    return GPC_OK;
  }
  if (f->merge_pending) {
    f->merge_pending = false;
    free(f->key);
    f->key = NULL;
    if (!f->merges) f->merges = json_array();
    if (json_is_object(v)) {
      json_array_append_new(f->merges, v);
    } else if (json_is_array(v)) {
      size_t i;
      json_t *c;
      json_array_foreach(v, i, c) {
        if (!json_is_object(c)) {
          json_decref(v);
          return fail_at(err, GPC_E_INVAL, m, "merge key \"<<\" needs mappings");
        }
        json_array_append(f->merges, c);
      }
      json_decref(v);
    } else {
      json_decref(v);
      return fail_at(err, GPC_E_INVAL, m, "merge key \"<<\" needs a mapping or a list of mappings");
    }
    return GPC_OK;
  }
  json_object_set_new(f->node, f->key, v);
  free(f->key);
  f->key = NULL;
  return GPC_OK;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev, struct gpc_error *err) {
  const char *text = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               (!tag || strcmp(tag, "!") != 0) && !(tag && strcmp(tag, YAML_STR_TAG) == 0);
  json_t *v = NULL;
  if (plain) {
    json_int_t iv = 0;
    double dv = 0;
    bool bv = false;
    switch (classify_plain(text, n, &iv, &dv, &bv)) {
    case SK_NULL:
      v = json_null();
      break;
    case SK_BOOL:
      v = json_boolean(bv);
      break;
    case SK_INT:
      v = json_integer(iv);
      break;
    case SK_FLOAT:
      v = json_real(dv);
      break;
    case SK_NONFINITE:
      return fail_at(err, GPC_E_INVAL, &ev->start_mark,
                     "infinity and NaN have no JSON representation (quote the value)");
    case SK_STRING:
      break;
    }
  }
  if (!v) v = json_stringn(text, n);
  if (!v) return fail_at(err, GPC_E_INVAL, &ev->start_mark, "invalid UTF-8 in scalar");
  /* A key is the scalar's text even when it would type as a number; only a
   * plain `<<` is a merge key. */
  char *key_text = gpc_strndup(text, n);
  bool merge_key = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(key_text, "<<") == 0;
  if (ev->data.scalar.anchor) register_anchor(b, (const char *)ev->data.scalar.anchor, v);
  int rc = attach(b, v, key_text, merge_key, &ev->start_mark, err);
  free_wiped(key_text);
  return rc;
}

static int on_alias(struct builder *b, const yaml_event_t *ev, struct gpc_error *err) {
  const struct anchor *a = find_anchor(b, (const char *)ev->data.alias.anchor);
  if (!a) return fail_at(err, GPC_E_INVAL, &ev->start_mark, "alias to an undefined anchor");
  b->alias_nodes += a->weight;
  if (b->alias_nodes > Y2J_MAX_ALIAS_NODES)
    return fail_at(err, GPC_E_TOO_LARGE, &ev->start_mark, "alias expansion exceeds the node cap");
  /* A copy, so that callers may modify the result without aliasing surprises. */
  json_t *v = json_deep_copy(a->value);
  const char *key_text = json_is_string(v) ? json_string_value(v) : NULL;
  char *key_copy = key_text ? gpc_strdup(key_text) : NULL;
  int rc = attach(b, v, key_copy, false, &ev->start_mark, err);
  free_wiped(key_copy);
  return rc;
}

static int on_start(struct builder *b, const yaml_event_t *ev, bool mapping,
                    struct gpc_error *err) {
  if (b->depth > 0) {
    struct frame *p = &b->stack[b->depth - 1];
    if (json_is_object(p->node) && !p->key)
      return fail_at(err, GPC_E_INVAL, &ev->start_mark, "mapping keys must be scalars");
  }
  if (b->depth >= Y2J_MAX_DEPTH)
    return fail_at(err, GPC_E_TOO_LARGE, &ev->start_mark, "nesting deeper than 256 levels");
  const yaml_char_t *anchor =
      mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
  struct frame *f = &b->stack[b->depth++];
  memset(f, 0, sizeof *f);
  f->node = mapping ? json_object() : json_array();
  f->anchor = anchor ? gpc_strdup((const char *)anchor) : NULL;
  return GPC_OK;
}

static int on_end(struct builder *b, const yaml_event_t *ev, struct gpc_error *err) {
  struct frame f = b->stack[--b->depth];
  if (f.merges) {
    /* Explicit keys win; earlier merge sources win over later ones. */
    size_t i;
    json_t *src;
    json_array_foreach(f.merges, i, src) {
      json_object_update_missing(f.node, src);
    }
    json_decref(f.merges);
  }
  free(f.key);
  register_anchor(b, f.anchor, f.node);
  free(f.anchor);
  return attach(b, f.node, NULL, false, &ev->start_mark, err);
}

/* ---- driver ------------------------------------------------------------- */

static int parser_error(const yaml_parser_t *p, struct gpc_error *err) {
  if (p->error == YAML_MEMORY_ERROR) return gpc_fail(err, GPC_E_INVAL, "YAML: out of memory");
  if (p->context)
    return gpc_fail(err, GPC_E_INVAL, "line %zu column %zu: %s (%s, line %zu)",
                    p->problem_mark.line + 1, p->problem_mark.column + 1,
                    p->problem ? p->problem : "syntax error", p->context, p->context_mark.line + 1);
  return gpc_fail(err, GPC_E_INVAL, "line %zu column %zu: %s", p->problem_mark.line + 1,
                  p->problem_mark.column + 1, p->problem ? p->problem : "syntax error");
}

/* Parses the stream; appends each non-empty document root to `docs`. */
static int parse_stream(const char *data, size_t len, size_t max_bytes, json_t *docs,
                        struct gpc_error *err) {
  if (!max_bytes) max_bytes = Y2J_DEFAULT_MAX;
  if (len > max_bytes)
    return gpc_fail(err, GPC_E_TOO_LARGE, "YAML input of %zu bytes exceeds the %zu-byte cap", len,
                    max_bytes);
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return gpc_fail(err, GPC_E_INVAL, "YAML: init failed");
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  struct builder b = {0};
  int rc = GPC_OK;
  bool done = false;
  while (!done && rc == GPC_OK) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      rc = parser_error(&parser, err);
      break;
    }
    switch (ev.type) {
    case YAML_SCALAR_EVENT:
      rc = on_scalar(&b, &ev, err);
      break;
    case YAML_ALIAS_EVENT:
      rc = on_alias(&b, &ev, err);
      break;
    case YAML_SEQUENCE_START_EVENT:
      rc = on_start(&b, &ev, false, err);
      break;
    case YAML_MAPPING_START_EVENT:
      rc = on_start(&b, &ev, true, err);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      rc = on_end(&b, &ev, err);
      break;
    case YAML_DOCUMENT_END_EVENT:
      if (b.have_root && !json_is_null(b.root)) json_array_append(docs, b.root);
      builder_reset_doc(&b);
      break;
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    default:
      break;
    }
    event_wipe(&ev);
    yaml_event_delete(&ev);
  }
  builder_free(&b);
  parser_wipe(&parser);
  yaml_parser_delete(&parser);
  return rc;
}

json_t *yaml2json_parse_docs(const char *data, size_t len, size_t max_bytes,
                             struct gpc_error *err) {
  json_t *docs = json_array();
  if (parse_stream(data, len, max_bytes, docs, err) != GPC_OK) {
    json_decref(docs);
    return NULL;
  }
  return docs;
}

json_t *yaml2json_parse(const char *data, size_t len, size_t max_bytes, struct gpc_error *err) {
  json_t *docs = yaml2json_parse_docs(data, len, max_bytes, err);
  if (!docs) return NULL;
  size_t n = json_array_size(docs);
  if (n != 1) {
    json_decref(docs);
    if (n)
      gpc_fail(err, GPC_E_INVAL, "expected one YAML document, found %zu", n);
    else
      gpc_fail(err, GPC_E_INVAL, "empty YAML document");
    return NULL;
  }
  json_t *doc = json_incref(json_array_get(docs, 0));
  json_decref(docs);
  return doc;
}

/* Reads a whole file into a fresh buffer, refusing more than `max` bytes. */
static char *read_capped(const char *path, size_t max, size_t *out_len, struct gpc_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    gpc_fail(err, errno == ENOENT ? GPC_E_NOT_FOUND : GPC_E_IO, "%s: %s", path, strerror(errno));
    return NULL;
  }
  struct dynbuf b = DYNBUF_INIT(max);
  int rc = dynbuf_read_stream(&b, f);
  fclose(f);
  if (rc != GPC_OK) {
    dynbuf_release(&b);
    if (rc == GPC_E_TOO_LARGE)
      gpc_fail(err, GPC_E_TOO_LARGE, "%s: larger than the %zu-byte cap", path, max);
    else
      gpc_fail(err, GPC_E_IO, "%s: read error", path);
    return NULL;
  }
  return dynbuf_detach(&b, out_len);
}

json_t *yaml2json_file(const char *path, size_t max_bytes, struct gpc_error *err) {
  if (!max_bytes) max_bytes = Y2J_DEFAULT_MAX;
  size_t len = 0;
  char *buf = read_capped(path, max_bytes, &len, err);
  if (!buf) return NULL;
  struct gpc_error e = {0};
  json_t *doc = yaml2json_parse(buf, len, max_bytes, &e);
  free(buf);
  if (!doc) gpc_fail(err, e.code, "%s: %s", path, e.msg);
  return doc;
}

/* ---- emitter ------------------------------------------------------------ */

/* Strings that a YAML 1.1 reader (go-yaml v2, PyYAML) would type as bool. */
static const char *const yaml11_bools[] = {"y",  "Y",   "yes", "Yes", "YES", "n",
                                           "N",  "no",  "No",  "NO",  "on",  "On",
                                           "ON", "off", "Off", "OFF", NULL};

/* True when `s` written plain would not read back as the same string. */
static bool needs_quotes(const char *s, size_t n) {
  json_int_t iv;
  double dv;
  bool bv;
  if (n == 0 || strlen(s) != n) return true;
  if (classify_plain(s, n, &iv, &dv, &bv) != SK_STRING) return true;
  if (is_one_of(s, yaml11_bools) || strcmp(s, "<<") == 0) return true;
  /* Numbers and dates in forms other readers accept (1_000, 0b1, 1:20
   * sexagesimal, 2024-05-01). */
  if (strchr("0123456789+-.", s[0]) && strspn(s, "0123456789+-._:eExXoObB") == n) return true;
  return false;
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev) {
  return yaml_emitter_emit(em, ev) ? GPC_OK : GPC_E_IO;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t n, yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style))
    return GPC_E_IO;
  return emit(em, &ev);
}

static int emit_string(yaml_emitter_t *em, const char *s, size_t n) {
  yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
  if (needs_quotes(s, n))
    style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  else if (memchr(s, '\n', n))
    style = YAML_LITERAL_SCALAR_STYLE; /* libyaml falls back to quotes when it must */
  return emit_scalar(em, s, n, style);
}

static void format_real(double d, char *buf, size_t size) {
  snprintf(buf, size, "%.15g", d);
  if (strtod(buf, NULL) != d) snprintf(buf, size, "%.17g", d);
  if (!strpbrk(buf, ".eE")) strncat(buf, ".0", size - strlen(buf) - 1);
}

static int emit_node(yaml_emitter_t *em, const json_t *j, int depth) {
  yaml_event_t ev;
  char num[64];
  if (depth > Y2J_MAX_DEPTH) return GPC_E_INVAL;
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    if (emit(em, &ev)) return GPC_E_IO;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
      if (emit_string(em, k, strlen(k)) || emit_node(em, v, depth + 1)) return GPC_E_IO;
    }
    yaml_mapping_end_event_initialize(&ev);
    return emit(em, &ev);
  }
  case JSON_ARRAY: {
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
    if (emit(em, &ev)) return GPC_E_IO;
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      if (emit_node(em, v, depth + 1)) return GPC_E_IO;
    }
    yaml_sequence_end_event_initialize(&ev);
    return emit(em, &ev);
  }
  case JSON_STRING:
    return emit_string(em, json_string_value(j), json_string_length(j));
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
  case JSON_REAL:
    format_real(json_real_value(j), num, sizeof num);
    return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
  case JSON_TRUE:
    return emit_scalar(em, "true", 4, YAML_PLAIN_SCALAR_STYLE);
  case JSON_FALSE:
    return emit_scalar(em, "false", 5, YAML_PLAIN_SCALAR_STYLE);
  case JSON_NULL:
    return emit_scalar(em, "null", 4, YAML_PLAIN_SCALAR_STYLE);
  }
  return GPC_E_INVAL;
}

int yaml2json_emit(const json_t *json, FILE *out, struct gpc_error *err) {
  yaml_emitter_t em;
  yaml_event_t ev;
  if (!yaml_emitter_initialize(&em)) return gpc_fail(err, GPC_E_IO, "YAML emitter: init failed");
  yaml_emitter_set_output_file(&em, out);
  yaml_emitter_set_unicode(&em, 1);
  yaml_emitter_set_width(&em, -1); /* never fold long strings across lines */
  yaml_emitter_set_indent(&em, 2);
  int rc = GPC_OK;
  yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
  rc = emit(&em, &ev);
  /* An explicit "---" so that several calls concatenate into a valid stream. */
  if (!rc && yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0)) rc = emit(&em, &ev);
  if (!rc) rc = emit_node(&em, json, 0);
  if (!rc && yaml_document_end_event_initialize(&ev, 1)) rc = emit(&em, &ev);
  if (!rc && yaml_stream_end_event_initialize(&ev)) rc = emit(&em, &ev);
  if (!rc && !yaml_emitter_flush(&em)) rc = GPC_E_IO;
  if (rc)
    gpc_fail(err, GPC_E_IO, "YAML emitter: %s", em.problem ? em.problem : "write or value error");
  yaml_emitter_delete(&em);
  return rc;
}
