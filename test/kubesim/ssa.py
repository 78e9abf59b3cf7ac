"""Server-side apply and managedFields for kubesim (pure functions over JSON dicts).

    apply(live, applied, manager, force, now, ...) -> merged object with managedFields
    record_update(live_before, obj_after, manager, operation, now, ...) -> obj_after with
        managedFields updated for a create/update/patch (operation "Update")

Field sets follow structured-merge-diff's FieldsV1 encoding: "f:<field>" for object fields,
"k:{json}" for list items identified by their key fields, "v:<json>" for set members and "."
for "this node itself". Lists are keyed where Kubernetes keys them (containers by name,
conditions by type, ownerReferences by uid, ...) or, for custom resources, where the schema says
x-kubernetes-list-type: map/set; every other list is atomic (owned and replaced as a whole).

What apply does (K: sigs.k8s.io/structured-merge-diff merge/update.go):
- conflicts: a field the applier sets to a value different from the live one, owned by another
  manager -> ApplyConflict (409) unless force, which takes the field over;
- merge: applied fields win, fields it does not mention stay;
- removal: fields this manager applied last time and no longer applies are deleted from the
  object unless another manager also owns them;
- the applier's set becomes exactly what it applied; equal values are shared with other owners.
"""

import copy
import json

# Fields that never appear in field sets (identity and server-owned metadata).
IGNORED_TOP = ("apiVersion", "kind")
IGNORED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generateName")

# Built-in list fields that Kubernetes merges by key (patchMergeKey / listMapKeys).
KEYED_LISTS = {
    "containers": ["name"], "initContainers": ["name"], "ephemeralContainers": ["name"],
    "env": ["name"], "volumes": ["name"], "volumeMounts": ["mountPath"],
    "volumeDevices": ["devicePath"], "imagePullSecrets": ["name"], "conditions": ["type"],
    "ownerReferences": ["uid"], "hostAliases": ["ip"], "topologySpreadConstraints":
    ["topologyKey", "whenUnsatisfiable"], "secrets": ["name"],
}
SET_LISTS = {"finalizers"}


class ApplyConflict(Exception):
    """409 Conflict: `.causes` are StatusCauses (reason FieldManagerConflict), `.message` is
    kube-apiserver's text ("Apply failed with 1 conflict: conflict with ...")."""

    def __init__(self, conflicts):
        # conflicts: [(manager_label, path_string)]
        self.conflicts = conflicts
        self.causes = [{"reason": "FieldManagerConflict", "message": "conflict with %s" % m,
                        "field": p} for m, p in conflicts]
        self.message = conflict_message(conflicts)
        super().__init__(self.message)


def conflict_message(conflicts):
    if len(conflicts) == 1:
        m, p = conflicts[0]
        return "Apply failed with 1 conflict: conflict with %s: %s" % (m, p)
    by_mgr = {}
    for m, p in conflicts:
        by_mgr.setdefault(m, []).append(p)
    lines = []
    for m in sorted(by_mgr):
        lines.append("conflicts with %s:" % m)
        lines.extend("- %s" % p for p in by_mgr[m])
    return "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Schema-aware list handling


class ListRules:
    """Decides how a list at a given path is merged: keyed ('map'), set, or atomic."""

    def __init__(self, schema=None):
        self.schema = schema  # CRD openAPIV3Schema or None for built-ins

    def sub(self, node, key):
        if not isinstance(node, dict):
            return None
        props = node.get("properties") or {}
        if key in props:
            return props[key]
        addl = node.get("additionalProperties")
        return addl if isinstance(addl, dict) else None

    def kind(self, field, value, node):
        """('map', keys) | ('set', None) | ('atomic', None) for a list value."""
        if isinstance(node, dict) and node.get("type") == "array":
            lt = node.get("x-kubernetes-list-type")
            if lt == "map":
                return "map", node.get("x-kubernetes-list-map-keys") or ["name"]
            if lt == "set":
                return "set", None
            if lt == "atomic":
                return "atomic", None
        if self.schema is not None and field not in ("finalizers", "ownerReferences"):
            return "atomic", None  # CRD lists are atomic unless the schema says otherwise
        if field in SET_LISTS and all(not isinstance(v, (dict, list)) for v in value):
            return "set", None
        keys = KEYED_LISTS.get(field)
        if keys and all(isinstance(v, dict) for v in value):
            return "map", keys
        if field == "ports" and all(isinstance(v, dict) for v in value):
            if all("containerPort" in v for v in value):
                return "map", ["containerPort", "protocol"]
            if all("port" in v for v in value):
                return "map", ["port", "protocol"]
        return "atomic", None


def _item_key(item, keys):
    k = {}
    for name in keys:
        if name in item:
            k[name] = item[name]
        elif name == "protocol":
            k[name] = "TCP"
    return k


def _key_token(item, keys):
    return "k:" + json.dumps(_item_key(item, keys), separators=(",", ":"), sort_keys=True)


def _value_token(v):
    return "v:" + json.dumps(v, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Field sets: sets of paths; a path is a tuple of tokens ("f:spec", "k:{...}", "v:..", ".")


def field_set(obj, rules, top=True):
    """All leaf paths (and '.' item markers) of an object, ignoring identity metadata."""
    out = set()
    _walk(obj, (), rules, rules.schema, out, top)
    return out


def _walk(value, path, rules, node, out, top=False):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if top and k in IGNORED_TOP:
                continue
            if top and k == "metadata" and isinstance(v, dict):
                md = {mk: mv for mk, mv in v.items() if mk not in IGNORED_META}
                if md:
                    _walk(md, path + ("f:metadata",), rules, None, out)
                continue
            _walk_field(k, v, path + ("f:" + k,), rules, rules.sub(node, k), out)
        return
    out.add(path)


def _walk_field(field, value, path, rules, node, out):
    if isinstance(value, list) and not value and rules.kind(field, value, node)[0] != "atomic":
        return  # an empty keyed list or set claims no items
    if isinstance(value, list) and value:
        kind, keys = rules.kind(field, value, node)
        if kind == "map":
            items_node = node.get("items") if isinstance(node, dict) else None
            for item in value:
                if not isinstance(item, dict):
                    out.add(path)
                    return
            for item in value:
                ip = path + (_key_token(item, keys),)
                out.add(ip + (".",))
                for k, v in item.items():
                    _walk_field(k, v, ip + ("f:" + k,), rules, rules.sub(items_node, k), out)
            return
        if kind == "set":
            for item in value:
                out.add(path + (_value_token(item),))
            return
        out.add(path)
        return
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk_field(k, v, path + ("f:" + k,), rules, rules.sub(node, k), out)
        return
    out.add(path)


def _strip_top(obj):
    out = {k: v for k, v in obj.items() if k not in IGNORED_TOP and k != "metadata"}
    md = obj.get("metadata")
    if isinstance(md, dict):
        md = {k: v for k, v in md.items() if k not in IGNORED_META}
        if md:
            out["metadata"] = md
    return out


def _diff_top(before, after, rules, changed, removed):
    """Leaf paths added/changed in `after` and removed from `before`, skipping equal subtrees
    (a C-speed == on each subtree keeps a one-label write on a 15 KB node cheap)."""
    b, a = _strip_top(before), _strip_top(after)
    _diff_map(b, a, (), rules, rules.schema, changed, removed, top=True)


def _subtree(field, value, path, rules, node):
    out = set()
    _walk_field(field, value, path, rules, node, out)
    return out


def _diff_map(b, a, path, rules, node, changed, removed, top=False):
    for k, av in a.items():
        sub = None if top and k == "metadata" else rules.sub(node, k)
        p = path + ("f:" + k,)
        if k not in b:
            changed |= _subtree(k, av, p, rules, sub)
            continue
        bv = b[k]
        if bv == av:
            continue
        _diff_field(k, bv, av, p, rules, sub, changed, removed)
    for k, bv in b.items():
        if k not in a:
            sub = None if top and k == "metadata" else rules.sub(node, k)
            removed |= _subtree(k, bv, path + ("f:" + k,), rules, sub)


def _diff_field(field, bv, av, path, rules, node, changed, removed):
    if isinstance(bv, dict) and isinstance(av, dict) and bv and av:
        _diff_map(bv, av, path, rules, node, changed, removed)
        return
    if isinstance(bv, list) and isinstance(av, list) and bv and av:
        kb, keys = rules.kind(field, bv, node)
        ka, _ = rules.kind(field, av, node)
        if kb == ka == "map" and all(isinstance(x, dict) for x in bv + av):
            items_node = node.get("items") if isinstance(node, dict) else None
            bmap = {_key_token(x, keys): x for x in bv}
            amap = {_key_token(x, keys): x for x in av}
            for tok, ai in amap.items():
                ip = path + (tok,)
                bi = bmap.get(tok)
                if bi is None:
                    changed.add(ip + (".",))
                    for k, v in ai.items():
                        changed |= _subtree(k, v, ip + ("f:" + k,), rules,
                                            rules.sub(items_node, k))
                elif bi != ai:
                    _diff_map(bi, ai, ip, rules, items_node, changed, removed)
            for tok, bi in bmap.items():
                if tok not in amap:
                    ip = path + (tok,)
                    removed.add(ip + (".",))
                    for k, v in bi.items():
                        removed |= _subtree(k, v, ip + ("f:" + k,), rules,
                                            rules.sub(items_node, k))
            return
        if kb == ka == "set":
            bs = {_value_token(x) for x in bv}
            as_ = {_value_token(x) for x in av}
            changed |= {path + (t,) for t in as_ - bs}
            removed |= {path + (t,) for t in bs - as_}
            return
    bset = _subtree(field, bv, path, rules, node)
    aset = _subtree(field, av, path, rules, node)
    changed |= aset
    removed |= bset - aset


def to_fields_v1(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for tok in p:
            cur = cur.setdefault(tok, {})
    return root


def from_fields_v1(tree, prefix=()):
    out = set()
    if not isinstance(tree, dict):
        return out
    for tok, sub in tree.items():
        p = prefix + (tok,)
        if tok == "." or not sub:
            out.add(p)
        else:
            out |= from_fields_v1(sub, p)
    return out


def path_string(path):
    """('f:spec','k:{"name":"c"}','f:image') -> .spec.containers[name="c"].image"""
    s = ""
    for tok in path:
        if tok == ".":
            continue
        if tok.startswith("f:"):
            s += "." + tok[2:]
        elif tok.startswith("k:"):
            k = json.loads(tok[2:])
            s += "[" + ",".join("%s=%s" % (n, json.dumps(v)) for n, v in sorted(k.items())) + "]"
        elif tok.startswith("v:"):
            s += "[=" + tok[2:] + "]"
    return s


# ---------------------------------------------------------------------------------------------
# Navigating objects by path

_MISSING = object()


def _find_item(lst, token):
    if not isinstance(lst, list):
        return -1
    if token.startswith("k:"):
        want = json.loads(token[2:])
        for i, item in enumerate(lst):
            if isinstance(item, dict) and _item_key(item, list(want)) == want:
                return i
    elif token.startswith("v:"):
        want = json.loads(token[2:])
        for i, item in enumerate(lst):
            if item == want:
                return i
    return -1


def get_path(obj, path):
    cur = obj
    for tok in path:
        if tok == ".":
            return cur
        if tok.startswith("f:"):
            if not isinstance(cur, dict) or tok[2:] not in cur:
                return _MISSING
            cur = cur[tok[2:]]
        else:
            i = _find_item(cur, tok)
            if i < 0:
                return _MISSING
            cur = cur[i]
    return cur


def delete_path(obj, path):
    """Delete the node at path (a '.' marker deletes the whole list item)."""
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    parent = get_path(obj, path[:-1])
    if parent is _MISSING:
        return
    tok = path[-1]
    if tok.startswith("f:"):
        if isinstance(parent, dict):
            parent.pop(tok[2:], None)
    else:
        i = _find_item(parent, tok)
        if i >= 0:
            del parent[i]


def _prune_empty_parents(obj, path, owned):
    """After a removal, drop maps/lists that became empty and nobody owns as a node."""
    p = path[:-1] if path and path[-1] != "." else path[:-2]
    while len(p) > 1:
        node = get_path(obj, p)
        if node is _MISSING or node or (p in owned) or (p + (".",) in owned):
            return
        delete_path(obj, p)
        p = p[:-1]


# ---------------------------------------------------------------------------------------------
# Merging


def merge(live, applied, rules, node=None, field=None):
    """Applied over live: maps merge, keyed lists merge by key, everything else is replaced."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for k, v in applied.items():
            if k in out:
                out[k] = merge(out[k], v, rules, rules.sub(node, k), k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(live, list) and isinstance(applied, list):
        kind, keys = rules.kind(field, applied, node)
        if not applied and kind != "atomic":
            return copy.deepcopy(live)
        if kind == "map" and all(isinstance(x, dict) for x in live + applied):
            items_node = node.get("items") if isinstance(node, dict) else None
            out = [copy.deepcopy(x) for x in live]
            for item in applied:
                i = _find_item(out, _key_token(item, keys))
                if i >= 0:
                    out[i] = merge(out[i], item, rules, items_node, None)
                else:
                    out.append(copy.deepcopy(item))
            return out
        if kind == "set":
            out = list(live)
            for item in applied:
                if item not in out:
                    out.append(copy.deepcopy(item))
            return out
    return copy.deepcopy(applied)


# ---------------------------------------------------------------------------------------------
# managedFields bookkeeping


def _entries(obj):
    mf = (obj or {}).get("metadata", {}).get("managedFields") or []
    return [dict(e) for e in mf if isinstance(e, dict)]


def _entry_set(e):
    return from_fields_v1(e.get("fieldsV1") or {})


def _label(e):
    s = json.dumps(e.get("manager", ""))
    if e.get("subresource"):
        s += " with subresource %s" % json.dumps(e["subresource"])
    if e.get("operation") == "Update":
        s += " using %s" % e.get("apiVersion", "")
    return s


def _same_entry(e, manager, operation, subresource):
    return (e.get("manager") == manager and e.get("operation") == operation
            and (e.get("subresource") or None) == (subresource or None))


def _without_times(entries):
    return [{k: v for k, v in e.items() if k != "time"} for e in entries]


def _keep_times_if_noop(live, obj):
    """A repeated identical apply must be a true no-op (no new resourceVersion, no watch event):
    when nothing but managedFields timestamps changed, keep the live managedFields, as
    kube-apiserver's IgnoreManagedFieldsTimestampsTransformer does."""
    lm = (live.get("metadata") or {}).get("managedFields") or []
    om = (obj.get("metadata") or {}).get("managedFields") or []
    if _without_times(lm) != _without_times(om):
        return
    a = {k: v for k, v in obj.items() if k != "metadata"}
    b = {k: v for k, v in live.items() if k != "metadata"}
    if a != b:
        return
    am = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    bm = {k: v for k, v in (live.get("metadata") or {}).items() if k != "managedFields"}
    if am == bm:
        obj["metadata"]["managedFields"] = copy.deepcopy(lm)


def _new_entry(manager, operation, api_version, now, paths, subresource):
    e = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
         "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        e["subresource"] = subresource
    return e


def _overlaps(a, b):
    """Path a and b conflict if equal or one is an ancestor of the other."""
    if a and a[-1] == ".":
        a = a[:-1]
    if b and b[-1] == ".":
        b = b[:-1]
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _scope(obj, status_subresource, subresource):
    """The part of an object a request may touch: status only, or everything but status."""
    if not status_subresource:
        return obj
    if subresource == "status":
        return {k: v for k, v in obj.items() if k in ("apiVersion", "kind", "metadata", "status")}
    return {k: v for k, v in obj.items() if k != "status"}


def apply(live, applied, manager, force, now, api_version=None, schema=None,
          status_subresource=False, subresource=None):
    """Server-side apply of `applied` by `manager` onto `live` (None: create).

    Returns the new object (deep copy) with metadata.managedFields updated. Raises
    ApplyConflict when another manager owns a field the applier changes, unless force.
    With status_subresource, the main endpoint ignores `status` and subresource="status"
    applies only `status` (as kube-apiserver resets the other part)."""
    rules = ListRules(schema)
    applied = copy.deepcopy(applied)
    api_version = api_version or applied.get("apiVersion", "")
    (applied.get("metadata") or {}).pop("managedFields", None)
    if subresource == "status":
        body = {k: v for k, v in applied.items() if k == "status"}
    else:
        body = _scope(applied, status_subresource, subresource)
    new_set = field_set(body, rules)
    if subresource == "status":
        new_set = {p for p in new_set if p and p[0] == "f:status"}

    if live is None:
        obj = copy.deepcopy(applied if subresource != "status" else body)
        if status_subresource and subresource is None:
            obj.pop("status", None)
        obj.setdefault("metadata", {})["managedFields"] = [
            _new_entry(manager, "Apply", api_version, now, new_set, subresource)]
        return obj

    entries = _entries(live)
    mine = None
    others = []
    for e in entries:
        if _same_entry(e, manager, "Apply", subresource):
            mine = e
        else:
            others.append(e)
    old_set = _entry_set(mine) if mine else set()

    # conflicts: fields we set to a different value that someone else owns
    conflicts = []
    changed = set()
    for p in new_set:
        if p[-1] == ".":
            continue
        lv = get_path(live, p)
        av = get_path(body, p)
        if lv is _MISSING or lv != av:
            changed.add(p)
    for e in others:
        eset = _entry_set(e)
        for p in sorted(changed):
            if any(_overlaps(p, q) and q[-1] != "." for q in eset):
                conflicts.append((e, p))
    if conflicts and not force:
        raise ApplyConflict([(_label(e), path_string(p)) for e, p in conflicts])

    # force: the applier takes contested fields away from the other managers
    if conflicts:
        for e in others:
            eset = _entry_set(e)
            lost = {q for q in eset for p in changed if _overlaps(p, q) and q[-1] != "."}
            if lost:
                e["fieldsV1"] = to_fields_v1(eset - lost)

    obj = merge(copy.deepcopy(live), body, rules, schema)

    # removal of fields this manager stopped applying and nobody else owns
    other_paths = set()
    for e in others:
        other_paths |= _entry_set(e)
    removed = sorted(old_set - new_set, key=lambda p: (p[-1] != ".", -len(p)))
    for p in removed:
        if len(p) >= 2 and p[-2].startswith("k:") and p[-1][2:] in json.loads(p[-2][2:]):
            continue  # key fields go with their item, never alone
        if any(_overlaps(p, q) for q in other_paths) or any(
                _overlaps(p, q) and len(q) > len(p) for q in new_set):
            continue
        if p[-1] != "." and any(_overlaps(p, q) and len(q) < len(p) and q[-1] != "."
                                for q in new_set):
            continue
        delete_path(obj, p)
        _prune_empty_parents(obj, p, other_paths | new_set)

    result_entries = []
    placed = False
    for e in entries:
        if e is mine or _same_entry(e, manager, "Apply", subresource):
            result_entries.append(_new_entry(manager, "Apply", api_version, now, new_set,
                                             subresource))
            placed = True
            continue
        if e.get("fieldsV1"):
            result_entries.append(e)
    if not placed:
        result_entries.append(_new_entry(manager, "Apply", api_version, now, new_set,
                                         subresource))
    obj.setdefault("metadata", {})["managedFields"] = result_entries
    _keep_times_if_noop(live, obj)
    return obj


def record_update(live_before, obj_after, manager, operation="Update", now="", api_version=None,
                  schema=None, subresource=None, status_subresource=False):
    """managedFields for a non-apply write: the writer gains the fields it changed or added,
    other managers lose the ones it changed or removed. Returns obj_after (modified in place).

    A client that sends its own non-empty managedFields different from the live ones replaces
    them (kube allows resetting managedFields that way); [{}] clears them. Pass subresource=
    "status" for /status writes and status_subresource=True for main-endpoint writes of kinds
    with a status subresource, so ownership follows what the write can really change."""
    rules = ListRules(schema)
    md = obj_after.setdefault("metadata", {})
    sent = md.get("managedFields")
    live_entries = _entries(live_before)
    if sent is not None and sent != live_entries and live_before is not None:
        md["managedFields"] = [e for e in sent if isinstance(e, dict) and e.get("manager")]
        if not md["managedFields"]:
            md.pop("managedFields")
        return obj_after
    api_version = api_version or obj_after.get("apiVersion") or \
        (live_before or {}).get("apiVersion", "")
    if live_before is None:
        changed = field_set(obj_after, rules)
        removed = set()
    else:
        changed, removed = set(), set()
        _diff_top(live_before, obj_after, rules, changed, removed)
    # Only the part the endpoint can write counts: /status writes touch status alone; with a
    # status subresource the main endpoint never touches status (the store keeps the old one).
    if subresource == "status":
        changed = {p for p in changed if p and p[0] == "f:status"}
        removed = {p for p in removed if p and p[0] == "f:status"}
    elif status_subresource:
        changed = {p for p in changed if p and p[0] != "f:status"}
        removed = {p for p in removed if p and p[0] != "f:status"}
    if not changed and not removed:
        md["managedFields"] = live_entries
        if not live_entries:
            md.pop("managedFields", None)
        return obj_after
    out = []
    mine = None
    for e in live_entries:
        eset = _entry_set(e)
        if e.get("manager") == manager and e.get("operation") == operation and \
                (e.get("subresource") or None) == (subresource or None) and \
                e.get("apiVersion") == api_version:
            mine = e
            continue
        keep = {q for q in eset if not any(_overlaps(p, q) and len(q) >= len(p) and q[-1] != "."
                                           for p in changed)}
        keep = {q for q in keep if q not in removed and not any(
            _overlaps(r, q) and len(q) >= len(r) for r in removed)}
        if keep != eset:
            e["fieldsV1"] = to_fields_v1(keep)
        if keep:
            out.append(e)
    my_set = (_entry_set(mine) if mine else set()) - removed
    my_set = {q for q in my_set if not any(_overlaps(r, q) and len(q) >= len(r) for r in removed)}
    my_set |= changed
    my_set = {q for q in my_set if q[-1] == "." or get_path(obj_after, q) is not _MISSING}
    if my_set:
        out.append(_new_entry(manager, operation, api_version, now, my_set, subresource))
    md["managedFields"] = out
    if not out:
        md.pop("managedFields")
    return obj_after
