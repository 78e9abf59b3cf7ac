/* selector.c — Kubernetes label selectors (see selector.h).
 *
 * Both sources compile to the same list of requirements, validated and
 * printed as k8s.io/apimachinery/pkg/labels does: requirements sorted by
 * key, set values sorted and de-duplicated, "==" read as "=".
 */
#include "selector.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decode.h"
#include "dynbuf.h"

enum sel_op { OP_EQ, OP_NEQ, OP_IN, OP_NOTIN, OP_EXISTS, OP_DNE };

struct requirement {
  char *key;
  enum sel_op op;
  char **values; /* sorted, unique */
  size_t n_values;
  size_t order; /* position in the source, the tie-break of the key sort */
};

struct label_selector {
  struct requirement *reqs;
  size_t n, cap;
};

/* ---- validation --------------------------------------------------------- */

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters. */
static const char *check_name(const char *s, size_t n, bool allow_empty) {
  if (n == 0) return allow_empty ? NULL : "must not be empty";
  if (n > 63) return "must be no more than 63 characters";
  if (!is_alnum(s[0]) || !is_alnum(s[n - 1]))
    return "must begin and end with an alphanumeric character";
  for (size_t i = 0; i < n; i++)
    if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
      return "may contain only alphanumerics, '-', '_' and '.'";
  return NULL;
}

/* DNS-1123 subdomain: lowercase labels of [a-z0-9-] joined by '.', ≤253. */
static const char *check_prefix(const char *s, size_t n) {
  if (n == 0) return "prefix must not be empty";
  if (n > 253) return "prefix must be no more than 253 characters";
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') {
      char c = s[i];
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
        return "prefix must be a lowercase DNS-1123 subdomain";
      continue;
    }
    if (i == start || s[start] == '-' || s[i - 1] == '-')
      return "prefix must be a lowercase DNS-1123 subdomain";
    start = i + 1;
  }
  return NULL;
}

static const char *check_key(const char *k) {
  const char *slash = strchr(k, '/');
  if (!slash) return check_name(k, strlen(k), false);
  if (strchr(slash + 1, '/')) return "must have at most one '/'";
  const char *why = check_prefix(k, (size_t)(slash - k));
  return why ? why : check_name(slash + 1, strlen(slash + 1), false);
}

/* ---- building ----------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_req(const void *a, const void *b) {
  const struct requirement *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* Adds a requirement taking ownership of `key` and `values`; sorts and
 * de-duplicates the values. */
static void add_req(struct label_selector *s, char *key, enum sel_op op, char **values, size_t n) {
  if (n > 1) {
    qsort(values, n, sizeof *values, cmp_str);
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
      if (strcmp(values[i], values[w - 1]) == 0)
        free(values[i]);
      else
        values[w++] = values[i];
    }
    n = w;
  }
  gpc_grow((void **)&s->reqs, &s->cap, s->n + 1, sizeof *s->reqs);
  s->reqs[s->n] = (struct requirement){key, op, values, n, s->n};
  s->n++;
}

static void finish(struct label_selector *s) {
  if (s->n > 1) qsort(s->reqs, s->n, sizeof *s->reqs, cmp_req);
}

void selector_free(struct label_selector *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    free(s->reqs[i].key);
    for (size_t j = 0; j < s->reqs[i].n_values; j++)
      free(s->reqs[i].values[j]);
    free(s->reqs[i].values);
  }
  free(s->reqs);
  free(s);
}

static void free_values(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* ---- metav1.LabelSelector JSON: validation ------------------------------ */

/* The one walk over a metav1.LabelSelector. It checks in the API server's
 * order (type, unknown fields, required members, grammar, then the values'
 * presence against the operator) and stops at the first fault, which the
 * caller phrases: selector_from_json below, or policy.c in the API server's
 * words. JSON null counts as absent, as the API server drops it. */

/* The matchExpressions operators: name and meaning, written once. */
#define SELECTOR_JSON_OPS(X)                                                                       \
  X("In", OP_IN)                                                                                   \
  X("NotIn", OP_NOTIN)                                                                             \
  X("Exists", OP_EXISTS)                                                                           \
  X("DoesNotExist", OP_DNE)

#define OP_NAME(name, op) name,
#define OP_CODE(name, op) op,
const char *const selector_operators[] = {SELECTOR_JSON_OPS(OP_NAME) NULL};
static const enum sel_op json_op_codes[] = {SELECTOR_JSON_OPS(OP_CODE)};
#undef OP_NAME
#undef OP_CODE

static const json_t *member(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  return v && !json_is_null(v) ? v : NULL;
}

static bool fault(struct selector_fault *f, enum selector_fault_kind kind, const json_t *node,
                  const char *text, const char *why) {
  f->kind = kind;
  f->node = node;
  f->text = text;
  f->why = why;
  return false;
}

static bool check_match_labels(const json_t *ml, struct selector_fault *f) {
  f->list = "matchLabels";
  if (!ml) return true;
  if (!json_is_object(ml)) return fault(f, SELECTOR_FAULT_TYPE, ml, NULL, NULL);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)ml, k, v) {
    f->label = k;
    if (!json_is_string(v)) return fault(f, SELECTOR_FAULT_TYPE, v, NULL, NULL);
    const char *why = check_key(k);
    if (why) return fault(f, SELECTOR_FAULT_BAD_KEY, v, k, why);
    const char *val = json_string_value(v);
    if ((why = check_name(val, strlen(val), true)))
      return fault(f, SELECTOR_FAULT_BAD_VALUE, v, val, why);
  }
  f->label = NULL;
  return true;
}

/* The index of operator `name` in selector_operators, or -1. */
static int op_index(const char *name) {
  for (int k = 0; selector_operators[k]; k++)
    if (strcmp(selector_operators[k], name) == 0) return k;
  return -1;
}

static bool check_values(const json_t *vals, enum sel_op o, struct selector_fault *f) {
  f->member = "values";
  if (vals && !json_is_array(vals)) return fault(f, SELECTOR_FAULT_TYPE, vals, NULL, NULL);
  size_t i;
  json_t *v;
  json_array_foreach(vals, i, v) {
    f->value = (long)i;
    const char *sv = json_string_value(v);
    if (!sv) return fault(f, SELECTOR_FAULT_TYPE, v, NULL, NULL);
    const char *why = check_name(sv, strlen(sv), true);
    if (why) return fault(f, SELECTOR_FAULT_BAD_VALUE, v, sv, why);
  }
  f->value = -1;
  size_t n = json_array_size(vals);
  if ((o == OP_IN || o == OP_NOTIN) && n == 0)
    return fault(f, SELECTOR_FAULT_REQUIRED, vals, NULL, NULL);
  if ((o == OP_EXISTS || o == OP_DNE) && n > 0)
    return fault(f, SELECTOR_FAULT_FORBIDDEN, vals, NULL, NULL);
  return true;
}

static bool check_expression(const json_t *e, bool strict, struct selector_fault *f) {
  static const char *const keys[] = {"key", "operator", "values", NULL};
  if (!json_is_object(e)) return fault(f, SELECTOR_FAULT_TYPE, e, NULL, NULL);
  const char *extra = strict ? decode_unknown_key(e, keys) : NULL;
  if (extra) return fault(f, SELECTOR_FAULT_UNKNOWN_FIELD, e, extra, NULL);
  const json_t *key = member(e, "key"), *op = member(e, "operator");
  f->member = "key";
  if (!key) return fault(f, SELECTOR_FAULT_REQUIRED, e, NULL, NULL);
  if (!json_is_string(key)) return fault(f, SELECTOR_FAULT_TYPE, key, NULL, NULL);
  const char *why = check_key(json_string_value(key));
  if (why) return fault(f, SELECTOR_FAULT_BAD_KEY, key, json_string_value(key), why);
  f->member = "operator";
  if (!op) return fault(f, SELECTOR_FAULT_REQUIRED, e, NULL, NULL);
  if (!json_is_string(op)) return fault(f, SELECTOR_FAULT_TYPE, op, NULL, NULL);
  int k = op_index(json_string_value(op));
  if (k < 0) return fault(f, SELECTOR_FAULT_UNSUPPORTED, op, json_string_value(op), NULL);
  if (!check_values(member(e, "values"), json_op_codes[k], f)) return false;
  f->member = NULL;
  return true;
}

bool selector_check_json(const json_t *sel, bool strict, struct selector_fault *f) {
  static const char *const keys[] = {"matchLabels", "matchExpressions", NULL};
  *f = (struct selector_fault){.expr = -1, .value = -1};
  if (!sel || json_is_null(sel)) return true;
  if (!json_is_object(sel)) return fault(f, SELECTOR_FAULT_TYPE, sel, NULL, NULL);
  const char *extra = strict ? decode_unknown_key(sel, keys) : NULL;
  if (extra) return fault(f, SELECTOR_FAULT_UNKNOWN_FIELD, sel, extra, NULL);
  if (!check_match_labels(member(sel, "matchLabels"), f)) return false;
  const json_t *exprs = member(sel, "matchExpressions");
  f->list = "matchExpressions";
  if (exprs && !json_is_array(exprs)) return fault(f, SELECTOR_FAULT_TYPE, exprs, NULL, NULL);
  size_t i;
  json_t *e;
  json_array_foreach(exprs, i, e) {
    f->expr = (long)i;
    if (!check_expression(e, strict, f)) return false;
  }
  *f = (struct selector_fault){.expr = -1, .value = -1};
  return true;
}

/* ---- metav1.LabelSelector JSON: building -------------------------------- */

/* selector_from_json's own wording of a fault; `field` names the selector. */
static int fault_error(const struct selector_fault *f, const char *field, struct gpc_error *err) {
  char where[256];
  if (f->expr >= 0)
    snprintf(where, sizeof where, "%s.matchExpressions[%ld]", field, f->expr);
  else
    snprintf(where, sizeof where, "%s", field);
  const char *m = f->member;
  if (!f->list) return gpc_fail(err, GPC_E_INVAL, "%s: must be an object", field);
  if (strcmp(f->list, "matchLabels") == 0) {
    if (!f->label) return gpc_fail(err, GPC_E_INVAL, "%s.matchLabels: must be a map", field);
    if (f->kind == SELECTOR_FAULT_TYPE)
      return gpc_fail(err, GPC_E_INVAL, "%s.matchLabels[\"%s\"]: must be a string", field,
                      f->label);
    if (f->kind == SELECTOR_FAULT_BAD_KEY)
      return gpc_fail(err, GPC_E_INVAL, "%s.matchLabels: invalid key \"%s\": %s", field, f->label,
                      f->why);
    return gpc_fail(err, GPC_E_INVAL, "%s.matchLabels[\"%s\"]: invalid value \"%s\": %s", field,
                    f->label, f->text, f->why);
  }
  if (f->expr < 0)
    return gpc_fail(err, GPC_E_INVAL, "%s.matchExpressions: must be an array", field);
  if (!m) return gpc_fail(err, GPC_E_INVAL, "%s: must be an object", where);
  if (strcmp(m, "key") == 0 && f->kind == SELECTOR_FAULT_BAD_KEY)
    return gpc_fail(err, GPC_E_INVAL, "%s.key: invalid key \"%s\": %s", where, f->text, f->why);
  if (strcmp(m, "operator") == 0 && f->kind == SELECTOR_FAULT_UNSUPPORTED)
    return gpc_fail(err, GPC_E_INVAL,
                    "%s.operator: unsupported value \"%s\": supported values: \"In\", \"NotIn\", "
                    "\"Exists\", \"DoesNotExist\"",
                    where, f->text);
  if (strcmp(m, "values") != 0)
    return gpc_fail(err, GPC_E_INVAL, "%s.%s: required string", where, m);
  switch (f->kind) {
  case SELECTOR_FAULT_REQUIRED:
    return gpc_fail(err, GPC_E_INVAL, "%s.values: must be specified when operator is In or NotIn",
                    where);
  case SELECTOR_FAULT_FORBIDDEN:
    return gpc_fail(err, GPC_E_INVAL,
                    "%s.values: may not be specified when operator is Exists or DoesNotExist",
                    where);
  case SELECTOR_FAULT_BAD_VALUE:
    return gpc_fail(err, GPC_E_INVAL, "%s.values[%ld]: invalid value \"%s\": %s", where, f->value,
                    f->text, f->why);
  default:
    if (f->value >= 0)
      return gpc_fail(err, GPC_E_INVAL, "%s.values[%ld]: invalid value: must be a string", where,
                      f->value);
    return gpc_fail(err, GPC_E_INVAL, "%s.values: must be an array", where);
  }
}

/* Builds from a selector selector_check_json accepted. */
static void add_json_match_labels(struct label_selector *s, const json_t *ml) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)ml, k, v) {
    char **vals = gpc_malloc(sizeof *vals);
    vals[0] = gpc_strdup(json_string_value(v));
    add_req(s, gpc_strdup(k), OP_EQ, vals, 1);
  }
}

static void add_json_expression(struct label_selector *s, const json_t *e) {
  const json_t *vals = member(e, "values");
  size_t n = json_array_size(vals);
  char **out = n ? gpc_calloc(n, sizeof *out) : NULL;
  for (size_t i = 0; i < n; i++)
    out[i] = gpc_strdup(json_string_value(json_array_get(vals, i)));
  int k = op_index(json_string_value(member(e, "operator")));
  add_req(s, gpc_strdup(json_string_value(member(e, "key"))), json_op_codes[k], out, n);
}

struct label_selector *selector_from_json(const json_t *sel, const char *field,
                                          struct gpc_error *err) {
  if (!field) field = "selector";
  struct selector_fault f;
  if (!selector_check_json(sel, false, &f)) {
    fault_error(&f, field, err);
    return NULL;
  }
  struct label_selector *s = gpc_calloc(1, sizeof *s);
  if (!sel || json_is_null(sel)) return s;
  add_json_match_labels(s, member(sel, "matchLabels"));
  size_t i;
  json_t *e;
  json_array_foreach(member(sel, "matchExpressions"), i, e) {
    add_json_expression(s, e);
  }
  finish(s);
  return s;
}

/* ---- from the string form ----------------------------------------------- */

enum tok_kind { T_END, T_IDENT, T_NOT, T_EQ, T_NEQ, T_COMMA, T_OPEN, T_CLOSE, T_BAD };

struct lexer {
  const char *src, *p;
  enum tok_kind kind;
  const char *tok; /* start of the current token */
  size_t len;
};

static bool ident_char(char c) {
  return c && !strchr(" \t\r\n!=,()<>", c);
}

static void lex_next(struct lexer *lx) {
  while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r' || *lx->p == '\n')
    lx->p++;
  lx->tok = lx->p;
  lx->len = 1;
  char c = *lx->p;
  if (!c) {
    lx->kind = T_END;
    lx->len = 0;
    return;
  }
  if (c == '!' && lx->p[1] == '=')
    lx->kind = T_NEQ, lx->len = 2;
  else if (c == '=' && lx->p[1] == '=')
    lx->kind = T_EQ, lx->len = 2;
  else if (c == '!')
    lx->kind = T_NOT;
  else if (c == '=')
    lx->kind = T_EQ;
  else if (c == ',')
    lx->kind = T_COMMA;
  else if (c == '(')
    lx->kind = T_OPEN;
  else if (c == ')')
    lx->kind = T_CLOSE;
  else if (!ident_char(c))
    lx->kind = T_BAD;
  else {
    lx->kind = T_IDENT;
    while (ident_char(lx->p[lx->len]))
      lx->len++;
  }
  lx->p += lx->len;
}

static bool tok_is(const struct lexer *lx, const char *word) {
  return lx->kind == T_IDENT && lx->len == strlen(word) && memcmp(lx->tok, word, lx->len) == 0;
}

static int lex_fail(const struct lexer *lx, struct gpc_error *err, const char *what) {
  return gpc_fail(err, GPC_E_INVAL, "label selector \"%.80s\": at position %zu: %s", lx->src,
                  (size_t)(lx->tok - lx->src), what);
}

/* Reads a value: an identifier, or nothing before ',', ')' or the end. */
static int lex_value(struct lexer *lx, char **out, struct gpc_error *err) {
  size_t n = lx->kind == T_IDENT ? lx->len : 0;
  if (lx->kind != T_IDENT && lx->kind != T_COMMA && lx->kind != T_CLOSE && lx->kind != T_END)
    return lex_fail(lx, err, "expected a value");
  const char *why = check_name(lx->tok, n, true);
  if (why) {
    char msg[160];
    snprintf(msg, sizeof msg, "invalid value \"%.*s\": %s", (int)(n > 63 ? 63 : n), lx->tok, why);
    return lex_fail(lx, err, msg);
  }
  *out = gpc_strndup(lx->tok, n);
  if (n) lex_next(lx);
  return GPC_OK;
}

static int parse_set(struct lexer *lx, char ***vals, size_t *n, struct gpc_error *err) {
  size_t cap = 0;
  if (lx->kind != T_OPEN) return lex_fail(lx, err, "expected '('");
  lex_next(lx);
  for (;;) {
    char *v = NULL;
    int rc = lex_value(lx, &v, err);
    if (rc) return rc;
    gpc_grow((void **)vals, &cap, *n + 1, sizeof **vals);
    (*vals)[(*n)++] = v;
    if (lx->kind == T_CLOSE) break;
    if (lx->kind != T_COMMA) return lex_fail(lx, err, "expected ',' or ')'");
    lex_next(lx);
  }
  lex_next(lx);
  return GPC_OK;
}

static int parse_requirement(struct lexer *lx, struct label_selector *s, struct gpc_error *err) {
  bool negated = lx->kind == T_NOT;
  if (negated) lex_next(lx);
  if (lx->kind != T_IDENT) return lex_fail(lx, err, "expected a label key");
  char *key = gpc_strndup(lx->tok, lx->len);
  const char *why = check_key(key);
  if (why) {
    char msg[400];
    snprintf(msg, sizeof msg, "invalid key \"%.80s\": %s", key, why);
    free(key);
    return lex_fail(lx, err, msg);
  }
  lex_next(lx);
  if (negated || lx->kind == T_COMMA || lx->kind == T_END) {
    add_req(s, key, negated ? OP_DNE : OP_EXISTS, NULL, 0);
    return GPC_OK;
  }
  char **vals = NULL;
  size_t n = 0;
  enum sel_op op = OP_EXISTS;
  int rc;
  if (lx->kind == T_EQ || lx->kind == T_NEQ) {
    op = lx->kind == T_EQ ? OP_EQ : OP_NEQ;
    lex_next(lx);
    vals = gpc_malloc(sizeof *vals);
    rc = lex_value(lx, &vals[0], err);
    n = rc ? 0 : 1;
  } else if (tok_is(lx, "in") || tok_is(lx, "notin")) {
    op = tok_is(lx, "in") ? OP_IN : OP_NOTIN;
    lex_next(lx);
    rc = parse_set(lx, &vals, &n, err);
  } else {
    rc = lex_fail(lx, err, "expected '=', '!=', 'in' or 'notin'");
  }
  if (rc) {
    free(key);
    free_values(vals, n);
    return rc;
  }
  add_req(s, key, op, vals, n);
  return GPC_OK;
}

struct label_selector *selector_parse(const char *str, struct gpc_error *err) {
  struct label_selector *s = gpc_calloc(1, sizeof *s);
  struct lexer lx = {.src = str ? str : "", .p = str ? str : ""};
  lex_next(&lx);
  while (lx.kind != T_END) {
    int rc = parse_requirement(&lx, s, err);
    if (!rc && lx.kind != T_END) {
      if (lx.kind != T_COMMA)
        rc = lex_fail(&lx, err, "expected ','");
      else
        lex_next(&lx);
      if (!rc && lx.kind == T_END) rc = lex_fail(&lx, err, "expected a requirement after ','");
    }
    if (rc) {
      selector_free(s);
      return NULL;
    }
  }
  finish(s);
  return s;
}

/* ---- use ---------------------------------------------------------------- */

bool selector_empty(const struct label_selector *s) {
  return !s || s->n == 0;
}

static bool in_values(const struct requirement *r, const char *v) {
  for (size_t i = 0; i < r->n_values; i++)
    if (strcmp(r->values[i], v) == 0) return true;
  return false;
}

bool selector_matches(const struct label_selector *s, selector_label_lookup_fn lookup,
                      const void *labels) {
  if (!s) return true;
  for (size_t i = 0; i < s->n; i++) {
    const struct requirement *r = &s->reqs[i];
    const char *v = lookup(labels, r->key);
    bool ok;
    switch (r->op) {
    case OP_EQ:
    case OP_IN:
      ok = v && in_values(r, v);
      break;
    case OP_NEQ:
    case OP_NOTIN:
      ok = !v || !in_values(r, v);
      break;
    case OP_EXISTS:
      ok = v != NULL;
      break;
    default: /* OP_DNE */
      ok = v == NULL;
      break;
    }
    if (!ok) return false;
  }
  return true;
}

static const char *json_lookup(const void *labels, const char *key) {
  return json_string_value(json_object_get((const json_t *)labels, key));
}

bool selector_matches_json(const struct label_selector *s, const json_t *labels) {
  return selector_matches(s, json_lookup, labels);
}

char *selector_to_string(const struct label_selector *s) {
  /* Built from a parsed selector, whose own input was capped: uncapped. */
  struct dynbuf b = DYNBUF_INIT(DYNBUF_NO_MAX);
  for (size_t i = 0; s && i < s->n; i++) {
    const struct requirement *r = &s->reqs[i];
    if (i) dynbuf_addstr(&b, ",");
    if (r->op == OP_DNE) dynbuf_addstr(&b, "!");
    dynbuf_addstr(&b, r->key);
    if (r->op == OP_EQ || r->op == OP_NEQ) {
      dynbuf_addstr(&b, r->op == OP_EQ ? "=" : "!=");
      dynbuf_addstr(&b, r->values[0]);
    } else if (r->op == OP_IN || r->op == OP_NOTIN) {
      dynbuf_addstr(&b, r->op == OP_IN ? " in (" : " notin (");
      for (size_t j = 0; j < r->n_values; j++) {
        if (j) dynbuf_addstr(&b, ",");
        dynbuf_addstr(&b, r->values[j]);
      }
      dynbuf_addstr(&b, ")");
    }
  }
  return dynbuf_detach(&b, NULL);
}
