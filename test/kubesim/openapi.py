"""OpenAPI v3 documents (/openapi/v3 and /openapi/v3/<group-version>): the schema of every served
kind (built-ins from their scalar and top-level fields, custom resources from their CRD schema) and the
paths and parameters of every verb, as kubectl's client-side validation and explain read them.
"""

import json

GIT_VERSION = "v1.31.4"  # what /version and the OpenAPI documents' info.version report


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
