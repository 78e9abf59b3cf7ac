"""CustomResourceDefinitions and the custom resources they define.

Owns: validation and defaulting of CRD objects themselves (structural schemas, printer columns, names),
the status the naming and establishing controllers write (Established/NamesAccepted), and what a
CRD's openAPIV3Schema does to a custom resource: validation (validate_schema), pruning of unknown
fields (prune_value) and defaulting (apply_defaults). Which resources a CRD serves, and the status
worker thread, are the registry's (registry.py).
"""

import json
import re

from jsonpath import JSONPathError, _jp_parse
from ktime import parse_time
from validation import (DNS1123_LABEL, DNS1123_SUBDOMAIN, LABEL_MSG, OBJECT_META_FIELDS, _child, _fmt_num,
                        cause, go_value, invalid, not_supported, required)

CRD_RES = "apiextensions.k8s.io/v1/customresourcedefinitions"


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
