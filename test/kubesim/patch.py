"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

All functions return a new document and never modify their inputs. Errors raise PatchError, which
the server reports as 422 (json-patch op/test failures, as kube-apiserver does) or 400 (malformed).

Strategic merge patch is for built-in kinds only (the server answers 415 for custom resources). Go
structs carry patchStrategy/patchMergeKey tags; here a table keyed by field name (with the container
context for `ports`) gives the same answers for every type kubesim serves.
"""

import copy


class PatchError(ValueError):
    def __init__(self, message, malformed=False):
        super().__init__(message)
        self.malformed = malformed


# ---- RFC 7386 --------------------------------------------------------------------------------------
def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---- RFC 6902 --------------------------------------------------------------------------------------
def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path, malformed=True)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts, path):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError("path %s: missing value" % path)
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                i = int(p)
            except ValueError:
                raise PatchError("path %s: invalid index %r" % (path, p)) from None
            if not 0 <= i < len(cur):
                raise PatchError("path %s: index %d out of bounds" % (path, i))
            cur = cur[i]
        else:
            raise PatchError("path %s: cannot traverse a value" % path)
    return cur


def _add(doc, path, value, replace=False):
    parts = _pointer(path)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError("replace operation does not apply: doc is missing key: %s" % path)
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
            return doc
        try:
            i = int(last)
        except ValueError:
            raise PatchError("path %s: invalid index %r" % (path, last)) from None
        if replace:
            if not 0 <= i < len(parent):
                raise PatchError("replace operation does not apply: index out of bounds: %s" % path)
            parent[i] = value
        else:
            if not 0 <= i <= len(parent):
                raise PatchError("add operation does not apply: index out of bounds: %s" % path)
            parent.insert(i, value)
    else:
        raise PatchError("path %s: parent is not a container" % path)
    return doc


def _remove(doc, path):
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("remove operation does not apply: doc is missing path: %s" % path)
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            i = int(last)
        except ValueError:
            raise PatchError("path %s: invalid index" % path) from None
        if not 0 <= i < len(parent):
            raise PatchError("remove operation does not apply: index out of bounds: %s" % path)
        return parent.pop(i)
    raise PatchError("path %s: parent is not a container" % path)


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations", malformed=True)
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("json patch operation needs \"op\" and \"path\": %r" % (op,), malformed=True)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("%s operation needs a value" % kind, malformed=True)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            v = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, v)
        elif kind == "copy":
            v = copy.deepcopy(_walk(doc, _pointer(op.get("from", "")), op.get("from", "")))
            doc = _add(doc, path, v)
        elif kind == "test":
            actual = _walk(doc, _pointer(path), path)
            if actual != op["value"]:
                raise PatchError("testing value %s failed" % path)
        else:
            raise PatchError("unexpected kind of operation %r" % kind, malformed=True)
    return doc


# ---- strategic merge patch ---------------------------------------------------------------------------
# field name -> merge key (lists merged element-wise by that key); absent = list replaced whole.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "ownerReferences": "uid", "conditions": "type", "addresses": "type", "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "schedulingGates": "name",
    "secrets": "name", "readinessGates": "conditionType", "podIPs": "ip", "hostIPs": "ip",
}
# primitive lists with patchStrategy=merge (set union).
MERGE_PRIMITIVES = {"finalizers"}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _merge_key(path, field):
    if field == "ports":
        return "containerPort" if any(p in _CONTAINER_LISTS for p in path) else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", malformed=True)
    return _smp_map(target if isinstance(target, dict) else {}, patch, ())


def _smp_map(orig, patch, path):
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(orig)
    for k, v in patch.items():
        if k == "$patch" or k.startswith("$setElementOrder/") or k == "$retainKeys":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        cur = out.get(k)
        if isinstance(v, dict):
            merged = _smp_map(cur if isinstance(cur, dict) else {}, v, path + (k,))
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _smp_list(cur if isinstance(cur, list) else [], v, path + (k,), k)
        else:
            out[k] = copy.deepcopy(v)
    if "$retainKeys" in patch and isinstance(patch["$retainKeys"], list):
        keep = set(patch["$retainKeys"])
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _smp_list(orig, patch, path, field):
    if field in MERGE_PRIMITIVES:
        out = list(orig)
        for x in patch:
            if x not in out:
                out.append(copy.deepcopy(x))
        return out
    key = _merge_key(path[:-1], field)
    if key is None:
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = [copy.deepcopy(x) for x in orig]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError("map in list %s is missing the merge key %r" % (".".join(path), key), malformed=True)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(_smp_map({}, item, path))
        else:
            out[idx] = _smp_map(out[idx], item, path)
    return out
