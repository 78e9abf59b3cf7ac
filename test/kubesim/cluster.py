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

This file holds the worker (the queue, its caches, timers and store helpers). The rest of Cluster is
mixins, one concern each: podsim.py (kubelet: starts, binding, termination, crash loops, failure rules),
nodesim.py (reachability, heartbeats, the device plugin's capacity), controllers.py (namespace content
deletion, garbage collector, DaemonSet controller, its Events), hostsim.py (GPU hosts), simadmin.py (the
admin endpoints); disruption.py (PDBs, evictions, ReplicaSets, scheduler) is a component it owns.
Pure parts live beside it: fleet.py (node objects), placement.py (node selection, tolerations,
selectors), daemonset.py (what to create/delete, DaemonSet status), kubelet.py (pod status),
simcommon.py (resource keys and object helpers all of them share).
"""

import heapq
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
from ktime import now_rfc3339, parse_rfc3339
import placement
import simadmin

import controllers
import nodesim
import podsim
from simcommon import (DAEMONSETS, GPU_RESOURCE, NAMESPACES, NODES, PODS, RECONCILE_INTERVAL, RUNTIMECLASSES,
                       controller_ref as _controller_ref, is_device_plugin, meta as _meta)


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


class Cluster(simadmin.AdminAPI, hostsim.HostSim, podsim.PodSim, nodesim.NodeSim, controllers.Controllers):
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
