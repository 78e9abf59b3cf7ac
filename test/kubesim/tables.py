"""Table output (Accept: application/json;as=Table): the columns and rows `kubectl get` prints for
built-in kinds (BUILTIN_TABLES) and for custom resources (their CRD's additionalPrinterColumns), and
kubectl's AGE rendering (human_duration, age_of).
"""

import json

from crds import CRD_RES
from jsonpath import JSONPathError, jsonpath_first
from ktime import parse_time, utc_now
from validation import _fmt_num


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
