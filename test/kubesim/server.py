"""kubesim's HTTP front end: routing, CRUD, LIST paging, WATCH streams, patches, Status bodies, admin API.

Wire behaviour follows the project's k8s-api-wire-spec reference: one global resourceVersion, typed
LIST items without apiVersion/kind for built-ins, chunked newline-delimited watch events, 410 ERROR
events for stale watches, Status bodies with apiVersion "v1" and details.kind = plural (Kind for 422).
Resource metadata (scope, kinds, discovery, OpenAPI, CRD schemas, Tables) comes from registry.Registry;
server-side apply from ssa; the simulated cluster (nodes, DaemonSets, kubelet) from cluster.Cluster.

apply-patch bodies must be JSON (JSON is valid YAML; kubectl and the controller send JSON): the standard
library has no YAML parser, so other YAML gets a 400 saying so.
"""

import base64
import json
import random
import select
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kselectors
import patch as patchlib
import store as st

import registry
import disruption

import ssa
from ktime import now_rfc3339

CRD_RES = "apiextensions.k8s.io/v1/customresourcedefinitions"

# PUT without metadata.resourceVersion is rejected (422) for these; allowed (last write wins) elsewhere.
CONDITIONAL_UPDATE = {"apps/v1/daemonsets", "apps/v1/controllerrevisions", "coordination.k8s.io/v1/leases"}
# PUT of a missing object creates it (AllowCreateOnUpdate).
CREATE_ON_UPDATE = {"coordination.k8s.io/v1/leases"}
# DELETE answers with the deleted object instead of a Status (ReturnDeletedObject).
RETURN_DELETED = {"/v1/pods", "/v1/namespaces", "/v1/serviceaccounts"}
# create keeps .status although the kind has a status subresource.
CREATE_KEEPS_STATUS = {"/v1/nodes", CRD_RES}

DS_GEN_ANNOTATION = "deprecated.daemonset.template.generation"


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details, self.headers = code, reason, message, details, headers


def status_body(code, reason, message, details=None):
    d = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason}
    if details is not None:
        d["details"] = details
    d["code"] = code
    return d


def not_found_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def make_registry(store):
    return registry.Registry(store)


def _split_res(res):
    g, v, p = res.split("/")
    return g, v, p


def qualified(info):
    g, _, p = _split_res(info.res)
    return p + ("." + g if g else "")


def kind_qualified(info):
    g, _, _ = _split_res(info.res)
    return info.kind + ("." + g if g else "")


def group_version(info):
    g, v, _ = _split_res(info.res)
    return g + "/" + v if g else v


def details_for(info, name=None, uid=None):
    g, _, p = _split_res(info.res)
    d = {}
    if name is not None:
        d["name"] = name
    d["group"] = g
    d["kind"] = p
    if uid:
        d["uid"] = uid
    if not g:
        del d["group"]
    return d


def invalid_error(info, name, causes):
    parts = ["%s: %s" % (c.get("field"), c.get("message")) if c.get("field") else c.get("message", "")
             for c in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    g, _, _ = _split_res(info.res)
    details = {"name": name or "", "group": g, "kind": info.kind, "causes": causes}
    if not g:
        del details["group"]
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind_qualified(info), name or "", text), details)


def _bool_param(q, name):
    """kube-apiserver's bool conversion: absent/false/0 => False, anything else (even '') => True."""
    if name not in q:
        return False
    return q[name].lower() not in ("false", "0")


def _strip_params(ctype):
    return (ctype or "").split(";")[0].strip().lower()


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.requests = {}
            self.lists = {}
            self.watches = {}
            self.writes = 0
            self.detail = {}  # (verb, group, resource, sub, namespace, name, client, code) -> count, for RBAC checks

    def record(self, verb, resource, sub, code, req=None):
        with self.lock:
            k = (verb, resource, sub or "", code)
            self.requests[k] = self.requests.get(k, 0) + 1
            if req is not None:
                client = (req.headers.get("User-Agent") or "").split("/")[0]
                d = (verb, req.group or "", resource, sub or "", req.ns or "", req.name or "", client, code)
                self.detail[d] = self.detail.get(d, 0) + 1
            if verb in ("create", "update", "patch", "delete", "deletecollection", "apply"):
                self.writes += 1
            elif verb == "list":
                self.lists[resource] = self.lists.get(resource, 0) + 1
            elif verb == "watch":
                self.watches[resource] = self.watches.get(resource, 0) + 1

    def snapshot(self):
        with self.lock:
            return {"requests": [{"verb": v, "resource": r, "subresource": s, "code": c, "count": n}
                                 for (v, r, s, c), n in sorted(self.requests.items(), key=lambda x: str(x[0]))],
                    "writes": self.writes, "lists": dict(self.lists), "watches": dict(self.watches),
                    "detail": [{"verb": v, "group": g, "resource": r, "subresource": s, "namespace": ns, "name": nm,
                                "client": cl, "code": c, "count": n}
                               for (v, g, r, s, ns, nm, cl, c), n in sorted(self.detail.items(), key=lambda x: str(x[0]))]}


class Injector:
    """Rules from POST /_sim/inject: the next `count` matching requests get a Status and/or a delay."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def add(self, rule):
        if not isinstance(rule, dict):
            raise ApiError(400, "BadRequest", "inject body must be a JSON object")
        r = dict(rule)
        r.setdefault("count", 1)
        if "code" not in r and "latencyMs" not in r:
            raise ApiError(400, "BadRequest", "inject needs \"code\" and/or \"latencyMs\"")
        with self.lock:
            self.rules.append(r)

    def clear(self):
        with self.lock:
            self.rules = []

    def take(self, method, path, verb):
        with self.lock:
            for r in self.rules:
                if r["count"] <= 0:
                    continue
                if r.get("method") and r["method"].upper() != method:
                    continue
                if r.get("pathPrefix") and not path.startswith(r["pathPrefix"]):
                    continue
                if r.get("verb") and r["verb"] != verb:
                    continue
                r["count"] -= 1
                self.rules = [x for x in self.rules if x["count"] > 0]
                return dict(r)
        return None


class Req:
    """A parsed API request."""

    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.q, self.headers, self.body = method, path, query, headers, body
        self.group = self.version = self.plural = self.name = self.sub = self.ns = None
        self.watch_path = False
        self.recorded = False
        self.info = None
        self.verb = None

    def json_body(self):
        if not self.body:
            raise ApiError(400, "BadRequest", "the request body is empty")
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise ApiError(400, "BadRequest", "the body of the request could not be decoded as JSON: %s" % e) from None


class Kubesim:
    """Request handling logic, independent of the socket layer."""

    def __init__(self, store, registry, cluster=None, token=None, bookmark_interval=60.0):
        self.store = store
        self.registry = registry
        self.cluster = cluster
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.counters = Counters()
        self.injector = Injector()
        store.add_listener(self._on_event)

    def _on_event(self, etype, res, obj, old):
        if res == CRD_RES:
            self.registry.on_crd_change(obj, deleted=(etype == "DELETED"))

    # ---- routing ---------------------------------------------------------------------------------
    def parse(self, req):
        parts = [p for p in req.path.split("/") if p]
        if parts and parts[0] == "api" and len(parts) >= 2:
            req.group, req.version, rest = "", parts[1], parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            req.group, req.version, rest = parts[1], parts[2], parts[3:]
        else:
            return False
        if not rest:
            return False
        if rest[0] == "watch":
            req.watch_path = True
            rest = rest[1:]
            if not rest:
                raise not_found_path()
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            req.ns = rest[1]
            rest = rest[2:]
        if len(rest) > 3:
            raise not_found_path()
        req.plural = rest[0]
        req.name = rest[1] if len(rest) > 1 else None
        req.sub = rest[2] if len(rest) > 2 else None
        info = self.registry.lookup(req.group, req.version, req.plural)
        if info is None:
            raise not_found_path()
        if req.ns is not None and not info.namespaced:
            raise not_found_path()
        if req.sub is not None and not (req.sub == "status" and info.status_subresource) and \
                not disruption.serves(info, req.sub):
            raise not_found_path()
        self.store.register_resource(info.res, info.namespaced, info.status_subresource)
        req.info = info
        m = req.method
        if m == "GET":
            if req.watch_path or (req.name is None and _bool_param(req.q, "watch")):
                req.verb = "watch"
            elif req.name is None:
                req.verb = "list"
            else:
                req.verb = "get"
        elif m == "POST":
            req.verb = "create"
        elif m == "PUT":
            req.verb = "update"
        elif m == "PATCH":
            req.verb = "patch"
        elif m == "DELETE":
            req.verb = "delete" if req.name else "deletecollection"
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                           {})
        if req.verb in ("create",) and req.name is not None and req.sub is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                           {})
        if req.verb in ("update", "patch") and req.name is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                           {})
        if req.verb in ("create", "update", "patch", "delete", "deletecollection") and info.namespaced and \
                req.ns is None:
            raise not_found_path()
        return True

    def manager(self, req):
        fm = req.q.get("fieldManager")
        if fm:
            return fm
        ua = req.headers.get("User-Agent") or "unknown"
        return ua.split("/")[0] or "unknown"

    def dry_run(self, req, opts_kind):
        v = req.q.get("dryRun")
        if v is None or v == "":
            return False
        if v != "All":
            raise ApiError(422, "Invalid", '%s.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"%s"}: '
                           'supported values: "All"' % (opts_kind, v),
                           {"group": "meta.k8s.io", "kind": opts_kind, "causes": [
                               {"reason": "FieldValueNotSupported", "message": 'Unsupported value: []string{"%s"}: '
                                'supported values: "All"' % v, "field": "dryRun"}]})
        return True

    def wants_table(self, req):
        acc = req.headers.get("Accept") or ""
        first = acc.split(",")[0]
        return "as=Table" in first

    # ---- GET / LIST ----------------------------------------------------------------------------------
    def do_get(self, req):
        e = self.store.get_entry(req.info.res, req.ns, req.name)
        if e is None:
            raise ApiError(404, "NotFound", '%s "%s" not found' % (qualified(req.info), req.name),
                           details_for(req.info, req.name))
        if self.wants_table(req):
            t = self.registry.table(req.info, [e.obj], {"resourceVersion": e.meta.get("resourceVersion", "")},
                                    req.q.get("includeObject") or "Metadata")
            if t is not None:
                return 200, st.encode(t)
        return 200, e.full()

    def _selectors(self, req):
        try:
            lsel = kselectors.parse_label_selector(req.q.get("labelSelector"))
            fsel = kselectors.parse_field_selector(req.q.get("fieldSelector"), req.info.res)
        except kselectors.SelectorError as e:
            raise ApiError(400, "BadRequest", "unable to parse requirement: %s" % e) from None
        if req.name is not None:  # /watch/.../name
            fsel.reqs.append(("metadata.name", "=", req.name))
        return lsel, fsel

    def _list_options_invalid(self, field, message, reason="FieldValueInvalid"):
        return ApiError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: %s: %s' % (field, message),
                        {"group": "meta.k8s.io", "kind": "ListOptions",
                         "causes": [{"reason": reason, "message": message, "field": field}]})

    def _parse_rv(self, rv):
        try:
            n = int(rv)
            if n < 0:
                raise ValueError
            return n
        except ValueError:
            raise ApiError(400, "BadRequest", 'invalid resource version "%s"' % rv) from None

    def _wait_rv(self, x):
        """A resourceVersion newer than the server's: wait up to 3 s, then 504 like kube-apiserver."""
        deadline = time.monotonic() + 3
        with self.store.cond:
            while self.store.rv < x:
                left = deadline - time.monotonic()
                if left <= 0:
                    cur = self.store.rv
                    raise ApiError(504, "Timeout", "Timeout: Too large resource version: %d, current: %d" % (x, cur),
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                self.store.cond.wait(left)

    def do_list(self, req):
        q, info = req.q, req.info
        lsel, fsel = self._selectors(req)
        rv, rvm, cont = q.get("resourceVersion"), q.get("resourceVersionMatch"), q.get("continue")
        if "sendInitialEvents" in q:
            raise self._list_options_invalid("sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for "
                                             "list", "FieldValueForbidden")
        if rvm:
            if cont:
                raise self._list_options_invalid("resourceVersionMatch", "Forbidden: resourceVersionMatch is "
                                                 "forbidden when continue is provided", "FieldValueForbidden")
            if rvm not in ("NotOlderThan", "Exact"):
                raise self._list_options_invalid("resourceVersionMatch", 'Unsupported value: "%s": supported '
                                                 'values: "Exact", "NotOlderThan"' % rvm, "FieldValueNotSupported")
            if not rv:
                raise self._list_options_invalid("resourceVersionMatch", "Forbidden: resourceVersionMatch is "
                                                 "forbidden unless resourceVersion is provided", "FieldValueForbidden")
            if rvm == "Exact" and rv == "0":
                raise self._list_options_invalid("resourceVersionMatch", "Forbidden: resourceVersionMatch \"exact\" "
                                                 "is forbidden for resourceVersion \"0\"", "FieldValueForbidden")
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", 'invalid limit "%s"' % q.get("limit")) from None
        start_after, list_rv = None, None
        if cont:
            if rv not in (None, "", "0"):
                raise ApiError(400, "BadRequest", "specifying resource version is not allowed when using continue")
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                list_rv, start_after = int(tok["rv"]), tuple(tok["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid: incorrect encoded start "
                               "resourceVersion (version meta.k8s.io/v1)") from None
            if list_rv < self.store.first_watchable_rv():
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter, or use the "
                               "continue token in this response to retrieve the remainder of the results. Continuing "
                               "with the provided token results in an inconsistent list - objects that were created, "
                               "modified, or deleted between the time the first chunk was returned and now may show up "
                               "in the list.")
        elif rv not in (None, "", "0"):
            x = self._parse_rv(rv)
            if x > self.store.rv:
                self._wait_rv(x)
            exact = rvm == "Exact" or (not rvm and limit > 0)
            if exact and x != self.store.rv and x < self.store.first_watchable_rv():
                raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
        entries, cur_rv, next_key, remaining = self.store.list_entries(
            info.res, req.ns, lsel, fsel, start_after=start_after, limit=limit or None)
        if list_rv is None:
            list_rv = cur_rv
        meta = {"resourceVersion": str(list_rv)}
        if next_key is not None:
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": list_rv, "start": list(next_key)}, separators=(",", ":")).encode()
            ).decode().rstrip("=")
            if lsel.empty() and fsel.empty():
                meta["remainingItemCount"] = remaining
        if self.wants_table(req):
            t = self.registry.table(info, [e.obj for e in entries], meta, req.q.get("includeObject") or "Metadata")
            if t is not None:
                return 200, st.encode(t)
        builtin = not getattr(info, "crd", None)
        items = b",".join(e.body() if builtin else e.full() for e in entries)
        head = st.encode({"kind": getattr(info, "list_kind", None) or info.kind + "List",
                          "apiVersion": group_version(info), "metadata": meta})
        return 200, head[:-1] + b',"items":[' + items + b"]}"

    # ---- writes ----------------------------------------------------------------------------------
    def _normalize(self, req, obj):
        """Check/fill apiVersion, kind, namespace of a written object; returns a dict with them first."""
        info = req.info
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        gv = group_version(info)
        if obj.get("apiVersion") not in (None, "", gv):
            raise ApiError(400, "BadRequest", "the API version in the data (%s) does not match the expected API "
                           "version (%s)" % (obj.get("apiVersion"), gv))
        if obj.get("kind") not in (None, "", info.kind):
            raise ApiError(400, "BadRequest", "the kind in the data (%s) does not match the expected kind (%s)"
                           % (obj.get("kind"), info.kind))
        out = {"apiVersion": gv, "kind": info.kind}
        out.update((k, v) for k, v in obj.items() if k not in ("apiVersion", "kind"))
        m = out.get("metadata")
        if m is None:
            m = {}
        if not isinstance(m, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        m = dict(m)
        out["metadata"] = m
        if info.namespaced:
            if m.get("namespace") and m["namespace"] != req.ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                               "sent on the request")
            m["namespace"] = req.ns
        else:
            m.pop("namespace", None)
        return out

    def _check_namespace(self, req):
        if not req.info.namespaced:
            return
        nse = self.store.get_entry("/v1/namespaces", "", req.ns)
        if nse is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % req.ns,
                           {"name": req.ns, "kind": "namespaces"})
        if "deletionTimestamp" in nse.meta:
            raise ApiError(403, "Forbidden", "%s \"%s\" is forbidden: unable to create new content in namespace %s "
                           "because it is being terminated" % (qualified(req.info), req.name or "", req.ns),
                           details_for(req.info, req.name or ""))

    def _prepare(self, req, obj, old, sub):
        """Strategy hooks, CR pruning/defaulting/field validation, schema validation. Returns warnings."""
        info = req.info
        warnings = []
        if sub is None and info.res == "apps/v1/daemonsets":
            self._ds_strategy(obj, old)
        if sub is None and info.res == "/v1/namespaces" and old is None:
            obj["status"] = {"phase": "Active"}
        unknown = self.registry.prune_and_default(info, obj) or []
        fv = req.q.get("fieldValidation") or "Warn"
        if unknown and fv == "Strict":
            raise ApiError(400, "BadRequest", self.registry.unknown_field_error(info, unknown))
        if unknown and fv != "Ignore":
            warnings.extend('unknown field "%s"' % p for p in unknown)
        causes = self.registry.validate(info, obj, old.obj if old is not None else None)
        if causes:
            raise invalid_error(info, obj.get("metadata", {}).get("name"), causes)
        return warnings

    @staticmethod
    def _ds_strategy(obj, old):
        spec = obj.setdefault("spec", {})
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type") == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        ann = dict(obj["metadata"].get("annotations") or {})
        if old is None:
            ann[DS_GEN_ANNOTATION] = "1"
        else:
            prev = (old.meta.get("annotations") or {}).get(DS_GEN_ANNOTATION, "1")
            changed = (old.obj.get("spec") or {}).get("template") != spec.get("template")
            ann[DS_GEN_ANNOTATION] = str(int(prev) + 1) if changed else prev
        obj["metadata"]["annotations"] = ann

    def _record(self, req, old_obj, obj, manager):
        """managedFields for a non-apply write. Field sets are computed only over the part of the
        object this endpoint may change: for a kind with a status subresource, the main endpoint never
        changes status and /status only status (a 15 KB node is mostly status, so this is most of the
        cost of a node label patch)."""
        info = req.info
        keep = None
        if old_obj is not None and info.status_subresource:
            if req.sub is None:
                keep = lambda k: k != "status"  # noqa: E731
            elif req.sub == "status":
                keep = lambda k: k in ("apiVersion", "kind", "metadata", "status")  # noqa: E731
        if keep is None:
            return ssa.record_update(old_obj, obj, manager, "Update", now_rfc3339(),
                                     api_version=group_version(info), schema=info.schema(), subresource=req.sub)
        part = {k: v for k, v in obj.items() if keep(k)}
        part = ssa.record_update({k: v for k, v in old_obj.items() if keep(k)}, part, manager, "Update",
                                 now_rfc3339(), api_version=group_version(info), schema=info.schema(),
                                 subresource=req.sub)
        obj["metadata"] = part["metadata"]
        return obj

    def _create(self, req, obj, dry_run, manager, applied=False):
        info = req.info
        m = obj["metadata"]
        if m.get("resourceVersion"):
            raise ApiError(500, "InternalError", "Internal error occurred: resourceVersion should not be set on "
                           "objects to be created", {"causes": [{"message": "resourceVersion should not be set on "
                                                                 "objects to be created"}]})
        if not m.get("name") and m.get("generateName"):
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            m["name"] = m["generateName"] + "".join(random.choice(alphabet) for _ in range(5))
        if not m.get("name"):
            raise invalid_error(info, "", [{"reason": "FieldValueRequired", "message": "Required value: name or "
                                            "generateName is required", "field": "metadata.name"}])
        req.name = m["name"]
        self._check_namespace(req)
        if info.status_subresource and info.res not in CREATE_KEEPS_STATUS:
            obj.pop("status", None)
            if info.res == "/v1/pods":
                obj["status"] = {"phase": "Pending"}
            elif info.res == "/v1/services":
                obj["status"] = {"loadBalancer": {}}
        warnings = self._prepare(req, obj, None, None)
        if not applied:
            obj = self._record(req, None, obj, manager)
        try:
            out = self.store.create(info.res, obj, dry_run=dry_run, as_entry=True)
        except st.AlreadyExists:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (qualified(info), m["name"]),
                           details_for(info, m["name"])) from None
        return 201, out.full(), warnings

    def do_create(self, req):
        dry = self.dry_run(req, "CreateOptions")
        obj = self._normalize(req, req.json_body())
        with self.store.lock:
            code, body, warnings = self._create(req, obj, dry, self.manager(req))
        return code, body, warnings

    def _update(self, req, obj, old, dry_run, sub):
        info = req.info
        warnings = self._prepare(req, obj, old, sub)
        try:
            out = self.store.update(info.res, obj, subresource=sub, dry_run=dry_run, as_entry=True)
        except st.Conflict:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                           'please apply your changes to the latest version and try again' % (qualified(info), req.name),
                           details_for(info, req.name)) from None
        except st.NotFound:
            raise self._not_found(req) from None
        except st.Invalid as e:
            raise invalid_error(info, req.name, e.causes) from None
        return 200, out.full(), warnings

    def _not_found(self, req):
        return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(req.info), req.name),
                        details_for(req.info, req.name))

    def do_update(self, req):
        info = req.info
        dry = self.dry_run(req, "UpdateOptions")
        obj = self._normalize(req, req.json_body())
        m = obj["metadata"]
        if m.get("name") not in (None, "", req.name):
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                           % (m.get("name"), req.name))
        m["name"] = req.name
        manager = self.manager(req)
        with self.store.lock:
            old = self.store.get_entry(info.res, req.ns, req.name)
            if old is None:
                if info.res in CREATE_ON_UPDATE and req.sub is None:
                    m.pop("resourceVersion", None)
                    return self._create(req, obj, dry, manager)
                raise self._not_found(req)
            if m.get("uid") and m["uid"] != old.meta.get("uid"):
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: UID in '
                               'precondition: %s, UID in object meta: %s' % (qualified(info), req.name, m["uid"],
                                                                              old.meta.get("uid")),
                               details_for(info, req.name))
            if not m.get("resourceVersion") and (info.res in CONDITIONAL_UPDATE or getattr(info, "crd", None)):
                raise ApiError(422, "Invalid", '%s "%s" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
                               'must be specified for an update' % (qualified(info), req.name),
                               {"name": req.name, "group": _split_res(info.res)[0], "kind": info.kind, "causes": [
                                   {"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified "
                                    "for an update", "field": "metadata.resourceVersion"}]})
            obj = self._record(req, old.obj, obj, manager)
            return self._update(req, obj, old, dry, req.sub)

    def do_patch(self, req):
        info = req.info
        ctype = _strip_params(req.headers.get("Content-Type"))
        dry = self.dry_run(req, "PatchOptions")
        force = _bool_param(req.q, "force")
        is_apply = ctype == "application/apply-patch+yaml"
        if force and not is_apply:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be '
                           'specified for non-apply patch',
                           {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                               {"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for "
                                "non-apply patch", "field": "force"}]})
        accepted = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
        if not getattr(info, "crd", None):
            accepted.append("application/strategic-merge-patch+json")
        if ctype not in accepted:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                           "media types include: " + ", ".join(accepted), {})
        if is_apply:
            return self._apply(req, dry, force)
        body = req.json_body()
        manager = self.manager(req)
        with self.store.lock:
            old = self.store.get_entry(info.res, req.ns, req.name)
            if old is None:
                raise self._not_found(req)
            doc = old.copy()
            try:
                if ctype == "application/merge-patch+json":
                    if not isinstance(body, dict):
                        raise patchlib.PatchError("merge patch must be a JSON object", malformed=True)
                    new = patchlib.merge_patch(doc, body)
                elif ctype == "application/json-patch+json":
                    new = patchlib.json_patch(doc, body)
                else:
                    new = patchlib.strategic_merge_patch(doc, disruption.smp_directives(info, body))
            except patchlib.PatchError as e:
                if e.malformed:
                    raise ApiError(400, "BadRequest", str(e)) from None
                raise invalid_error(info, req.name, [{"reason": "FieldValueInvalid", "message": str(e),
                                                      "field": "patch"}]) from None
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "the patch produced something that is not an object")
            self._check_identity(req, new, old)
            new = self._record(req, old.obj, new, manager)
            return self._update(req, new, old, dry, req.sub)

    def _check_identity(self, req, new, old):
        nm = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
        if nm.get("name") != req.name:
            raise invalid_error(req.info, req.name, [{"reason": "FieldValueInvalid", "message": "Invalid value: %s: "
                                                      "field is immutable" % json.dumps(nm.get("name")),
                                                      "field": "metadata.name"}])
        new["metadata"] = nm
        if req.info.namespaced:
            nm["namespace"] = req.ns
        new["apiVersion"], new["kind"] = group_version(req.info), req.info.kind

    def _apply(self, req, dry, force):
        info = req.info
        manager = req.q.get("fieldManager")
        if not manager:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                           'required for apply patch',
                           {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                               {"reason": "FieldValueRequired", "message": "Required value: is required for apply "
                                "patch", "field": "fieldManager"}]})
        try:
            applied = json.loads(req.body or b"")
        except ValueError:
            raise ApiError(400, "BadRequest", "kubesim accepts application/apply-patch+yaml bodies only as JSON (JSON "
                           "is valid YAML; kubectl and the controller send JSON): this body is not JSON") from None
        applied = self._normalize(req, applied)
        am = applied["metadata"]
        if am.get("name") not in (None, "", req.name):
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                           % (am.get("name"), req.name))
        am["name"] = req.name
        with self.store.lock:
            old = self.store.get_entry(info.res, req.ns, req.name)
            live = old.copy() if old is not None else None
            try:
                merged = ssa.apply(live, applied, manager, force, now_rfc3339(), api_version=group_version(info),
                                   schema=info.schema(), status_subresource=info.status_subresource,
                                   subresource=req.sub)
            except ssa.ApplyConflict as e:
                raise ApiError(409, "Conflict", e.message, dict(details_for(info, req.name), causes=e.causes)) \
                    from None
            if old is None:
                if req.sub is not None:
                    raise self._not_found(req)
                merged["metadata"].pop("resourceVersion", None)
                return self._create(req, merged, dry, manager, applied=True)
            self._check_identity(req, merged, old)
            return self._update(req, merged, old, dry, req.sub)

    def _delete_options(self, req):
        opts = {}
        if req.body and req.body.strip():
            try:
                opts = json.loads(req.body)
            except ValueError:
                raise ApiError(400, "BadRequest", "the body of the request could not be decoded as DeleteOptions") \
                    from None
            if not isinstance(opts, dict):
                raise ApiError(400, "BadRequest", "DeleteOptions must be a JSON object")
        if req.q.get("dryRun") and "dryRun" not in opts:
            opts["dryRun"] = [req.q["dryRun"]]
        dr = opts.get("dryRun") or []
        if dr and dr != ["All"]:
            raise ApiError(422, "Invalid", 'DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: %s: '
                           'supported values: "All"' % json.dumps(dr), {"group": "meta.k8s.io", "kind": "DeleteOptions"})
        return opts, bool(dr)

    def _delete_one(self, req, name, opts, dry):
        info = req.info
        old = self.store.get_entry(info.res, req.ns, name)
        if old is None:
            raise ApiError(404, "NotFound", '%s "%s" not found' % (qualified(info), name), details_for(info, name))
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old.meta.get("uid"):
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: UID in '
                           'precondition: %s, UID in object meta: %s' % (qualified(info), name, pre["uid"],
                                                                          old.meta.get("uid")),
                           details_for(info, name))
        if pre.get("resourceVersion") and pre["resourceVersion"] != old.meta.get("resourceVersion"):
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: '
                           'ResourceVersion in precondition: %s, ResourceVersion in object meta: %s'
                           % (qualified(info), name, pre["resourceVersion"], old.meta.get("resourceVersion")),
                           details_for(info, name))
        if info.res == "/v1/namespaces" and not dry:
            self._delete_namespace_contents(name)
        grace = opts.get("gracePeriodSeconds")
        if grace is None and req.q.get("gracePeriodSeconds") not in (None, ""):
            try:
                grace = int(req.q["gracePeriodSeconds"])
            except ValueError:
                raise ApiError(400, "BadRequest", "gracePeriodSeconds must be an integer") from None
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)):
            raise ApiError(400, "BadRequest", "DeleteOptions.gracePeriodSeconds must be an integer")
        return old, self.store.delete(info.res, req.ns, name, dry_run=dry, grace=grace)

    def _delete_namespace_contents(self, ns):
        """No namespace controller: delete everything in it at once (finalizers still hold objects)."""
        for res in self.store.resource_keys():
            entries, _, _, _ = self.store.list_entries(res, ns)
            for e in entries:
                if e.meta.get("namespace") == ns:
                    self.store.delete(res, ns, e.meta["name"])

    def do_delete(self, req):
        info = req.info
        opts, dry = self._delete_options(req)
        with self.store.lock:
            old, out = self._delete_one(req, req.name, opts, dry)
        if out is not None and ("deletionTimestamp" in (out.get("metadata") or {}) or info.res in RETURN_DELETED):
            return 200, st.encode(out)
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details_for(info, req.name, old.meta.get("uid"))}
        return 200, st.encode(body)

    def do_deletecollection(self, req):
        info = req.info
        opts, dry = self._delete_options(req)
        lsel, fsel = self._selectors(req)
        items = []
        with self.store.lock:
            entries, _, _, _ = self.store.list_entries(info.res, req.ns, lsel, fsel)
            for e in entries:
                _, out = self._delete_one(req, e.meta["name"], opts, dry)
                if out is not None:
                    items.append(out)
            rv = self.store.rv
        builtin = not getattr(info, "crd", None)
        if builtin:
            items = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in items]
        return 200, st.encode({"kind": info.kind + "List", "apiVersion": group_version(info),
                               "metadata": {"resourceVersion": str(rv)}, "items": items})


def make_bookmark(info, rv, initial_end=False):
    meta = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"apiVersion": group_version(info), "kind": info.kind, "metadata": meta}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle keep-alive connection (or a client that stopped reading) frees its thread
    server_version = "kubesim/1"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("kubesim: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # ---- plumbing -------------------------------------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, code, body, ctype="application/json", headers=None):
        # Count the request before the client can see the answer: a test that
        # reads /_sim/counters right after a response must find it counted.
        self._record(code)
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            for k, v in (headers or []):
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (OSError, ValueError):
            self.close_connection = True

    def _send_error(self, e):
        headers = list(e.headers or [])
        if getattr(e, "plain", False):  # Go http.Error style (max-in-flight 429)
            self._send(e.code, (e.message + "\n").encode(), "text/plain; charset=utf-8", headers)
            return
        self._send(e.code, st.encode(status_body(e.code, e.reason, e.message, e.details)), headers=headers)

    def _record(self, code):
        req = getattr(self, "_cur_req", None)
        if req is not None and req.verb and req.info is not None and not req.recorded:
            req.recorded = True
            self.server.sim.counters.record(req.verb, req.info.res.split("/")[2], req.sub, code, req)

    def _handle(self):
        sim = self.server.sim
        self._cur_req = None
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        req = Req(self.command, u.path, q, self.headers, body)
        if sim.token and u.path not in ("/healthz", "/readyz", "/livez"):
            if (self.headers.get("Authorization") or "") != "Bearer " + sim.token:
                self._send_error(ApiError(401, "Unauthorized", "Unauthorized"))
                return
        if u.path.startswith("/_sim/"):
            self._admin(req)
            return
        code = 500
        parse_err, api = None, False
        self._cur_req = req
        try:
            api = sim.parse(req)
        except ApiError as e:
            parse_err = e
        rule = sim.injector.take(self.command, u.path, req.verb)
        try:
            if rule is not None:
                self._apply_rule(req, rule)
            if parse_err is not None:
                raise parse_err
            if not api:
                code = self._non_resource(req)
                return
            if req.verb == "watch":
                code = 200
                self._watch(req)
                return
            handler = disruption.handler_for(sim, req) or getattr(sim, "do_" + req.verb)
            out = handler(req)
            code, payload = out[0], out[1]
            warnings = out[2] if len(out) > 2 else []
            headers = [("Warning", '299 - "%s"' % w.replace('"', '\\"')) for w in warnings]
            self._send(code, payload, headers=headers)
        except ApiError as e:
            code = e.code
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a kubesim bug: answer 500 and show it
            traceback.print_exc()
            code = 500
            self._send_error(ApiError(500, "InternalError", "Internal error occurred: %s" % e,
                                      {"causes": [{"message": str(e)}]}))
        finally:
            self._record(code)  # requests that ended without a response (client went away)
            self._cur_req = None

    def _apply_rule(self, req, rule):
        if rule.get("latencyMs"):
            time.sleep(rule["latencyMs"] / 1000.0)
        code = rule.get("code")
        if not code:
            return
        code = int(code)
        retry = rule.get("retryAfter")
        headers = [("Retry-After", str(retry))] if retry is not None else []
        if code == 429 and rule.get("plainText"):
            e = ApiError(429, "TooManyRequests", "Too many requests, please try again later.", headers=headers)
            e.plain = True
            raise e
        info = req.info
        what = ""
        if info is not None:
            what = qualified(info) + (' "%s"' % req.name if req.name else "")
        details = details_for(info, req.name) if info is not None and req.name else {}
        if retry is not None:
            details["retryAfterSeconds"] = int(retry)
        msg = rule.get("message")
        table = {
            400: ("BadRequest", msg or "injected bad request"),
            401: ("Unauthorized", "Unauthorized"),
            403: ("Forbidden", msg or '%s is forbidden: User "system:serviceaccount:gpu-policy-system:gpu-policy-controller" '
                  'cannot %s resource "%s" in API group "%s"%s' % (
                      what or "the request", req.verb or req.method.lower(),
                      info.res.split("/")[2] if info else "", info.res.split("/")[0] if info else "",
                      ' in the namespace "%s"' % req.ns if req.ns else " at the cluster scope")),
            404: ("NotFound", msg or "%s not found" % what if what else "the server could not find the requested "
                  "resource"),
            409: ("Conflict", msg or "Operation cannot be fulfilled on %s: the object has been modified; please "
                  "apply your changes to the latest version and try again" % what),
            410: ("Expired", msg or "The resourceVersion for the provided watch is too old."),
            429: ("TooManyRequests", msg or "Too many requests, please try again later."),
            500: ("InternalError", "Internal error occurred: %s" % (msg or "etcdserver: request timed out")),
            503: ("ServiceUnavailable", msg or "the server is currently unable to handle the request"),
            504: ("Timeout", msg or "Timeout: request did not complete within requested timeout - context deadline "
                  "exceeded"),
        }
        reason, message = table.get(code, ("", msg or "injected error %d" % code))
        if code == 500:
            details = dict(details, causes=[{"message": msg or "etcdserver: request timed out"}])
        if code in (401, 410) and not details:
            details = None
        raise ApiError(code, reason, message, details, headers)

    def _non_resource(self, req):
        sim = self.server.sim
        p = req.path.rstrip("/") or "/"
        if req.method not in ("GET", "HEAD"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                           {})
        if p in ("/healthz", "/readyz", "/livez"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return 200
        if p == "/version":
            self._send(200, st.encode(sim.registry.version()))
            return 200
        if p.startswith("/openapi"):
            doc = sim.registry.openapi(p)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
            self._send(200, doc if isinstance(doc, bytes) else st.encode(doc))
            return 200
        doc = sim.registry.discovery(p)
        if doc is None:
            raise not_found_path()
        ctype = "application/json"
        if isinstance(doc, tuple):  # (content-type, body) for aggregated discovery
            ctype, doc = doc
        self._send(200, doc if isinstance(doc, bytes) else st.encode(doc), ctype)
        return 200

    def _admin(self, req):
        sim = self.server.sim
        p = req.path.rstrip("/")
        try:
            body = req.json_body() if req.body and req.body.strip() else None
            if p == "/_sim/drop-watches" and req.method == "POST":
                sim.store.drop_watches()
                code, out = 200, {"dropped": True}
            elif p == "/_sim/compact" and req.method == "POST":
                sim.store.compact()
                code, out = 200, {"compactedAt": str(sim.store.rv)}
            elif p == "/_sim/inject" and req.method == "POST":
                for r in (body if isinstance(body, list) else [body]):
                    sim.injector.add(r)
                code, out = 200, {"rules": len(sim.injector.rules)}
            elif p == "/_sim/inject" and req.method == "DELETE":
                sim.injector.clear()
                code, out = 200, {"rules": 0}
            elif p == "/_sim/counters" and req.method == "GET":
                code, out = 200, sim.counters.snapshot()
            elif p == "/_sim/counters" and req.method == "DELETE":
                sim.counters.reset()
                code, out = 200, {"reset": True}
            elif p == "/_sim/rv" and req.method == "GET":
                code, out = 200, {"resourceVersion": str(sim.store.rv),
                                  "firstWatchable": str(sim.store.first_watchable_rv())}
            elif sim.cluster is not None:
                code, out = sim.cluster.handle_admin(req.method, p, req.q, body)
            else:
                code, out = 404, {"error": "no such admin endpoint: %s %s" % (req.method, p)}
            self._send(code, st.encode(out))
        except ApiError as e:
            self._send_error(e)
        except Exception as e:
            traceback.print_exc()
            self._send(500, st.encode({"error": str(e)}))

    # ---- watch ---------------------------------------------------------------------------------------
    def _chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _client_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)

    def _watch(self, req):
        sim = self.server.sim
        store, info, q = sim.store, req.info, req.q
        lsel, fsel = sim._selectors(req)
        self._table_info = (info, q.get("includeObject") or "Metadata") if sim.wants_table(req) else None
        rv, rvm = q.get("resourceVersion"), q.get("resourceVersionMatch")
        bookmarks = _bool_param(q, "allowWatchBookmarks")
        send_initial = _bool_param(q, "sendInitialEvents") if "sendInitialEvents" in q else None
        if send_initial is not None:
            if rvm != "NotOlderThan":
                raise sim._list_options_invalid("resourceVersionMatch", 'Forbidden: sendInitialEvents requires '
                                                'setting resourceVersionMatch to "NotOlderThan"',
                                                "FieldValueForbidden")
            if send_initial and not bookmarks:
                raise sim._list_options_invalid("allowWatchBookmarks", "Forbidden: sendInitialEvents requires "
                                                "setting allowWatchBookmarks to true", "FieldValueForbidden")
        elif rvm:
            raise sim._list_options_invalid("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden "
                                            "for watch unless sendInitialEvents is provided", "FieldValueForbidden")
        try:
            timeout = float(q.get("timeoutSeconds") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", 'invalid timeoutSeconds "%s"' % q.get("timeoutSeconds")) from None
        if timeout <= 0:
            timeout = random.uniform(1800, 3600)
        deadline = time.monotonic() + timeout
        initial, too_old = [], None
        with store.lock:
            epoch = store.watch_epoch
            if rv in (None, "", "0") or send_initial:
                if rv not in (None, "", "0"):
                    x = sim._parse_rv(rv)
                    if x > store.rv:
                        sim._wait_rv(x)
                initial, pos, _, _ = store.list_entries(info.res, req.ns, lsel, fsel)
            else:
                x = sim._parse_rv(rv)
                if x > store.rv:
                    sim._wait_rv(x)
                pos = x
                if x < store.first_watchable_rv():
                    too_old = (x, store.first_watchable_rv())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        sim.counters.record("watch", info.res.split("/")[2], req.sub, 200, req)  # counted when it starts
        req.recorded = True
        try:
            if too_old is not None:
                self._send_expired(*too_old)
                return
            buf = []
            size = 0
            for e in initial:
                b = b'{"type":"ADDED","object":' + self._payload(e) + b"}\n"
                buf.append(b)
                size += len(b)
                if size > 65536:
                    self._chunk(b"".join(buf))
                    buf, size = [], 0
            if send_initial:
                buf.append(st.encode(make_bookmark(info, pos, True)) + b"\n")
            self._chunk(b"".join(buf))
            self._stream(req, lsel, fsel, pos, epoch, deadline, bookmarks)
        except (OSError, ValueError):
            self.close_connection = True

    def _send_expired(self, x, floor):
        ev = {"type": "ERROR", "object": status_body(410, "Expired", "too old resource version: %d (%d)" % (x, floor))}
        self._chunk(st.encode(ev) + b"\n")
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _payload(self, entry, obj=None):
        """An event's object: the cached bytes, or a one-row Table when the watch asked for Tables
        (kubectl get -w), built from the full object (history entries are slim, so decode the bytes)."""
        if self._table_info is None:
            return entry.full() if obj is None else st.encode(obj)
        o = obj if obj is not None else entry.copy()
        info, include = self._table_info
        t = self.server.sim.registry.table(info, [o], {"resourceVersion": o["metadata"].get("resourceVersion", "")},
                                          include)
        return st.encode(t)

    def _event_bytes(self, ev, ns, lsel, fsel, filtered):
        m = ev.entry.meta
        if ns is not None and m.get("namespace") != ns:
            return None
        if not filtered:
            return b'{"type":"' + ev.type.encode() + b'","object":' + self._payload(ev.entry) + b"}\n"

        def match(o):
            return lsel.matches((o.get("metadata") or {}).get("labels")) and fsel.matches(o)

        now = match(ev.entry.obj)
        if ev.type == "ADDED":
            etype = "ADDED" if now else None
        elif ev.type == "DELETED":
            etype = "DELETED" if now else None
        else:
            before = ev.old is not None and match(ev.old.obj)
            if now and before:
                etype = "MODIFIED"
            elif now:
                etype = "ADDED"
            elif before:  # stopped matching: DELETED with the old state at the event's version
                o = ev.old.copy()  # the full old state, from its bytes (history entries are slim)
                o["metadata"]["resourceVersion"] = str(ev.rv)
                return b'{"type":"DELETED","object":' + self._payload(None, o) + b"}\n"
            else:
                etype = None
        if etype is None:
            return None
        return b'{"type":"' + etype.encode() + b'","object":' + self._payload(ev.entry) + b"}\n"

    def _stream(self, req, lsel, fsel, pos, epoch, deadline, bookmarks):
        sim = self.server.sim
        store, info = sim.store, req.info
        filtered = not (lsel.empty() and fsel.empty())
        interval = sim.bookmark_interval
        next_bookmark = time.monotonic() + interval
        while True:
            evs = None
            with store.cond:
                while True:
                    if store.watch_epoch != epoch or store.closing:
                        self.wfile.write(b"0\r\n\r\n")
                        self.close_connection = True
                        return
                    evs = store.events_after(pos)
                    if evs is None or evs:
                        break
                    now = time.monotonic()
                    if now >= deadline:
                        break
                    if bookmarks and now >= next_bookmark:
                        break
                    store.cond.wait(min(deadline - now, max(0.0, next_bookmark - now) if bookmarks else 1.0, 1.0))
                    if not store.events_after(pos) and self._client_gone():
                        self.close_connection = True
                        return
                cur = store.rv
            if evs is None:
                self._send_expired(pos, store.first_watchable_rv())
                return
            if evs:
                out = []
                for ev in evs:
                    if ev.res != info.res:
                        continue
                    b = self._event_bytes(ev, req.ns, lsel, fsel, filtered)
                    if b is not None:
                        out.append(b)
                pos = evs[-1].rv
                self._chunk(b"".join(out))
                continue
            pos = max(pos, cur)
            now = time.monotonic()
            if now >= deadline:
                if bookmarks:
                    self._chunk(st.encode(make_bookmark(info, pos)) + b"\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            if bookmarks and now >= next_bookmark:
                self._chunk(st.encode(make_bookmark(info, pos)) + b"\n")
                next_bookmark = now + interval


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, sim, ssl_context=None, verbose=False):
        self.sim = sim
        self.ssl_context = ssl_context
        self.verbose = verbose
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ValueError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.ssl_context is not None:
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # a client went away: not worth a traceback
        super().handle_error(request, client_address)
