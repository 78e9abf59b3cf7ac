"""Built-in object rules kube-apiserver applies before storing: ObjectMeta validation, the per-kind
validators (DaemonSet, Pod, Event, Lease, Node), defaulting, and typed pruning of the built-in fields a
controller renders (a misspelt field is dropped and reported as kube's Go structs would).

Also the field-error vocabulary every validator shares (cause/invalid/required/not_supported, Go's
%v rendering of values, field paths). BUILTIN_VALIDATORS, BUILTIN_DEFAULTERS and TYPED_FIELDS are keyed
by store resource; registry.py adds the CRD entries (crds.py) and disruption.py its PDB/ReplicaSet ones.
"""

import functools
import hashlib
import json
import re


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


def _fmt_num(n):
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


def _child(path, key):
    return key if not path else "%s.%s" % (path, key)


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
}
