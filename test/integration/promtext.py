"""A strict parser of the Prometheus text exposition format 0.0.4, for tests (stdlib only).

    fams = parse(text)            # {name: Family}; raises PromError naming the line on any defect
    fams["workqueue_depth"].samples -> [(sample_name, {label: value}, float)]
    value(fams, "rest_client_requests_total", code="200", method="GET") -> float or None

Checked: HELP and TYPE once per family and before its samples, a family's samples contiguous, metric
and label names, label-value escapes (only \\\\ \\" \\n), values (floats, +Inf, -Inf, NaN), no
duplicate series, counters >= 0, and histograms: every series has le-buckets that are cumulative
(non-decreasing with le), end at le="+Inf" equal to _count, and a _sum.
"""

import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class PromError(ValueError):
    pass


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []


def _value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise PromError("%s: bad value %r" % (where, s))


def _labels(s, i, where):
    """Parses {a="b",...} starting at s[i] == '{'; returns (dict, index after '}')."""
    out = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return out, i + 1
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", s[i:])
        if not m:
            raise PromError("%s: bad label at column %d" % (where, i))
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                raise PromError("%s: unterminated label value" % where)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise PromError("%s: bad escape \\%s" % (where, nxt))
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise PromError("%s: raw newline in label value" % where)
            else:
                val.append(c)
                i += 1
        if name in out:
            raise PromError("%s: duplicate label %s" % (where, name))
        out[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] == "}":
            continue
        else:
            raise PromError("%s: expected , or } after label %s" % (where, name))


def _family_of(sample, fams):
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            base = sample[: -len(suffix)]
            if base in fams and fams[base].type == "histogram":
                return base
    return sample


def parse(text):
    if text and not text.endswith("\n"):
        raise PromError("exposition must end with a newline")
    fams = {}
    done = set()  # families whose samples are over (contiguity)
    current = None
    seen = set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d" % n
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    raise PromError("%s: bad metric name %r" % (where, name))
                f = fams.setdefault(name, Family(name))
                if f.samples or name in done:
                    raise PromError("%s: %s for %s after its samples" % (where, parts[1], name))
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "HELP":
                    if f.help is not None:
                        raise PromError("%s: second HELP for %s" % (where, name))
                    if re.search(r"\\[^\\n]", rest.replace("\\\\", "")):
                        raise PromError("%s: bad escape in HELP" % where)
                    f.help = rest
                else:
                    if f.type is not None:
                        raise PromError("%s: second TYPE for %s" % (where, name))
                    if rest not in TYPES:
                        raise PromError("%s: unknown type %r" % (where, rest))
                    f.type = rest
                if current and current != name:
                    done.add(current)
                current = name
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise PromError("%s: bad sample %r" % (where, line))
        sname = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, where)
        if i >= len(line) or line[i] != " ":
            raise PromError("%s: expected a space before the value" % where)
        fields = line[i + 1:].split(" ")
        if len(fields) not in (1, 2):
            raise PromError("%s: trailing garbage" % where)
        v = _value(fields[0], where)
        if len(fields) == 2 and not re.match(r"-?\d+\Z", fields[1]):
            raise PromError("%s: bad timestamp" % where)
        fam = _family_of(sname, fams)
        f = fams.get(fam)
        if f is None or f.type is None or f.help is None:
            raise PromError("%s: sample %s without HELP and TYPE" % (where, sname))
        if fam in done or (current and current != fam):
            raise PromError("%s: samples of %s are not contiguous" % (where, fam))
        current = fam
        key = (sname, tuple(sorted(labels.items())))
        if key in seen:
            raise PromError("%s: duplicate series %s%s" % (where, sname, labels))
        seen.add(key)
        if f.type == "counter" and not v >= 0:
            raise PromError("%s: counter %s is %r" % (where, sname, v))
        if f.type == "histogram":
            if sname == fam + "_bucket" and "le" not in labels:
                raise PromError("%s: bucket without le" % where)
            if sname == fam:
                raise PromError("%s: bare sample for histogram %s" % (where, fam))
        f.samples.append((sname, labels, v))
    for f in fams.values():
        if f.type == "histogram":
            _check_histogram(f)
    return fams


def _check_histogram(f):
    series = {}
    for sname, labels, v in f.samples:
        base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        s = series.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            s["buckets"].append((_value(labels["le"], f.name), v))
        elif sname.endswith("_sum"):
            s["sum"] = v
        else:
            s["count"] = v
    for base, s in series.items():
        b = s["buckets"]
        if not b or b[-1][0] != math.inf:
            raise PromError("%s%s: no le=\"+Inf\" bucket last" % (f.name, dict(base)))
        for (le1, c1), (le2, c2) in zip(b, b[1:]):
            if not le2 > le1 or c2 < c1:
                raise PromError("%s%s: buckets not cumulative/ordered" % (f.name, dict(base)))
        if s["count"] is None or s["sum"] is None:
            raise PromError("%s%s: _sum or _count missing" % (f.name, dict(base)))
        if b[-1][1] != s["count"]:
            raise PromError("%s%s: +Inf bucket %s != _count %s" % (f.name, dict(base), b[-1][1], s["count"]))


def value(fams, metric, /, **labels):
    """The value of sample `metric` whose labels include `labels`; sums when several match."""
    fam = fams.get(_family_of(metric, fams))
    if fam is None:
        return None
    hits = [v for s, l, v in fam.samples if s == metric and all(l.get(k) == x for k, x in labels.items())]
    return sum(hits) if hits else None
