#!/usr/bin/env python3
"""The API-side helpers of `make demo` (scripts/demo.sh), stdlib only, so the
demo also runs where kubectl is missing.

    demo_progress.py --server URL --ca FILE --token-file FILE COMMAND ...
      watch  --policy P [--timeout S]  print each stage a node unlocks and each change of the
                                       policy's Ready condition as it happens; exit 0 once
                                       Ready=True, 1 on timeout (after printing what is stuck)
      summary --policy P               the policy, node labels and operand DaemonSets, as tables
      fail --node N --daemonset D      kubesim: make that DaemonSet's pod on N crash (sabotage)
      delete --policy P [--timeout S]  delete the policy and wait until its finalizer has
                                       removed every node label it wrote
"""
import argparse
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

STAGES = ["driver", "container-toolkit", "device-plugin", "dcgm-exporter", "validator"]
CGP = "/apis/gpupolicy.dev/v1alpha1/clustergpupolicies"
NODES = "/api/v1/nodes"
DAEMONSETS = "/apis/apps/v1/namespaces/%s/daemonsets"
LABEL = "gpupolicy.dev/"


class Api:
    def __init__(self, server, ca, token_file):
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca) if ca else None
        self.token = None
        if token_file:
            with open(token_file) as f:
                self.token = f.read().strip()

    def call(self, method, path, body=None):
        """-> (HTTP status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except OSError:
            return None, None

    def get(self, path):
        code, obj = self.call("GET", path)
        return obj if code == 200 else None


def condition(policy, ctype):
    for c in ((policy or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def labels_of(node):
    return node["metadata"].get("labels") or {}


def watch(api, args):
    start = time.monotonic()
    seen = {}
    last = None
    policy = None
    while time.monotonic() - start < args.timeout:
        t = time.monotonic() - start
        nodes = (api.get(NODES) or {}).get("items") or []
        for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            name, labels = n["metadata"]["name"], labels_of(n)
            if labels.get(LABEL + "policy") != args.policy:
                continue
            unlocked = [s for s in STAGES if labels.get(LABEL + s) == "true"]
            before = seen.get(name)
            if before is None:
                info = (n.get("status") or {}).get("nodeInfo") or {}
                print("[%5.1fs] %-12s claimed by policy %s (%s, %s)" % (
                    t, name, args.policy, (info.get("containerRuntimeVersion") or "?").replace("://", " "),
                    info.get("osImage") or "?"))
                before = []
            for s in unlocked:
                if s not in before:
                    print("[%5.1fs] %-12s unlocked %s" % (t, name, s))
            seen[name] = unlocked
        policy = api.get(CGP + "/" + args.policy)
        cond = condition(policy, "Ready")
        if cond:
            key = (cond.get("status"), cond.get("reason"), policy["status"].get("nodesSummary", "?"))
            if key != last:
                print("[%5.1fs] policy %s: Ready=%s reason=%s nodes %s" % (t, args.policy, *key))
                last = key
            if cond.get("status") == "True":
                sys.stdout.flush()
                return 0
        sys.stdout.flush()
        time.sleep(0.2)
    print("timed out after %.0fs: policy %s is not Ready" % (args.timeout, args.policy), file=sys.stderr)
    status = (policy or {}).get("status") or {}
    cond = condition(policy, "Ready") or {}
    print("  Ready=%s reason=%s: %s" % (cond.get("status"), cond.get("reason"), cond.get("message")),
          file=sys.stderr)
    for f in status.get("failingNodes") or []:
        print("  failing: node %s operand %s: %s %s" % (f.get("node"), f.get("operand"), f.get("reason"),
                                                        f.get("message", "")), file=sys.stderr)
    return 1


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


def summary(api, args):
    policy = api.get(CGP + "/" + args.policy)
    if policy is None:
        print("policy %s not found" % args.policy, file=sys.stderr)
        return 1
    st = policy.get("status") or {}
    ready = condition(policy, "Ready") or {}
    table([["NAME", "READY", "NODES", "GPUS", "REASON"],
           [args.policy, ready.get("status", ""), st.get("nodesSummary", ""),
            (st.get("gpus") or {}).get("allocatable", ""), ready.get("reason", "")]])
    print()
    rows = [["NODE", "POLICY"] + [s.upper() for s in STAGES]]
    for n in sorted((api.get(NODES) or {}).get("items") or [], key=lambda n: n["metadata"]["name"]):
        labels = labels_of(n)
        rows.append([n["metadata"]["name"], labels.get(LABEL + "policy", "")] +
                    [labels.get(LABEL + s, "") for s in STAGES])
    table(rows)
    print()
    rows = [["DAEMONSET", "DESIRED", "READY", "UP-TO-DATE"]]
    for d in (api.get(DAEMONSETS % args.namespace) or {}).get("items") or []:
        s = d.get("status") or {}
        rows.append([d["metadata"]["name"], s.get("desiredNumberScheduled", 0), s.get("numberReady", 0),
                     s.get("updatedNumberScheduled", 0)])
    table(rows)
    return 0


def fail(api, args):
    rule = {"node": args.node}
    if args.daemonset:
        rule["daemonset"] = args.daemonset
    if args.component:  # whichever variant DaemonSet runs it on that node
        rule["labelSelector"] = "app.kubernetes.io/component=" + args.component
    code, out = api.call("POST", "/_sim/fail", rule)
    if code != 200:
        print("kubesim /_sim/fail -> %s" % code, file=sys.stderr)
        return 1
    print("kubesim: %s pods of %s will crash" % (args.node, args.daemonset or args.component))
    return 0


def delete(api, args):
    code, _ = api.call("DELETE", CGP + "/" + args.policy)
    if code not in (200, 202):
        print("DELETE policy %s -> %s" % (args.policy, code), file=sys.stderr)
        return 1
    start = time.monotonic()
    while time.monotonic() - start < args.timeout:
        gone = api.call("GET", CGP + "/" + args.policy)[0] == 404
        labelled = [n["metadata"]["name"] for n in (api.get(NODES) or {}).get("items") or []
                    if any(k.startswith(LABEL) and k != LABEL + "operands" and v != "false"
                           for k, v in labels_of(n).items())]
        if gone and not labelled:
            print("[%5.1fs] policy %s deleted; no node carries its labels any more" %
                  (time.monotonic() - start, args.policy))
            return 0
        time.sleep(0.2)
    print("timed out waiting for policy %s's cleanup" % args.policy, file=sys.stderr)
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--token-file")
    ap.add_argument("--namespace", default="gpu-policy-system")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--policy", required=True)
    w.add_argument("--timeout", type=float, default=45)
    s = sub.add_parser("summary")
    s.add_argument("--policy", required=True)
    f = sub.add_parser("fail")
    f.add_argument("--node", required=True)
    f.add_argument("--daemonset")
    f.add_argument("--component")
    d = sub.add_parser("delete")
    d.add_argument("--policy", required=True)
    d.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()
    api = Api(args.server, args.ca, args.token_file)
    return {"watch": watch, "summary": summary, "fail": fail, "delete": delete}[args.cmd](api, args)


if __name__ == "__main__":
    sys.exit(main())
