"""kubesim's resource registry: which resources the simulated API server serves, and the contract
server.py calls per request. Discovery (/api, /apis), /version, and the CRD lifecycle (a CRD adds or
removes served resources; a worker writes its status) live here; the rules themselves live in
validation.py (built-ins), crds.py (CRDs and custom resources), openapi.py and tables.py.

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

import hashlib
import json
import queue
import re
import threading

import disruption
from crds import CRD_RES, _crd_status_current, apply_defaults, crd_status_for, default_crd, prune_value, \
    validate_crd, validate_schema
from ktime import now_rfc3339
from openapi import BUILTIN_TOP_FIELDS, GIT_VERSION, build_openapi_doc
from tables import build_table
from validation import BUILTIN_DEFAULTERS, BUILTIN_VALIDATORS, OBJECT_META_FIELDS, TYPED_FIELDS, prune_typed, \
    validate_metadata

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
VERBS_NO_COLLECTION = ["create", "delete", "get", "list", "patch", "update", "watch"]
VERBS_STATUS = ["get", "patch", "update"]


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
# The built-in rule tables (validation.py) are completed here, where every piece is loaded: CRDs
# (crds.py) and, for issue 12, policy/v1 PodDisruptionBudgets and apps/v1 ReplicaSets (disruption.py).


def _default_crd(obj):
    default_crd(obj)


BUILTIN_VALIDATORS[CRD_RES] = lambda obj, old: validate_crd(obj, old)
BUILTIN_DEFAULTERS[CRD_RES] = _default_crd
disruption.register_api()
