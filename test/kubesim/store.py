"""kubesim's one in-memory database: objects, the global resourceVersion, and watch history.

Every read and write holds Store.lock (an RLock, so a handler may hold it across a get + update).
Stored objects are never mutated in place: a write replaces the Entry, and each Entry caches its
encoded JSON so LIST and WATCH of thousands of large objects only join bytes. Every committed write
bumps the global resourceVersion by exactly one and appends exactly one event to the history, so the
history is indexed by resourceVersion (event rv = base + index). A watch from a version older than
the kept history gets 410 Expired (see first_watchable_rv).

Resource keys are "<group>/<version>/<plural>" ("" group for core): "/v1/nodes", "apps/v1/daemonsets".
"""

import bisect
import json
import threading
import time
import uuid

import kselectors as sel
from ktime import now_rfc3339


class Conflict(Exception):
    """409: resourceVersion precondition failed."""


class NotFound(Exception):
    """404: no such object."""


class AlreadyExists(Exception):
    """409 AlreadyExists: create of an existing name."""


class Invalid(Exception):
    """422: .causes = [{"reason","message","field"}]."""

    def __init__(self, message, causes=None):
        super().__init__(message)
        self.causes = causes or []


# Built-in kinds that have no metadata.generation (their strategies never set it).
NO_GENERATION = {"/v1/configmaps", "/v1/secrets", "/v1/serviceaccounts", "/v1/nodes", "/v1/namespaces",
                 "/v1/events", "events.k8s.io/v1/events", "coordination.k8s.io/v1/leases", "/v1/endpoints"}

_ENC = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(obj):
    return _ENC.encode(obj).encode("utf-8")


PODS = "/v1/pods"


def pod_grace_period(pod, grace=None):
    """The grace period a pod deletion gets (K: pkg/registry/core/pod/strategy.go CheckGracefulDelete):
    DeleteOptions.gracePeriodSeconds when given, else spec.terminationGracePeriodSeconds (0 when unset);
    0 for a pod not bound to a node or already Failed/Succeeded; a negative value becomes 1."""
    spec = pod.get("spec") or {}
    if grace is not None:
        period = grace
    else:
        period = spec.get("terminationGracePeriodSeconds") or 0
    try:
        period = int(period)
    except (TypeError, ValueError):
        period = 0
    if not spec.get("nodeName"):
        period = 0
    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        period = 0
    if period < 0:
        period = 1
    return period


class Entry:
    """One stored object version. .obj must never be mutated; bytes are computed once, lazily."""

    __slots__ = ("obj", "_full", "_body")

    def __init__(self, obj, full=None):
        self.obj = obj
        self._full = full
        self._body = None

    def full(self):
        """The object as JSON, with apiVersion and kind (watch events, GET, CR list items)."""
        if self._full is None:
            self._full = encode(self.obj)
        return self._full

    def body(self):
        """The object as JSON without apiVersion/kind (built-in LIST items are typed Go lists)."""
        if self._body is None:
            o = self.obj
            if "apiVersion" in o or "kind" in o:
                full = self.full()
                keys = list(o)[:2]
                if keys == ["apiVersion", "kind"]:  # cut the two leading members out of the bytes
                    head = encode({"apiVersion": o["apiVersion"], "kind": o["kind"]})[:-1] + b","
                    if full.startswith(head):
                        self._body = b"{" + full[len(head):]
                if self._body is None:
                    self._body = encode({k: v for k, v in o.items() if k not in ("apiVersion", "kind")})
            else:
                self._body = self.full()
        return self._body

    def copy(self):
        return json.loads(self.full())

    def slim(self, res):
        """Once superseded, an Entry lives on only in the watch history: keep its bytes and just what
        selectors look at (metadata without managedFields, field-selectable fields). Replaces .obj,
        never mutates it (listeners may still hold the old dict)."""
        o = self.obj
        self.full()
        self._body = None
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k != "managedFields"}
        out = {"apiVersion": o.get("apiVersion"), "kind": o.get("kind"), "metadata": meta}
        for path in sel.FIELDS.get(res, ()):
            parts = path.split(".")
            cur = o
            for part in parts:
                cur = cur.get(part) if isinstance(cur, dict) else None
            if cur is None:
                continue
            dst = out
            for part in parts[:-1]:
                dst = dst.setdefault(part, {})
            dst[parts[-1]] = cur
        self.obj = out

    @property
    def meta(self):
        return self.obj.get("metadata") or {}


class Event:
    __slots__ = ("rv", "type", "res", "entry", "old")

    def __init__(self, rv, etype, res, entry, old):
        self.rv, self.type, self.res, self.entry, self.old = rv, etype, res, entry, old


class _Resource:
    __slots__ = ("namespaced", "status_subresource", "objects", "keys")

    def __init__(self, namespaced=True, status_subresource=False):
        self.namespaced = namespaced
        self.status_subresource = status_subresource
        self.objects = {}  # (ns, name) -> Entry
        self.keys = []  # sorted (ns, name)


def _meta(obj):
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def _spec_part(obj, status_subresource):
    """What counts for generation: everything but metadata (and status when it has a subresource)."""
    skip = ("metadata", "apiVersion", "kind", "status") if status_subresource else ("metadata", "apiVersion", "kind")
    return {k: v for k, v in obj.items() if k not in skip}


class Store:
    def __init__(self, history=10000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)  # notified on every commit and on drop_watches
        self.rv = 0
        self.history_limit = max(1, int(history))
        self._hist = []  # Event, rv = _hist_base + index
        self._hist_base = 1
        self._res = {}
        self._listeners = []
        self.watch_epoch = 0  # bumped by drop_watches(): open watches end when they see it change
        self.closing = False

    # ---- resources ----------------------------------------------------------------------------
    def register_resource(self, res, namespaced, status_subresource):
        with self.lock:
            r = self._res.get(res)
            if r is None:
                self._res[res] = _Resource(namespaced, status_subresource)
            else:
                r.namespaced, r.status_subresource = namespaced, status_subresource

    def _r(self, res):
        r = self._res.get(res)
        if r is None:
            r = self._res[res] = _Resource()
        return r

    def resource_keys(self):
        with self.lock:
            return list(self._res)

    def add_listener(self, fn):
        """fn(event_type, res, obj_after, obj_before) after each commit, lock held; must not mutate or block."""
        with self.lock:
            self._listeners.append(fn)

    # ---- reads -----------------------------------------------------------------------------------
    def get_entry(self, res, namespace, name):
        with self.lock:
            r = self._res.get(res)
            if r is None:
                return None
            return r.objects.get((namespace or "", name))

    def get(self, res, namespace, name):
        e = self.get_entry(res, namespace, name)
        return e.copy() if e is not None else None

    def count(self, res):
        with self.lock:
            r = self._res.get(res)
            return len(r.objects) if r else 0

    def list_entries(self, res, namespace=None, label_selector=None, field_selector=None, start_after=None,
                     limit=None):
        """Entries in (namespace, name) order. Returns (entries, rv, next_key, remaining).

        next_key is the last returned key when more keys remain (the continue position), else None;
        remaining is how many keys remain after it (before selector filtering)."""
        if isinstance(label_selector, str) or label_selector is None:
            label_selector = sel.parse_label_selector(label_selector)
        if isinstance(field_selector, str) or field_selector is None:
            field_selector = sel.parse_field_selector(field_selector, res)
        with self.lock:
            r = self._res.get(res)
            if r is None:
                return [], self.rv, None, 0
            keys = r.keys
            if namespace:
                lo = bisect.bisect_left(keys, (namespace, ""))
                hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
            else:
                lo, hi = 0, len(keys)
            if start_after is not None:
                lo = max(lo, bisect.bisect_right(keys, tuple(start_after)))
            pinned = field_selector.names()
            out = []
            i = lo
            lab_empty, fld_empty = label_selector.empty(), field_selector.empty()
            objects = r.objects
            while i < hi:
                k = keys[i]
                i += 1
                if pinned is not None and k[1] != pinned:
                    continue
                e = objects[k]
                if not lab_empty and not label_selector.matches(e.meta.get("labels")):
                    continue
                if not fld_empty and not field_selector.matches(e.obj):
                    continue
                out.append(e)
                if limit and len(out) >= limit:
                    break
            if i < hi and limit and len(out) >= limit:
                return out, self.rv, keys[i - 1], hi - i
            return out, self.rv, None, 0

    def list(self, res, namespace=None, label_selector=None, field_selector=None):
        entries, rv, _, _ = self.list_entries(res, namespace, label_selector, field_selector)
        return [e.copy() for e in entries], rv

    # ---- writes ----------------------------------------------------------------------------------
    def _commit(self, etype, res, key, entry, old):
        """Install entry (None = remove), bump rv, record one event, notify; lock held."""
        r = self._r(res)
        if entry is None or etype == "DELETED":
            if key in r.objects:
                del r.objects[key]
                i = bisect.bisect_left(r.keys, key)
                if i < len(r.keys) and r.keys[i] == key:
                    del r.keys[i]
        else:
            if key not in r.objects:
                bisect.insort(r.keys, key)
            r.objects[key] = entry
        ev = Event(self.rv, etype, res, entry, old)
        if not self._hist:
            self._hist_base = self.rv
        self._hist.append(ev)
        if len(self._hist) > self.history_limit + max(1, self.history_limit // 4):  # amortized trim
            drop = len(self._hist) - self.history_limit
            del self._hist[:drop]
            self._hist_base += drop
        for fn in list(self._listeners):
            fn(etype, res, entry.obj, old.obj if old is not None else None)
        if old is not None:
            old.slim(res)
        if etype == "DELETED":
            entry.slim(res)
        self.cond.notify_all()

    @staticmethod
    def _out(entry, as_entry):
        return entry if as_entry else entry.copy()

    def _finish(self, obj):
        """Encode once: the stored dict is a fresh decode of the bytes (a deep copy for free)."""
        full = encode(obj)
        return Entry(json.loads(full), full)

    def create(self, res, obj, dry_run=False, as_entry=False):
        """Store a new object; sets uid, resourceVersion, creationTimestamp, generation. Emits ADDED.

        Returns a deep copy, or with as_entry=True the read-only Entry (no copy: the server's write path)."""
        with self.lock:
            r = self._r(res)
            m = _meta(obj)
            name = m.get("name")
            if not name:
                raise Invalid("name or generateName is required",
                              [{"reason": "FieldValueRequired", "message": "Required value: name or generateName "
                                "is required", "field": "metadata.name"}])
            ns = m.get("namespace", "") if r.namespaced else ""
            if not r.namespaced:
                m.pop("namespace", None)
            key = (ns, name)
            if key in r.objects:
                raise AlreadyExists(name)
            m["uid"] = str(uuid.uuid4())
            m["creationTimestamp"] = now_rfc3339()
            if res not in NO_GENERATION:
                m["generation"] = 1
            else:
                m.pop("generation", None)
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                m.pop(k, None)
            if dry_run:
                m.pop("resourceVersion", None)
                return self._out(self._finish(obj), as_entry)
            self.rv += 1
            m["resourceVersion"] = str(self.rv)
            e = self._finish(obj)
            self._commit("ADDED", res, key, e, None)
            return self._out(e, as_entry)

    def update(self, res, obj, subresource=None, dry_run=False, as_entry=False):
        """Replace an object (see module doc and the kubesim contract for the rules). Returns the result."""
        with self.lock:
            r = self._r(res)
            m = _meta(obj)
            ns = m.get("namespace", "") if r.namespaced else ""
            key = (ns, m.get("name"))
            old = r.objects.get(key)
            if old is None:
                raise NotFound(m.get("name"))
            om = old.meta
            rv = m.get("resourceVersion")
            if rv not in (None, "") and rv != om.get("resourceVersion"):
                raise Conflict(m.get("name"))
            if subresource == "status":
                new = {k: v for k, v in old.obj.items() if k != "status"}
                if "status" in obj:
                    new["status"] = obj["status"]
                nm = dict(om)
                if "managedFields" in m:
                    nm["managedFields"] = m["managedFields"]
                new["metadata"] = nm
                obj, m = new, nm
            else:
                if r.status_subresource and subresource != "binding":  # binding sets nodeName + condition
                    obj = dict(obj)
                    obj.pop("status", None)
                    if "status" in old.obj:
                        obj["status"] = old.obj["status"]
                m = dict(m)
                obj["metadata"] = m
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                    if k in om:
                        m[k] = om[k]
                    else:
                        m.pop(k, None)
                if not r.namespaced:
                    m.pop("namespace", None)
                if "deletionTimestamp" in om:
                    added = set(m.get("finalizers") or []) - set(om.get("finalizers") or [])
                    if added:
                        raise Invalid("metadata.finalizers: Forbidden: no new finalizers can be added if the "
                                      "object is being deleted",
                                      [{"reason": "FieldValueForbidden", "message": "Forbidden: no new finalizers "
                                        "can be added if the object is being deleted, found new finalizers " +
                                        json.dumps(sorted(added)), "field": "metadata.finalizers"}])
            if "generation" in om:
                gen = om["generation"]
                if _spec_part(obj, r.status_subresource) != _spec_part(old.obj, r.status_subresource):
                    gen += 1
                m["generation"] = gen
            else:
                m.pop("generation", None)
            m["resourceVersion"] = om.get("resourceVersion")
            if obj == old.obj:
                return self._out(old, as_entry)  # no-op: no new resourceVersion, no event
            # the last finalizer gone completes a deletion, except for a pod still in its grace period:
            # the kubelet completes that one (a delete with grace 0)
            if "deletionTimestamp" in om and not m.get("finalizers") and not (
                    res == PODS and om.get("deletionGracePeriodSeconds")):
                if dry_run:
                    return self._out(self._finish(obj), as_entry)
                self.rv += 1
                m["resourceVersion"] = str(self.rv)
                e = self._finish(obj)
                self._commit("DELETED", res, key, e, old)
                return self._out(e, as_entry)
            if dry_run:
                return self._out(self._finish(obj), as_entry)
            self.rv += 1
            m["resourceVersion"] = str(self.rv)
            e = self._finish(obj)
            self._commit("MODIFIED", res, key, e, old)
            return self._out(e, as_entry)

    def delete(self, res, namespace, name, dry_run=False, as_entry=False, grace=None):
        """Delete: with finalizers only mark deletionTimestamp (MODIFIED), else remove (DELETED).

        Pods are deleted gracefully (see pod_grace_period): a grace period > 0 only marks them
        Terminating (deletionTimestamp = now + grace, deletionGracePeriodSeconds), and the kubelet
        finishes the deletion with grace 0; `grace` is DeleteOptions.gracePeriodSeconds (None: the
        pod's terminationGracePeriodSeconds).

        Returns the resulting object (marked, or the last state with the deletion's RV); None if absent."""
        with self.lock:
            r = self._r(res)
            key = ((namespace or "") if r.namespaced else "", name)
            old = r.objects.get(key)
            if old is None:
                return None
            om = old.meta
            if res == PODS:
                period = pod_grace_period(old.obj, grace)
                if period > 0:
                    return self._mark_terminating(res, key, old, period, dry_run, as_entry)
            if om.get("finalizers"):
                if "deletionTimestamp" in om:
                    return self._out(old, as_entry)
                obj = dict(old.obj)
                m = dict(om)
                obj["metadata"] = m
                m["deletionTimestamp"] = now_rfc3339()
                m["deletionGracePeriodSeconds"] = 0
                if "generation" in m:
                    m["generation"] += 1
                if dry_run:
                    return self._out(self._finish(obj), as_entry)
                self.rv += 1
                m["resourceVersion"] = str(self.rv)
                e = self._finish(obj)
                self._commit("MODIFIED", res, key, e, old)
                return self._out(e, as_entry)
            if dry_run:
                return self._out(old, as_entry)
            self.rv += 1
            obj = dict(old.obj)
            obj["metadata"] = dict(om, resourceVersion=str(self.rv))
            e = self._finish(obj)
            self._commit("DELETED", res, key, e, old)
            return self._out(e, as_entry)

    def _mark_terminating(self, res, key, old, period, dry_run, as_entry):
        """Graceful deletion (K: staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go BeforeDelete):
        deletionTimestamp = now + grace and deletionGracePeriodSeconds = grace; a second delete may only
        shorten an existing grace period, never lengthen it."""
        om = old.meta
        cur = om.get("deletionGracePeriodSeconds")
        if "deletionTimestamp" in om and cur is not None and period >= cur:
            return self._out(old, as_entry)
        obj = dict(old.obj)
        m = dict(om)
        obj["metadata"] = m
        m["deletionTimestamp"] = now_rfc3339(time.time() + period)
        m["deletionGracePeriodSeconds"] = period
        if dry_run:
            return self._out(self._finish(obj), as_entry)
        self.rv += 1
        m["resourceVersion"] = str(self.rv)
        e = self._finish(obj)
        self._commit("MODIFIED", res, key, e, old)
        return self._out(e, as_entry)

    # ---- watch history -----------------------------------------------------------------------------
    def first_watchable_rv(self):
        """A watch from rv X is served iff X >= this (all events after X are kept)."""
        with self.lock:
            if self._hist:
                return self._hist_base - 1
            return self.rv

    def events_after(self, rv):
        """Events with rv > given rv, or None when some of them were dropped (410). Lock held by caller."""
        if rv >= self.rv:
            return []
        if rv < self.first_watchable_rv():
            return None
        start = rv + 1 - self._hist_base
        return self._hist[start:]

    def compact(self):
        """Drop all history: watches/continue tokens from an older resourceVersion now get 410."""
        with self.lock:
            self._hist = []
            self._hist_base = self.rv + 1
            self.cond.notify_all()

    def drop_watches(self):
        with self.lock:
            self.watch_epoch += 1
            self.cond.notify_all()

    # ---- persistence -------------------------------------------------------------------------------
    def dump(self):
        with self.lock:
            out = {"rv": self.rv, "resources": {}, "objects": {}}
            for res, r in self._res.items():
                out["resources"][res] = {"namespaced": r.namespaced, "statusSubresource": r.status_subresource}
                if r.objects:
                    out["objects"][res] = [r.objects[k].obj for k in r.keys]
            return encode(out)

    def load(self, data):
        """Load a dump(): objects and the rv counter; history starts empty (older RVs get 410)."""
        doc = json.loads(data)
        with self.lock:
            for res, info in doc.get("resources", {}).items():
                if res not in self._res:
                    self._res[res] = _Resource(info.get("namespaced", True), info.get("statusSubresource", False))
            for res, objs in doc.get("objects", {}).items():
                r = self._r(res)
                for o in objs:
                    m = o.get("metadata", {})
                    key = (m.get("namespace", ""), m["name"])
                    if key not in r.objects:
                        bisect.insort(r.keys, key)
                    r.objects[key] = Entry(o)
            self.rv = int(doc.get("rv", 0))
            self._hist = []
            self._hist_base = self.rv + 1

    def empty(self):
        with self.lock:
            return all(not r.objects for r in self._res.values())
