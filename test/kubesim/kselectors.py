"""Label and field selectors with kube-apiserver's grammar and semantics.

Label selectors (k8s.io/apimachinery/pkg/labels): comma = AND of requirements
`k=v`, `k==v`, `k!=v` (matches objects without k), `k in (a,b)`, `k notin (a,b)`
(matches objects without k), `k` (exists), `!k` (does not exist), `k>N`, `k<N`.
Field selectors: `=`, `==`, `!=`, comma = AND; which fields exist depends on
the resource (FIELDS below). Parse errors raise SelectorError, which the
server turns into a 400 BadRequest Status.
"""

import re

_KEY_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class SelectorError(ValueError):
    pass


class LabelSelector:
    """A parsed label selector; matches(labels_dict) -> bool."""

    def __init__(self, reqs):
        self.reqs = reqs  # list of (key, op, values)

    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, values in self.reqs:
            has = key in labels
            val = labels.get(key)
            if op == "=":
                if not has or val != values[0]:
                    return False
            elif op == "!=":
                if has and val == values[0]:
                    return False
            elif op == "in":
                if not has or val not in values:
                    return False
            elif op == "notin":
                if has and val in values:
                    return False
            elif op == "exists":
                if not has:
                    return False
            elif op == "!":
                if has:
                    return False
            elif op in (">", "<"):
                if not has:
                    return False
                try:
                    n = int(val)
                except ValueError:
                    return False
                if op == ">" and not n > int(values[0]):
                    return False
                if op == "<" and not n < int(values[0]):
                    return False
        return True


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError("unmatched ')'")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise SelectorError("unmatched '('")
    parts.append("".join(cur))
    return parts


def _check_key(key):
    if not key or len(key) > 316 or not _KEY_RE.match(key):
        raise SelectorError("invalid label key %r" % key)
    name = key.split("/")[-1]
    if len(name) > 63:
        raise SelectorError("invalid label key %r: name part must be no more than 63 characters" % key)


def _check_value(val):
    if len(val) > 63 or not _VALUE_RE.match(val):
        raise SelectorError("invalid label value: %r: must be no more than 63 characters and consist of "
                            "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric" % val)


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")


def parse_label_selector(text):
    """Parse a labelSelector query value; '' or None selects everything."""
    if text is None or not text.strip():
        return LabelSelector([])
    reqs = []
    for part in _split_top(text):
        p = part.strip()
        if not p:
            raise SelectorError("found '', expected: identifier in selector %r" % text)
        m = _SET_RE.match(p)
        if m:
            key, op, vals = m.group(1), m.group(2), m.group(3)
            _check_key(key)
            values = [v.strip() for v in vals.split(",")] if vals.strip() else []
            if not values:
                raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
            for v in values:
                _check_value(v)
            reqs.append((key, op, values))
            continue
        if p.startswith("!"):
            key = p[1:].strip()
            _check_key(key)
            reqs.append((key, "!", []))
            continue
        m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$", p)
        if m:
            key, op, val = m.group(1), m.group(2), m.group(3).strip()
            _check_key(key)
            if op in (">", "<"):
                try:
                    int(val)
                except ValueError:
                    raise SelectorError("for 'Gt', 'Lt' operators, the value must be an integer") from None
            else:
                _check_value(val)
            reqs.append((key, "=" if op == "==" else op, [val]))
            continue
        _check_key(p)
        reqs.append((p, "exists", []))
    return LabelSelector(reqs)


def selector_from_label_selector(sel):
    """Turn a metav1.LabelSelector dict ({matchLabels, matchExpressions}) into a LabelSelector."""
    reqs = []
    for k, v in sorted((sel or {}).get("matchLabels", {}).items()):
        reqs.append((k, "=", [v]))
    for e in (sel or {}).get("matchExpressions", []) or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(e.get("operator"))
        if op is None:
            raise SelectorError("invalid operator %r" % e.get("operator"))
        reqs.append((e.get("key"), op, list(e.get("values") or [])))
    return LabelSelector(reqs)


# Field selectors: which fields each resource supports, beyond metadata.name/namespace.
_COMMON = ("metadata.name", "metadata.namespace")
FIELDS = {
    "/v1/pods": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                 "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "/v1/nodes": ("spec.unschedulable",),
    "/v1/namespaces": ("status.phase",),
    "/v1/secrets": ("type",),
    "/v1/events": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                   "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                   "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "events.k8s.io/v1/events": ("regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
                                "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath",
                                "reason", "reportingController", "type", "deprecatedSource"),
}


class FieldSelector:
    def __init__(self, reqs):
        self.reqs = reqs  # list of (field, op, value)

    def empty(self):
        return not self.reqs

    def names(self):
        """The single metadata.name this selector pins, if any (fast path)."""
        for f, op, v in self.reqs:
            if f == "metadata.name" and op == "=":
                return v
        return None

    def matches(self, obj):
        for field, op, value in self.reqs:
            actual = field_value(obj, field)
            if (actual == value) != (op == "="):
                return False
        return True


def field_value(obj, field):
    if field == "source":  # core/v1 events: source.component
        field = "source.component"
    cur = obj
    for part in field.split("."):
        if not isinstance(cur, dict):
            cur = None
            break
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text, res):
    if text is None or not text.strip():
        return FieldSelector([])
    allowed = _COMMON + FIELDS.get(res, ())
    reqs = []
    for part in text.split(","):
        p = part.strip()
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", p)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, p))
        field, op, val = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise SelectorError('"%s" is not a known field selector: only "metadata.name", "metadata.namespace"'
                                % field)
        reqs.append((field, "=" if op in ("=", "==") else "!=", val))
    return FieldSelector(reqs)
