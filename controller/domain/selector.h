/* selector.h — Kubernetes label selectors.
 *
 * Two sources: a metav1.LabelSelector object ({matchLabels, matchExpressions}
 * with operators In, NotIn, Exists, DoesNotExist) and the string form used
 * in `labelSelector=` query parameters ("a=b,c!=d,e in (f,g),!h").
 * Keys and values are validated as Kubernetes does (qualified names, 63-char
 * values); errors name the offending key or expression.
 *
 * Ownership: a built selector is immutable and owned by the caller
 * (selector_free); inputs (JSON, strings, label lookups) are borrowed for
 * the call only; nothing here keeps a pointer into them.
 */
#ifndef GPC_SELECTOR_H
#define GPC_SELECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct label_selector; /* opaque, immutable once built */

/* Function the matcher uses to look labels up: returns the value of `key`
 * or NULL when absent. Lets callers keep labels in any compact form. */
typedef const char *(*selector_label_lookup_fn)(const void *labels, const char *key);

/* From a metav1.LabelSelector JSON object (NULL or {} selects everything),
 * validated by selector_check_json (not strict: unknown fields are ignored).
 * `field` prefixes error messages, e.g. "spec.nodeSelector". Returns a new
 * selector (caller frees with selector_free), or NULL with err set. */
struct label_selector *selector_from_json(const json_t *sel, const char *field,
                                          struct gpc_error *err);
/* What is wrong with a metav1.LabelSelector, for the caller to phrase in its
 * own words (selector_from_json has one wording, policy.c the API server's).
 * The location is the first of: the selector itself (list NULL); the list
 * (label NULL and expr < 0); one matchLabels entry (label); one expression
 * (expr >= 0, member NULL); its member; one of its values (value >= 0). */
enum selector_fault_kind {
  SELECTOR_FAULT_TYPE,          /* node has the wrong JSON type */
  SELECTOR_FAULT_UNKNOWN_FIELD, /* text is a field the schema does not have */
  SELECTOR_FAULT_REQUIRED,      /* member missing (values: for In and NotIn) */
  SELECTOR_FAULT_FORBIDDEN,     /* values given for Exists or DoesNotExist */
  SELECTOR_FAULT_UNSUPPORTED,   /* text is not one of selector_operators */
  SELECTOR_FAULT_BAD_KEY,       /* text is not a qualified name; why says why */
  SELECTOR_FAULT_BAD_VALUE,     /* text is not a label value; why says why */
};

/* Every pointer is borrowed: into the checked JSON (valid while it lives) or
 * static strings. */
struct selector_fault {
  enum selector_fault_kind kind;
  const char *list;   /* "matchLabels", "matchExpressions", or NULL */
  const char *label;  /* the matchLabels key concerned, or NULL */
  long expr;          /* index in matchExpressions, or -1 */
  const char *member; /* "key", "operator", "values", or NULL */
  long value;         /* index in values, or -1 */
  const json_t *node; /* the offending JSON value */
  const char *text;   /* the offending string, for the kinds that name one */
  const char *why;    /* for BAD_KEY and BAD_VALUE: the rule broken */
};

/* The operators of matchExpressions, NULL-terminated. */
extern const char *const selector_operators[];

/* The one validator of metav1.LabelSelector objects (Kubernetes' key and
 * value grammars, operators, values against the operator), checking in the
 * API server's order. NULL is valid (selects everything). `strict` also
 * refuses unknown fields. Returns false with *f describing the first fault. */
bool selector_check_json(const json_t *sel, bool strict, struct selector_fault *f);

/* From the query-string form. Returns a new selector (caller frees with
 * selector_free), or NULL with err set. */
struct label_selector *selector_parse(const char *s, struct gpc_error *err);
/* Frees s; NULL is a no-op. */
void selector_free(struct label_selector *s);

bool selector_empty(const struct label_selector *s);
bool selector_matches(const struct label_selector *s, selector_label_lookup_fn lookup,
                      const void *labels);
/* Convenience: match against a JSON object of labels (may be NULL). */
bool selector_matches_json(const struct label_selector *s, const json_t *labels);

/* Canonical string form ("a=b,c in (d,e)"): a new string the caller frees. Not URL-escaped:
 * the HTTP layer escapes query parameters. */
char *selector_to_string(const struct label_selector *s);

#endif
