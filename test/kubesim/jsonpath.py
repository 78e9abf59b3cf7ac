"""JSONPath, the kubectl subset CRD printer columns use ({.spec.x}, [n], [*], ..name, [?(@.k=="v")]):
parse once, evaluate over plain dicts; JSONPathError for what kubectl would refuse.
"""

import re


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
