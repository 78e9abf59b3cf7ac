"""The DaemonSet controller's decisions as pure functions (no store, no clock reads).

Given which nodes should run a daemon pod and the pods each node has, `plan` says which pods to
create and delete (placement, duplicates, RollingUpdate within maxUnavailable; OnDelete never
replaces), and `compute_status` produces the status kube-controller-manager would write
(K: pkg/controller/daemon/daemon_controller.go updateDaemonSetStatus). Pods are light objects with
.node, .labels, .ready, .ready_since, .deleting and .seq (creation order).
"""

import json

import placement

GEN_ANNOTATION = "deprecated.daemonset.template.generation"
HASH_LABEL = "controller-revision-hash"
GEN_LABEL = "pod-template-generation"


class Template:
    """What a reconcile needs from a DaemonSet object."""

    def __init__(self, ds):
        m = ds.get("metadata") or {}
        spec = ds.get("spec") or {}
        self.name, self.namespace, self.uid = m.get("name"), m.get("namespace", ""), m.get("uid")
        self.generation = m.get("generation", 0)
        self.template = spec.get("template") or {}
        self.pod_spec = self.template.get("spec") or {}
        self.tolerations = placement.daemon_tolerations(self.pod_spec)
        self.hash = placement.template_hash(self.template)
        self.template_generation = (m.get("annotations") or {}).get(GEN_ANNOTATION) or str(m.get("generation", 1))
        self.min_ready = int(spec.get("minReadySeconds") or 0)
        strategy = spec.get("updateStrategy") or {}
        self.rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        self.max_unavailable = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
        self.history_limit = int(spec.get("revisionHistoryLimit", 10))

    def fit(self, node_view):
        """(should_run, should_continue_running) on that node."""
        return placement.node_fit(self.pod_spec, self.tolerations, node_view)

    def available(self, pod, now):
        return pod.ready and (self.min_ready <= 0 or pod.ready_since + self.min_ready <= now)

    def is_updated(self, pod):
        return pod.labels.get(HASH_LABEL) == self.hash or pod.labels.get(GEN_LABEL) == self.template_generation


def resolve_int_or_percent(v, total):
    """maxUnavailable: an int, or a percentage of the desired count rounded up (as the controller does)."""
    if isinstance(v, str) and v.endswith("%"):
        try:
            pct = int(v[:-1])
        except ValueError:
            return 1
        return -(-pct * total // 100)
    try:
        return int(v)
    except (TypeError, ValueError):
        return 1


class FailedBackoff:
    """The DaemonSet controller's failedPodsBackoff (K: pkg/controller/daemon/daemon_controller.go
    podsShouldBeOnNode; cmd/kube-controller-manager/app/apps.go startDaemonSetController passes
    flowcontrol.NewBackOff(1*time.Second, 15*time.Minute)), keyed by DaemonSet uid + node: a Failed
    daemon pod is deleted at once the first time, then only once the back-off since the last deletion
    on that node has passed; the back-off doubles up to 15 minutes and restarts from 1 s once an entry
    has been idle for twice the maximum (client-go util/flowcontrol/backoff.go)."""

    def __init__(self, initial=1.0, maximum=900.0):
        self.initial, self.maximum = initial, maximum
        self.entries = {}  # key -> [duration, last update]
        self.requeue = None  # the shortest wait a plan() pass ran into, or None

    def in_backoff(self, key, now):
        e = self.entries.get(key)
        return e is not None and now - e[1] < e[0]

    def remaining(self, key, now):
        e = self.entries.get(key)
        return 0.0 if e is None else max(0.0, e[0] - (now - e[1]))

    def next(self, key, now):
        e = self.entries.get(key)
        if e is None or now - e[1] > 2 * self.maximum:
            self.entries[key] = [self.initial, now]
        else:
            e[0], e[1] = min(e[0] * 2, self.maximum), now


def _failed(p):
    return getattr(p, "phase", "") == "Failed"


def plan(t, should, by_node, now, keep=frozenset(), backoff=None):
    """Returns (node names needing a pod, pods to delete). by_node: node -> pods, oldest first.

    should: nodes that should run a pod; keep: nodes where an existing pod may continue running
    (should implies keep). Follows podsShouldBeOnNode (K: pkg/controller/daemon/daemon_controller.go):
    a node that has any pod of ours, Terminating ones included, gets no new pod; a Failed pod is deleted
    (subject to `backoff`, a FailedBackoff) and replaced on a later pass."""
    creates, deletes = [], []
    for node_name in sorted(set(by_node) | should):
        pods = by_node.get(node_name, ())
        live = [p for p in pods if not p.deleting]
        if node_name in should and not pods:
            creates.append(node_name)
        elif node_name in should or node_name in keep:
            running = []
            for p in live:
                if not _failed(p):
                    running.append(p)
                    continue
                key = (t.uid, node_name)
                if backoff is not None:
                    if backoff.in_backoff(key, now):
                        wait = backoff.remaining(key, now)
                        backoff.requeue = wait if backoff.requeue is None else min(backoff.requeue, wait)
                        continue
                    backoff.next(key, now)
                deletes.append(p)
            deletes.extend(running[1:])  # duplicates: the oldest stays
        else:
            deletes.extend(live)
    if t.rolling:
        deletes.extend(p for p in _rolling_update(t, should, by_node, now) if p not in deletes)
    return creates, deletes


def _rolling_update(t, should, by_node, now):
    """Old pods to delete, as rollingUpdate does without surge (K: pkg/controller/daemon/update.go
    rollingUpdate, findUpdatedPodsOnNode): per node with pods, ignoring Terminating ones: no live pod,
    or an old and a new one, counts as unavailable; a new pod counts when not available; an old pod
    that is not available is replaced at once (allowedReplacementPods); available old pods are
    replaced only while fewer than maxUnavailable nodes are unavailable. A node whose old pod was
    deleted but stays Terminating (its kubelet is gone) therefore holds one unit of maxUnavailable
    for as long as it stays."""
    # maxUnavailable of desiredNumberScheduled; 0 (no surge simulated) becomes 1
    # (K: update.go updatedDesiredNodeCounts)
    budget = resolve_int_or_percent(t.max_unavailable, len(should)) or 1
    unavailable, allowed, candidates = 0, [], []
    for node_name in sorted(set(by_node) | should):
        # a node without any pod gets one in this same pass (plan's creates): it counts as an unavailable
        # new pod, as the real controller sees it once its expectations are satisfied
        live = [p for p in by_node.get(node_name, ()) if not p.deleting]
        new = [p for p in live if t.is_updated(p)]
        old = [p for p in live if not t.is_updated(p)]
        if len(new) > 1 or len(old) > 1:
            unavailable += 1  # the manage loop prunes duplicates first
            continue
        if (not new and not old) or (new and old):
            unavailable += 1  # only Terminating pods (or none yet), or mid-replacement
        elif new:
            if not t.available(new[0], now):
                unavailable += 1
        elif not t.available(old[0], now):
            allowed.append(old[0])
        elif unavailable < budget:
            candidates.append(old[0])
    return allowed + candidates[:max(0, budget - unavailable)]


def compute_status(t, should, by_node, now):
    """Returns (status dict, seconds until a minReadySeconds wait ends or None)."""
    desired = current = misscheduled = ready = avail = updated = 0
    recheck = None
    for node_name in set(by_node) | should:
        pods = sorted(by_node.get(node_name, ()), key=lambda p: p.seq)
        if node_name not in should:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        p = pods[0]  # the oldest pod decides
        if p.ready:
            ready += 1
            if t.available(p, now):
                avail += 1
            elif t.min_ready > 0:
                wait = p.ready_since + t.min_ready - now
                recheck = wait if recheck is None else min(recheck, wait)
        if t.is_updated(p):
            updated += 1
    status = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
              "desiredNumberScheduled": desired, "numberReady": ready}
    for k, v in (("observedGeneration", t.generation), ("updatedNumberScheduled", updated),
                 ("numberAvailable", avail), ("numberUnavailable", desired - avail)):
        if v:  # omitempty: absent means 0
            status[k] = v
    return status, recheck


def owner_ref(t):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": t.name, "uid": t.uid, "controller": True,
            "blockOwnerDeletion": True}


def target_node(spec):
    """The node a pod is for: spec.nodeName, else the node its required affinity names by
    metadata.name (K: pkg/controller/daemon/util/daemonset_util.go GetTargetNodeName)."""
    if spec.get("nodeName"):
        return spec["nodeName"]
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in req.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or ()) == 1:
                return f["values"][0]
    return ""


def daemon_pod(t, node_name, stamp, qos):
    """The pod the controller creates for node_name (metadata.name left to the caller)."""
    tm = t.template.get("metadata") or {}
    spec = json.loads(json.dumps(t.pod_spec))
    for k, v in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30), ("dnsPolicy", "ClusterFirst"),
                 ("schedulerName", "default-scheduler"), ("securityContext", {}), ("serviceAccountName", "default"),
                 ("enableServiceLinks", True), ("preemptionPolicy", "PreemptLowerPriority"), ("priority", 0)):
        spec.setdefault(k, v)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec["tolerations"] = [dict(x) for x in t.tolerations]
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = dict(affinity.get("nodeAffinity") or {}, **{
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}})
    labels = dict(tm.get("labels") or {})
    labels[HASH_LABEL] = t.hash
    labels[GEN_LABEL] = t.template_generation
    meta = {"generateName": t.name + "-", "namespace": t.namespace, "labels": labels,
            "ownerReferences": [owner_ref(t)]}
    if tm.get("annotations"):
        meta["annotations"] = dict(tm["annotations"])
    # created unbound: the scheduler binds it to the node its affinity names
    # (K: pkg/controller/daemon/util/daemonset_util.go ReplaceDaemonSetPodNodeNameNodeAffinity)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": "Pending", "qosClass": qos(spec)}}


def controller_revision(t, ds_annotations, revision):
    """ControllerRevision <ds>-<hash> holding the template, as `kubectl rollout history` reads it."""
    labels = dict((t.template.get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = t.hash
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
           "metadata": {"name": "%s-%s" % (t.name, t.hash), "namespace": t.namespace, "labels": labels,
                        "ownerReferences": [owner_ref(t)]},
           "data": {"spec": {"template": dict(t.template, **{"$patch": "replace"})}}, "revision": revision}
    if ds_annotations:
        rev["metadata"]["annotations"] = dict(ds_annotations)
    return rev
