"""kubesim's simulated cluster: fleet seeding, DaemonSet controller, kubelet, device plugin effect,
garbage collector, node heartbeats, and the cluster half of the /_sim/ admin API.

Threading: the store listener only enqueues (event_type, res, after, before); store objects handed to
listeners are never mutated afterwards, so no copy is needed. One worker thread drains the queue in
batches, updates its light caches (nodes, pods, DaemonSets, owner graph), runs due timers (kubelet
starts, crash loops, heartbeats, minReadySeconds re-checks), then reconciles every DaemonSet and node
the batch touched. All store writes of the simulation happen in that thread, except the admin
endpoints, which write from the HTTP handler thread that called them (the store serialises writes).

Writes are read-modify-write under store.lock, so a simulated controller never loses a client's
concurrent change and never needs to retry on 409.

Pure parts live beside it: fleet.py (node objects), placement.py (node selection, tolerations,
selectors), daemonset.py (what to create/delete, DaemonSet status), kubelet.py (pod status);
simadmin.py holds the admin endpoints (a mixin of Cluster).
"""

import heapq
import json
import queue
import random
import threading
import time
import traceback
from collections import defaultdict

import fleet
import daemonset
import disruption
import hostsim
import kubelet
from ktime import now_rfc3339, parse_rfc3339
import placement
import simadmin

NODES = "/v1/nodes"
PODS = "/v1/pods"
NAMESPACES = "/v1/namespaces"
DAEMONSETS = "apps/v1/daemonsets"
REVISIONS = "apps/v1/controllerrevisions"
RUNTIMECLASSES = "node.k8s.io/v1/runtimeclasses"
EVENTS = "/v1/events"
DEVICE_PLUGIN_COMPONENT = "device-plugin"
GPU_RESOURCE = "nvidia.com/gpu"
RECONCILE_INTERVAL = 0.05  # seconds between two passes over the same DaemonSet


def _meta(obj):
    return obj.get("metadata") or {}


def _controller_ref(meta):
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def is_device_plugin(labels):
    """The labels a device plugin pod carries: ours (component/name device-plugin) or NVIDIA's chart's."""
    if DEVICE_PLUGIN_COMPONENT in (labels.get("app.kubernetes.io/component"), labels.get("app.kubernetes.io/name")):
        return True
    return any((labels.get(k) or "").startswith("nvidia-device-plugin")
               for k in ("name", "app", "app.kubernetes.io/name"))


class _Node:
    """Light view of a Node for placement decisions."""
    __slots__ = ("name", "uid", "labels", "taints", "unschedulable", "gpu_alloc", "ip")

    def __init__(self, obj):
        m, spec, st = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
        self.name, self.uid = m.get("name"), m.get("uid")
        self.labels = m.get("labels") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self.gpu_alloc = (st.get("allocatable") or {}).get(GPU_RESOURCE)
        self.ip = next((a.get("address") for a in st.get("addresses") or () if a.get("type") == "InternalIP"),
                       "10.0.0.1")

    def placement_view(self):
        return {"name": self.name, "labels": self.labels, "taints": self.taints,
                "unschedulable": self.unschedulable}


class _Pod:
    """Light view of a Pod: what the DaemonSet controller, kubelet and device plugin need."""
    __slots__ = ("uid", "ns", "name", "node", "bound", "labels", "owner_uid", "owner_kind", "owner_name", "ready",
                 "ready_since", "phase", "deleting", "delete_at", "seq", "started", "starting", "unschedulable",
                 "init_names")

    def __init__(self, obj, seq):
        m, spec, st = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
        self.uid, self.ns, self.name = m.get("uid"), m.get("namespace", ""), m.get("name")
        # an unbound DaemonSet pod belongs to the node its affinity names (GetTargetNodeName)
        self.node = daemonset.target_node(spec)
        self.bound = bool(spec.get("nodeName"))
        self.init_names = tuple(c.get("name") for c in spec.get("initContainers") or ())
        self.labels = m.get("labels") or {}
        ref = _controller_ref(m) or {}
        self.owner_uid, self.owner_kind, self.owner_name = ref.get("uid"), ref.get("kind"), ref.get("name")
        self.ready = placement.pod_is_ready(obj)
        self.ready_since = 0.0
        for c in st.get("conditions") or ():
            if c.get("type") == "Ready" and c.get("status") == "True":
                self.ready_since = parse_rfc3339(c.get("lastTransitionTime"))
        self.phase = st.get("phase") or "Pending"
        self.deleting = bool(m.get("deletionTimestamp"))
        self.delete_at = parse_rfc3339(m.get("deletionTimestamp")) if self.deleting else 0.0
        self.seq = seq
        self.started = bool(st.get("containerStatuses")) or self.phase != "Pending"
        # running but not ready, the startup probe not passed yet (the start-up window)
        self.starting = any("running" in (c.get("state") or {}) and not c.get("started")
                            for c in st.get("containerStatuses") or ())
        self.unschedulable = any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                                 for c in st.get("conditions") or ())


class Cluster(simadmin.AdminAPI, hostsim.HostSim):
    def __init__(self, store, args):
        self.store = store
        self.gpu_nodes = int(getattr(args, "gpu_nodes", 0) or 0)
        self.gpus_per_node = int(getattr(args, "gpus_per_node", 8) or 8)
        self.cpu_nodes = int(getattr(args, "cpu_nodes", 0) or 0)
        delay = getattr(args, "pod_ready_delay", None)
        self.ready_delay = 0.5 if delay is None else float(delay)
        stop = getattr(args, "pod_stop_delay", None)
        self.stop_delay = 0.1 if stop is None else float(stop)  # SIGTERM -> containers gone
        self.heartbeat = float(getattr(args, "heartbeat", 0) or 0)
        self._hb_tick = min(1.0, self.heartbeat) if self.heartbeat > 0 else 0  # seconds between chunks
        self._hb_cursor = 0
        self.rng = random.Random()
        self._q = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = None
        self._mu = threading.Lock()  # guards the caches below against admin readers
        self._busy = False
        self._put_n = 0  # items enqueued (guarded by _cnt) and processed (worker): settle() compares them
        self._done_n = 0
        self._batch_len = 0
        self._cnt = threading.Lock()
        self._start_pending = set()  # pod uids with a kubelet start timer
        self._gone = {}  # uid seen deleted -> its namespace: dependents may be collected without a lookup
        self._timers = []  # heap of (when, seq, kind, payload)
        self._seq = 0
        # caches, written by the worker thread only
        self.nodes = {}  # name -> _Node
        self.pods = {}  # uid -> _Pod
        self.pods_by_node = defaultdict(set)  # node name -> pod uids
        self.pods_by_owner = defaultdict(set)  # controller owner uid -> pod uids
        self.daemonsets = {}  # (ns, name) -> uid
        self.objects = {}  # uid -> (res, ns, name)
        self.owners = {}  # dependent uid -> (res, ns, name, [owner uids])
        self.dependents = defaultdict(set)  # owner uid -> dependent uids
        self.kind_res = {}  # (apiVersion, kind) -> res, learnt from events
        self.gpu_counts = {}  # node name -> GPUs it has (from seeding / admin)
        self.fail_rules = []  # dicts: node, daemonset, selector (parsed), labelSelector, reason, message
        self.crashing = {}  # pod uid -> next backoff seconds
        self.unreachable = set()  # node names whose kubelet is "down" (/_sim/nodes/<n>/ready false)
        self.life_rules = []  # dicts: selectors + startupSeconds / stopSeconds (/_sim/lifecycle)
        self.unsched_rules = []  # dicts: selectors + message (/_sim/unschedulable)
        self.failed_rules = []  # dicts: selectors + reason, message (/_sim/pod-failed with repeat)
        self.static_fail = set()  # pod uids showing a never-started failure (image, sandbox)
        self.failed_backoff = daemonset.FailedBackoff()
        self.counters = defaultdict(int)  # what the simulation did, for /_sim/status
        self._last_reconcile = {}  # (ns, name) -> monotonic time of its last pass
        self._deferred = set()  # DaemonSets with a pending "ds" timer
        self._fit_cache = {}  # DaemonSet uid -> (Template, should-run nodes, may-keep-running nodes)
        self._fit_stale = {}  # DaemonSet uid -> nodes whose placement inputs changed since then
        self._event_names = {}  # (namespace, involved uid, reason) -> Event name, for aggregation
        # PDB status, ReplicaSets, the scheduler for non-DaemonSet pods, cordon taints (issue 12)
        self.disruption = disruption.Controller(self)
        self._host_init(args)  # GPU hosts (hostsim.py, host.py)

    # ---- lifecycle ------------------------------------------------------------------------------
    def seed(self):
        """Create namespaces (when missing) and the fleet (only when there are no nodes yet)."""
        created = now_rfc3339()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.get(NAMESPACES, "", ns) is None:
                self._create(NAMESPACES, fleet.namespace(ns))
        if self._count(NODES):
            return
        self.gpu_nodes = max(self.gpu_nodes, len(self.fleet_facts))
        for i in range(self.gpu_nodes):
            name = "gpu-node-%d" % i
            self.gpu_counts[name] = self.gpus_per_node
            facts = self.fleet_facts[i] if i < len(self.fleet_facts) else {}
            self.host_facts[name] = facts
            self._create(NODES, fleet.build_node(name, i, True, self.gpus_per_node, created=created, facts=facts))
        for i in range(self.cpu_nodes):
            self._create(NODES, fleet.build_node("cpu-node-%d" % i, i, False, created=created))

    def start(self):
        """Register the listener, load the current objects into the caches, start the worker."""
        with self.store.lock:
            self.store.add_listener(self._on_event)
            for res in self._resources():
                for obj in self._objects(res):
                    self._put(("ADDED", res, obj, None))
        # failure rules are not persisted: pods loaded from --state that were failing run again
        self._command(self._apply_rules)
        if self.heartbeat > 0:
            self._schedule(self._hb_tick, "heartbeat", None)
        self._thread = threading.Thread(target=self._run, name="kubesim-cluster", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._q.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def settle(self, timeout=10.0, include_timers=True):
        """Wait until the worker has nothing queued and (optionally) no kubelet start pending."""
        deadline = time.monotonic() + timeout
        with self._cnt:
            target = self._put_n
        while time.monotonic() < deadline:
            with self._mu:
                # pending pod starts, bindings and DaemonSet passes (not kills: a pod may stay Terminating)
                pending = (any(k in ("start", "ds", "bind") for _, _, k, _ in self._timers)
                           if include_timers else False)
                idle = self._done_n >= target and not self._busy
            if idle and not pending:
                return True
            time.sleep(0.01)
        return False

    # ---- store access helpers -------------------------------------------------------------------
    def _resources(self):
        keys = getattr(self.store, "resource_keys", None)
        res = list(keys()) if keys else []
        for r in (NAMESPACES, NODES, PODS, DAEMONSETS):
            if r not in res:
                res.append(r)
        return res

    def _objects(self, res):
        """Read-only objects of a resource (no copy when the store offers entries)."""
        list_entries = getattr(self.store, "list_entries", None)
        if list_entries is not None:
            return [e.obj for e in list_entries(res)[0]]
        return self.store.list(res)[0]

    def _count(self, res):
        count = getattr(self.store, "count", None)
        return count(res) if count else len(self.store.list(res)[0])

    def _create(self, res, obj):
        return self.store.create(res, obj)

    def _delete(self, res, ns, name, grace=None, uid=None):
        try:
            if uid is not None:
                with self.store.lock:
                    cur = self.store.get(res, ns, name)
                    if cur is None or _meta(cur).get("uid") != uid:
                        return None  # the UID precondition the kubelet and pod GC send
                    return self.store.delete(res, ns, name, grace=grace)
            return self.store.delete(res, ns, name, grace=grace)
        except Exception:  # noqa: BLE001 — already gone is fine for a controller
            return None

    def _mutate(self, res, ns, name, fn, subresource=None, uid=None, cow=None):
        """Read-modify-write under the store lock; fn(obj) mutates and returns False to skip the write.

        cow: the paths fn modifies, e.g. [("metadata", "labels")]; when given, fn gets a copy-on-write
        view of the stored object (only those paths copied) instead of a full deep copy, which matters
        for 15 KB nodes touched thousands of times. Stored objects are never mutated by the store."""
        get_entry = getattr(self.store, "get_entry", None)
        with self.store.lock:
            if cow is not None and get_entry is not None:
                e = get_entry(res, ns, name)
                obj = _cow(e.obj, cow) if e is not None else None
            else:
                obj = self.store.get(res, ns, name)
            if obj is None or (uid and _meta(obj).get("uid") != uid):
                return None
            if fn(obj) is False:
                return obj
            return self.store.update(res, obj, subresource=subresource)

    # ---- events -----------------------------------------------------------------------------------
    def _on_event(self, etype, res, after, before):
        self._put((etype, res, after, before))

    def _put(self, item):
        with self._cnt:
            self._put_n += 1
        self._q.put(item)

    def _run(self):
        while not self._stop.is_set():
            timeout = 0.5
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
            try:
                item = self._q.get(timeout=timeout)
            except queue.Empty:
                item = False
            with self._mu:
                self._busy = True
            try:
                self._step(item)
            except Exception as e:  # noqa: BLE001 — keep simulating; report why
                traceback.print_exc()
                self.counters["errors"] += 1
                self.last_error = repr(e)
            finally:
                with self._mu:
                    self._done_n += self._batch_len  # counted even when the batch failed: settle() ends
                    self._batch_len = 0
                    self._busy = False

    def _step(self, first):
        """Process one batch: every queued item, then due timers, then the reconciles they caused."""
        batch = [] if first is False else [first]
        while True:
            try:
                batch.append(self._q.get_nowait())
            except queue.Empty:
                break
        self._batch_len = len(batch)
        dirty_ds, dirty_nodes, all_ds = set(), set(), False
        gc_check = []
        for item in batch:
            if item is None:
                return
            if isinstance(item, tuple) and item[0] == "cmd":
                item[1]()
                continue
            etype, res, after, before = item
            all_ds |= self._apply_event(etype, res, after, before, dirty_ds, dirty_nodes, gc_check)
        self._run_timers(dirty_ds, dirty_nodes)
        if all_ds:
            dirty_ds = set(self.daemonsets)
        else:
            dirty_ds |= self._refit_changed_nodes()
        now = time.monotonic()
        for key in sorted(dirty_ds):
            # like a controller's rate-limited workqueue: at most one pass per DaemonSet every
            # RECONCILE_INTERVAL, so a stream of pod/node events is handled in batches
            due = self._last_reconcile.get(key, 0.0) + RECONCILE_INTERVAL
            if now < due:
                if key not in self._deferred:
                    self._deferred.add(key)
                    self._schedule(due - now, "ds", key)
                continue
            self._last_reconcile[key] = now
            self._reconcile_ds(*key)
        for name in sorted(dirty_nodes):
            self._device_plugin(name)
        for uid in gc_check:
            self._gc(uid)
        self.disruption.sync()
        if len(self._gone) > 200000:
            self._gone.clear()

    def _apply_event(self, etype, res, after, before, dirty_ds, dirty_nodes, gc_check):
        """Update caches from one event; returns True when every DaemonSet needs a reconcile."""
        obj = after if after is not None else before
        m = _meta(obj)
        uid, ns, name = m.get("uid"), m.get("namespace", ""), m.get("name")
        deleted = etype == "DELETED"
        self.disruption.on_event(etype, res, after, before)
        if obj.get("apiVersion") and obj.get("kind"):
            self.kind_res[(obj["apiVersion"], obj["kind"])] = res
        self._track_owners(res, uid, ns, name, m, deleted, gc_check)
        if res == NODES:
            self._node_event(name, obj, deleted, dirty_nodes)
            return False
        if res == NAMESPACES and (deleted or m.get("deletionTimestamp")):
            self._empty_namespace(name)
        if res == RUNTIMECLASSES:
            return True  # pods rejected for a missing RuntimeClass can now be created
        if res == PODS:
            self._pod_event(uid, obj, deleted, dirty_ds, dirty_nodes)
        elif res == DAEMONSETS:
            with self._mu:
                if deleted:
                    self.daemonsets.pop((ns, name), None)
                    self._fit_cache.pop(uid, None)
                    self._last_reconcile.pop((ns, name), None)
                    self._fit_stale.pop(uid, None)
                else:
                    self.daemonsets[(ns, name)] = uid
            if not deleted:
                bm = _meta(before) if before else {}
                if (before is None or bm.get("generation") != m.get("generation")
                        or bool(bm.get("deletionTimestamp")) != bool(m.get("deletionTimestamp"))):
                    dirty_ds.add((ns, name))
        return False

    def _track_owners(self, res, uid, ns, name, m, deleted, gc_check):
        if not uid:
            return
        if deleted:
            self.objects.pop(uid, None)
            self._gone[uid] = ns
            prev = self.owners.pop(uid, None)
            if prev:
                for o in prev[3]:
                    self.dependents[o].discard(uid)
            if self.dependents.get(uid):
                gc_check.extend(self.dependents.pop(uid))
            return
        self.objects[uid] = (res, ns, name)
        refs = [r.get("uid") for r in m.get("ownerReferences") or () if r.get("uid")]
        prev = self.owners.get(uid)
        if prev:
            for o in prev[3]:
                if o not in refs:
                    self.dependents[o].discard(uid)
        if refs:
            self.owners[uid] = (res, ns, name, refs, m.get("ownerReferences"))
            for o in refs:
                self.dependents[o].add(uid)
            if prev is None and not any(self._owner_present(o, ns) for o in refs):
                gc_check.append(uid)  # created with dangling owners: verify, then collect
        else:
            self.owners.pop(uid, None)

    def _node_event(self, name, obj, deleted, dirty_nodes):
        if deleted:
            with self._mu:
                self.nodes.pop(name, None)
            self._host_forget(name)
            self._placement_changed(name)
            # pod GC: pods bound to a node that no longer exists are force-deleted, Terminating ones
            # too (K: pkg/controller/podgc/gc_controller.go gcOrphaned, grace period 0)
            for puid in list(self.pods_by_node.get(name, ())):
                p = self.pods.get(puid)
                if p is not None:
                    self._delete(PODS, p.ns, p.name, grace=0, uid=p.uid)
            return
        node = _Node(obj)
        with self._mu:
            old = self.nodes.get(name)
            self.nodes[name] = node
        if old is None:
            self._host_for_node(name, node)
            dirty_nodes.add(name)
            self._placement_changed(name)
            for puid in self.pods_by_node.get(name, ()):  # pods waiting for this node's kubelet
                p = self.pods.get(puid)
                if p is not None and not p.started:
                    self._maybe_start(p)
            return
        if node.gpu_alloc != old.gpu_alloc:
            dirty_nodes.add(name)  # someone else edited allocatable: re-assert the device plugin's view
        if (old.labels != node.labels or old.taints != node.taints
                or old.unschedulable != node.unschedulable):
            self._placement_changed(name)

    def _placement_changed(self, node_name):
        for stale in self._fit_stale.values():
            stale.add(node_name)

    def _refit(self, t, should, keep, names):
        """Update the should/keep sets for the named nodes; returns whether any membership changed."""
        changed = False
        for name in names:
            n = self.nodes.get(name)
            run, cont = t.fit(n.placement_view()) if n is not None else (False, False)
            if (name in should) != run or (name in keep) != cont:
                changed = True
                (should.add if run else should.discard)(name)
                (keep.add if cont else keep.discard)(name)
        return changed

    def _refit_changed_nodes(self):
        """DaemonSets for which a node's label/taint change flips whether it should run there: only
        those need a pass (a label no selector looks at costs no reconcile, as with informer filters)."""
        dirty = set()
        for key, uid in list(self.daemonsets.items()):
            stale = self._fit_stale.get(uid)
            cache = self._fit_cache.get(uid)
            if cache is None:
                dirty.add(key)
            elif stale and self._refit(*cache, stale):
                dirty.add(key)
            if stale:
                self._fit_stale[uid] = set()
        return dirty

    def _fit_nodes(self, t):
        """(should, keep) node-name sets for a DaemonSet, evaluated over every node only when its
        template changed; otherwise kept up to date node by node (see _refit_changed_nodes)."""
        cache = self._fit_cache.get(t.uid)
        if cache is None or cache[0].hash != t.hash:
            should, keep = set(), set()
            self._refit(t, should, keep, list(self.nodes))
        else:
            _, should, keep = cache
            self._refit(t, should, keep, self._fit_stale.get(t.uid, ()))
        self._fit_cache[t.uid] = (t, should, keep)
        self._fit_stale[t.uid] = set()
        return should, keep

    def _pod_event(self, uid, obj, deleted, dirty_ds, dirty_nodes):
        with self._mu:
            old = self.pods.pop(uid, None)
        if old is not None:
            self.pods_by_node[old.node].discard(uid)
            if old.owner_uid:
                self.pods_by_owner[old.owner_uid].discard(uid)
        if deleted:
            self.crashing.pop(uid, None)
            self._start_pending.discard(uid)
            p = old or _Pod(obj, 0)
            self._host_stopped(uid, p.node)
        else:
            self._seq += 1
            p = _Pod(obj, old.seq if old else self._seq)
            with self._mu:
                self.pods[uid] = p
            self.pods_by_node[p.node].add(uid)
            if p.owner_uid:
                self.pods_by_owner[p.owner_uid].add(uid)
            if not p.bound and not p.deleting and old is None and (p.node or self.disruption.wants(obj)):
                self._schedule(0, "bind", p.uid)  # a pod with no target node: disruption.Controller.schedule
            if not p.started and not p.deleting:
                self._maybe_start(p)
            if p.deleting and (old is None or not old.deleting):
                self._begin_termination(p)
        if p.owner_kind == "DaemonSet":
            dirty_ds.add((p.ns, p.owner_name))
        if p.node and (is_device_plugin(p.labels) or (old is not None and is_device_plugin(old.labels))):
            dirty_nodes.add(p.node)

    # ---- timers -------------------------------------------------------------------------------------
    def _schedule(self, delay, kind, payload):
        self._seq += 1
        with self._mu:
            heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, kind, payload))

    def _run_timers(self, dirty_ds, dirty_nodes):
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            with self._mu:
                _, _, kind, payload = heapq.heappop(self._timers)
            if kind == "start":
                self._kubelet_start(*payload)
            elif kind == "crash":
                self._crash_tick(*payload)
            elif kind == "ds":
                self._deferred.discard(payload)
                dirty_ds.add(payload)
            elif kind == "bind":
                self._bind(payload)
            elif kind == "kill":
                self._kill(payload)
            elif kind == "startup":
                self._startup_done(*payload)
            elif kind.startswith("disruption"):
                self.disruption.timer(kind, payload)
            elif kind == "heartbeat":
                self._heartbeat_tick()
                self._schedule(self._hb_tick, "heartbeat", None)

    # ---- kubelet -------------------------------------------------------------------------------------
    def _maybe_start(self, p):
        if (p.bound and p.node in self.nodes and p.phase == "Pending"
                and p.uid not in self._start_pending):
            self._start_pending.add(p.uid)
            self._schedule(self.ready_delay, "start", (p.uid, p.ns, p.name))

    def _rule_for(self, p, rules=None, host=True):
        """The first rule (of fail_rules, or the given list) whose node/namespace/DaemonSet/selector
        keys all match the pod; for fail_rules, then the host contract of its images (host.py), checked
        when containers are (re)created (host=False for a running pod)."""
        for rule in self.fail_rules if rules is None else rules:
            if rule["node"] and rule["node"] != p.node:
                continue
            if rule["namespace"] and rule["namespace"] != p.ns:
                continue
            if rule["daemonset"] and not (p.owner_kind == "DaemonSet" and p.owner_name == rule["daemonset"]):
                continue
            if rule["selector"] is not None and not placement.labels_match(rule["selector"], p.labels):
                continue
            if rule.get("initContainer") and rule["initContainer"] not in p.init_names:
                continue  # no such init container in this pod
            return rule
        return self._host_rule(p) if host and rules is None else None

    def _life(self, p, key):
        """A lifecycle setting (startupSeconds, stopSeconds) for the pod, or None."""
        for rule in self.life_rules:
            if rule.get(key) is not None and self._rule_for(p, [rule]) is not None:
                return rule[key]
        return None

    def _kubelet_start(self, uid, ns, name):
        self._start_pending.discard(uid)
        p = self.pods.get(uid)
        if p is None or p.started or p.deleting:
            return
        node = self.nodes.get(p.node)
        if node is None or p.node in self.unreachable:
            return  # started when the node's kubelet comes back
        failed = self._rule_for(p, self.failed_rules)
        if failed is not None:  # e.g. admission rejects every pod there
            self._fail_pod(p, failed)
            return
        if self._host_one_shot(p, node):  # hostsim.py: a one-shot validator pod is admitted and ends there
            return
        rule = self._rule_for(p)
        if rule is None:
            rule = self._host_start(p)  # it runs on its GPU host: None when its readiness probe passes
        kind = kubelet.rule_kind(rule)
        waits = hostsim.waits(rule)  # a host wait (sandbox, init container, readiness): no restart
        startup = self._life(p, "startupSeconds") if rule is None else None

        def run(pod):
            if pod.get("status", {}).get("containerStatuses"):
                return False
            pod["status"] = self._pod_status(pod, node.ip, rule,
                                             restarts=1 if kind in ("crash", "init") and not waits else 0,
                                             starting=bool(startup))
            return None

        if self._mutate(PODS, ns, name, run, subresource="status", uid=uid, cow=[]) is not None:
            self.counters["podsStarted"] += 1
            if kind in ("crash", "init"):
                self.crashing[uid] = 1.0
                self._schedule(1.0, "crash", (uid, ns, name))
            elif kind is not None:
                self.static_fail.add(uid)
            elif startup:
                self._schedule(startup, "startup", (uid, ns, name))

    def _startup_done(self, uid, ns, name):
        """The startup probe passed: the container is started and (readiness passing) Ready."""
        p = self.pods.get(uid)
        if p is None or not p.starting or p.node in self.unreachable or self._rule_for(p, host=False) is not None:
            return
        self._post_running(p)

    def _post_running(self, p, starting=False, term=None, bump=False):
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"

        def post(pod):
            restarts = kubelet.restarts_of(pod) + (1 if bump else 0)
            pod["status"] = kubelet.pod_status(pod, ip, None, restarts=restarts, starting=starting, term=term)
        self._mutate(PODS, p.ns, p.name, post, subresource="status", uid=p.uid, cow=[])

    def _restart(self, p, reason, exit_code):
        """A container killed and restarted (liveness failure, OOM): restartCount + 1, lastState.terminated
        {reason, exitCode}, running again; not ready through its start-up window, if it has one."""
        startup = self._life(p, "startupSeconds")
        stamp = now_rfc3339()
        self._post_running(p, starting=bool(startup), bump=True,
                           term={"exitCode": exit_code, "reason": reason, "startedAt": stamp, "finishedAt": stamp})
        if startup:
            self._schedule(startup, "startup", (p.uid, p.ns, p.name))

    def _fail_pod(self, p, rule):
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"
        self.crashing.pop(p.uid, None)

        def fail(pod):
            if (pod.get("status") or {}).get("phase") == "Failed":
                return False
            pod["status"] = kubelet.failed_status(pod, ip, rule.get("reason") or "Terminated", rule.get("message"))
            return None
        if self._mutate(PODS, p.ns, p.name, fail, subresource="status", uid=p.uid, cow=[]) is not None:
            self.counters["podsFailed"] += 1

    # ---- scheduler ---------------------------------------------------------------------------------
    def _bind(self, uid):
        """The default scheduler for DaemonSet pods (created unbound with a node affinity): bind to that
        node (K: pkg/registry/core/pod/storage/storage.go BindingREST assignPod: spec.nodeName and
        PodScheduled=True in one write), or, under an /_sim/unschedulable rule, record the failed attempt
        (K: pkg/scheduler/schedule_one.go handleSchedulingFailure: PodScheduled=False, reason
        Unschedulable, the fit error as message) and leave the pod Pending without a node."""
        p = self.pods.get(uid)
        if p is not None and not p.node:
            self.disruption.schedule(uid)  # not a DaemonSet pod: the general filters (issue 12)
            return
        if p is None or p.bound or p.deleting or p.node not in self.nodes:
            return
        rule = self._rule_for(p, self.unsched_rules)
        stamp = now_rfc3339()
        if rule is not None:
            n = len(self.nodes)
            msg = rule.get("message") or (
                "0/%d nodes are available: 1 Insufficient cpu, %d node(s) didn't match Pod's node "
                "affinity/selector. preemption: 0/%d nodes are available: 1 No preemption victims found for "
                "incoming pod, %d Preemption is not helpful for scheduling." % (n, n - 1, n, n - 1))

            def unschedulable(pod):
                st = pod["status"] = dict(pod.get("status") or {})  # never mutate the stored object
                conds = [c for c in st.get("conditions") or () if c.get("type") != "PodScheduled"]
                prev = next((c for c in st.get("conditions") or () if c.get("type") == "PodScheduled"), {})
                if prev.get("status") == "False" and prev.get("message") == msg:
                    return False
                conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                              "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == "False"
                              else stamp, "reason": "Unschedulable", "message": msg})
                st["conditions"] = conds
                return None
            self._mutate(PODS, p.ns, p.name, unschedulable, subresource="status", uid=uid, cow=[])
            return

        def bind(pod):
            if (pod.get("spec") or {}).get("nodeName"):
                return False
            pod["spec"] = dict(pod.get("spec") or {}, nodeName=p.node)
            st = pod["status"] = dict(pod.get("status") or {})
            conds = [c for c in st.get("conditions") or () if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": stamp})
            st["conditions"] = conds
            return None
        if self._mutate(PODS, p.ns, p.name, bind, subresource="binding", uid=uid, cow=[]) is not None:
            self.counters["podsBound"] += 1

    def _rebind(self):
        """After an unschedulable rule went away: the scheduler retries its unschedulable pods."""
        for p in list(self.pods.values()):
            if not p.bound and p.node and not p.deleting:
                self._bind(p.uid)

    # ---- graceful termination ----------------------------------------------------------------------
    def _begin_termination(self, p):
        """The kubelet sees deletionTimestamp (K: pkg/kubelet/pod_workers.go, kuberuntime killPod): it
        stops the containers within the grace period, then finishes the deletion with grace 0
        (K: pkg/kubelet/status/status_manager.go syncPod, canBeDeleted). The prober reports startup and
        liveness as succeeded once deletion started (K: pkg/kubelet/prober/worker.go doProbe, "Graceful
        shutdown of the pod"), so a container inside its start-up window becomes started and, with
        readiness passing, Ready while Terminating. A node whose kubelet is down never finishes: its pods
        stay Terminating until it is back (or the node object is deleted)."""
        if not p.bound or p.node not in self.nodes or p.node in self.unreachable:
            return
        if p.starting and self._rule_for(p, host=False) is None:
            self._post_running(p)
        stop = self._life(p, "stopSeconds")
        stop = self.stop_delay if stop is None else stop
        if stop < 0:
            return  # stuck: the containers never stop (a hung preStop hook, an unkillable process)
        left = max(0.0, p.delete_at - time.time()) if p.delete_at else 0.0
        self._schedule(min(stop, left), "kill", p.uid)

    def _kill(self, uid):
        p = self.pods.get(uid)
        if p is None or not p.deleting or p.node in self.unreachable:
            return
        if self._delete(PODS, p.ns, p.name, grace=0, uid=uid) is not None:
            self.counters["podsTerminated"] += 1

    def _crash_tick(self, uid, ns, name):
        backoff = self.crashing.get(uid)
        p = self.pods.get(uid)
        if backoff is None or p is None:
            return
        rule = self._rule_for(p)
        if rule is None:
            self.crashing.pop(uid, None)
            if not p.ready and p.node not in self.unreachable and not p.deleting and self._host_heal(p):
                self.crashing[uid] = backoff  # running, but its readiness probe still fails: probe again
                self._schedule(backoff, "crash", (uid, ns, name))
            return
        if p.node in self.unreachable:  # nobody reports the restarts meanwhile
            self._schedule(backoff, "crash", (uid, ns, name))
            return
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"

        def crash(pod):
            waiting = hostsim.waits(rule)
            if waiting and _waiting_as(pod, rule):
                return False  # still waiting for the same thing: the kubelet posts no change
            pod["status"] = self._pod_status(pod, ip, rule, restarts=kubelet.restarts_of(pod) + (0 if waiting else 1))

        self._mutate(PODS, ns, name, crash, subresource="status", uid=uid, cow=[])
        backoff = min(backoff * 2, 10.0)
        self.crashing[uid] = backoff
        self._schedule(backoff, "crash", (uid, ns, name))

    def _apply_rules(self):
        """After fail/recover: crash running pods that now match a rule, heal failing ones that don't.
        A healed container restarts: with a start-up window (/_sim/lifecycle startupSeconds) it runs not
        ready, its last termination kept, until the window ends."""
        for p in list(self.pods.values()):
            if not p.started or p.deleting or p.phase in ("Failed", "Succeeded"):
                continue
            rule = self._rule_for(p, host=p.uid in self.crashing)
            kind = kubelet.rule_kind(rule)
            node = self.nodes.get(p.node)
            ip = node.ip if node else "10.0.0.1"
            if kind in ("image", "sandbox"):
                if p.uid in self.static_fail:
                    continue
                self.crashing.pop(p.uid, None)
                self.static_fail.add(p.uid)

                def block(pod, rule=rule, ip=ip):
                    pod["status"] = kubelet.pod_status(pod, ip, rule, restarts=0)
                self._mutate(PODS, p.ns, p.name, block, subresource="status", uid=p.uid, cow=[])
            elif rule is not None and p.uid not in self.crashing:
                self.static_fail.discard(p.uid)

                def crash(pod, rule=rule, ip=ip):
                    pod["status"] = self._pod_status(pod, ip, rule, restarts=kubelet.restarts_of(pod) + 1)
                self._mutate(PODS, p.ns, p.name, crash, subresource="status", uid=p.uid, cow=[])
                self.crashing[p.uid] = 1.0
                self._schedule(1.0, "crash", (p.uid, p.ns, p.name))
            elif rule is None and (p.uid in self.crashing or p.uid in self.static_fail or
                                   (not p.ready and not p.starting)):
                self.crashing.pop(p.uid, None)
                self.static_fail.discard(p.uid)
                startup = self._life(p, "startupSeconds")
                self._post_running(p, starting=bool(startup))
                self._host_started(p, True)
                if startup:
                    self._schedule(startup, "startup", (p.uid, p.ns, p.name))

    def _set_reachable(self, node_name, reachable):
        """Node lifecycle controller + kubelet: an unreachable node's pods lose Ready (MarkPodsNotReady);
        when it is back, its kubelet posts their real status again and starts pods that waited."""
        if reachable:
            self.unreachable.discard(node_name)
        else:
            self.unreachable.add(node_name)
        node = self.nodes.get(node_name)
        ip = node.ip if node else "10.0.0.1"
        stamp = now_rfc3339()
        for puid in list(self.pods_by_node.get(node_name, ())):
            p = self.pods.get(puid)
            if p is None:
                continue
            if p.deleting:
                if reachable:
                    self._begin_termination(p)  # the kubelet is back and finishes the kill
                continue
            if not p.started:
                if reachable:
                    self._maybe_start(p)
                continue
            if not reachable:
                def unready(pod):
                    conds = (pod.get("status") or {}).get("conditions") or []
                    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                        return False
                    st = dict(pod["status"])
                    st["conditions"] = [dict(c, status="False", lastTransitionTime=stamp)
                                        if c.get("type") == "Ready" else c for c in conds]
                    pod["status"] = st
                    return None
                self._mutate(PODS, p.ns, p.name, unready, subresource="status", uid=p.uid, cow=[])
            else:
                rule = self._rule_for(p, host=p.uid in self.crashing)

                def repost(pod, rule=rule, starting=p.starting):
                    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                        return False
                    pod["status"] = self._pod_status(pod, ip, rule, restarts=kubelet.restarts_of(pod),
                                                     starting=starting)
                    return None
                self._mutate(PODS, p.ns, p.name, repost, subresource="status", uid=p.uid, cow=[])

    def _heartbeat(self, names=None):
        """Bump lastHeartbeatTime of the given nodes' conditions (all nodes when None)."""
        stamp = now_rfc3339()
        for name in list(self.nodes) if names is None else names:
            if name in self.unreachable or name not in self.nodes:
                continue  # its kubelet is not posting

            def beat(node):
                for c in node.get("status", {}).get("conditions") or ():
                    c["lastHeartbeatTime"] = stamp
            self._mutate(NODES, "", name, beat, subresource="status", cow=[("status", "conditions")])
        self.counters["heartbeats"] += 1

    def _heartbeat_tick(self):
        """--heartbeat S: every node once per S seconds, spread evenly over the interval as kubelets'
        independent timers are (5,000 nodes at S=300 give ~17 node updates/s, not a burst)."""
        names = sorted(self.nodes)
        if names:
            share = max(1, -(-len(names) * self._hb_tick // self.heartbeat))
            start = self._hb_cursor % len(names)
            chunk = (names + names)[start:start + min(int(share), len(names))]
            self._hb_cursor = start + len(chunk)
            self._heartbeat(chunk)

    # ---- device plugin ---------------------------------------------------------------------------------
    def _gpu_count(self, node):
        if node.name in self.gpu_counts:
            return self.gpu_counts[node.name]
        try:
            n = int(node.labels.get("nvidia.com/gpu.count", ""))
        except ValueError:
            n = 0
        if n <= 0 and node.labels.get("feature.node.kubernetes.io/pci-10de.present") == "true":
            n = self.gpus_per_node
        return n

    def _device_plugin(self, name):
        node = self.nodes.get(name)
        if node is None:
            return
        serving = any(p is not None and p.ready and not p.deleting and is_device_plugin(p.labels)
                      for p in (self.pods.get(u) for u in self.pods_by_node.get(name, ())))
        gpus = self._gpu_count(node)
        want = str(gpus) if serving and gpus > 0 else None
        if want == node.gpu_alloc:
            return

        def advertise(obj):
            st = obj.setdefault("status", {})
            changed = False
            for key in ("capacity", "allocatable"):
                sect = st.setdefault(key, {})
                if want is None and GPU_RESOURCE in sect:
                    del sect[GPU_RESOURCE]
                    changed = True
                elif want is not None and sect.get(GPU_RESOURCE) != want:
                    sect[GPU_RESOURCE] = want
                    changed = True
            return None if changed else False

        if self._mutate(NODES, "", name, advertise, subresource="status",
                        cow=[("status", "capacity"), ("status", "allocatable")]) is not None:
            node.gpu_alloc = want
            self.counters["devicePluginUpdates"] += 1

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

def _waiting_as(pod, rule):
    """Whether a pod already shows the waiting state a host rule would post (no write needed)."""
    cs = (pod.get("status") or {}).get("containerStatuses") or []
    if rule.get("unready"):
        return bool(cs) and all("running" in (c.get("state") or {}) and not c.get("ready") for c in cs)
    if rule.get("hostSandbox"):
        return bool(cs) and (pod.get("status") or {}).get("phase") == "Pending" and all(
            ((c.get("state") or {}).get("waiting") or {}).get("reason") in ("ContainerCreating", "PodInitializing")
            for c in cs)
    return bool(cs) and all(((c.get("state") or {}).get("waiting") or {}).get("message") == rule.get("message")
                            for c in cs)


def _cow(obj, paths):
    """Shallow copy of obj with the dicts/lists along each path (and a list's dict items) copied too."""
    out = dict(obj)
    for path in paths:
        cur = out
        for key in path:
            if not isinstance(cur, dict) or key not in cur:
                break
            val = cur[key]
            if isinstance(val, dict):
                val = dict(val)
            elif isinstance(val, list):
                val = [dict(x) if isinstance(x, dict) else x for x in val]
            cur[key] = val
            cur = val
    return out
