/* status_diff.c — transitions and Events from two statuses (see status_diff.h). */
#include "status_diff.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "events.h"

static const json_t *condition(const json_t *status, const char *type) {
  const json_t *conds = json_object_get(status, "conditions");
  size_t i;
  const json_t *cd;
  json_array_foreach(conds, i, cd) {
    const char *t = json_string_value(json_object_get(cd, "type"));
    if (t && strcmp(t, type) == 0) return cd;
  }
  return NULL;
}

static const char *field(const json_t *obj, const char *key, const char *dflt) {
  const char *v = json_string_value(json_object_get(obj, key));
  return v && *v ? v : dflt;
}

const char *status_diff_condition(const json_t *status, const char *type) {
  return field(condition(status, type), "status", "");
}

static bool became(const json_t *prev, const json_t *cur, const char *type, const char *st) {
  return strcmp(status_diff_condition(cur, type), st) == 0 &&
         strcmp(status_diff_condition(prev, type), st) != 0;
}

bool status_diff_transition(const json_t *prev, const json_t *cur) {
  if (!prev) return true;
  if (!json_equal(json_object_get(prev, "observedGeneration"),
                  json_object_get(cur, "observedGeneration")))
    return true;
  const json_t *conds = json_object_get(cur, "conditions");
  size_t i;
  const json_t *cd;
  json_array_foreach(conds, i, cd) {
    const char *t = field(cd, "type", NULL), *st = field(cd, "status", NULL);
    if (!t || !st || strcmp(status_diff_condition(prev, t), st) != 0) return true;
  }
  return false;
}

static bool failing_before(const json_t *prev, const json_t *entry) {
  const json_t *arr = json_object_get(prev, "failingNodes");
  size_t i;
  const json_t *e;
  json_array_foreach(arr, i, e) {
    if (json_equal(json_object_get(e, "node"), json_object_get(entry, "node")) &&
        json_equal(json_object_get(e, "operand"), json_object_get(entry, "operand")))
      return true;
  }
  return false;
}

void status_diff_events(const json_t *prev, const json_t *cur, status_diff_emit_fn emit, void *ud) {
  const json_t *ready = condition(cur, "Ready");
  if (became(prev, cur, "Reconciling", "True"))
    emit("Normal", EVENT_ROLLOUT_STARTED, field(ready, "message", "rollout started"), ud);
  if (became(prev, cur, "Ready", "True"))
    emit("Normal", EVENT_ROLLOUT_COMPLETE, field(ready, "message", "all operands ready"), ud);
  if (became(prev, cur, "NodeConflict", "True"))
    emit("Warning", EVENT_NODE_CONFLICT,
         field(condition(cur, "NodeConflict"), "message", "nodes owned by an older policy"), ud);
  if (became(prev, cur, "Stalled", "True")) {
    const json_t *st = condition(cur, "Stalled");
    emit("Warning", field(st, "reason", "Stalled"), field(st, "message", "stalled"), ud);
  }
  const json_t *arr = json_object_get(cur, "failingNodes");
  size_t i;
  const json_t *e;
  json_array_foreach(arr, i, e) {
    if (failing_before(prev, e)) continue;
    char *msg = gpc_asprintf("node %s: %s %s%s%s", field(e, "node", "?"), field(e, "operand", "?"),
                             field(e, "reason", "not ready"),
                             json_object_get(e, "message") ? ": " : "", field(e, "message", ""));
    emit("Warning", EVENT_NODE_FAILING, msg, ud);
    free(msg);
  }
}
