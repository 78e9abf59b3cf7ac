/* policy_fields.c — value grammars shared with the CRD schema. */
#include "policy_fields.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Path component of an OCI reference (distribution/reference grammar). */
#define PATH_COMP "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
#define DNS_LABEL "[a-z0-9]([-a-z0-9]*[a-z0-9])?"

struct pattern {
  const char *text;
  const char *what;
  size_t max_len;
};

/* Keep these texts identical to the `pattern:` entries of the CRD; the unit
 * test compares them, so a change here that is not made there fails. */
static const struct pattern patterns[GPC_PAT_COUNT] = {
    [GPC_PAT_REPOSITORY] = {"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]+)?(/" PATH_COMP ")*$",
                            "a registry host with optional :port and /path (e.g. nvcr.io/nvidia)",
                            200},
    [GPC_PAT_IMAGE] = {"^" PATH_COMP "(/" PATH_COMP ")*$",
                       "lowercase image name components separated by / (e.g. k8s-device-plugin)",
                       128},
    [GPC_PAT_VERSION] = {"^(sha256:[a-f0-9]{64}|[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})$",
                         "an image tag (e.g. v0.15.0) or a sha256:<64 lowercase hex digits> digest",
                         135},
    [GPC_PAT_DIGEST] = {"^sha256:[a-f0-9]{64}$", "sha256: followed by 64 lowercase hex digits", 71},
    [GPC_PAT_INT_OR_PERCENT] = {"^([1-9][0-9]*|[1-9][0-9]?%|100%)$",
                                "a count >= 1 (e.g. \"1\") or a percentage 1%..100% (e.g. \"25%\")",
                                16},
    [GPC_PAT_QUANTITY] = {"^\\+?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE]"
                          "(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
                          "a non-negative quantity (e.g. 100m, 64Mi, 1)", 64},
    [GPC_PAT_DURATION] = {"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$",
                          "a duration such as 15s, 1m or 1m30s", 32},
    [GPC_PAT_ENV_NAME] = {"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
                          "an environment variable name ([-._a-zA-Z][-._a-zA-Z0-9]*)", 256},
    [GPC_PAT_DNS_SUBDOMAIN] = {"^" DNS_LABEL "(\\." DNS_LABEL ")*$",
                               "a lowercase RFC 1123 subdomain (e.g. ngc-pull)", 253},
    [GPC_PAT_LABEL_VALUE] = {"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
                             "a label value: at most 63 alphanumerics, '-', '_' or '.', starting "
                             "and ending with an alphanumeric",
                             63},
    [GPC_PAT_QUALIFIED_NAME] = {"^(" DNS_LABEL "(\\." DNS_LABEL ")*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*"
                                "[A-Za-z0-9])?$",
                                "a qualified name: optional DNS prefix and '/', then at most 63 "
                                "alphanumerics, '-', '_' or '.'",
                                317},
    [GPC_PAT_ABS_PATH] = {"^/.*$", "an absolute path without control characters", 4096},
};

static regex_t compiled[GPC_PAT_COUNT];
static bool compiled_ok;

/* Compiles every pattern on first use. The patterns are constants, so a
 * failure is a programming error: log it and abort rather than accept input
 * unchecked. */
static void compile_all(void) {
  if (compiled_ok) return;
  for (int i = 0; i < GPC_PAT_COUNT; i++) {
    if (regcomp(&compiled[i], patterns[i].text, REG_EXTENDED | REG_NOSUB) != 0) {
      log_error("policy", "bad built-in pattern", KV_S("pattern", patterns[i].text));
      abort();
    }
  }
  compiled_ok = true;
}

const char *gpc_pattern_text(enum gpc_pattern p) {
  return (unsigned)p < GPC_PAT_COUNT ? patterns[p].text : NULL;
}

const char *gpc_pattern_what(enum gpc_pattern p) {
  return (unsigned)p < GPC_PAT_COUNT ? patterns[p].what : "";
}

size_t gpc_pattern_max_len(enum gpc_pattern p) {
  return (unsigned)p < GPC_PAT_COUNT ? patterns[p].max_len : 0;
}

/* The name part of a qualified name (after the optional prefix/) is limited
 * to 63 characters, its prefix to 253; a regex cannot say both cheaply. */
static bool qualified_name_lengths_ok(const char *s) {
  const char *slash = strchr(s, '/');
  if (!slash) return strlen(s) <= 63;
  return (size_t)(slash - s) <= 253 && strlen(slash + 1) <= 63;
}

bool gpc_pattern_match(enum gpc_pattern p, const char *s) {
  if ((unsigned)p >= GPC_PAT_COUNT || !s) return false;
  if (strlen(s) > patterns[p].max_len) return false;
  if (p == GPC_PAT_QUALIFIED_NAME && !qualified_name_lengths_ok(s)) return false;
  /* An empty duration is meaningless, but the regex accepts it. */
  if (p == GPC_PAT_DURATION && s[0] == '\0') return false;
  /* Character classes differ between RE2, Python and POSIX, so control
   * characters in paths are refused here rather than in the pattern. */
  if (p == GPC_PAT_ABS_PATH) {
    for (const char *c = s; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f) return false;
  }
  compile_all();
  return regexec(&compiled[p], s, 0, NULL, 0) == 0;
}
