"""kubesim API surface: resource registry, discovery, /version, OpenAPI v3, Tables, CRDs.

This module knows *what* the simulated API server serves; server.py (core) knows *how* to serve
it over HTTP and calls in here per the kubesim contract:

    reg = Registry(store)
    info = reg.lookup(group, version, plural)        # ResourceInfo or None (unknown -> 404)
    reg.discovery(path) / reg.version() / reg.openapi(path)
    causes = reg.validate(info, obj, old)            # [] = valid; else 422 with these causes
    pruned = reg.prune_and_default(info, obj)        # in place; returns unknown-field paths
    reg.table(info, objs, list_meta, include_object="Metadata")

Everything is pure Python over plain dicts (the JSON the store keeps). The only threads are the
CRD status worker (it writes Established/NamesAccepted a few milliseconds after a CRD is created,
as kube-apiserver's naming and establishing controllers do) and nothing else.
"""

import functools
import hashlib
import json
import queue
import re
import sys
import threading

from ktime import now_rfc3339, parse_time, utc_now


GIT_VERSION = "v1.31.4"
CRD_RES = "apiextensions.k8s.io/v1/customresourcedefinitions"

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
VERBS_NO_COLLECTION = ["create", "delete", "get", "list", "patch", "update", "watch"]
VERBS_STATUS = ["get", "patch", "update"]

# ---------------------------------------------------------------------------------------------
# Durations and ages (kubectl's AGE column)


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration: what kubectl shows under AGE."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        return "%dm" % minutes if s % 60 == 0 else "%dm%ds" % (minutes, s % 60)
    if minutes < 180:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        return "%dh" % hours if minutes % 60 == 0 else "%dh%dm" % (hours, minutes % 60)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        return "%dd" % (hours // 24) if hours % 24 == 0 else "%dd%dh" % (hours // 24, hours % 24)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if dy == 0 else "%dy%dd" % (hours // 24 // 365, dy)
    return "%dy" % (hours // 24 // 365)


def age_of(timestamp, now=None):
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    now = now or utc_now()
    return human_duration((now - t).total_seconds())


# ---------------------------------------------------------------------------------------------
# Resource registry


class ResourceInfo:
    """One served resource (a group/version/plural). `res` is the store key."""

    def __init__(self, group, version, plural, kind, namespaced, singular=None, list_kind=None,
                 verbs=None, short_names=None, categories=None, status_subresource=False,
                 scale_subresource=False, crd=None, extra_subresources=None):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.singular = singular if singular is not None else kind.lower()
        self.list_kind = list_kind or kind + "List"
        self.verbs = list(verbs or VERBS_ALL)
        self.short_names = list(short_names or [])
        self.categories = list(categories or [])
        self.status_subresource = status_subresource
        self.scale_subresource = scale_subresource
        self.extra_subresources = dict(extra_subresources or {})  # name -> verbs
        self.crd = crd  # the CRD object for custom resources, else None
        self.res = "%s/%s/%s" % (group, version, plural)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def group_version(self):
        return self.api_version

    @property
    def qualified_resource(self):
        """'widgets.example.com' / 'pods': how kube names the resource in error messages."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def qualified_kind(self):
        """'Widget.example.com' / 'Pod': how kube names the kind in 422 messages."""
        return "%s.%s" % (self.kind, self.group) if self.group else self.kind

    def subresources(self):
        subs = {}
        if self.status_subresource:
            subs["status"] = list(VERBS_STATUS)
        if self.scale_subresource:
            subs["scale"] = list(VERBS_STATUS)
        subs.update(self.extra_subresources)
        return subs

    def schema(self):
        """The CRD version's openAPIV3Schema for custom resources, else None."""
        if self.crd is None:
            return None
        for v in self.crd.get("spec", {}).get("versions", []) or []:
            if v.get("name") == self.version:
                return (v.get("schema") or {}).get("openAPIV3Schema")
        return None

    def crd_version(self):
        if self.crd is None:
            return None
        for v in self.crd.get("spec", {}).get("versions", []) or []:
            if v.get("name") == self.version:
                return v
        return None

    def __repr__(self):
        return "ResourceInfo(%s)" % self.res


def _b(group, version, plural, kind, namespaced, **kw):
    return ResourceInfo(group, version, plural, kind, namespaced, **kw)


def builtin_resources():
    """The built-in kinds kubesim serves (issue 3's list plus what they need to look real)."""
    ns_verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return [
        _b("", "v1", "configmaps", "ConfigMap", True, short_names=["cm"]),
        _b("", "v1", "events", "Event", True, short_names=["ev"]),
        _b("", "v1", "namespaces", "Namespace", False, verbs=ns_verbs, short_names=["ns"],
           status_subresource=True, extra_subresources={"finalize": ["update"]}),
        _b("", "v1", "nodes", "Node", False, short_names=["no"], status_subresource=True),
        _b("", "v1", "pods", "Pod", True, short_names=["po"], categories=["all"],
           status_subresource=True, extra_subresources={"log": ["get"], "eviction": ["create"]}),
        _b("", "v1", "secrets", "Secret", True),
        _b("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=["sa"]),
        _b("", "v1", "services", "Service", True, verbs=ns_verbs, short_names=["svc"],
           categories=["all"], status_subresource=True),
        _b("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        _b("apps", "v1", "daemonsets", "DaemonSet", True, short_names=["ds"], categories=["all"],
           status_subresource=True),
        # Stored only (no rollout): `kubectl apply -k manifests/` installs the controller's Deployment.
        _b("apps", "v1", "deployments", "Deployment", True, short_names=["deploy"], categories=["all"],
           status_subresource=True),
        # issue 12 (disruption.py): workload owners, PodDisruptionBudgets
        _b("apps", "v1", "replicasets", "ReplicaSet", True, short_names=["rs"], categories=["all"],
           status_subresource=True, scale_subresource=True),
        _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=["pdb"],
           status_subresource=True),
        _b("coordination.k8s.io", "v1", "leases", "Lease", True),
        _b("events.k8s.io", "v1", "events", "Event", True, short_names=["ev"]),
        _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _b("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _b("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
        # Stored only (not enforced): the install's NetworkPolicy and the ValidatingAdmissionPolicy
        # that limits the controller's Node and RuntimeClass writes (manifests/base/admission.yaml).
        _b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=["netpol"]),
        _b("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
           "ValidatingAdmissionPolicy", False, status_subresource=True),
        _b("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
           "ValidatingAdmissionPolicyBinding", False),
        _b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
           False, short_names=["crd", "crds"], categories=["api-extensions"],
           status_subresource=True),
    ]


# Order of built-in groups in /apis (kube-apiserver lists them by priority, not alphabetically).
BUILTIN_GROUP_ORDER = ["apps", "events.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io",
                       "admissionregistration.k8s.io", "coordination.k8s.io", "node.k8s.io",
                       "apiextensions.k8s.io"]


class Registry:
    """Built-in resources plus the ones CRDs add. Thread-safe. Lock order is always
    store.lock, then the registry's own lock: on_crd_change runs in a store listener (store
    lock held) and the CRD worker takes the store lock before touching the registry."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.RLock()
        self._by_gvr = {}  # (group, version, plural) -> ResourceInfo
        self._crd_resources = {}  # crd name -> [(group, version, plural)]
        self._openapi_cache = {}  # (group, version) -> (doc, hash); cleared on CRD changes
        self._work = queue.Queue()
        self._worker = None
        for info in builtin_resources():
            self._by_gvr[(info.group, info.version, info.plural)] = info
            self._register_with_store(info)
        # CRDs already in the store (--state reload) serve their resources at once.
        try:
            crds, _ = store.list(CRD_RES)
        except Exception:  # store without CRDs registered yet
            crds = []
        for crd in crds:
            self._apply_crd(crd)

    def _register_with_store(self, info):
        reg = getattr(self.store, "register_resource", None)
        if reg is not None:
            reg(info.res, info.namespaced, info.status_subresource)

    # --- lookups -------------------------------------------------------------------------
    def lookup(self, group, version, plural):
        with self._lock:
            return self._by_gvr.get((group or "", version, plural))

    def lookup_res(self, res):
        group, version, plural = res.split("/", 2)
        return self.lookup(group, version, plural)

    def lookup_kind(self, api_version, kind):
        """ResourceInfo for an apiVersion ('v1', 'apps/v1') and kind, or None."""
        group, _, version = api_version.rpartition("/")
        with self._lock:
            for info in self._by_gvr.values():
                if info.group == group and info.version == version and info.kind == kind:
                    return info
        return None

    def resources(self):
        with self._lock:
            return list(self._by_gvr.values())

    # --- CRDs ----------------------------------------------------------------------------
    def on_crd_change(self, crd_obj, deleted=False):
        """Store listener hook (lock held): (un)serve the CRD's resources now and queue the
        status write (NamesAccepted/Established) for the worker thread."""
        name = crd_obj.get("metadata", {}).get("name", "")
        if deleted:
            removed = self._remove_crd(name)
            if removed:
                self._enqueue(("cleanup", name, removed))
            return
        self._apply_crd(crd_obj)
        if not _crd_status_current(crd_obj):
            self._enqueue(("status", name, None))

    def _apply_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group", "")
        plural = names.get("plural", "")
        kind = names.get("kind", "")
        if not (group and plural and kind):
            return
        name = crd.get("metadata", {}).get("name", "")
        keys = []
        with self._lock:
            old = self._crd_resources.get(name, [])
            for v in spec.get("versions") or []:
                if not v.get("served", True):
                    continue
                subs = v.get("subresources") or {}
                info = ResourceInfo(
                    group, v.get("name", ""), plural, kind, spec.get("scope") == "Namespaced",
                    singular=names.get("singular") or kind.lower(),
                    list_kind=names.get("listKind") or kind + "List",
                    verbs=VERBS_ALL, short_names=names.get("shortNames") or [],
                    categories=names.get("categories") or [],
                    status_subresource="status" in subs, scale_subresource="scale" in subs,
                    crd=crd)
                key = (info.group, info.version, info.plural)
                self._by_gvr[key] = info
                keys.append(key)
                self._register_with_store(info)
            for key in old:
                if key not in keys:
                    self._by_gvr.pop(key, None)
            self._crd_resources[name] = keys
            self._openapi_cache.clear()

    def _remove_crd(self, name):
        with self._lock:
            keys = self._crd_resources.pop(name, [])
            removed = []
            for key in keys:
                info = self._by_gvr.pop(key, None)
                if info is not None:
                    removed.append(info.res)
            self._openapi_cache.clear()
            return removed

    def _enqueue(self, item):
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run_worker, name="kubesim-crd",
                                                daemon=True)
                self._worker.start()
        self._work.put(item)

    def _run_worker(self):
        while True:
            what, name, arg = self._work.get()
            try:
                if what == "status":
                    self._write_crd_status(name)
                elif what == "cleanup":
                    self._delete_custom_objects(arg)
            except Exception as e:  # never let the worker die; the next change retries
                print("kubesim: CRD worker: %s %s: %r" % (what, name, e), flush=True)

    def _write_crd_status(self, name):
        with self.store.lock:
            crd = self.store.get(CRD_RES, None, name)
            if crd is None or crd.get("metadata", {}).get("deletionTimestamp"):
                return
            status = crd_status_for(crd, now_rfc3339())
            if status == crd.get("status"):
                return
            crd["status"] = status
            self.store.update(CRD_RES, crd, subresource="status")

    def _delete_custom_objects(self, res_keys):
        for res in res_keys:
            with self.store.lock:
                objs, _ = self.store.list(res)
                for o in objs:
                    md = o.get("metadata", {})
                    try:
                        self.store.delete(res, md.get("namespace"), md.get("name"))
                    except Exception:
                        pass

    # --- discovery -----------------------------------------------------------------------
    def version(self):
        m = re.match(r"v(\d+)\.(\d+)", GIT_VERSION)
        return {
            "major": m.group(1), "minor": m.group(2), "gitVersion": GIT_VERSION,
            "gitCommit": "kubesim0000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2024-12-10T11:36:25Z",
            "goVersion": "go1.22.9", "compiler": "gc", "platform": "linux/amd64",
        }

    def _groups(self):
        """[(group, [versions])] in kube's order: built-ins first, then CRD groups by name."""
        seen = {}
        for info in self.resources():
            if info.group == "":
                continue
            vs = seen.setdefault(info.group, [])
            if info.version not in vs:
                vs.append(info.version)
        order = [g for g in BUILTIN_GROUP_ORDER if g in seen]
        order += sorted(g for g in seen if g not in BUILTIN_GROUP_ORDER)
        return [(g, sorted(seen[g], key=_version_priority)) for g in order]

    def discovery(self, path):
        """Legacy (non-aggregated) discovery documents; None when the path is not one."""
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [self._api_group(g, vs) for g, vs in self._groups()]}
        if path == "/api/v1":
            return self._resource_list("", "v1")
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "apis":
            for g, vs in self._groups():
                if g == parts[2]:
                    doc = self._api_group(g, vs)
                    doc.update({"kind": "APIGroup", "apiVersion": "v1"})
                    return doc
            return None
        if len(parts) == 4 and parts[1] == "apis":
            return self._resource_list(parts[2], parts[3])
        return None

    @staticmethod
    def _api_group(group, versions):
        vlist = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in versions]
        return {"name": group, "versions": vlist, "preferredVersion": vlist[0]}

    def _resource_list(self, group, version):
        infos = sorted((i for i in self.resources() if i.group == group and i.version == version),
                       key=lambda i: i.plural)
        if not infos:
            return None
        gv = "%s/%s" % (group, version) if group else version
        out = []
        for info in infos:
            r = {"name": info.plural, "singularName": info.singular,
                 "namespaced": info.namespaced, "kind": info.kind, "verbs": list(info.verbs)}
            if info.short_names:
                r["shortNames"] = list(info.short_names)
            if info.categories:
                r["categories"] = list(info.categories)
            out.append(r)
            for sub, verbs in sorted(info.subresources().items()):
                sr = {"name": "%s/%s" % (info.plural, sub), "singularName": "",
                      "namespaced": info.namespaced, "kind": info.kind, "verbs": list(verbs)}
                if sub == "scale":
                    sr.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
                elif sub == "eviction":  # kubectl drain finds the Eviction version here
                    sr.update({"group": "policy", "version": "v1", "kind": "Eviction"})
                out.append(sr)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": out}

    # --- OpenAPI v3 ----------------------------------------------------------------------
    def openapi(self, path):
        """/openapi/v3 (index) or /openapi/v3/api/v1, /openapi/v3/apis/G/V; None otherwise."""
        path = path.split("?", 1)[0].rstrip("/")
        if path == "/openapi/v3":
            paths = {}
            gvs = [("", "v1")] + [(g, v) for g, vs in self._groups() for v in vs]
            for g, v in gvs:
                key = "apis/%s/%s" % (g, v) if g else "api/v1"
                _, digest = self._openapi_doc(g, v)
                paths[key] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (key, digest)}
            return {"paths": paths}
        m = re.match(r"^/openapi/v3/(?:api/(v1)|apis/([^/]+)/([^/]+))$", path)
        if not m:
            return None
        group, version = ("", "v1") if m.group(1) else (m.group(2), m.group(3))
        doc, _ = self._openapi_doc(group, version)
        return doc

    def _openapi_doc(self, group, version):
        key = (group, version)
        with self._lock:
            hit = self._openapi_cache.get(key)
            if hit is not None:
                return hit
            infos = [i for i in self.resources() if i.group == group and i.version == version]
        if not infos:
            return None, ""
        doc = build_openapi_doc(group, version, infos)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()
        with self._lock:
            self._openapi_cache[key] = (doc, digest)
        return doc, digest

    # --- validation, pruning, defaulting --------------------------------------------------
    def validate(self, info, obj, old=None):
        """Causes ([] = valid) for a create (old None) or an update of `obj` (defaults applied)."""
        causes = validate_metadata(info, obj)
        if info.crd is not None:
            schema = info.schema()
            if schema:
                body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
                sch = dict(schema)
                sch["properties"] = {k: v for k, v in (schema.get("properties") or {}).items()
                                     if k not in ("apiVersion", "kind", "metadata")}
                sch["required"] = [r for r in schema.get("required") or []
                                   if r not in ("apiVersion", "kind", "metadata")]
                validate_schema(sch, body, "", causes)
                md_schema = ((schema.get("properties") or {}).get("metadata") or {})
                for f in ("name", "generateName"):
                    sub = (md_schema.get("properties") or {}).get(f)
                    val = (obj.get("metadata") or {}).get(f)
                    if isinstance(sub, dict) and val is not None:
                        validate_schema(sub, val, "metadata." + f, causes)
            return causes
        check = BUILTIN_VALIDATORS.get(info.res)
        if check is not None:
            causes.extend(check(obj, old))
        return causes

    def prune_and_default(self, info, obj):
        """In place: drop unknown fields (CRs), apply defaults. Returns the dropped field paths
        (e.g. ['spec.foo']) so the caller can honour fieldValidation=Strict (400) / Warn."""
        pruned = []
        if info.crd is not None:
            schema = info.schema()
            meta = obj.get("metadata")
            if isinstance(meta, dict):
                for k in list(meta):
                    if k not in OBJECT_META_FIELDS:
                        pruned.append("metadata." + k)
                        del meta[k]
            if schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
                for k in list(obj):
                    if k in ("apiVersion", "kind", "metadata"):
                        continue
                    if k not in (schema.get("properties") or {}):
                        pruned.append(k)
                        del obj[k]
            if schema:
                for k, sub in (schema.get("properties") or {}).items():
                    if k in ("apiVersion", "kind", "metadata"):
                        continue
                    if k in obj:
                        obj[k] = prune_value(sub, obj[k], k, pruned)
                apply_defaults(schema, obj, top=True)
            return pruned
        # Built-ins decode into typed structs: unknown top-level and metadata fields vanish
        # (and are reported, so fieldValidation=Strict can reject them as kube-apiserver does).
        allowed = BUILTIN_TOP_FIELDS.get(info.res, ("spec", "status"))
        for k in list(obj):
            if k not in allowed and k not in ("apiVersion", "kind", "metadata"):
                pruned.append(k)
                del obj[k]
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            for k in list(meta):
                if k not in OBJECT_META_FIELDS:
                    pruned.append("metadata." + k)
                    del meta[k]
        for top, t in TYPED_FIELDS.get(info.res, {}).items():
            if top in obj:
                prune_typed(t, obj[top], top, pruned)
        defaulter = BUILTIN_DEFAULTERS.get(info.res)
        if defaulter is not None:
            defaulter(obj)
        return pruned

    def unknown_field_error(self, info, pruned):
        """400 message kube-apiserver gives for fieldValidation=Strict with unknown fields."""
        fields = ", ".join('unknown field "%s"' % p for p in pruned)
        return '%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (
            info.kind, info.version, info.kind, fields)

    def invalid_message(self, info, name, causes):
        return invalid_message(info, name, causes)

    # --- Tables --------------------------------------------------------------------------
    def table(self, info, objs, list_meta, include_object="Metadata", now=None):
        return build_table(info, objs, list_meta, include_object, now)


def _version_priority(v):
    """kube's version ordering: GA > beta > alpha, higher numbers first, then others by name."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), v)


def invalid_message(info, name, causes):
    """`Widget.example.com "a" is invalid: spec.size: Invalid value: ...` (one cause) or with
    several causes `... is invalid: [a: x, b: y]`, like field.ErrorList.ToAggregate()."""
    parts = []
    for c in causes:
        msg = c.get("message", "")
        parts.append("%s: %s" % (c["field"], msg) if c.get("field") else msg)
    body = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return '%s "%s" is invalid: %s' % (info.qualified_kind, name, body)


# ---------------------------------------------------------------------------------------------
# CRD status (what the naming and establishing controllers write)


def _crd_status_current(crd):
    st = crd.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    names = (crd.get("spec") or {}).get("names") or {}
    return (conds.get("Established") == "True" and conds.get("NamesAccepted") == "True"
            and (st.get("acceptedNames") or {}).get("plural") == names.get("plural")
            and (st.get("acceptedNames") or {}).get("kind") == names.get("kind"))


def crd_status_for(crd, now):
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    old = crd.get("status") or {}
    old_conds = {c.get("type"): c for c in old.get("conditions") or []}

    def cond(ctype, reason, message):
        prev = old_conds.get(ctype)
        if prev and prev.get("status") == "True" and prev.get("reason") == reason:
            return prev
        return {"type": ctype, "status": "True", "lastTransitionTime": now, "reason": reason,
                "message": message}

    stored = list(old.get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if v.get("storage") and v.get("name") not in stored:
            stored.append(v.get("name"))
    return {
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    }


# ---------------------------------------------------------------------------------------------
# Metadata and built-in validation

OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
}

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
                 " '-' or '.', and must start and end with an alphanumeric character (e.g. "
                 "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]"
                 "([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
             "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
             "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-',"
                   " '_' or '.', and must start and end with an alphanumeric character (e.g. "
                   "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                   "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def go_value(v):
    """How kube's field errors print a value in 'Invalid value: X'."""
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(v, separators=(",", ":"))


def cause(reason, field, message):
    return {"reason": reason, "message": message, "field": field}


def invalid(field, value, detail):
    return cause("FieldValueInvalid", field, "Invalid value: %s: %s" % (go_value(value), detail))


def required(field, detail=""):
    return cause("FieldValueRequired", field, "Required value" + (": " + detail if detail else ""))


def not_supported(field, value, supported):
    quoted = ", ".join(go_value(s) for s in supported)
    return cause("FieldValueNotSupported", field,
                 "Unsupported value: %s: supported values: %s" % (go_value(value), quoted))


@functools.lru_cache(maxsize=4096)
def validate_label_key(key):
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


@functools.lru_cache(maxsize=4096)
def _label_value_ok(v):
    return len(v) <= 63 and bool(LABEL_VALUE.match(v))


def validate_metadata(info, obj):
    causes = []
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return [required("metadata")]
    name = md.get("name")
    if name:
        if info.res in ("/v1/namespaces",):
            if len(name) > 63 or not DNS1123_LABEL.match(name):
                causes.append(invalid("metadata.name", name, LABEL_MSG))
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            if info.crd is not None or info.group != "rbac.authorization.k8s.io":
                causes.append(invalid("metadata.name", name, SUBDOMAIN_MSG))
    labels = md.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(cause("FieldValueTypeInvalid", "metadata.labels", "Invalid value: must be a map"))
    else:
        for k, v in labels.items():
            if not validate_label_key(k):
                causes.append(invalid("metadata.labels", k, "name part must consist of alphanumeric "
                                      "characters, '-', '_' or '.', and must start and end with an "
                                      "alphanumeric character"))
            elif not isinstance(v, str) or not _label_value_ok(v):
                causes.append(invalid("metadata.labels", v, LABEL_VALUE_MSG))
    ann = md.get("annotations") or {}
    if isinstance(ann, dict):
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in ann.items())
        if size > 262144:  # why `kubectl apply` of a huge CRD fails: last-applied is an annotation
            causes.append(cause("FieldValueTooLong", "metadata.annotations",
                                "Too long: may not be more than 262144 bytes"))
    refs = md.get("ownerReferences") or []
    controllers = 0
    for i, ref in enumerate(refs if isinstance(refs, list) else []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not (isinstance(ref, dict) and ref.get(f)):
                causes.append(invalid("metadata.ownerReferences[%d].%s" % (i, f), "",
                                      "%s must not be empty" % f))
        if isinstance(ref, dict) and ref.get("controller"):
            controllers += 1
    if controllers > 1:
        causes.append(invalid("metadata.ownerReferences", refs,
                              "Only one reference can have Controller set to true"))
    return causes


def _validate_daemonset(obj, old):
    causes = []
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not sel:
        causes.append(required("spec.selector"))
    else:
        ml = sel.get("matchLabels") or {}
        if not ml and not sel.get("matchExpressions"):
            causes.append(invalid("spec.selector", sel,
                                  "empty selector is invalid for daemonset"))
        if any(tmpl_labels.get(k) != v for k, v in ml.items()):
            causes.append(invalid("spec.template.metadata.labels", tmpl_labels,
                                  "`selector` does not match template `labels`"))
        if old is not None:
            old_sel = (old.get("spec") or {}).get("selector")
            if old_sel is not None and old_sel != sel:
                causes.append(invalid("spec.selector", sel, "field is immutable"))
    causes.extend(_validate_pod_spec((spec.get("template") or {}).get("spec"),
                                     "spec.template.spec"))
    return causes


def _validate_pod_spec(pspec, path):
    causes = []
    if not isinstance(pspec, dict):
        return [required(path)]
    containers = pspec.get("containers")
    if not containers:
        return [required(path + ".containers")]
    seen = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(pspec.get(kind) or []):
            cp = "%s.%s[%d]" % (path, kind, i)
            if not c.get("name"):
                causes.append(required(cp + ".name"))
            elif c["name"] in seen:
                causes.append(cause("FieldValueDuplicate", cp + ".name",
                                    "Duplicate value: %s" % go_value(c["name"])))
            else:
                seen.add(c["name"])
            if not c.get("image"):
                causes.append(required(cp + ".image"))
            ipp = c.get("imagePullPolicy")
            if ipp is not None and ipp not in ("Always", "IfNotPresent", "Never"):
                causes.append(not_supported(cp + ".imagePullPolicy", ipp,
                                            ["Always", "IfNotPresent", "Never"]))
    for i, t in enumerate(pspec.get("tolerations") or []):
        eff = t.get("effect")
        if eff and eff not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(not_supported("%s.tolerations[%d].effect" % (path, i), eff,
                                        ["NoExecute", "NoSchedule", "PreferNoSchedule"]))
        op = t.get("operator")
        if op and op not in ("Exists", "Equal"):
            causes.append(not_supported("%s.tolerations[%d].operator" % (path, i), op,
                                        ["Equal", "Exists"]))
    return causes


def _validate_pod(obj, old):
    return _validate_pod_spec(obj.get("spec"), "spec")


def _validate_core_event(obj, old):
    ns = (obj.get("metadata") or {}).get("namespace") or ""
    inv_ns = (obj.get("involvedObject") or {}).get("namespace") or ""
    if inv_ns and inv_ns != ns:
        return [invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")]
    if not inv_ns and ns not in ("", "default", "kube-system"):
        return [invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")]
    return []


def _validate_new_event(obj, old):
    causes = []
    for f in ("eventTime", "reportingController", "reportingInstance", "action", "reason"):
        if not obj.get(f):
            causes.append(required(f))
    return causes


MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _validate_lease(obj, old):
    causes = []
    spec = obj.get("spec") or {}
    for f in ("acquireTime", "renewTime"):
        v = spec.get(f)
        if v is not None and not (isinstance(v, str) and MICROTIME.match(v)):
            causes.append(invalid("spec." + f, v, 'parsing time %s as '
                                  '"2006-01-02T15:04:05.000000Z07:00": cannot parse' % go_value(v)))
    lds = spec.get("leaseDurationSeconds")
    if lds is not None and (not isinstance(lds, int) or lds <= 0):
        causes.append(invalid("spec.leaseDurationSeconds", lds, "must be greater than 0"))
    return causes


def _validate_node(obj, old):
    causes = []
    for i, t in enumerate((obj.get("spec") or {}).get("taints") or []):
        eff = t.get("effect")
        if eff not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(not_supported("spec.taints[%d].effect" % i, eff,
                                        ["NoExecute", "NoSchedule", "PreferNoSchedule"]))
    return causes


BUILTIN_VALIDATORS = {
    "apps/v1/daemonsets": _validate_daemonset,
    "/v1/pods": _validate_pod,
    "/v1/events": _validate_core_event,
    "events.k8s.io/v1/events": _validate_new_event,
    "coordination.k8s.io/v1/leases": _validate_lease,
    "/v1/nodes": _validate_node,
}


BUILTIN_VALIDATORS[CRD_RES] = lambda obj, old: validate_crd(obj, old)


# --- built-in defaulting ------------------------------------------------------------------


def _default_container(c):
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tail = image.rsplit("/", 1)[-1]
        if "@" in image:
            c["imagePullPolicy"] = "IfNotPresent"
        elif ":" not in tail or tail.endswith(":latest"):
            c["imagePullPolicy"] = "Always"
        else:
            c["imagePullPolicy"] = "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")


def _default_pod_spec(ps):
    if not isinstance(ps, dict):
        return
    ps.setdefault("restartPolicy", "Always")
    ps.setdefault("terminationGracePeriodSeconds", 30)
    ps.setdefault("dnsPolicy", "ClusterFirst")
    ps.setdefault("securityContext", {})
    ps.setdefault("schedulerName", "default-scheduler")
    for kind in ("initContainers", "containers"):
        for c in ps.get(kind) or []:
            if isinstance(c, dict):
                _default_container(c)


def _default_daemonset(obj):
    spec = obj.setdefault("spec", {})
    us = spec.setdefault("updateStrategy", {})
    us.setdefault("type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        ru = us.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _default_pod_spec((spec.get("template") or {}).get("spec"))


def _default_pod(obj):
    _default_pod_spec(obj.setdefault("spec", {}))


def _default_namespace(obj):
    md = obj.setdefault("metadata", {})
    if md.get("name"):
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
    st = obj.setdefault("status", {})
    st.setdefault("phase", "Active")


def _default_service(obj):
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") is None and spec["type"] != "ExternalName":
        name = (obj.get("metadata") or {}).get("namespace", "") + "/" + \
            (obj.get("metadata") or {}).get("name", "")
        h = hashlib.sha1(name.encode()).digest()
        spec["clusterIP"] = "10.96.%d.%d" % (h[0], max(1, h[1]))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))


def _default_secret(obj):
    obj.setdefault("type", "Opaque")


def _default_crd(obj):
    default_crd(obj)


# --- typed pruning of the built-in fields a controller renders -----------------------------
# kube-apiserver decodes built-ins into Go structs, so a misspelt field (a template typo such as
# `imagePulPolicy`) is dropped and reported (400 with fieldValidation=Strict, a Warning header
# otherwise). kubesim knows the struct fields of the workload parts controllers write; `None`
# marks a subtree it accepts as is.


def _obj(fields):
    return ("obj", fields)


def _lst(item):
    return ("list", item)


_ANY = None
_META_T = _obj({k: _ANY for k in OBJECT_META_FIELDS})
_ENV_T = _obj({"name": _ANY, "value": _ANY, "valueFrom": _ANY})
_CPORT_T = _obj({"name": _ANY, "hostPort": _ANY, "containerPort": _ANY, "protocol": _ANY,
                 "hostIP": _ANY})
_VMOUNT_T = _obj({"name": _ANY, "readOnly": _ANY, "recursiveReadOnly": _ANY, "mountPath": _ANY,
                  "subPath": _ANY, "mountPropagation": _ANY, "subPathExpr": _ANY})
_RES_T = _obj({"limits": _ANY, "requests": _ANY, "claims": _ANY})
_TOL_T = _obj({"key": _ANY, "operator": _ANY, "value": _ANY, "effect": _ANY,
               "tolerationSeconds": _ANY})
_CONTAINER_T = _obj({
    "name": _ANY, "image": _ANY, "command": _ANY, "args": _ANY, "workingDir": _ANY,
    "ports": _lst(_CPORT_T), "envFrom": _ANY, "env": _lst(_ENV_T), "resources": _RES_T,
    "resizePolicy": _ANY, "restartPolicy": _ANY, "volumeMounts": _lst(_VMOUNT_T),
    "volumeDevices": _ANY, "livenessProbe": _ANY, "readinessProbe": _ANY, "startupProbe": _ANY,
    "lifecycle": _ANY, "terminationMessagePath": _ANY, "terminationMessagePolicy": _ANY,
    "imagePullPolicy": _ANY, "securityContext": _ANY, "stdin": _ANY, "stdinOnce": _ANY,
    "tty": _ANY})
_POD_SPEC_T = _obj({
    "volumes": _ANY, "initContainers": _lst(_CONTAINER_T), "containers": _lst(_CONTAINER_T),
    "ephemeralContainers": _ANY, "restartPolicy": _ANY, "terminationGracePeriodSeconds": _ANY,
    "activeDeadlineSeconds": _ANY, "dnsPolicy": _ANY, "nodeSelector": _ANY,
    "serviceAccountName": _ANY, "serviceAccount": _ANY, "automountServiceAccountToken": _ANY,
    "nodeName": _ANY, "hostNetwork": _ANY, "hostPID": _ANY, "hostIPC": _ANY,
    "shareProcessNamespace": _ANY, "securityContext": _ANY, "imagePullSecrets": _ANY,
    "hostname": _ANY, "subdomain": _ANY, "affinity": _ANY, "schedulerName": _ANY,
    "tolerations": _lst(_TOL_T), "hostAliases": _ANY, "priorityClassName": _ANY,
    "priority": _ANY, "dnsConfig": _ANY, "readinessGates": _ANY, "runtimeClassName": _ANY,
    "enableServiceLinks": _ANY, "preemptionPolicy": _ANY, "overhead": _ANY,
    "topologySpreadConstraints": _ANY, "setHostnameAsFQDN": _ANY, "os": _ANY,
    "hostUsers": _ANY, "schedulingGates": _ANY, "resourceClaims": _ANY, "resources": _ANY})
_POD_TEMPLATE_T = _obj({"metadata": _META_T, "spec": _POD_SPEC_T})
_SVC_PORT_T = _obj({"name": _ANY, "protocol": _ANY, "appProtocol": _ANY, "port": _ANY,
                    "targetPort": _ANY, "nodePort": _ANY})
TYPED_FIELDS = {
    "apps/v1/daemonsets": {"spec": _obj({
        "selector": _ANY, "template": _POD_TEMPLATE_T, "updateStrategy": _ANY,
        "minReadySeconds": _ANY, "revisionHistoryLimit": _ANY})},
    "/v1/pods": {"spec": _POD_SPEC_T},
    "/v1/services": {"spec": _obj({
        "ports": _lst(_SVC_PORT_T), "selector": _ANY, "clusterIP": _ANY, "clusterIPs": _ANY,
        "type": _ANY, "externalIPs": _ANY, "sessionAffinity": _ANY, "loadBalancerIP": _ANY,
        "loadBalancerSourceRanges": _ANY, "externalName": _ANY, "externalTrafficPolicy": _ANY,
        "healthCheckNodePort": _ANY, "publishNotReadyAddresses": _ANY,
        "sessionAffinityConfig": _ANY, "ipFamilies": _ANY, "ipFamilyPolicy": _ANY,
        "allocateLoadBalancerNodePorts": _ANY, "loadBalancerClass": _ANY,
        "internalTrafficPolicy": _ANY, "trafficDistribution": _ANY})},
}


def prune_typed(t, value, path, pruned):
    """Drop fields a typed built-in does not have; record their paths (kube's spelling)."""
    if t is None:
        return
    kind, sub = t
    if kind == "obj" and isinstance(value, dict):
        for k in list(value):
            if k not in sub:
                pruned.append(_child(path, k))
                del value[k]
            else:
                prune_typed(sub[k], value[k], _child(path, k), pruned)
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            prune_typed(sub, item, "%s[%d]" % (path, i), pruned)


BUILTIN_DEFAULTERS = {
    "apps/v1/daemonsets": _default_daemonset,
    "/v1/pods": _default_pod,
    "/v1/namespaces": _default_namespace,
    "/v1/services": _default_service,
    "/v1/secrets": _default_secret,
    CRD_RES: _default_crd,
}

# ---------------------------------------------------------------------------------------------
# Structural-schema validation, pruning and defaulting of custom resources

TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
              float: "number", type(None): "null"}


def _json_type(v):
    return TYPE_NAMES.get(type(v), "object")


def _type_ok(t, v):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return True


def _fmt_num(n):
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


def _child(path, key):
    return key if not path else "%s.%s" % (path, key)


def validate_schema(schema, value, path, causes):
    """Append kube-style causes for `value` against an OpenAPI v3 structural schema node."""
    if not isinstance(schema, dict):
        return
    shown = path or "<root>"
    if value is None:
        if schema.get("nullable") or schema.get("x-kubernetes-preserve-unknown-fields") and \
                not schema.get("type"):
            return
        t = schema.get("type") or ("string" if schema.get("x-kubernetes-int-or-string") else "")
        if t:
            causes.append(cause("FieldValueTypeInvalid", path,
                                'Invalid value: "null": %s in body must be of type %s: "null"'
                                % (shown, t)))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok("integer", value)):
            causes.append(cause("FieldValueTypeInvalid", path,
                                'Invalid value: "%s": %s in body must be of type integer,string: '
                                '"%s"' % (_json_type(value), shown, _json_type(value))))
            return
    t = schema.get("type")
    if t and not _type_ok(t, value):
        causes.append(cause("FieldValueTypeInvalid", path,
                            'Invalid value: "%s": %s in body must be of type %s: "%s"'
                            % (_json_type(value), shown, t, _json_type(value))))
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        causes.append(not_supported(path, value, enum))
    if isinstance(value, str):
        _validate_string(schema, value, path, shown, causes)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(schema, value, path, shown, causes)
    elif isinstance(value, list):
        _validate_array(schema, value, path, shown, causes)
    elif isinstance(value, dict):
        _validate_object(schema, value, path, shown, causes)
    for sub in schema.get("allOf") or []:
        validate_schema(sub, value, path, causes)
    for key in ("anyOf", "oneOf"):
        subs = schema.get(key)
        if subs:
            passing = 0
            for sub in subs:
                tmp = []
                validate_schema(sub, value, path, tmp)
                passing += not tmp
            if (key == "anyOf" and passing == 0) or (key == "oneOf" and passing != 1):
                causes.append(invalid(path, value, "%s in body must match %s schema"
                                      % (shown, "at least one" if key == "anyOf" else
                                         "exactly one")))
    if isinstance(schema.get("not"), dict):
        tmp = []
        validate_schema(schema["not"], value, path, tmp)
        if not tmp:
            causes.append(invalid(path, value, "%s in body should not match the schema" % shown))


def _validate_string(schema, value, path, shown, causes):
    mn = schema.get("minLength")
    if mn is not None and len(value) < mn:
        causes.append(invalid(path, value, "%s in body should be at least %d chars long"
                              % (shown, mn)))
    mx = schema.get("maxLength")
    if mx is not None and len(value) > mx:
        causes.append(cause("FieldValueTooLong", path,
                            "Too long: may not be more than %d bytes" % mx))
    pat = schema.get("pattern")
    if pat is not None:
        try:
            ok = re.search(pat, value) is not None
        except re.error:
            ok = True
        if not ok:
            causes.append(invalid(path, value, "%s in body should match '%s'" % (shown, pat)))
    fmt = schema.get("format")
    if fmt == "date-time" and parse_time(value) is None:
        causes.append(invalid(path, value, "%s in body must be of type date-time: %s"
                              % (shown, go_value(value))))


def _validate_number(schema, value, path, shown, causes):
    mn = schema.get("minimum")
    if mn is not None:
        if schema.get("exclusiveMinimum") and value <= mn:
            causes.append(invalid(path, value, "%s in body should be greater than %s"
                                  % (shown, _fmt_num(mn))))
        elif value < mn:
            causes.append(invalid(path, value, "%s in body should be greater than or equal to %s"
                                  % (shown, _fmt_num(mn))))
    mx = schema.get("maximum")
    if mx is not None:
        if schema.get("exclusiveMaximum") and value >= mx:
            causes.append(invalid(path, value, "%s in body should be less than %s"
                                  % (shown, _fmt_num(mx))))
        elif value > mx:
            causes.append(invalid(path, value, "%s in body should be less than or equal to %s"
                                  % (shown, _fmt_num(mx))))
    mo = schema.get("multipleOf")
    if mo and abs(value / mo - round(value / mo)) > 1e-9:
        causes.append(invalid(path, value, "%s in body should be a multiple of %s"
                              % (shown, _fmt_num(mo))))


def _validate_array(schema, value, path, shown, causes):
    mn = schema.get("minItems")
    if mn is not None and len(value) < mn:
        causes.append(invalid(path, len(value), "%s in body should have at least %d items"
                              % (shown, mn)))
    mx = schema.get("maxItems")
    if mx is not None and len(value) > mx:
        causes.append(cause("FieldValueTooMany", path,
                            "Too many: %d: must have at most %d items" % (len(value), mx)))
    lt = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or lt == "set":
        seen = []
        for i, item in enumerate(value):
            if item in seen:
                causes.append(cause("FieldValueDuplicate", "%s[%d]" % (path, i),
                                    "Duplicate value: %s" % go_value(item)))
            else:
                seen.append(item)
    if lt == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                k = [item.get(x) for x in keys]
                if k in seen:
                    causes.append(cause("FieldValueDuplicate", "%s[%d]" % (path, i),
                                        "Duplicate value: %s" % go_value(
                                            {x: item.get(x) for x in keys})))
                else:
                    seen.append(k)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            validate_schema(items, item, "%s[%d]" % (path, i), causes)


def _validate_object(schema, value, path, shown, causes):
    for r in schema.get("required") or []:
        if r not in value:
            causes.append(required(_child(path, r)))
    mn = schema.get("minProperties")
    if mn is not None and len(value) < mn:
        causes.append(invalid(path, len(value), "%s in body should have at least %d properties"
                              % (shown, mn)))
    mx = schema.get("maxProperties")
    if mx is not None and len(value) > mx:
        causes.append(cause("FieldValueTooMany", path,
                            "Too many: %d: must have at most %d items" % (len(value), mx)))
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    for k, v in value.items():
        if k in props:
            validate_schema(props[k], v, _child(path, k), causes)
        elif isinstance(addl, dict):
            validate_schema(addl, v, _child(path, k), causes)


def prune_value(schema, value, path, pruned):
    """Remove fields the schema does not declare (unless preserve-unknown-fields); returns value."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource"):
            md = value.get("metadata")
            if isinstance(md, dict):
                for k in list(md):
                    if k not in OBJECT_META_FIELDS:
                        pruned.append(_child(path, "metadata." + k))
                        del md[k]
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for k in list(value):
            if props and k in props:
                value[k] = prune_value(props[k], value[k], _child(path, k), pruned)
            elif isinstance(addl, dict):
                value[k] = prune_value(addl, value[k], _child(path, k), pruned)
            elif addl is True or preserve:
                continue
            elif schema.get("x-kubernetes-embedded-resource") and k in ("apiVersion", "kind",
                                                                        "metadata"):
                continue
            else:
                pruned.append(_child(path, k))
                del value[k]
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_value(schema["items"], item, "%s[%d]" % (path, i), pruned)
                for i, item in enumerate(value)]
    return value


def apply_defaults(schema, value, top=False):
    """Apply `default`s of properties whose parent object exists (kube semantics), recursively."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if top and k in ("apiVersion", "kind", "metadata"):
                continue
            if not isinstance(sub, dict):
                continue
            if (k not in value or (value[k] is None and not sub.get("nullable"))) \
                    and "default" in sub:
                value[k] = json.loads(json.dumps(sub["default"]))
            if k in value:
                apply_defaults(sub, value[k])
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k in value:
                if k not in props:
                    apply_defaults(addl, value[k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


# ---------------------------------------------------------------------------------------------
# OpenAPI v3 documents

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OPENAPI_GROUP_PREFIX = {
    "": "io.k8s.api.core.v1.", "apps": "io.k8s.api.apps.v1.",
    "coordination.k8s.io": "io.k8s.api.coordination.v1.", "events.k8s.io": "io.k8s.api.events.v1.",
    "rbac.authorization.k8s.io": "io.k8s.api.rbac.v1.", "node.k8s.io": "io.k8s.api.node.v1.",
    "policy": "io.k8s.api.policy.v1.",
    "networking.k8s.io": "io.k8s.api.networking.v1.",
    "admissionregistration.k8s.io": "io.k8s.api.admissionregistration.v1.",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.",
}


def schema_name(info):
    prefix = OPENAPI_GROUP_PREFIX.get(info.group)
    if prefix is None:
        prefix = ".".join(reversed(info.group.split("."))) + "." + info.version + "."
    return prefix + info.kind


def _meta_schemas():
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        META + "ObjectMeta": {
            "description": "ObjectMeta is metadata that all persisted resources must have.",
            "type": "object",
            "properties": {
                "name": {"type": "string"}, "generateName": {"type": "string"},
                "namespace": {"type": "string"}, "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "deletionTimestamp": {"type": "string", "format": "date-time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "labels": {"type": "object", "additionalProperties": {"type": "string",
                                                                      "default": ""}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string",
                                                                           "default": ""}},
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                               "x-kubernetes-list-type": "set"},
                "ownerReferences": {"type": "array", "items": dict(loose),
                                    "x-kubernetes-patch-merge-key": "uid",
                                    "x-kubernetes-patch-strategy": "merge"},
                "managedFields": {"type": "array", "items": dict(loose)},
            },
        },
        META + "ListMeta": {"type": "object", "properties": {
            "continue": {"type": "string"}, "remainingItemCount": {"type": "integer"},
            "resourceVersion": {"type": "string"}}},
        META + "Status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                          "x-kubernetes-group-version-kind": [
                              {"group": "", "kind": "Status", "version": "v1"}]},
        META + "DeleteOptions": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        META + "Patch": {"type": "object",
                         "description": "Patch is provided to give a concrete name and type to "
                                        "the Kubernetes PATCH request body."},
        META + "WatchEvent": {"type": "object", "required": ["type", "object"], "properties": {
            "type": {"type": "string"}, "object": {"type": "object"}}},
    }


def _kind_schema(info):
    gvk = [{"group": info.group, "version": info.version, "kind": info.kind}]
    base_props = {
        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned "
                       "schema of this representation of an object."},
        "kind": {"type": "string", "description": "Kind is a string value representing the "
                 "REST resource this object represents."},
        "metadata": {"allOf": [{"$ref": "#/components/schemas/" + META + "ObjectMeta"}],
                     "default": {}},
    }
    custom = info.schema()
    if info.crd is not None:
        sch = json.loads(json.dumps(custom or {"type": "object",
                                               "x-kubernetes-preserve-unknown-fields": True}))
        props = sch.setdefault("properties", {})
        props.update({k: v for k, v in base_props.items() if k not in ("metadata",)})
        props["metadata"] = base_props["metadata"]
        sch["type"] = "object"
        sch["x-kubernetes-group-version-kind"] = gvk
        return sch
    props = dict(base_props)
    for f in BUILTIN_TOP_FIELDS.get(info.res, ("spec", "status")):
        props[f] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True} \
            if f not in BUILTIN_SCALAR_FIELDS else BUILTIN_SCALAR_FIELDS[f]
    return {"description": "%s (kubesim: loosely typed)" % info.kind, "type": "object",
            "properties": props, "x-kubernetes-group-version-kind": gvk}


BUILTIN_SCALAR_FIELDS = {
    "type": {"type": "string"}, "immutable": {"type": "boolean"}, "reason": {"type": "string"},
    "message": {"type": "string"}, "note": {"type": "string"}, "action": {"type": "string"},
    "count": {"type": "integer"}, "firstTimestamp": {"type": "string", "format": "date-time"},
    "lastTimestamp": {"type": "string", "format": "date-time"},
    "eventTime": {"type": "string", "format": "date-time"},
    "reportingComponent": {"type": "string"}, "reportingInstance": {"type": "string"},
    "reportingController": {"type": "string"}, "handler": {"type": "string"},
    "revision": {"type": "integer"},
    "deprecatedCount": {"type": "integer"},
    "deprecatedFirstTimestamp": {"type": "string", "format": "date-time"},
    "deprecatedLastTimestamp": {"type": "string", "format": "date-time"},
    "automountServiceAccountToken": {"type": "boolean"},
}

BUILTIN_TOP_FIELDS = {
    "/v1/configmaps": ("data", "binaryData", "immutable"),
    "/v1/secrets": ("data", "stringData", "type", "immutable"),
    "/v1/serviceaccounts": ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    "/v1/events": ("involvedObject", "reason", "message", "source", "firstTimestamp",
                   "lastTimestamp", "count", "type", "eventTime", "series", "action", "related",
                   "reportingComponent", "reportingInstance"),
    "events.k8s.io/v1/events": ("eventTime", "series", "reportingController",
                                "reportingInstance", "action", "reason", "regarding", "related",
                                "note", "type", "deprecatedSource", "deprecatedFirstTimestamp",
                                "deprecatedLastTimestamp", "deprecatedCount"),
    "coordination.k8s.io/v1/leases": ("spec",),
    "rbac.authorization.k8s.io/v1/roles": ("rules",),
    "rbac.authorization.k8s.io/v1/clusterroles": ("rules", "aggregationRule"),
    "rbac.authorization.k8s.io/v1/rolebindings": ("subjects", "roleRef"),
    "rbac.authorization.k8s.io/v1/clusterrolebindings": ("subjects", "roleRef"),
    "node.k8s.io/v1/runtimeclasses": ("handler", "overhead", "scheduling"),
    "apps/v1/controllerrevisions": ("data", "revision"),
}


def _params(*names):
    out = []
    for n in names:
        p = {"name": n, "in": "query", "schema": {"type": "boolean" if n in ("force", "watch",
                                                                            "allowWatchBookmarks",
                                                                            "pretty") else
                                                  "integer" if n in ("limit", "timeoutSeconds")
                                                  else "string", "uniqueItems": True}}
        out.append(p)
    return out


def _ok(ref):
    return {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}


def _paths_for(info):
    ref = "#/components/schemas/" + schema_name(info)
    list_ref = ref + "List"
    gvk = {"group": info.group, "version": info.version, "kind": info.kind}
    base = "/api/v1" if not info.group else "/apis/%s/%s" % (info.group, info.version)
    ns = "/namespaces/{namespace}" if info.namespaced else ""
    coll = "%s%s/%s" % (base, ns, info.plural)
    item = coll + "/{name}"
    op_id = "%s%s" % (info.kind, "Namespaced" if info.namespaced else "")
    path_params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if info.namespaced:
        path_params.append({"name": "namespace", "in": "path", "required": True,
                            "schema": {"type": "string"}})
    write_params = ("dryRun", "fieldManager", "fieldValidation")
    body = {"content": {"*/*": {"schema": {"$ref": ref}}}, "required": True}
    patch_body = {"content": {ct: {"schema": {"$ref": "#/components/schemas/" + META + "Patch"}}
                              for ct in ("application/apply-patch+yaml",
                                         "application/json-patch+json",
                                         "application/merge-patch+json")}, "required": True}
    # Strategic merge patch is accepted for built-ins but deliberately not advertised here:
    # kubectl would then compute client-side-apply patches from these loose schemas (no merge
    # keys); without it kubectl uses its compiled-in Go types, which are exact.

    def op(action, name, params, resp, request_body=None):
        o = {"operationId": name, "parameters": _params(*params), "responses": {"200": resp},
             "x-kubernetes-action": action, "x-kubernetes-group-version-kind": dict(gvk)}
        if request_body:
            o["requestBody"] = request_body
        return o

    paths = {
        coll: {
            "get": op("list", "list" + op_id, ("allowWatchBookmarks", "continue",
                                               "fieldSelector", "labelSelector", "limit",
                                               "resourceVersion", "resourceVersionMatch",
                                               "sendInitialEvents", "timeoutSeconds", "watch"),
                      _ok(list_ref)),
            "post": op("post", "create" + op_id, write_params, _ok(ref), body),
            "delete": op("deletecollection", "deleteCollection" + op_id,
                         ("dryRun", "gracePeriodSeconds", "labelSelector", "fieldSelector",
                          "propagationPolicy"),
                         _ok("#/components/schemas/" + META + "Status")),
            "parameters": [p for p in path_params if p["name"] == "namespace"],
        },
        item: {
            "get": op("get", "read" + op_id, (), _ok(ref)),
            "put": op("put", "replace" + op_id, write_params, _ok(ref), body),
            "patch": op("patch", "patch" + op_id, write_params + ("force",), _ok(ref),
                        patch_body),
            "delete": op("delete", "delete" + op_id, ("dryRun", "gracePeriodSeconds",
                                                      "propagationPolicy"),
                         _ok("#/components/schemas/" + META + "Status")),
            "parameters": path_params,
        },
    }
    if info.status_subresource:
        paths[item + "/status"] = {
            "get": op("get", "read" + op_id + "Status", (), _ok(ref)),
            "put": op("put", "replace" + op_id + "Status", write_params, _ok(ref), body),
            "patch": op("patch", "patch" + op_id + "Status", write_params + ("force",), _ok(ref),
                        patch_body),
            "parameters": path_params,
        }
    if info.namespaced:
        paths["%s/%s" % (base, info.plural)] = {
            "get": op("list", "list" + info.kind + "ForAllNamespaces",
                      ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector",
                       "limit", "resourceVersion", "timeoutSeconds", "watch"), _ok(list_ref))}
    return paths


def build_openapi_doc(group, version, infos):
    schemas = _meta_schemas()
    paths = {}
    for info in sorted(infos, key=lambda i: i.plural):
        name = schema_name(info)
        schemas[name] = _kind_schema(info)
        schemas[name + "List"] = {
            "type": "object", "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/" + name}},
                "metadata": {"allOf": [{"$ref": "#/components/schemas/" + META + "ListMeta"}],
                             "default": {}}},
            "x-kubernetes-group-version-kind": [
                {"group": info.group, "version": info.version, "kind": info.list_kind}]}
        paths.update(_paths_for(info))
    title = "Kubernetes"
    return {"openapi": "3.0.0", "info": {"title": title, "version": GIT_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


# ---------------------------------------------------------------------------------------------
# Tables


def _col(name, ctype="string", desc="", priority=0, fmt=""):
    return {"name": name, "type": ctype, "format": fmt, "description": desc or name,
            "priority": priority}


NAME_COL = _col("Name", fmt="name", desc="Name must be unique within a namespace. It is required "
                "when creating resources, although some resources may allow a client to request "
                "the generation of an appropriate name automatically.")
AGE_COL = _col("Age", desc="CreationTimestamp is a timestamp representing the server time when "
               "this object was created.")


def _name(o):
    return (o.get("metadata") or {}).get("name", "")


def _age(o, now):
    return age_of((o.get("metadata") or {}).get("creationTimestamp"), now)


def _node_row(o, now):
    md = o.get("metadata") or {}
    st = o.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    if not conds:
        status = "Unknown"
    elif conds.get("Ready") == "True":
        status = "Ready"
    else:
        status = "NotReady"
    if (o.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (md.get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    role = (md.get("labels") or {}).get("kubernetes.io/role")
    if role:
        roles.append(role)
    info = st.get("nodeInfo") or {}

    def addr(kind):
        for a in st.get("addresses") or []:
            if a.get("type") == kind:
                return a.get("address")
        return "<none>"

    return [_name(o), status, ",".join(roles) or "<none>", _age(o, now),
            info.get("kubeletVersion", ""), addr("InternalIP"), addr("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


NODE_COLS = [NAME_COL, _col("Status"), _col("Roles"), AGE_COL, _col("Version"),
             _col("Internal-IP", priority=1), _col("External-IP", priority=1),
             _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
             _col("Container-Runtime", priority=1)]


def _pod_row(o, now):
    spec = o.get("spec") or {}
    st = o.get("status") or {}
    md = o.get("metadata") or {}
    total = len(spec.get("containers") or [])
    ready = 0
    restarts = 0
    last_restart = None
    reason = st.get("reason") or st.get("phase") or "Pending"
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        s = cs.get("state") or {}
        restarts += cs.get("restartCount", 0)
        if "terminated" in s and s["terminated"].get("exitCode", 0) == 0:
            continue
        if "terminated" in s:
            reason = "Init:" + (s["terminated"].get("reason") or "Error")
        elif "waiting" in s and s["waiting"].get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + s["waiting"]["reason"]
        else:
            reason = "Init:%d/%d" % (i, len(spec.get("initContainers") or []))
        break
    else:
        has_running = False
        for cs in reversed(st.get("containerStatuses") or []):
            s = cs.get("state") or {}
            restarts += cs.get("restartCount", 0)
            lt = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
            if lt and (last_restart is None or lt > last_restart):
                last_restart = lt
            if s.get("waiting", {}).get("reason"):
                reason = s["waiting"]["reason"]
            elif s.get("terminated", {}).get("reason"):
                reason = s["terminated"]["reason"]
            elif "terminated" in s:
                t = s["terminated"]
                reason = ("Signal:%d" % t["signal"]) if t.get("signal") else \
                    "ExitCode:%d" % t.get("exitCode", 0)
            elif "running" in s and cs.get("ready"):
                has_running = True
                ready += 1
            elif "running" in s:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if md.get("deletionTimestamp"):
        reason = "Terminating"
    rs = str(restarts)
    if restarts and last_restart:
        rs = "%d (%s ago)" % (restarts, age_of(last_restart, now))
    ips = st.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    return [_name(o), "%d/%d" % (ready, total), reason, rs, _age(o, now), ips,
            spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>",
            "<none>" if not gates else "%d/%d" % (0, len(gates))]


POD_COLS = [NAME_COL, _col("Ready", desc="The aggregate readiness state of this pod for "
                           "accepting traffic."),
            _col("Status", desc="The aggregate status of the containers in this pod."),
            _col("Restarts", desc="The number of times the containers in this pod have been "
                 "restarted and when the last container in this pod has restarted."),
            AGE_COL, _col("IP", priority=1), _col("Node", priority=1),
            _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)]


def selector_string(sel):
    if not sel:
        return "<none>"
    parts = ["%s=%s" % (k, v) for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        vals = ",".join(sorted(e.get("values") or []))
        if op == "In":
            parts.append("%s in (%s)" % (e.get("key"), vals))
        elif op == "NotIn":
            parts.append("%s notin (%s)" % (e.get("key"), vals))
        elif op == "Exists":
            parts.append(e.get("key", ""))
        elif op == "DoesNotExist":
            parts.append("!" + e.get("key", ""))
    return ",".join(parts) or "<none>"


def _containers_images(pspec):
    cs = (pspec or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _ds_row(o, now):
    spec = o.get("spec") or {}
    st = o.get("status") or {}
    pspec = (spec.get("template") or {}).get("spec") or {}
    ns = pspec.get("nodeSelector") or {}
    names, images = _containers_images(pspec)
    return [_name(o), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0),
            st.get("numberAvailable", 0),
            ",".join("%s=%s" % kv for kv in sorted(ns.items())) or "<none>", _age(o, now),
            names, images, selector_string(spec.get("selector"))]


DS_COLS = [NAME_COL, _col("Desired", "integer"), _col("Current", "integer"),
           _col("Ready", "integer"), _col("Up-to-date", "integer"), _col("Available", "integer"),
           _col("Node Selector"), AGE_COL, _col("Containers", priority=1),
           _col("Images", priority=1), _col("Selector", priority=1)]


def _svc_row(o, now):
    spec = o.get("spec") or {}
    ext = spec.get("externalIPs") or []
    lb = [i.get("ip") or i.get("hostname") for i in
          ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    ext_s = ",".join(ext + lb) or ("<pending>" if spec.get("type") == "LoadBalancer" else
                                   "<none>")
    ports = []
    for p in spec.get("ports") or []:
        s = "%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
        if p.get("nodePort"):
            s = "%s:%s/%s" % (p.get("port"), p["nodePort"], p.get("protocol", "TCP"))
        ports.append(s)
    sel = spec.get("selector") or {}
    return [_name(o), spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", ext_s,
            ",".join(ports) or "<none>", _age(o, now),
            ",".join("%s=%s" % kv for kv in sorted(sel.items())) or "<none>"]


SVC_COLS = [NAME_COL, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
            AGE_COL, _col("Selector", priority=1)]


def _event_fields(o):
    if "regarding" in o or "note" in o or "reportingController" in o:  # events.k8s.io/v1
        obj = o.get("regarding") or {}
        series = o.get("series") or {}
        last = series.get("lastObservedTime") or o.get("deprecatedLastTimestamp") or \
            o.get("eventTime")
        first = o.get("deprecatedFirstTimestamp") or o.get("eventTime")
        count = series.get("count") or o.get("deprecatedCount") or 1
        msg = o.get("note", "")
        src = o.get("reportingController", "")
    else:
        obj = o.get("involvedObject") or {}
        series = o.get("series") or {}
        last = series.get("lastObservedTime") or o.get("lastTimestamp") or o.get("eventTime")
        first = o.get("firstTimestamp") or o.get("eventTime")
        count = series.get("count") or o.get("count") or 1
        msg = o.get("message", "")
        src = (o.get("source") or {}).get("component") or o.get("reportingComponent", "")
        host = (o.get("source") or {}).get("host")
        if host:
            src += ", " + host
    return obj, last, first, count, msg, src


def _event_row(o, now):
    obj, last, first, count, msg, src = _event_fields(o)
    last_s = age_of(last, now) if last else "<unknown>"
    first_s = age_of(first, now) if first else "<unknown>"
    if count > 1:
        last_s = "%s (x%d over %s)" % (last_s, count, first_s)
    return [last_s, o.get("type", ""), o.get("reason", ""),
            "%s/%s" % ((obj.get("kind") or "").lower(), obj.get("name", "")),
            obj.get("fieldPath", ""), src, msg.strip(), first_s, str(count), _name(o)]


EVENT_COLS = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
              _col("Subobject", priority=1), _col("Source", priority=1), _col("Message"),
              _col("First Seen", priority=1), _col("Count", priority=1),
              _col("Name", priority=1)]


def _created_at(o):
    return (o.get("metadata") or {}).get("creationTimestamp") or ""


def _binding_row(o, now):
    ref = o.get("roleRef") or {}
    subs = o.get("subjects") or []

    def names(kind):
        out = []
        for s in subs:
            if s.get("kind") == kind:
                out.append(s.get("name", "") if kind != "ServiceAccount" else
                           "%s/%s" % (s.get("namespace", ""), s.get("name", "")))
        return ", ".join(out)

    return [_name(o), "%s/%s" % (ref.get("kind", ""), ref.get("name", "")), _age(o, now),
            names("User"), names("Group"), names("ServiceAccount")]


BINDING_COLS = [NAME_COL, _col("Role"), AGE_COL, _col("Users", priority=1),
                _col("Groups", priority=1), _col("ServiceAccounts", priority=1)]

CREATED_COLS = [NAME_COL, _col("Created At", "date")]

BUILTIN_TABLES = {
    "/v1/nodes": (NODE_COLS, _node_row),
    "/v1/pods": (POD_COLS, _pod_row),
    "apps/v1/daemonsets": (DS_COLS, _ds_row),
    "/v1/services": (SVC_COLS, _svc_row),
    "/v1/namespaces": ([NAME_COL, _col("Status"), AGE_COL],
                       lambda o, now: [_name(o), (o.get("status") or {}).get("phase", "Active"),
                                       _age(o, now)]),
    "/v1/configmaps": ([NAME_COL, _col("Data", "integer"), AGE_COL],
                       lambda o, now: [_name(o), len(o.get("data") or {}) +
                                       len(o.get("binaryData") or {}), _age(o, now)]),
    "/v1/secrets": ([NAME_COL, _col("Type"), _col("Data", "integer"), AGE_COL],
                    lambda o, now: [_name(o), o.get("type", "Opaque"),
                                    len(o.get("data") or {}), _age(o, now)]),
    "/v1/serviceaccounts": ([NAME_COL, _col("Secrets", "integer"), AGE_COL],
                            lambda o, now: [_name(o), len(o.get("secrets") or []),
                                            _age(o, now)]),
    "/v1/events": (EVENT_COLS, _event_row),
    "events.k8s.io/v1/events": (EVENT_COLS, _event_row),
    "coordination.k8s.io/v1/leases": (
        [NAME_COL, _col("Holder"), AGE_COL],
        lambda o, now: [_name(o), (o.get("spec") or {}).get("holderIdentity", ""),
                        _age(o, now)]),
    "rbac.authorization.k8s.io/v1/roles": (CREATED_COLS,
                                           lambda o, now: [_name(o), _created_at(o)]),
    "rbac.authorization.k8s.io/v1/clusterroles": (CREATED_COLS,
                                                  lambda o, now: [_name(o), _created_at(o)]),
    "rbac.authorization.k8s.io/v1/rolebindings": (BINDING_COLS, _binding_row),
    "rbac.authorization.k8s.io/v1/clusterrolebindings": (BINDING_COLS, _binding_row),
    "node.k8s.io/v1/runtimeclasses": (
        [NAME_COL, _col("Handler"), AGE_COL],
        lambda o, now: [_name(o), o.get("handler", ""), _age(o, now)]),
    CRD_RES: (CREATED_COLS, lambda o, now: [_name(o), _created_at(o)]),
    "apps/v1/controllerrevisions": (
        [NAME_COL, _col("Controller"), _col("Revision", "integer"), AGE_COL],
        lambda o, now: [_name(o), _controller_of(o), o.get("revision", 0), _age(o, now)]),
}


def _controller_of(o):
    for ref in (o.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = ref.get("kind", "").lower() + ("." + group if group else "")
            return "%s/%s" % (kind, ref.get("name", ""))
    return "<none>"


def _cr_columns(info):
    v = info.crd_version() or {}
    cols = v.get("additionalPrinterColumns")
    if cols is None:
        cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    return cols


def _cr_cell(col, obj, now):
    try:
        found, value = jsonpath_first(col.get("jsonPath", ""), obj)
    except JSONPathError:
        return None
    if not found or value is None:
        return None
    ctype = col.get("type", "string")
    if ctype == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return _fmt_num(value)
        return json.dumps(value, separators=(",", ":"))
    if ctype == "integer":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
        return None
    if ctype == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None
    if ctype == "boolean":
        return value if isinstance(value, bool) else None
    if ctype == "date":
        if isinstance(value, str):
            # kube-apiserver renders date cells as the human age ("5m12s"), like AGE
            return age_of(value, now) if parse_time(value) else "<invalid>"
        return None
    return None


def build_table(info, objs, list_meta, include_object="Metadata", now=None):
    now = now or utc_now()
    if info.crd is not None:
        cols_def = _cr_columns(info)
        columns = [dict(NAME_COL)]
        for c in cols_def:
            columns.append({"name": c.get("name", ""), "type": c.get("type", "string"),
                            "format": c.get("format", ""),
                            "description": c.get("description") or
                            "Custom resource definition column (in JSONPath format): %s"
                            % c.get("jsonPath", ""),
                            "priority": c.get("priority", 0)})

        def row_fn(o, _now):
            return [_name(o)] + [_cr_cell(c, o, _now) for c in cols_def]
    else:
        columns, row_fn = BUILTIN_TABLES.get(info.res, ([NAME_COL, _col("Created At", "date")],
                                                        lambda o, _n: [_name(o),
                                                                       _created_at(o)]))
    rows = []
    for o in objs:
        row = {"cells": row_fn(o, now)}
        if include_object == "Object":
            full = dict(o)
            full.setdefault("apiVersion", info.api_version)
            full.setdefault("kind", info.kind)
            row["object"] = full
        elif include_object != "None":
            md = {k: v for k, v in (o.get("metadata") or {}).items() if k != "managedFields"}
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": md}
        rows.append(row)
    meta = {}
    for k in ("resourceVersion", "continue", "remainingItemCount"):
        if list_meta and list_meta.get(k) not in (None, ""):
            meta[k] = list_meta[k]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [dict(c) for c in columns], "rows": rows}


# ---------------------------------------------------------------------------------------------
# JSONPath (the kubectl subset printer columns use)


class JSONPathError(ValueError):
    pass


_JP_NAME = re.compile(r"[A-Za-z0-9_\-$/]+")


def _jp_literal(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise JSONPathError("bad literal %r" % text)


def _jp_parse(expr):
    """'.status.conditions[?(@.type=="Ready")].status' -> list of steps."""
    e = expr.strip()
    if e.startswith("{") and e.endswith("}"):
        e = e[1:-1].strip()
    if e.startswith("$"):
        e = e[1:]
    steps = []
    i = 0
    while i < len(e):
        c = e[i]
        if c == ".":
            if e[i + 1:i + 2] == "*":
                steps.append(("wild",))
                i += 2
                continue
            m = _JP_NAME.match(e, i + 1)
            if not m:
                if i + 1 >= len(e):
                    break
                raise JSONPathError("bad name at %d in %r" % (i, expr))
            steps.append(("field", m.group(0)))
            i = m.end()
        elif c == "[":
            end = _jp_bracket_end(e, i)
            inner = e[i + 1:end].strip()
            i = end + 1
            if inner == "*":
                steps.append(("wild",))
            elif inner.startswith("?(") and inner.endswith(")"):
                steps.append(("filter",) + _jp_filter(inner[2:-1]))
            elif inner[:1] in "'\"":
                steps.append(("field", inner[1:-1]))
            else:
                try:
                    steps.append(("index", int(inner)))
                except ValueError:
                    raise JSONPathError("bad subscript %r in %r" % (inner, expr))
        else:
            raise JSONPathError("unexpected %r at %d in %r" % (c, i, expr))
    return steps


def _jp_bracket_end(e, start):
    depth = 0
    quote = None
    for j in range(start, len(e)):
        ch = e[j]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JSONPathError("unterminated [ in %r" % e)


def _jp_filter(text):
    m = re.match(r"^\s*@((?:\.[A-Za-z0-9_\-$/]+|\[[^\]]*\])*)\s*(==|!=|<=|>=|<|>)?\s*(.*?)\s*$",
                 text)
    if not m:
        raise JSONPathError("bad filter %r" % text)
    sub = _jp_parse(m.group(1)) if m.group(1) else []
    if m.group(2):
        return (sub, m.group(2), _jp_literal(m.group(3)))
    return (sub, None, None)


def _jp_eval(steps, values):
    for step in steps:
        out = []
        for v in values:
            if step[0] == "field":
                if isinstance(v, dict) and step[1] in v:
                    out.append(v[step[1]])
            elif step[0] == "index":
                if isinstance(v, list) and -len(v) <= step[1] < len(v):
                    out.append(v[step[1]])
            elif step[0] == "wild":
                if isinstance(v, list):
                    out.extend(v)
                elif isinstance(v, dict):
                    out.extend(v.values())
            elif step[0] == "filter":
                _, sub, op, lit = step
                items = v if isinstance(v, list) else [v]
                for item in items:
                    got = _jp_eval(sub, [item])
                    if op is None:
                        if got:
                            out.append(item)
                        continue
                    if not got:
                        continue
                    try:
                        ok = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b,
                              "<": lambda a, b: a < b, ">": lambda a, b: a > b,
                              "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}[op](got[0], lit)
                    except TypeError:
                        ok = False
                    if ok:
                        out.append(item)
        values = out
    return values


def jsonpath_all(expr, obj):
    return _jp_eval(_jp_parse(expr), [obj])


def jsonpath_first(expr, obj):
    """(found, value) for the first match of a kubectl-style JSONPath."""
    res = jsonpath_all(expr, obj)
    return (True, res[0]) if res else (False, None)


# ---------------------------------------------------------------------------------------------
# CustomResourceDefinition validation and defaulting


def default_crd(crd):
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    for v in spec.get("versions") or []:
        if isinstance(v, dict):
            v.setdefault("served", True)
            v.setdefault("storage", False)


def _schema_path(base, sub):
    return base + sub


def validate_structural(node, path, causes, root=False):
    """Structural-schema rules a CRD's openAPIV3Schema must follow (a useful subset)."""
    if not isinstance(node, dict):
        causes.append(invalid(path, node, "must be an object"))
        return
    t = node.get("type")
    special = node.get("x-kubernetes-int-or-string") or \
        node.get("x-kubernetes-preserve-unknown-fields")
    if root and t != "object":
        if not t:
            causes.append(required(path + ".type", "must not be empty at the root"))
        else:
            causes.append(invalid(path + ".type", t, "must be object at the root"))
    elif not t and not special:
        causes.append(required(path + ".type", "must not be empty for specified object fields"
                               if "properties" in node else "must not be empty for specified "
                               "array items" if path.endswith(".items") else
                               "must not be empty for specified fields"))
    if t and t not in ("object", "array", "string", "integer", "number", "boolean"):
        causes.append(not_supported(path + ".type", t, ["array", "boolean", "integer", "number",
                                                        "object", "string"]))
    if "properties" in node and "additionalProperties" in node:
        causes.append(cause("FieldValueForbidden", path + ".additionalProperties",
                            "Forbidden: additionalProperties and properties are mutual exclusive"))
    if t == "array" and not isinstance(node.get("items"), dict):
        causes.append(required(path + ".items", "must be specified"))
    if node.get("x-kubernetes-int-or-string") and t:
        causes.append(cause("FieldValueForbidden", path + ".type",
                            "Forbidden: must be empty if x-kubernetes-int-or-string is true"))
    for k, sub in (node.get("properties") or {}).items():
        validate_structural(sub, "%s.properties[%s]" % (path, k), causes)
    if isinstance(node.get("additionalProperties"), dict):
        validate_structural(node["additionalProperties"], path + ".additionalProperties", causes)
    if isinstance(node.get("items"), dict):
        validate_structural(node["items"], path + ".items", causes)
    for key in ("allOf", "anyOf", "oneOf"):
        subs = node.get(key) or []
        if node.get("x-kubernetes-int-or-string") and key == "anyOf" and \
                [s.get("type") for s in subs if isinstance(s, dict)] == ["integer", "string"]:
            continue  # the one typed anyOf kube allows: the int-or-string idiom
        for i, sub in enumerate(subs):
            if isinstance(sub, dict):
                for bad in ("type", "default", "additionalProperties", "nullable"):
                    if bad in sub:
                        causes.append(cause("FieldValueForbidden",
                                            "%s.%s[%d].%s" % (path, key, i, bad),
                                            "Forbidden: must be empty to be structural"))
    if "default" in node and not root:
        dcauses = []
        validate_schema(node, node["default"], "", dcauses)
        for c in dcauses:
            causes.append(invalid(path + ".default", node["default"], c["message"]))
    if "pattern" in node:
        try:
            re.compile(node["pattern"])
        except re.error as e:
            causes.append(invalid(path + ".pattern", node["pattern"], "must be a valid regular "
                                  "expression, but isn't: %s" % e))


PRINTER_TYPES = ["boolean", "date", "integer", "number", "string"]


def validate_crd(crd, old=None):
    causes = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural = names.get("plural") or ""
    kind = names.get("kind") or ""
    name = (crd.get("metadata") or {}).get("name", "")
    if not group:
        causes.append(required("spec.group"))
    elif not DNS1123_SUBDOMAIN.match(group) or "." not in group:
        causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        causes.append(required("spec.names.plural"))
    elif not DNS1123_LABEL.match(plural):
        causes.append(invalid("spec.names.plural", plural, LABEL_MSG))
    if not kind:
        causes.append(required("spec.names.kind"))
    elif not re.match(r"^[A-Za-z][A-Za-z0-9]*$", kind):
        causes.append(invalid("spec.names.kind", kind, "may have mixed case, but should "
                              "otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
    singular = names.get("singular")
    if singular and not DNS1123_LABEL.match(singular):
        causes.append(invalid("spec.names.singular", singular, LABEL_MSG))
    for i, sn in enumerate(names.get("shortNames") or []):
        if not DNS1123_LABEL.match(sn or ""):
            causes.append(invalid("spec.names.shortNames[%d]" % i, sn, LABEL_MSG))
    if plural and group and name != "%s.%s" % (plural, group):
        causes.append(invalid("metadata.name", name,
                              'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if scope is None:
        causes.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("scope") and scope != old_spec.get("scope"):
            causes.append(invalid("spec.scope", scope, "field is immutable"))
        if old_spec.get("group") and group != old_spec.get("group"):
            causes.append(invalid("spec.group", group, "field is immutable"))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(invalid("spec.versions", versions, "must have exactly one version marked "
                              "as storage version"))
        return causes
    storage = sum(1 for v in versions if isinstance(v, dict) and v.get("storage"))
    if storage != 1:
        causes.append(invalid("spec.versions", versions,
                              "must have exactly one version marked as storage version"))
    seen = set()
    for i, v in enumerate(versions):
        vp = "spec.versions[%d]" % i
        if not isinstance(v, dict):
            causes.append(invalid(vp, v, "must be an object"))
            continue
        vname = v.get("name") or ""
        if not vname:
            causes.append(required(vp + ".name"))
        elif not DNS1123_LABEL.match(vname):
            causes.append(invalid(vp + ".name", vname, LABEL_MSG))
        elif vname in seen:
            causes.append(cause("FieldValueDuplicate", vp + ".name",
                                "Duplicate value: %s" % go_value(vname)))
        seen.add(vname)
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        sp = vp + ".schema.openAPIV3Schema"
        if schema is None:
            causes.append(required(sp, "schemas are required"))
        else:
            validate_structural(schema, sp, causes, root=True)
        for j, col in enumerate(v.get("additionalPrinterColumns") or []):
            cp = "%s.additionalPrinterColumns[%d]" % (vp, j)
            if not col.get("name"):
                causes.append(required(cp + ".name"))
            if col.get("type") not in PRINTER_TYPES:
                causes.append(not_supported(cp + ".type", col.get("type"), PRINTER_TYPES))
            if not col.get("jsonPath"):
                causes.append(required(cp + ".JSONPath"))
            else:
                try:
                    _jp_parse(col["jsonPath"])
                except JSONPathError:
                    causes.append(invalid(cp + ".JSONPath", col["jsonPath"],
                                          "must be a simple json path"))
    if old is not None:
        stored = (old.get("status") or {}).get("storedVersions") or []
        for sv in stored:
            if sv not in seen:
                causes.append(invalid("status.storedVersions[0]", sv, "must appear in "
                                      "spec.versions"))
    return causes


# ---------------------------------------------------------------------------------------------
# Issue 12: policy/v1 PodDisruptionBudgets and apps/v1 ReplicaSets (validation, defaults, typed
# fields, Tables) live in disruption.py, which registers them into the tables above.

import disruption  # noqa: E402  (needs this module's helpers, so it is imported last)

disruption.register_api(sys.modules[__name__])
