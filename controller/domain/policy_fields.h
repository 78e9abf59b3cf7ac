/* policy_fields.h — value grammars of the ClusterGPUPolicy fields.
 *
 * Owns: the patterns the CRD schema (crds/gpupolicy.dev_clustergpupolicies.yaml)
 * declares, as POSIX extended regular expressions written so that the same
 * text is valid for the API server (RE2), kubesim (Python re) and glibc
 * regexec; plus checks the schema cannot express (length of the name part of
 * a qualified name, percent range). Pure functions, no allocation visible to
 * callers; the compiled patterns are built once and live for the process.
 *
 * Does not own: walking the policy object (policy.c).
 */
#ifndef GPC_POLICY_FIELDS_H
#define GPC_POLICY_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

enum gpc_pattern {
  GPC_PAT_REPOSITORY = 0, /* registry host[:port] followed by path components */
  GPC_PAT_IMAGE,          /* one or more lowercase path components */
  GPC_PAT_VERSION,        /* an image tag, or sha256:<64 lowercase hex> */
  GPC_PAT_DIGEST,         /* sha256:<64 lowercase hex> */
  GPC_PAT_INT_OR_PERCENT, /* "1", "25%" (1..100 for percents, >= 1 for counts) */
  GPC_PAT_QUANTITY,       /* resource.Quantity, non-negative */
  GPC_PAT_DURATION,       /* Prometheus duration, e.g. "15s", "1m30s" */
  GPC_PAT_ENV_NAME,       /* C identifier-like env var name */
  GPC_PAT_DNS_SUBDOMAIN,  /* object names: Secrets, PriorityClasses */
  GPC_PAT_LABEL_VALUE,    /* label value (may be empty) */
  GPC_PAT_QUALIFIED_NAME, /* label/annotation key: [prefix/]name */
  GPC_PAT_ABS_PATH,       /* absolute host path without control characters */
  GPC_PAT_COUNT
};

/* The pattern text, as it appears in the CRD schema. */
const char *gpc_pattern_text(enum gpc_pattern p);
/* Whole-string match. Also enforces the length limits that go with each
 * grammar (e.g. 63 characters for a label value or a qualified name's name
 * part, 253 for a DNS subdomain, 128 for a tag). */
bool gpc_pattern_match(enum gpc_pattern p, const char *s);
/* A short human description for error messages, e.g. "an image tag or
 * sha256:<64 hex digits> digest". */
const char *gpc_pattern_what(enum gpc_pattern p);
/* Maximum length in bytes accepted for values of this grammar. */
size_t gpc_pattern_max_len(enum gpc_pattern p);

#endif
