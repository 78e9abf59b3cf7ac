"""kubesim: voluntary disruption and workload scheduling (issue 12).

What a driver-upgrade controller meets when it drains a GPU node, each rule from the Kubernetes source
(K: path, function), v1.30/v1.31:

- policy/v1 PodDisruptionBudgets: validation and defaulting (validation.py hooks below), and the disruption
  controller's status (K: pkg/controller/disruption/disruption.go trySync, getExpectedPodCount,
  getExpectedScale, countHealthyPods, buildDisruptedPodMap, updatePdbStatus, failSafe;
  staging/src/k8s.io/component-helpers/apps/poddisruptionbudget/helpers.go UpdateDisruptionAllowedCondition).
- the pods/eviction subresource (K: pkg/registry/core/pod/storage/eviction.go EvictionREST.Create,
  checkAndDecrement, canIgnorePDB, shouldEnforceResourceVersion, getPodDisruptionBudgets,
  addConditionAndDeletePod).
- apps/v1 ReplicaSets: stored, with status and scale subresources, and a minimal ReplicaSet controller
  (K: pkg/controller/replicaset/replica_set.go manageReplicas, getPodsToDelete;
  replica_set_utils.go calculateStatus).
- the default scheduler for pods that are not DaemonSet pods: NodeUnschedulable, NodeName,
  TaintToleration, NodeAffinity and NodeResourcesFit (nvidia.com/gpu only) filters, in the default
  profile's order (K: pkg/scheduler/framework/plugins/nodeunschedulable/node_unschedulable.go,
  tainttoleration/taint_toleration.go, nodeaffinity/node_affinity.go, noderesources/fit.go fitsRequest;
  pkg/scheduler/framework/types.go FitError.Error).
- the node lifecycle controller's node.kubernetes.io/unschedulable:NoSchedule taint on cordoned nodes
  (K: pkg/controller/nodelifecycle/node_lifecycle_controller.go doNoScheduleTaintingPass).

Pure helpers first, then the HTTP side (eviction, scale: called by server.py), then the controller
that runs in cluster.py's worker thread, then the admin endpoints (/_sim/workloads, /_sim/evictions).
"""

import json
import math
import re
import threading
import time
from collections import defaultdict

import kselectors
import kubelet
from ktime import now_rfc3339, parse_rfc3339
import placement
import simcommon
from simcommon import meta as _meta
import tables as tab
import validation as val

PODS = "/v1/pods"
NODES = "/v1/nodes"
PDBS = "policy/v1/poddisruptionbudgets"
REPLICASETS = "apps/v1/replicasets"
DEPLOYMENTS = "apps/v1/deployments"
DAEMONSETS = "apps/v1/daemonsets"
GPU = "nvidia.com/gpu"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

DELETION_TIMEOUT = 120.0  # disruption.go DeletionTimeout = 2 * time.Minute
MAX_DISRUPTED_POD_SIZE = 2000  # eviction.go MaxDisruptedPodSize
EVICT_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MULTI_PDB_MESSAGE = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
RS_BURST = 500  # replica_set.go BurstReplicas


def controller_ref(obj):
    return simcommon.controller_ref(_meta(obj))


def pod_ready(pod):
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_terminal(pod):
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def gpu_request(spec):
    """nvidia.com/gpu a pod requests: the containers' sum or the largest init container, whichever is
    more (K: pkg/api/v1/resource/helpers.go PodRequests). Extended resources are requested through
    limits (requests default to them, K: pkg/apis/core/v1/defaults.go SetDefaults_Pod)."""
    def one(c):
        res = c.get("resources") or {}
        v = (res.get("requests") or {}).get(GPU, (res.get("limits") or {}).get(GPU, 0))
        try:
            return int(v)
        except (TypeError, ValueError):
            return 0
    total = sum(one(c) for c in spec.get("containers") or ())
    init = max([one(c) for c in spec.get("initContainers") or ()] or [0])
    return max(total, init)


# ---------------------------------------------------------------------------------------------
# int-or-percent (K: staging/src/k8s.io/apimachinery/pkg/util/intstr/intstr.go)

def scaled_value(v, total, round_up):
    """GetScaledValueFromIntOrPercent; raises ValueError for a malformed percent."""
    if isinstance(v, bool):
        raise ValueError("invalid value for IntOrString: %r" % v)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        if not v.endswith("%"):
            raise ValueError('invalid type: string is not a percentage')
        pct = int(v[:-1])
        return int(math.ceil(pct * total / 100.0)) if round_up else int(math.floor(pct * total / 100.0))
    raise ValueError("invalid type: neither int nor percentage")


def go_intstr(v):
    """How field.Invalid prints an intstr.IntOrString value (%#v: it has no value-receiver String())."""
    if isinstance(v, str):
        return 'intstr.IntOrString{Type:1, IntVal:0, StrVal:%s}' % json.dumps(v)
    return "intstr.IntOrString{Type:0, IntVal:%s, StrVal:\"\"}" % v


# ---------------------------------------------------------------------------------------------
# Validation and defaulting (registered into validation.py's tables by register_api)

PERCENT = re.compile(r"^[0-9]+%$")
PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
               "'93%', regex used for validation is '[0-9]+%')")


def _intstr_causes(v, path):
    """ValidatePositiveIntOrPercent + IsNotMoreThan100Percent (K: pkg/apis/apps/validation/validation.go)."""
    out = []
    if isinstance(v, str):
        if not PERCENT.match(v):
            out.append(val.cause("FieldValueInvalid", path, "Invalid value: %s: %s" % (go_intstr(v), PERCENT_MSG)))
        elif int(v[:-1]) > 100:
            out.append(val.cause("FieldValueInvalid", path,
                                 "Invalid value: %s: must not be greater than 100%%" % go_intstr(v)))
    elif isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            out.append(val.invalid(path, v, "must be greater than or equal to 0"))
    else:
        out.append(val.cause("FieldValueTypeInvalid", path, "Invalid value: %s: must be an integer or a "
                             "percent string" % val.go_value(v)))
    return out


def _selector_causes(sel, path):
    """ValidateLabelSelector (K: staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go)."""
    out = []
    if sel is None:
        return out
    if not isinstance(sel, dict):
        return [val.invalid(path, sel, "must be an object")]
    for k, v in (sel.get("matchLabels") or {}).items():
        if not val.QUALIFIED_NAME.match(k.split("/")[-1] or "-"):
            out.append(val.invalid(path + ".matchLabels", k, "name part must consist of alphanumeric characters, "
                                   "'-', '_' or '.', and must start and end with an alphanumeric character"))
        if not isinstance(v, str) or not val.LABEL_VALUE.match(v):
            out.append(val.invalid(path + ".matchLabels", v, val.LABEL_VALUE_MSG))
    for i, e in enumerate(sel.get("matchExpressions") or ()):
        ep = "%s.matchExpressions[%d]" % (path, i)
        op, vals = e.get("operator"), e.get("values") or []
        if op in ("In", "NotIn"):
            if not vals:
                out.append(val.required(ep + ".values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                out.append(val.cause("FieldValueForbidden", ep + ".values",
                                     "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            out.append(val.invalid(ep + ".operator", op, "not a valid selector operator"))
        if not e.get("key"):
            out.append(val.invalid(ep + ".key", e.get("key", ""), "name part must be non-empty"))
    return out


def validate_pdb(obj, old):
    """K: pkg/apis/policy/validation/validation.go ValidatePodDisruptionBudget(Spec|StatusUpdate)."""
    causes = []
    spec = obj.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec and spec["minAvailable"] is not None \
            and spec["maxUnavailable"] is not None:
        causes.append(val.cause("FieldValueInvalid", "spec", "Invalid value: policy.PodDisruptionBudgetSpec{"
                                "MinAvailable:%s, MaxUnavailable:%s}: minAvailable and maxUnavailable cannot be "
                                "both set" % (go_intstr(spec["minAvailable"]), go_intstr(spec["maxUnavailable"]))))
    for f in ("minAvailable", "maxUnavailable"):
        if spec.get(f) is not None:
            causes.extend(_intstr_causes(spec[f], "spec." + f))
    causes.extend(_selector_causes(spec.get("selector"), "spec.selector"))
    upep = spec.get("unhealthyPodEvictionPolicy")
    if upep is not None and upep not in ("AlwaysAllow", "IfHealthyBudget"):
        causes.append(val.not_supported("spec.unhealthyPodEvictionPolicy", upep, ["AlwaysAllow", "IfHealthyBudget"]))
    st = obj.get("status") or {}
    for f in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        v = st.get(f)
        if isinstance(v, int) and v < 0:
            causes.append(val.invalid("status." + f, v, "must be greater than or equal to 0"))
    return causes


def default_pdb(obj):
    """The status fields without omitempty are always present (K: staging/src/k8s.io/api/policy/v1/types.go
    PodDisruptionBudgetStatus): a new PDB reads 0/0/0/0 until the disruption controller syncs it."""
    st = obj.get("status")
    if not isinstance(st, dict):
        st = obj["status"] = {}
    for f in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        st.setdefault(f, 0)


def validate_replicaset(obj, old):
    """K: pkg/apis/apps/validation/validation.go ValidateReplicaSetSpec (+ selector immutable in apps/v1)."""
    causes = []
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not sel:
        causes.append(val.required("spec.selector"))
    else:
        causes.extend(_selector_causes(sel, "spec.selector"))
        if not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(val.invalid("spec.selector", sel, "empty selector is invalid for deployment"))
        else:
            try:
                ok = kselectors.selector_from_label_selector(sel).matches(tmpl_labels)
            except Exception:  # noqa: BLE001 — reported by _selector_causes
                ok = True
            if not ok:
                causes.append(val.invalid("spec.template.metadata.labels", tmpl_labels,
                                          "`selector` does not match template `labels`"))
        if old is not None:
            old_sel = (old.get("spec") or {}).get("selector")
            if old_sel is not None and old_sel != sel:
                causes.append(val.invalid("spec.selector", sel, "field is immutable"))
    r = spec.get("replicas")
    if r is not None and (not isinstance(r, int) or isinstance(r, bool) or r < 0):
        causes.append(val.invalid("spec.replicas", r, "must be greater than or equal to 0"))
    causes.extend(val._validate_pod_spec((spec.get("template") or {}).get("spec"), "spec.template.spec"))
    return causes


def default_replicaset(obj):
    """K: pkg/apis/apps/v1/defaults.go SetDefaults_ReplicaSet (replicas 1) + the pod template defaults."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    val._default_pod_spec((spec.get("template") or {}).get("spec"))


def smp_directives(info, body):
    """A strategic merge patch of a PDB replaces spec.selector whole: the field's patchStrategy is "replace"
    (K: staging/src/k8s.io/api/policy/v1/types.go PodDisruptionBudgetSpec.Selector). This is also why
    `kubectl apply` reports a PDB as "configured" every time: the computed patch is never empty."""
    if getattr(info, "res", None) != PDBS or not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        return body
    sel = body["spec"].get("selector")
    if isinstance(sel, dict) and "$patch" not in sel:
        body = dict(body, spec=dict(body["spec"], selector=dict(sel, **{"$patch": "replace"})))
    return body


def register_api():
    """Wire PDBs and ReplicaSets into the built-in rule tables of validation.py and tables.py
    (called once by registry.py)."""
    val.BUILTIN_VALIDATORS[PDBS] = validate_pdb
    val.BUILTIN_VALIDATORS[REPLICASETS] = validate_replicaset
    val.BUILTIN_DEFAULTERS[PDBS] = default_pdb
    val.BUILTIN_DEFAULTERS[REPLICASETS] = default_replicaset
    val.TYPED_FIELDS[PDBS] = {"spec": val._obj({"minAvailable": None, "maxUnavailable": None, "selector": None,
                                                "unhealthyPodEvictionPolicy": None})}
    val.TYPED_FIELDS[REPLICASETS] = {"spec": val._obj({"replicas": None, "minReadySeconds": None,
                                                       "selector": None, "template": val._POD_TEMPLATE_T})}
    col = tab._col
    tab.BUILTIN_TABLES[PDBS] = (
        [tab.NAME_COL, col("Min Available"), col("Max Unavailable"), col("Allowed Disruptions", "integer"),
         tab.AGE_COL],
        lambda o, now: [tab._name(o), _na((o.get("spec") or {}).get("minAvailable")),
                        _na((o.get("spec") or {}).get("maxUnavailable")),
                        (o.get("status") or {}).get("disruptionsAllowed", 0), tab._age(o, now)])
    tab.BUILTIN_TABLES[REPLICASETS] = (
        [tab.NAME_COL, col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"), tab.AGE_COL,
         col("Containers", priority=1), col("Images", priority=1), col("Selector", priority=1)],
        lambda o, now: [tab._name(o), (o.get("spec") or {}).get("replicas", 0),
                        (o.get("status") or {}).get("replicas", 0), (o.get("status") or {}).get("readyReplicas", 0),
                        tab._age(o, now)] + list(tab._containers_images(
                            ((o.get("spec") or {}).get("template") or {}).get("spec") or {})) +
        [tab.selector_string((o.get("spec") or {}).get("selector"))])


def _na(v):
    """kubectl's PDB columns (K: pkg/printers/internalversion/printers.go printPodDisruptionBudget)."""
    return "N/A" if v is None else str(v)


# ---------------------------------------------------------------------------------------------
# Matching pods and PDBs

def selector_of(sel):
    """metav1.LabelSelectorAsSelector: None for a nil selector (labels.Nothing), else a LabelSelector
    (an empty one matches everything); raises on an invalid one."""
    if sel is None:
        return None
    return kselectors.selector_from_label_selector(sel)


def pdb_pods(pdb, pods):
    """The disruption controller's getPodsForPdb: pods of the PDB's namespace its selector matches
    (nil selector: none; empty selector: all)."""
    try:
        sel = selector_of((pdb.get("spec") or {}).get("selector"))
    except Exception:  # noqa: BLE001
        return []
    if sel is None:
        return []
    return [p for p in pods if sel.matches(_meta(p).get("labels") or {})]


def eviction_pdbs(pdbs, pod):
    """getPodDisruptionBudgets: here a nil or empty selector matches nothing."""
    out = []
    labels = _meta(pod).get("labels") or {}
    for pdb in pdbs:
        try:
            sel = selector_of((pdb.get("spec") or {}).get("selector"))
        except Exception:  # noqa: BLE001 — an invalid selector matches nothing
            continue
        if sel is None or sel.empty() or not sel.matches(labels):
            continue
        out.append(pdb)
    return out


class SyncError(Exception):
    pass


def expected_scale(pods, lookup):
    """getExpectedScale: the sum of the scale of every controller of the pods. lookup(ref, ns) returns
    (uid, scale), None (no such controller), or raises SyncError. Unmanaged pods are skipped."""
    scale = {}
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            continue
        if ref.get("uid") in scale:
            continue
        found = lookup(ref, _meta(pod).get("namespace", ""))
        if found is None:
            raise SyncError('found no controllers for pod "%s"' % _meta(pod).get("name"))
        scale[found[0]] = found[1]
    return sum(scale.values())


def pdb_status(pdb, pods, lookup, now):
    """The status updatePdbStatus writes for this PDB and its pods, plus the recheck time (or None).
    Raises SyncError where trySync fails (the caller then applies fail_safe)."""
    spec = pdb.get("spec") or {}
    md = _meta(pdb)
    gen = md.get("generation", 1)
    expected, desired = 0, 0
    try:
        if spec.get("maxUnavailable") is not None:
            expected = expected_scale(pods, lookup)
            desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected, True))
        elif spec.get("minAvailable") is not None:
            ma = spec["minAvailable"]
            if isinstance(ma, int):
                desired, expected = ma, len(pods)
            else:
                expected = expected_scale(pods, lookup)
                desired = scaled_value(ma, expected, True)
    except ValueError as e:
        raise SyncError(str(e)) from None
    old = pdb.get("status") or {}
    disrupted, recheck = {}, None
    for pod in pods:  # buildDisruptedPodMap
        name = _meta(pod).get("name")
        if _meta(pod).get("deletionTimestamp") or name not in (old.get("disruptedPods") or {}):
            continue
        stamp = old["disruptedPods"][name]
        expiry = parse_rfc3339(stamp) + DELETION_TIMEOUT
        if expiry < now:
            continue  # expected to be deleted but it was not: it counts again
        disrupted[name] = stamp
        recheck = expiry if recheck is None else min(recheck, expiry)
    healthy = 0
    for pod in pods:  # countHealthyPods
        if _meta(pod).get("deletionTimestamp") or _meta(pod).get("name") in disrupted:
            continue
        if pod_ready(pod):
            healthy += 1
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    st = {"observedGeneration": gen}
    if disrupted:
        st["disruptedPods"] = disrupted
    st.update({"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
               "expectedPods": expected})
    st["conditions"] = old.get("conditions") or []
    update_allowed_condition(st, now)
    return st, recheck


def set_condition(conds, new, now):
    """apimeta.SetStatusCondition: lastTransitionTime moves only when the status changes."""
    out = []
    found = False
    for c in conds:
        if c.get("type") == new["type"]:
            found = True
            c = dict(c)
            if c.get("status") != new["status"]:
                c["status"] = new["status"]
                c["lastTransitionTime"] = now_rfc3339(now)
            c["reason"], c["message"] = new["reason"], new.get("message", "")
            c["observedGeneration"] = new["observedGeneration"]
            c = {k: c[k] for k in ("type", "status", "observedGeneration", "lastTransitionTime", "reason", "message")
                 if k in c}
        out.append(c)
    if not found:
        out.append({"type": new["type"], "status": new["status"], "observedGeneration": new["observedGeneration"],
                    "lastTransitionTime": now_rfc3339(now), "reason": new["reason"],
                    "message": new.get("message", "")})
    return out


def update_allowed_condition(st, now):
    """UpdateDisruptionAllowedCondition: DisruptionAllowed True/SufficientPods or False/InsufficientPods."""
    allowed = st.get("disruptionsAllowed", 0) > 0
    st["conditions"] = set_condition(st.get("conditions") or [], {
        "type": "DisruptionAllowed", "status": "True" if allowed else "False",
        "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
        "observedGeneration": st.get("observedGeneration", 0)}, now)


def fail_safe(pdb, message, now):
    """failSafe: disruptionsAllowed 0 and DisruptionAllowed False/SyncFailed with the error; the
    observedGeneration is not advanced (so the eviction API keeps answering 429 for a new PDB)."""
    st = dict(pdb.get("status") or {})
    st["disruptionsAllowed"] = 0
    st["conditions"] = set_condition(st.get("conditions") or [], {
        "type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": message,
        "observedGeneration": st.get("observedGeneration", 0)}, now)
    return st


# ---------------------------------------------------------------------------------------------
# The scheduler's filters for one pod on one node (default profile order)

def tolerates(tols, taint):
    return any(placement.toleration_matches(t, taint) for t in tols or ())


def filter_node(pod, node, used_gpus):
    """None when the pod fits, else (reason, resolvable_by_preemption)."""
    spec = pod.get("spec") or {}
    nspec, labels = node.get("spec") or {}, _meta(node).get("labels") or {}
    tols = spec.get("tolerations") or []
    name = _meta(node).get("name")
    if nspec.get("unschedulable") and not tolerates(tols, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return "node(s) were unschedulable", False
    if spec.get("nodeName") and spec["nodeName"] != name:
        return "node(s) didn't match the requested node name", False
    for taint in nspec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tols, taint):
            return "node(s) had untolerated taint {%s: %s}" % (taint.get("key", ""), taint.get("value", "")), False
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "node(s) didn't match Pod's node affinity/selector", False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req is not None and not placement.node_selector_terms_match(req.get("nodeSelectorTerms"), name, labels):
        return "node(s) didn't match Pod's node affinity/selector", False
    want = gpu_request(spec)
    if want > 0:
        try:
            alloc = int(((node.get("status") or {}).get("allocatable") or {}).get(GPU, 0))
        except (TypeError, ValueError):
            alloc = 0
        if want > alloc - used_gpus:
            return "Insufficient " + GPU, True
    return None


def fit_error(n_nodes, reasons):
    """FitError.Error() plus the default preemption PostFilter's message (every pod has priority 0 here,
    so nodes that fail on resources have no victims)."""
    hist = defaultdict(int)
    pre = defaultdict(int)
    for reason, resolvable in reasons:
        hist[reason] += 1
        pre["No preemption victims found for incoming pod" if resolvable
            else "Preemption is not helpful for scheduling"] += 1
    msg = "0/%d nodes are available: %s." % (n_nodes, ", ".join(sorted("%d %s" % (v, k) for k, v in hist.items())))
    if pre:
        msg += " preemption: 0/%d nodes are available: %s." % (
            n_nodes, ", ".join(sorted("%d %s" % (v, k) for k, v in pre.items())))
    return msg


# ---------------------------------------------------------------------------------------------
# HTTP side: pods/eviction and replicasets/scale (server.py routes here)

SUBRESOURCES = {("/v1/pods", "eviction"): ("POST",), (REPLICASETS, "scale"): ("GET", "PUT", "PATCH")}


def serves(info, sub):
    return (info.res, sub) in SUBRESOURCES


def handler_for(sim, req):
    """The callable for a request to one of these subresources, or None."""
    if req.info is None or req.sub is None or (req.info.res, req.sub) not in SUBRESOURCES:
        return None
    srv = _server()
    if req.method not in SUBRESOURCES[(req.info.res, req.sub)]:
        raise srv.ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                           "resource", {})
    if req.sub == "eviction":
        return lambda r: evict(sim, r)
    return lambda r: scale(sim, r)


def _server():
    import server
    return server


def _evictions(sim):
    log = getattr(sim.cluster, "disruption", None) if sim.cluster is not None else None
    if log is None:
        log = getattr(sim, "_eviction_log", None)
        if log is None:
            log = sim._eviction_log = EvictionLog()
        return log
    return log.evictions


class EvictionLog:
    """Counters of eviction requests by outcome, and the last 1,000 of them (GET /_sim/evictions)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.by_outcome = defaultdict(int)
            self.by_code = defaultdict(int)
            self.entries = []

    def add(self, ns, pod, node, code, outcome, pdb=None, dry=False):
        with self.lock:
            self.by_outcome[outcome] += 1
            self.by_code[str(code)] += 1
            self.entries.append({"time": now_rfc3339(), "namespace": ns, "pod": pod, "node": node or "",
                                 "code": code, "outcome": outcome, "pdb": pdb or "", "dryRun": dry})
            del self.entries[:-1000]

    def snapshot(self):
        with self.lock:
            return {"total": sum(self.by_code.values()), "byOutcome": dict(self.by_outcome),
                    "byCode": dict(self.by_code), "evictions": list(self.entries)}


def _too_many(srv, pdb_name, retry_after, cause):
    details = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers = []
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers = [("Retry-After", str(retry_after))]
    return srv.ApiError(429, "TooManyRequests", EVICT_MESSAGE, details, headers)


def _still_processing(srv, name):
    return _too_many(srv, name, 10, "The disruption budget %s is still being processed by the server." % name)


def evict(sim, req):
    """POST .../pods/<name>/eviction (K: eviction.go EvictionREST.Create). Runs under the store lock, so
    the PDB check, its decrement and the pod's deletion are one step for every other client."""
    srv = _server()
    body = req.json_body()
    if not isinstance(body, dict):
        raise srv.ApiError(400, "BadRequest", "the body of the request must be a JSON object")
    av, kind = body.get("apiVersion"), body.get("kind")
    if kind not in (None, "", "Eviction") or av not in (None, "", "policy/v1", "policy/v1beta1"):
        raise srv.ApiError(400, "BadRequest", "not a Eviction object: %s, %s" % (av, kind))
    name = (body.get("metadata") or {}).get("name")
    if name != req.name:
        raise srv.ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
    opts = body.get("deleteOptions")
    opts = dict(opts) if isinstance(opts, dict) else {}
    qdry = [req.q["dryRun"]] if req.q.get("dryRun") else []
    if opts.get("dryRun") and qdry and opts["dryRun"] != qdry:
        raise srv.ApiError(500, "InternalError", "Internal error occurred: Non-matching dry-run options in "
                           "request and content: %s and %s" % (qdry, opts["dryRun"]))
    if not opts.get("dryRun") and qdry:
        opts["dryRun"] = qdry
    sim.dry_run(req, "CreateOptions")  # 422 for anything but All
    dry = bool(opts.get("dryRun"))
    log = _evictions(sim)
    ns = req.ns
    with sim.store.lock:
        pod = sim.store.get(PODS, ns, name)
        if pod is None:
            log.add(ns, name, "", 404, "notFound", dry=dry)
            raise srv.ApiError(404, "NotFound", 'pods "%s" not found' % name, {"name": name, "kind": "pods"})
        node = (pod.get("spec") or {}).get("nodeName", "")
        rv_unset = not (opts.get("preconditions") or {}).get("resourceVersion")
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase in ("Succeeded", "Failed", "Pending") or _meta(pod).get("deletionTimestamp"):  # canIgnorePDB
            o = opts
            enforce = phase not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")
            if enforce and rv_unset:  # shouldEnforceResourceVersion
                o = dict(opts, preconditions=dict(opts.get("preconditions") or {},
                                                  resourceVersion=_meta(pod).get("resourceVersion")))
            try:
                _delete(sim, req, pod, o, dry, log, node)
            except srv.ApiError as e:
                log.add(ns, name, node, e.code, "conflict" if e.code == 409 else "error", dry=dry)
                raise
            log.add(ns, name, node, 201, "evictedIgnoringBudget", dry=dry)
            return _success()
        pdbs = eviction_pdbs([e.obj for e in sim.store.list_entries(PDBS, ns)[0]], pod)
        if len(pdbs) > 1:
            log.add(ns, name, node, 500, "multiplePdbs", dry=dry)
            return 500, srv.st.encode({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                       "message": MULTI_PDB_MESSAGE, "code": 500})
        pdb_name, unready_ok = None, False
        if pdbs:
            pdb = pdbs[0]
            pdb_name = _meta(pdb).get("name")
            st = pdb.get("status") or {}
            policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy")
            if not pod_ready(pod) and policy == "AlwaysAllow":
                unready_ok = True
            elif not pod_ready(pod) and st.get("currentHealthy", 0) >= st.get("desiredHealthy", 0) > 0:
                unready_ok = True
            if not unready_ok:
                try:
                    _check_and_decrement(sim, srv, ns, name, pdb, dry)
                except srv.ApiError as e:
                    log.add(ns, name, node, e.code, "tooManyRequests" if e.code == 429 else "forbidden",
                            pdb=pdb_name, dry=dry)
                    raise
        o = opts
        if unready_ok:
            o = dict(opts, preconditions=dict(opts.get("preconditions") or {},
                                              resourceVersion=_meta(pod).get("resourceVersion")))
        try:
            _delete(sim, req, pod, o, dry, log, node, condition=True)
        except srv.ApiError as e:
            if e.code == 409 and unready_ok and rv_unset:
                log.add(ns, name, node, 429, "tooManyRequests", pdb=pdb_name, dry=dry)
                raise _still_processing(srv, pdb_name) from None
            log.add(ns, name, node, e.code, "conflict" if e.code == 409 else "error", pdb=pdb_name, dry=dry)
            raise
        outcome = "evicted" if pdb_name and not unready_ok else \
            "evictedUnhealthy" if pdb_name else "evictedNoBudget"
        log.add(ns, name, node, 201, outcome, pdb=pdb_name, dry=dry)
        return _success()


def _success():
    return 201, _server().st.encode({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "code": 201})


def _check_and_decrement(sim, srv, ns, pod_name, pdb, dry):
    st = dict(pdb.get("status") or {})
    name = _meta(pdb).get("name")
    if st.get("observedGeneration", 0) < _meta(pdb).get("generation", 1):
        raise _still_processing(srv, name)
    if st.get("disruptionsAllowed", 0) < 0:
        raise srv.ApiError(403, "Forbidden", 'poddisruptionbudget.policy "%s" is forbidden: pdb disruptions allowed '
                           "is negative" % name, {"name": name, "group": "policy", "kind": "poddisruptionbudget"})
    if len(st.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
        raise srv.ApiError(403, "Forbidden", 'poddisruptionbudget.policy "%s" is forbidden: DisruptedPods map too '
                           "big - too many evictions not confirmed by PDB controller" % name,
                           {"name": name, "group": "policy", "kind": "poddisruptionbudget"})
    if st.get("disruptionsAllowed", 0) == 0:
        raise _too_many(srv, name, 0, "The disruption budget %s needs %d healthy pods and has %d currently"
                        % (name, st.get("desiredHealthy", 0), st.get("currentHealthy", 0)))
    st["disruptionsAllowed"] -= 1
    if st["disruptionsAllowed"] == 0:
        update_allowed_condition(st, time.time())
    if dry:
        return
    dp = dict(st.get("disruptedPods") or {})
    dp[pod_name] = now_rfc3339()
    st["disruptedPods"] = dp
    new = dict(pdb, status=st)
    new["metadata"] = dict(_meta(pdb))
    sim.store.update(PDBS, new, subresource="status")


def _delete(sim, req, pod, opts, dry, log, node, condition=True):
    """addConditionAndDeletePod: DisruptionTarget=True (EvictionByEvictionAPI) on the latest pod, then
    the delete with the caller's options (graceful; preconditions; a resourceVersion precondition moves
    to the version the condition write produced)."""
    import types
    srv = _server()
    md = _meta(pod)
    pre = opts.get("preconditions") or {}
    name = md.get("name")
    if pre.get("uid") and pre["uid"] != md.get("uid"):
        raise srv.ApiError(409, "Conflict", 'Operation cannot be fulfilled on pods "%s": Precondition failed: UID in '
                           "precondition: %s, UID in object meta: %s" % (name, pre["uid"], md.get("uid")),
                           {"name": name, "kind": "pods"})
    if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
        raise srv.ApiError(409, "Conflict", 'Operation cannot be fulfilled on pods "%s": Precondition failed: '
                           "ResourceVersion in precondition: %s, ResourceVersion in object meta: %s"
                           % (name, pre["resourceVersion"], md.get("resourceVersion")), {"name": name, "kind": "pods"})
    if condition and not dry:
        new = dict(pod)
        st = dict(pod.get("status") or {})
        conds = [c for c in st.get("conditions") or () if c.get("type") != "DisruptionTarget"]
        prev = next((c for c in st.get("conditions") or () if c.get("type") == "DisruptionTarget"), None)
        stamp = prev["lastTransitionTime"] if prev and prev.get("status") == "True" else now_rfc3339()
        conds.append({"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": stamp, "reason": "EvictionByEvictionAPI",
                      "message": "Eviction API: evicting"})
        st["conditions"] = conds
        new["status"] = st
        new["metadata"] = dict(md)
        out = sim.store.update(PODS, new, subresource="status")
        if pre.get("resourceVersion"):
            opts = dict(opts, preconditions=dict(pre, resourceVersion=_meta(out).get("resourceVersion")))
    fake = types.SimpleNamespace(info=req.info, ns=req.ns, q={})
    sim._delete_one(fake, name, opts, dry)


def _scale_obj(rs):
    md = _meta(rs)
    spec, st = rs.get("spec") or {}, rs.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in md},
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": st.get("replicas", 0),
                       "selector": tab.selector_string(spec.get("selector"))}}


def scale(sim, req):
    """GET/PUT/PATCH replicasets/<name>/scale: an autoscaling/v1 Scale over spec.replicas
    (K: pkg/registry/apps/replicaset/storage/storage.go ScaleREST)."""
    srv = _server()
    with sim.store.lock:
        rs = sim.store.get(REPLICASETS, req.ns, req.name)
        if rs is None:
            raise srv.ApiError(404, "NotFound", 'replicasets.apps "%s" not found' % req.name,
                               {"name": req.name, "group": "apps", "kind": "replicasets"})
        cur = _scale_obj(rs)
        if req.method == "GET":
            return 200, srv.st.encode(cur)
        body = req.json_body()
        if req.method == "PUT":
            new = body
        else:
            import patch as patchlib
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                if ctype == "application/json-patch+json":
                    new = patchlib.json_patch(json.loads(json.dumps(cur)), body)
                elif ctype == "application/strategic-merge-patch+json":
                    new = patchlib.strategic_merge_patch(json.loads(json.dumps(cur)), body)
                else:
                    new = patchlib.merge_patch(json.loads(json.dumps(cur)), body)
            except patchlib.PatchError as e:
                raise srv.ApiError(400, "BadRequest", str(e)) from None
        replicas = ((new or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise srv.ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid value: %s: '
                               "must be greater than or equal to 0" % (req.name, json.dumps(replicas)),
                               {"name": req.name, "group": "autoscaling", "kind": "Scale", "causes": [
                                   {"reason": "FieldValueInvalid", "field": "spec.replicas",
                                    "message": "Invalid value: %s: must be greater than or equal to 0"
                                    % json.dumps(replicas)}]})
        rv = ((new.get("metadata") or {}).get("resourceVersion"))
        if rv and rv != _meta(rs).get("resourceVersion"):
            raise srv.ApiError(409, "Conflict", 'Operation cannot be fulfilled on replicasets.apps "%s": the object '
                               "has been modified; please apply your changes to the latest version and try again"
                               % req.name, {"name": req.name, "group": "apps", "kind": "replicasets"})
        upd = dict(rs, spec=dict(rs.get("spec") or {}, replicas=replicas))
        upd["metadata"] = dict(_meta(rs))
        if sim.dry_run(req, "UpdateOptions"):
            return 200, srv.st.encode(_scale_obj(upd))
        out = sim.store.update(REPLICASETS, upd)
        return 200, srv.st.encode(_scale_obj(out))


# ---------------------------------------------------------------------------------------------
# The controllers, in cluster.py's worker thread

class Controller:
    """Disruption controller, ReplicaSet controller, the general scheduler and cordon taints.

    cluster.py calls on_event for every store event, sync() after each batch, timer(payload) for
    "disruption" timers and schedule(uid) for unbound pods that are not DaemonSet pods."""

    def __init__(self, cluster):
        self.c = cluster
        self.store = cluster.store
        self.evictions = EvictionLog()
        self.pdb_ns = defaultdict(set)  # namespace -> PDB names
        self.dirty_ns = set()  # namespaces whose PDBs need a sync
        self.dirty_rs = set()  # (ns, name)
        self.waiting = set()  # unbound non-DaemonSet pod uids the scheduler could not place
        self.retry = False  # something changed that may let a waiting pod fit
        self.rechecks = {}  # namespace -> earliest pending recheck time

    # ---- events --------------------------------------------------------------------------------
    def on_event(self, etype, res, after, before):
        obj = after if after is not None else before
        m = _meta(obj)
        ns, name = m.get("namespace", ""), m.get("name")
        deleted = etype == "DELETED"
        if res == PDBS:
            (self.pdb_ns[ns].discard if deleted else self.pdb_ns[ns].add)(name)
            if not deleted:
                self.dirty_ns.add(ns)
        elif res == PODS:
            if self.pdb_ns.get(ns):
                self.dirty_ns.add(ns)
            ref = controller_ref(obj)
            if ref is not None and ref.get("kind") == "ReplicaSet":
                self.dirty_rs.add((ns, ref.get("name")))
            if deleted or (after is not None and pod_terminal(after)):
                self.waiting.discard(m.get("uid"))
                if (obj.get("spec") or {}).get("nodeName"):
                    self.retry = True  # resources freed
        elif res == REPLICASETS:
            if not deleted:
                self.dirty_rs.add((ns, name))
            if self.pdb_ns.get(ns):
                self.dirty_ns.add(ns)
        elif res == DEPLOYMENTS:
            if self.pdb_ns.get(ns):
                self.dirty_ns.add(ns)
        elif res == NODES and not deleted:
            b = before or {}
            if before is None or (after.get("spec") or {}) != (b.get("spec") or {}) or \
                    _meta(after).get("labels") != _meta(b).get("labels") or \
                    ((after.get("status") or {}).get("allocatable") or {}).get(GPU) != \
                    ((b.get("status") or {}).get("allocatable") or {}).get(GPU):
                self.retry = True
                self._cordon_taint(after)

    def timer(self, kind, payload):
        if kind == "disruption-rs":
            self.dirty_rs.add(tuple(payload))
            return
        self.rechecks.pop(payload, None)
        self.dirty_ns.add(payload)

    def sync(self):
        """After a batch: ReplicaSets, then PDBs, then a scheduling retry for waiting pods."""
        for key in sorted(self.dirty_rs):
            self._sync_rs(*key)
        self.dirty_rs.clear()
        for ns in sorted(self.dirty_ns):
            self._sync_pdbs(ns)
        self.dirty_ns.clear()
        if self.retry and self.waiting:
            self.retry = False
            for uid in sorted(self.waiting):
                self.schedule(uid)
        self.retry = False

    # ---- node lifecycle: the cordon taint ----------------------------------------------------------
    def _cordon_taint(self, node):
        cordoned = bool((node.get("spec") or {}).get("unschedulable"))
        has = any(t.get("key") == UNSCHEDULABLE_TAINT for t in (node.get("spec") or {}).get("taints") or ())
        if cordoned == has:
            return

        def fix(obj):
            spec = obj["spec"] = dict(obj.get("spec") or {})
            if bool(spec.get("unschedulable")) == any(t.get("key") == UNSCHEDULABLE_TAINT
                                                      for t in spec.get("taints") or ()):
                return False
            taints = [t for t in spec.get("taints") or () if t.get("key") != UNSCHEDULABLE_TAINT]
            if spec.get("unschedulable"):
                taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now_rfc3339()})
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            return None
        self.c._mutate(NODES, "", _meta(node).get("name"), fix, cow=[("spec",)])

    # ---- disruption controller ---------------------------------------------------------------------
    def _lookup_controller(self, ref, ns):
        """The finders of getExpectedScale: ReplicaSet (or its Deployment), then the scale subresource."""
        kind, av = ref.get("kind"), ref.get("apiVersion", "")
        if kind == "ReplicaSet" and av.startswith("apps/"):
            rs = self.store.get(REPLICASETS, ns, ref.get("name"))
            if rs is None or _meta(rs).get("uid") != ref.get("uid"):
                return None
            dref = controller_ref(rs)
            if dref is not None and dref.get("kind") == "Deployment":  # getPodDeployment
                dep = self.store.get(DEPLOYMENTS, ns, dref.get("name"))
                if dep is None or _meta(dep).get("uid") != dref.get("uid"):
                    return None
                return _meta(dep).get("uid"), (dep.get("spec") or {}).get("replicas", 1)
            return _meta(rs).get("uid"), (rs.get("spec") or {}).get("replicas", 1)
        if kind in ("ReplicationController", "StatefulSet", "Deployment"):
            return None
        if kind == "DaemonSet" and av.startswith("apps/"):  # getScaleController: no scale subresource
            raise SyncError("daemonsets.apps does not implement the scale subresource")
        group = av.rpartition("/")[0]
        raise SyncError('no matches for kind "%s" in group "%s"' % (kind, group))

    def _sync_pdbs(self, ns):
        names = sorted(self.pdb_ns.get(ns) or ())
        if not names:
            return
        pods = [e.obj for e in self.store.list_entries(PODS, ns)[0]]
        now = time.time()
        for name in names:
            pdb = self.store.get(PDBS, ns, name)
            if pdb is None:
                continue
            matched = pdb_pods(pdb, pods)
            try:
                st, recheck = pdb_status(pdb, matched, self._lookup_controller, now)
            except SyncError as e:
                st, recheck = fail_safe(pdb, str(e), now), None
            if recheck is not None:
                due = self.rechecks.get(ns)
                if due is None or recheck < due:
                    self.rechecks[ns] = recheck
                    self.c._schedule(max(0.0, recheck - now) + 0.01, "disruption", ns)
            if st == (pdb.get("status") or {}):
                continue

            rv = _meta(pdb).get("resourceVersion")

            def write(obj, st=st, rv=rv):
                # UpdateStatus with the resourceVersion it read: an eviction's decrement in between wins
                # (a conflict; its own PDB event brings another sync), it is never overwritten
                if _meta(obj).get("resourceVersion") != rv:
                    return False
                obj["status"] = st
                return None
            out = self.c._mutate(PDBS, ns, name, write, subresource="status", cow=[])
            if out is not None and _meta(out).get("resourceVersion") != rv:
                self.c.counters["pdbStatusUpdates"] += 1

    # ---- ReplicaSet controller ---------------------------------------------------------------------
    def _sync_rs(self, ns, name):
        rs = self.store.get(REPLICASETS, ns, name)
        if rs is None or _meta(rs).get("deletionTimestamp"):
            return
        uid = _meta(rs).get("uid")
        spec = rs.get("spec") or {}
        try:
            sel = kselectors.selector_from_label_selector(spec.get("selector") or {})
        except Exception:  # noqa: BLE001
            return
        owned = [e.obj for e in self.store.list_entries(PODS, ns)[0]
                 if (controller_ref(e.obj) or {}).get("uid") == uid and sel.matches(_meta(e.obj).get("labels") or {})]
        active = [p for p in owned if not _meta(p).get("deletionTimestamp") and not pod_terminal(p)]
        want = int(spec.get("replicas", 1) or 0)
        diff = len(active) - want
        if diff < 0:
            for _ in range(min(-diff, RS_BURST)):
                self._create_rs_pod(rs)
        elif diff > 0:
            for p in sorted(active, key=_delete_rank)[:min(diff, RS_BURST)]:
                self.c._delete(PODS, ns, _meta(p).get("name"), uid=_meta(p).get("uid"))
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = time.time()
        tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if pod_ready(p)]
        avail = [p for p in ready if min_ready <= 0 or _ready_since(p) + min_ready <= now]
        st = {"replicas": len(active)}
        full = sum(1 for p in active if all((_meta(p).get("labels") or {}).get(k) == v for k, v in tlabels.items()))
        if full:
            st["fullyLabeledReplicas"] = full
        if ready:
            st["readyReplicas"] = len(ready)
        if avail:
            st["availableReplicas"] = len(avail)
        st["observedGeneration"] = _meta(rs).get("generation", 1)
        if min_ready > 0 and len(ready) != len(avail):
            self.c._schedule(1.0, "disruption-rs", (ns, name))
        old = rs.get("status") or {}
        keep = {k: v for k, v in old.items() if k == "conditions"}
        st.update(keep)
        if st != old:
            def write(obj, st=st):
                obj["status"] = st
            self.c._mutate(REPLICASETS, ns, name, write, subresource="status", cow=[])

    def _create_rs_pod(self, rs):
        md, spec = _meta(rs), rs.get("spec") or {}
        tmpl = spec.get("template") or {}
        tm = tmpl.get("metadata") or {}
        pspec = json.loads(json.dumps(tmpl.get("spec") or {}))
        for k, v in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30), ("dnsPolicy", "ClusterFirst"),
                     ("schedulerName", "default-scheduler"), ("securityContext", {}),
                     ("serviceAccountName", "default"), ("enableServiceLinks", True),
                     ("preemptionPolicy", "PreemptLowerPriority"), ("priority", 0)):
            pspec.setdefault(k, v)
        pspec.setdefault("serviceAccount", pspec["serviceAccountName"])
        meta = {"generateName": md.get("name") + "-", "namespace": md.get("namespace"),
                "labels": dict(tm.get("labels") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md.get("name"),
                                     "uid": md.get("uid"), "controller": True, "blockOwnerDeletion": True}]}
        if tm.get("annotations"):
            meta["annotations"] = dict(tm["annotations"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pspec,
               "status": {"phase": "Pending", "qosClass": kubelet.qos(pspec)}}
        for _ in range(10):
            pod["metadata"]["name"] = md.get("name") + "-" + placement.random_suffix(5, self.c.rng)
            try:
                self.c._create(PODS, json.loads(json.dumps(pod)))
            except Exception as e:  # noqa: BLE001
                if type(e).__name__ == "AlreadyExists":
                    continue
                raise
            self.c.counters["podsCreated"] += 1
            return

    # ---- scheduler ---------------------------------------------------------------------------------
    def wants(self, pod):
        """Whether the default scheduler should place this unbound pod (not a DaemonSet pod)."""
        spec = pod.get("spec") or {}
        return not spec.get("nodeName") and spec.get("schedulerName", "default-scheduler") == "default-scheduler"

    def _used_gpus(self, node_name):
        used = 0
        for puid in self.c.pods_by_node.get(node_name, ()):
            p = self.c.pods.get(puid)
            if p is None or not p.bound or p.phase in ("Succeeded", "Failed"):
                continue
            obj = self.store.get(PODS, p.ns, p.name)
            if obj is not None:
                used += gpu_request(obj.get("spec") or {})
        return used

    def schedule(self, uid):
        """One scheduling attempt (K: pkg/scheduler/schedule_one.go schedulePod, findNodesThatFitPod):
        bind to a node that passes every filter (the one with the fewest bound pods, then by name: a
        stand-in for the default scoring), or record the failure as handleSchedulingFailure does."""
        p = self.c.pods.get(uid)
        if p is None or p.bound or p.deleting:
            self.waiting.discard(uid)
            return
        pod = self.store.get(PODS, p.ns, p.name)
        if pod is None or not self.wants(pod):
            self.waiting.discard(uid)
            return
        nodes = [e.obj for e in self.store.list_entries(NODES)[0]]
        fits, reasons = [], []
        for node in nodes:
            n = _meta(node).get("name")
            why = filter_node(pod, node, self._used_gpus(n) if gpu_request(pod.get("spec") or {}) else 0)
            if why is None:
                fits.append((len(self.c.pods_by_node.get(n, ())), n))
            else:
                reasons.append(why)
        stamp = now_rfc3339()
        if fits:
            target = min(fits)[1]

            def bind(obj):
                if (obj.get("spec") or {}).get("nodeName"):
                    return False
                obj["spec"] = dict(obj.get("spec") or {}, nodeName=target)
                st = obj["status"] = dict(obj.get("status") or {})
                conds = [c for c in st.get("conditions") or () if c.get("type") != "PodScheduled"]
                conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": stamp})
                st["conditions"] = conds
                return None
            out = self.c._mutate(PODS, p.ns, p.name, bind, subresource="binding", uid=uid, cow=[])
            if out is not None:
                self.c.counters["podsBound"] += 1
                # the scheduler's assumed pod: the next decision in this batch sees the binding
                self.c._pod_event(uid, out, False, set(), set())
            self.waiting.discard(uid)
            return
        msg = fit_error(len(nodes), reasons)
        self.waiting.add(uid)

        def unschedulable(obj):
            st = obj["status"] = dict(obj.get("status") or {})
            prev = next((c for c in st.get("conditions") or () if c.get("type") == "PodScheduled"), {})
            if prev.get("status") == "False" and prev.get("message") == msg:
                return False
            conds = [c for c in st.get("conditions") or () if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                          "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == "False"
                          else stamp, "reason": "Unschedulable", "message": msg})
            st["conditions"] = conds
            return None
        if self.c._mutate(PODS, p.ns, p.name, unschedulable, subresource="status", uid=uid, cow=[]) is not None:
            self.c.counters["schedulingFailures"] += 1

    # ---- admin -------------------------------------------------------------------------------------
    def handle_admin(self, method, parts, query, body):
        """(code, body) for /_sim/workloads and /_sim/evictions, or None for other paths."""
        if parts == ["evictions"] and method == "GET":
            return 200, self.evictions.snapshot()
        if parts == ["evictions"] and method == "DELETE":
            self.evictions.reset()
            return 200, {"reset": True}
        if parts == ["workloads"] and method == "POST":
            return self._admin_workloads(body)
        if parts == ["pod-succeeded"] and method == "POST":
            return self._admin_succeeded(body)
        return None

    def _admin_succeeded(self, body):
        """Matching running pods whose restartPolicy is not Always finish: every container exits 0 and the
        kubelet posts phase Succeeded (a Job-like pod completing; a restartPolicy Always pod would be
        restarted instead, so it is left alone)."""
        rule = self.c._parse_rule(body, False)

        def finish():
            n = 0
            for p in list(self.c.pods.values()):
                if not p.bound or p.deleting or p.phase != "Running" or self.c._rule_for(p, [rule]) is None:
                    continue
                node = self.c.nodes.get(p.node)
                ip = node.ip if node else "10.0.0.1"

                def done(obj):
                    if (obj.get("spec") or {}).get("restartPolicy", "Always") == "Always":
                        return False
                    obj["status"] = succeeded_status(obj, ip)
                    return None
                out = self.c._mutate(PODS, p.ns, p.name, done, subresource="status", uid=p.uid, cow=[])
                if out is not None and (out.get("status") or {}).get("phase") == "Succeeded":
                    n += 1
            return n
        return 200, {"succeeded": self.c._in_worker(finish)}

    def _admin_workloads(self, body):
        """Create GPU workload pods already bound to given nodes (as if scheduled there), owned by a
        ReplicaSet whose replicas count them (unless "replicaSet": false), and optionally a PDB."""
        import simadmin
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise simadmin.BadRequest('"name" (string) is required')
        ns = body.get("namespace") or "default"
        nodes = body.get("nodes")
        if nodes is None and body.get("node"):
            nodes = [body["node"]]
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise simadmin.BadRequest('"nodes" (list of node names) or "node" is required')
        per = body.get("perNode", 1)
        gpus = body.get("gpus", 1)
        for k, v in (("perNode", per), ("gpus", gpus)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise simadmin.BadRequest('"%s" must be a non-negative integer' % k)
        labels = body.get("labels") or {"app": name}
        if not isinstance(labels, dict):
            raise simadmin.BadRequest('"labels" must be an object')
        image = body.get("image") or "nvcr.io/nvidia/pytorch:24.05-py3"
        grace = body.get("terminationGracePeriodSeconds", 30)
        container = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                     "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                     "resources": {"limits": {GPU: str(gpus)}, "requests": {GPU: str(gpus)}} if gpus else {}}
        restart = body.get("restartPolicy") or "Always"
        if restart not in ("Always", "OnFailure", "Never") or (restart != "Always" and body.get("replicaSet", True)):
            raise simadmin.BadRequest('"restartPolicy" must be Always, or OnFailure/Never with "replicaSet": false')
        tspec = {"containers": [container], "restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                 "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "securityContext": {}}
        if body.get("emptyDir"):
            tspec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
            container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
        with self.store.lock:
            if self.store.get("/v1/namespaces", "", ns) is None:
                import fleet
                self.store.create("/v1/namespaces", fleet.namespace(ns))
            for n in nodes:
                if self.store.get(NODES, "", n) is None:
                    return 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": 'nodes "%s" not found' % n, "reason": "NotFound", "code": 404}
            owner = None
            out = {"namespace": ns, "pods": []}
            if body.get("replicaSet", True):
                rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
                      "spec": {"replicas": len(nodes) * per, "selector": {"matchLabels": dict(labels)},
                               "template": {"metadata": {"labels": dict(labels)}, "spec": tspec}}}
                created = self.store.create(REPLICASETS, rs)
                owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": _meta(created)["uid"],
                         "controller": True, "blockOwnerDeletion": True}
                out["replicaSet"] = name
            for n in nodes:
                for _ in range(per):
                    md = {"name": "%s-%s" % (name, placement.random_suffix(5, self.c.rng)), "namespace": ns,
                          "labels": dict(labels)}
                    if owner:
                        md["ownerReferences"] = [dict(owner)]
                    spec = json.loads(json.dumps(tspec))
                    spec.update({"nodeName": n, "serviceAccountName": "default", "serviceAccount": "default",
                                 "enableServiceLinks": True, "priority": 0,
                                 "preemptionPolicy": "PreemptLowerPriority"})
                    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec,
                           "status": {"phase": "Pending", "qosClass": kubelet.qos(spec)}}
                    created = self.store.create(PODS, pod)
                    self.c.counters["podsCreated"] += 1
                    out["pods"].append({"name": _meta(created)["name"], "node": n})
            pdb = body.get("pdb")
            if isinstance(pdb, dict):
                pobj = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": {"name": pdb.get("name") or name, "namespace": ns},
                        "spec": {"selector": {"matchLabels": dict(labels)}}}
                for k in ("minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy"):
                    if k in pdb:
                        pobj["spec"][k] = pdb[k]
                default_pdb(pobj)
                self.store.create(PDBS, pobj)
                out["pdb"] = pobj["metadata"]["name"]
        return 201, out


def succeeded_status(pod, host_ip):
    """What the kubelet posts once every container of a restartPolicy Never/OnFailure pod exited 0
    (K: pkg/kubelet/kubelet_pods.go getPhase; pkg/kubelet/status/generate.go: reason PodCompleted)."""
    spec, old = pod.get("spec") or {}, pod.get("status") or {}
    stamp = now_rfc3339()
    prev = {c.get("type"): c for c in old.get("conditions") or ()}

    def cond(ctype, status, reason=None):
        c = {"type": ctype, "status": status, "lastProbeTime": None,
             "lastTransitionTime": prev[ctype]["lastTransitionTime"] if ctype in prev and
             prev[ctype].get("status") == status else stamp}
        if reason:
            c["reason"] = reason
        return c
    conds = [cond("PodReadyToStartContainers", "False"), cond("Initialized", "True", "PodCompleted"),
             cond("Ready", "False", "PodCompleted"), cond("ContainersReady", "False", "PodCompleted"),
             cond("PodScheduled", "True")]
    old_cs = {c.get("name"): c for c in old.get("containerStatuses") or ()}
    statuses = []
    for c in spec.get("containers") or ():
        pc = old_cs.get(c.get("name")) or {}
        started = ((pc.get("state") or {}).get("running") or {}).get("startedAt") or stamp
        statuses.append({"name": c.get("name", ""), "image": c.get("image", ""), "imageID": pc.get("imageID", ""),
                         "containerID": pc.get("containerID", ""), "ready": False, "started": False,
                         "restartCount": pc.get("restartCount", 0),
                         "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                                  "finishedAt": stamp, "containerID": pc.get("containerID", "")}}})
    out = {"phase": "Succeeded", "conditions": conds}
    for k in ("hostIP", "hostIPs", "podIP", "podIPs", "startTime"):
        if k in old:
            out[k] = old[k]
    out["containerStatuses"] = statuses
    out["qosClass"] = old.get("qosClass") or kubelet.qos(spec)
    return out


def _ready_since(pod):
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            return parse_rfc3339(c.get("lastTransitionTime"))
    return 0.0


def _delete_rank(pod):
    """getPodsToDelete's order (K: pkg/controller/controller_utils.go ActivePods Less): unassigned
    before assigned, Pending before Running, not ready before ready, newer before older."""
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(st.get("phase"), 0)
    return (1 if spec.get("nodeName") else 0, phase_rank, 1 if pod_ready(pod) else 0,
            -parse_rfc3339(_meta(pod).get("creationTimestamp")))
