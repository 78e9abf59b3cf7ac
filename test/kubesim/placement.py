"""Placement rules for kubesim's DaemonSet controller: pure functions over plain dicts.

Which nodes should run a DaemonSet pod (nodeSelector, required nodeAffinity, taints vs tolerations), the
template hash pods are labelled with, label-selector strings for the admin API, and pod readiness.
Mirrors kube-controller-manager's NodeShouldRunDaemonPod closely enough for a client to notice no difference.
"""

import hashlib
import json
import random

import kselectors

# rand.SafeEncodeString's alphabet: no vowels, no confusable digits.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Tolerations the DaemonSet controller adds to every daemon pod (K: pkg/controller/daemon/util).
DEFAULT_DS_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOSTNET_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                      "effect": "NoSchedule"}


def random_suffix(n=5, rng=random):
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(n))


def template_hash(template):
    """controller-revision-hash for a pod template: stable over key order, 10 safe characters."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def daemon_tolerations(pod_spec):
    """The pod spec's own tolerations plus the ones the DaemonSet controller adds."""
    tols = list(pod_spec.get("tolerations") or [])
    extra = list(DEFAULT_DS_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        extra.append(HOSTNET_TOLERATION)
    for t in extra:
        if not any(toleration_matches(have, t) and have.get("effect", "") in ("", t["effect"])
                   for have in tols):
            tols.append(dict(t))
    return tols


def toleration_matches(tol, taint):
    """True when toleration tol tolerates taint (K: api/core/v1/toleration.go ToleratesTaint)."""
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    op = tol.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if op == "Exists":
        return True
    if not key:  # empty key is only valid with Exists
        return False
    return (tol.get("value") or "") == (taint.get("value") or "")


def taints_tolerated(taints, tolerations, effects=("NoSchedule", "NoExecute")):
    for taint in taints or ():
        if taint.get("effect") not in effects:
            continue
        if not any(toleration_matches(t, taint) for t in tolerations):
            return False
    return True


def _expr_matches(expr, value_of):
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    present, val = value_of(key)
    if op == "In":
        return present and val in values
    if op == "NotIn":
        return not present or val not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            a, b = int(val), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_selector_terms_match(terms, name, labels):
    """Required nodeAffinity: terms are ORed, a term's expressions ANDed; an empty term matches nothing."""
    def label_of(k):
        return (k in labels, labels.get(k))

    def field_of(k):
        return (k == "metadata.name", name if k == "metadata.name" else None)

    for term in terms or ():
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue
        if all(_expr_matches(e, label_of) for e in exprs) and all(_expr_matches(f, field_of) for f in fields):
            return True
    return False


def node_fit(pod_spec, tolerations, node):
    """(should_run, should_continue_running) for a daemon pod on node, as NodeShouldRunDaemonPod says.

    node: light view {"name","labels","taints","unschedulable"}. A node whose NoSchedule taint the pod
    does not tolerate gets no new pod, but a pod already there keeps running while every NoExecute
    taint is tolerated (e.g. node.kubernetes.io/unreachable:NoSchedule on a node that went away)."""
    labels = node["labels"]
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False, False
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != node["name"]:
        return False, False
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req is not None and not node_selector_terms_match(req.get("nodeSelectorTerms"), node["name"], labels):
        return False, False
    taints = list(node.get("taints") or [])
    if node.get("unschedulable"):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    if taints_tolerated(taints, tolerations):
        return True, True
    return False, taints_tolerated(taints, tolerations, effects=("NoExecute",))


def node_should_run(pod_spec, tolerations, node):
    """Whether a new daemon pod belongs on node (see node_fit)."""
    return node_fit(pod_spec, tolerations, node)[0]


def parse_label_selector(text):
    """Parse a label-selector string ("a=b,c!=d,e in (f,g),!h,i") into requirement tuples, with
    kselectors' parser (kube-apiserver's grammar, kubesim's one label-selector parser).

    Raises ValueError naming the selector. Returned requirements are (key, op, values) with op one of
    "=", "!=", "in", "notin", "exists", "!exists", ">", "<".
    """
    try:
        reqs = kselectors.parse_label_selector(text).reqs
    except kselectors.SelectorError as e:
        raise ValueError("label selector %r: %s" % (text, e)) from None
    return [(key, "!exists" if op == "!" else op, values) for key, op, values in reqs]


def labels_match(reqs, labels):
    """Whether labels satisfy requirements from parse_label_selector() (kselectors' matching)."""
    return kselectors.LabelSelector([(key, "!" if op == "!exists" else op, values)
                                     for key, op, values in reqs]).matches(labels)


def pod_is_ready(pod):
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False
