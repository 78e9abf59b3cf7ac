"""kubesim's kube-controller-manager parts: the namespace controller's content deletion, the garbage
collector, the DaemonSet controller and the Events it records."""

import json
import time
from collections import defaultdict

import daemonset
import kubelet
import placement
from simcommon import (DAEMONSETS, EVENTS, NAMESPACES, PODS, REVISIONS, RUNTIMECLASSES, meta as _meta)
from ktime import now_rfc3339

class Controllers:
    """A mixin of cluster.Cluster: runs on its worker thread, with its caches and store helpers."""

    def _empty_namespace(self, ns):
        """Namespace controller: a deleted (or terminating) namespace loses everything in it."""
        for res in self._resources():
            if res == NAMESPACES:
                continue
            list_entries = getattr(self.store, "list_entries", None)
            objs = ([e.obj for e in list_entries(res, namespace=ns)[0]] if list_entries
                    else self.store.list(res, namespace=ns)[0])
            for obj in objs:
                m = _meta(obj)
                if m.get("namespace") == ns and not m.get("deletionTimestamp"):
                    self._delete(res, ns, m.get("name"))
                    self.counters["namespaceContentDeleted"] += 1

    # ---- garbage collector ------------------------------------------------------------------------------
    def _owner_present(self, owner_uid, dep_ns):
        """Whether an owner keeps its dependent alive, with the GC's scope rules: a namespaced owner in
        another namespace counts as absent; a cluster-scoped dependent cannot resolve a namespaced
        owner at all and is never collected (so that owner counts as present, live or deleted)."""
        info = self.objects.get(owner_uid)
        owner_ns = info[1] if info is not None else self._gone.get(owner_uid)
        if not dep_ns and owner_ns:
            return True
        if info is None:
            return False
        return not owner_ns or owner_ns == dep_ns

    def _gc(self, uid):
        info = self.owners.get(uid)
        if info is None or uid not in self.objects:
            return
        res, ns, name, refs, raw_refs = info
        if any(self._owner_present(o, ns) for o in refs):
            return
        # Owners not in our caches: unless seen deleted, confirm against the store before collecting
        # (an owner may be of a kind our caches never saw).
        for ref in raw_refs or ():
            if ref.get("uid") in self._gone:
                continue
            ores = self.kind_res.get((ref.get("apiVersion"), ref.get("kind")))
            if ores is None:
                return  # unknown kind: cannot verify, keep the dependent
            for ons in ((ns, "") if ns else ("",)):
                e = self.store.get(ores, ons, ref.get("name"))
                if e is not None and _meta(e).get("uid") == ref.get("uid"):
                    return
        self.counters["garbageCollected"] += 1
        self._delete(res, ns, name)

    # ---- DaemonSet controller ------------------------------------------------------------------------------
    def _reconcile_ds(self, ns, name):
        ds = self.store.get(DAEMONSETS, ns, name)
        if ds is None or _meta(ds).get("deletionTimestamp"):
            return  # a DaemonSet being deleted is left alone, status included
        t = daemonset.Template(ds)
        now = time.time()
        should, keep = self._fit_nodes(t)
        self.failed_backoff.requeue = None
        creates, deletes = daemonset.plan(t, should, self._pods_by_node_of(t.uid), now, keep,
                                          backoff=self.failed_backoff)
        if self.failed_backoff.requeue is not None:  # enqueueDaemonSetAfter(ds, delay)
            self._schedule(self.failed_backoff.requeue + 0.01, "ds", (ns, name))
        self._ensure_revision(t, ds)
        made, rejected, removed = [], None, []
        for node_name in creates:
            pod = self._create_daemon_pod(t, node_name)
            if isinstance(pod, str):
                rejected = pod
                break  # the same admission error for every node: report it once per pass
            if pod is not None:
                made.append(_meta(pod)["name"])
        for p in deletes:
            if p.phase == "Failed":
                self._record(ds, "Warning", "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try "
                             "to kill it" % (p.ns, p.name, p.node), 1)
            out = self._delete(PODS, p.ns, p.name)
            if out is not None:
                self.counters["podsDeleted"] += 1
                removed.append(p.name)
                if _meta(out).get("deletionTimestamp"):  # Terminating: counted until the kubelet is done
                    self._pod_event(p.uid, out, False, set(), set())
                else:
                    self._pod_event(p.uid, {"metadata": {"uid": p.uid}}, True, set(), set())
        if made:
            self._record(ds, "Normal", "SuccessfulCreate", "Created pod: %s" % made[-1], len(made))
        if removed:
            self._record(ds, "Normal", "SuccessfulDelete", "Deleted pod: %s" % removed[-1], len(removed))
        if rejected:
            self._record(ds, "Warning", "FailedCreate", rejected, 1)

        # status, from the caches as they are after our own writes
        status, recheck = daemonset.compute_status(t, should, self._pods_by_node_of(t.uid), now)
        if recheck is not None:
            self._schedule(max(0.05, recheck + 0.05), "ds", (ns, name))

        def write(obj):
            old = obj.get("status") or {}
            new = dict(status)
            for k in ("collisionCount", "conditions"):
                if k in old:
                    new[k] = old[k]
            if new == old:
                return False
            obj["status"] = new
            return None

        self._mutate(DAEMONSETS, ns, name, write, subresource="status", uid=t.uid, cow=[])

    def _pods_by_node_of(self, owner_uid):
        """node -> the owner's pods there, live before terminating, oldest first."""
        by_node = defaultdict(list)
        for puid in self.pods_by_owner.get(owner_uid, ()):
            p = self.pods.get(puid)
            if p is not None:
                by_node[p.node].append(p)
        for plist in by_node.values():
            plist.sort(key=lambda p: (p.deleting, p.seq))
        return by_node

    def _create_daemon_pod(self, t, node_name):
        """Create the daemon pod for a node; returns the pod, or an admission error message (str)."""
        rc = t.pod_spec.get("runtimeClassName")
        if rc and self.store.get(RUNTIMECLASSES, "", rc) is None:
            # the RuntimeClass admission plugin rejects the pod (K: plugin/pkg/admission/runtimeclass)
            self.counters["podsRejected"] += 1
            return ('Error creating: pods "%s-" is forbidden: pod rejected: RuntimeClass "%s" not found'
                    % (t.name, rc))
        pod = daemonset.daemon_pod(t, node_name, now_rfc3339(), kubelet.qos)
        for _ in range(10):
            pod["metadata"]["name"] = t.name + "-" + placement.random_suffix(5, self.rng)
            try:
                created = self._create(PODS, json.loads(json.dumps(pod)))
            except Exception as e:  # noqa: BLE001
                if type(e).__name__ == "AlreadyExists":
                    continue
                raise
            self.counters["podsCreated"] += 1
            self._pod_event(_meta(created)["uid"], created, False, set(), set())
            return created
        return None

    def _ensure_revision(self, t, ds):
        """ControllerRevision <ds>-<hash> for the current template; older ones beyond the history limit go."""
        mine = [o for o in self._objects_in(REVISIONS, t.namespace)
                if any(r.get("uid") == t.uid for r in _meta(o).get("ownerReferences") or ())]
        name = "%s-%s" % (t.name, t.hash)
        top = max([o.get("revision", 0) for o in mine] or [0])
        cur = next((o for o in mine if _meta(o).get("name") == name), None)
        if cur is None:
            rev = daemonset.controller_revision(t, _meta(ds).get("annotations"), top + 1)
            try:
                self._create(REVISIONS, rev)
                mine.append(rev)
            except Exception:  # noqa: BLE001 — e.g. not served: the history is a nicety
                return
        elif cur.get("revision", 0) < top:  # back to an older template: it becomes the newest revision
            def bump(obj):
                obj["revision"] = top + 1
            self._mutate(REVISIONS, t.namespace, name, bump, cow=[])
        old = sorted((o for o in mine if _meta(o).get("name") != name), key=lambda o: o.get("revision", 0))
        for o in old[:max(0, len(old) - t.history_limit)]:
            self._delete(REVISIONS, t.namespace, _meta(o)["name"])

    def _objects_in(self, res, ns):
        list_entries = getattr(self.store, "list_entries", None)
        if list_entries is not None:
            return [e.obj for e in list_entries(res, namespace=ns)[0]]
        return self.store.list(res, namespace=ns)[0]

    def _record(self, obj, etype, reason, message, n):
        """core/v1 Event about obj from daemonset-controller; repeats of a reason bump count like the
        client-go correlator does, so a 5,000-pod rollout is one Event, not 5,000."""
        m = _meta(obj)
        ns = m.get("namespace") or "default"
        key = (ns, m.get("uid"), reason)
        stamp = now_rfc3339()
        name = self._event_names.get(key)
        if name is not None:
            def bump(ev):
                ev["count"] = int(ev.get("count", 1)) + n
                ev["lastTimestamp"] = stamp
                ev["message"] = message
            if self._mutate(EVENTS, ns, name, bump, cow=[]) is not None:
                return
        name = "%s.%x" % (m.get("name"), time.time_ns())
        ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
              "involvedObject": {"apiVersion": obj.get("apiVersion", "apps/v1"), "kind": obj.get("kind", "DaemonSet"),
                                 "name": m.get("name"), "namespace": ns, "uid": m.get("uid"),
                                 "resourceVersion": m.get("resourceVersion")},
              "reason": reason, "message": message, "type": etype,
              "source": {"component": "daemonset-controller"}, "firstTimestamp": stamp, "lastTimestamp": stamp,
              "count": n, "reportingComponent": "daemonset-controller", "reportingInstance": ""}
        try:
            self._create(EVENTS, ev)
        except Exception:  # noqa: BLE001 — events are best effort, as in client-go
            return
        self._event_names[key] = name
        self.counters["events"] += 1
