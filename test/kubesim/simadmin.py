"""The cluster half of kubesim's admin API (/_sim/...): nodes, labels, readiness, failure injection,
heartbeats, touch-nodes, settle and status. A mixin of cluster.Cluster, kept apart so the simulation
logic and the test-facing endpoints can be read separately.
"""

import threading

import fleet
import host
import placement
from ktime import now_rfc3339
from simcommon import meta as _meta

NODES = "/v1/nodes"


def status_error(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}


class BadRequest(Exception):
    pass


class AdminAPI:
    """Needs from the host class: store, nodes, pods, daemonsets, fail_rules, gpu_counts, gpus_per_node,
    counters, _mu, _q, _timers, _mutate, _objects, _count, _command, _apply_rules, _heartbeat,
    _gpu_count, settle."""

    def handle_admin(self, method, path, query, body):
        """Cluster-side /_sim/ endpoints. Returns (http code, JSON-able dict)."""
        try:
            return self._admin(method, path.rstrip("/"), query or {}, body)
        except BadRequest as e:
            return status_error(400, "BadRequest", str(e))

    def _admin(self, method, path, query, body):
        parts = path.split("/")[2:]  # after "", "_sim"
        body = body if isinstance(body, dict) else {}
        if parts == ["nodes"] and method == "POST":
            return self._admin_add_node(body)
        if parts == ["nodes"] and method == "GET":
            with self._mu:
                names = sorted(self.nodes)
            return 200, {"nodes": names}
        if len(parts) == 2 and parts[0] == "nodes" and method == "DELETE":
            if self.store.delete(NODES, "", parts[1]) is None:
                return status_error(404, "NotFound", 'nodes "%s" not found' % parts[1])
            self.gpu_counts.pop(parts[1], None)
            return 200, {"deleted": parts[1]}
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "labels" and method in ("POST", "PATCH"):
            return self._admin_labels(parts[1], body)
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "ready" and method == "POST":
            return self._admin_node_ready(parts[1], body)
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "host" and method == "GET":
            return self._admin_host(parts[1])  # hostsim.py
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "reboot" and method == "POST":
            return self._admin_reboot(parts[1])  # hostsim.py
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "crash" and method == "POST":
            return self._admin_crash(parts[1], body)  # hostsim.py
        if parts == ["fail"] and method == "POST":
            return self._admin_fail(body)
        if parts == ["fail"] and method == "GET":
            return 200, {"rules": [_rule_public(r) for r in self.fail_rules]}
        if parts == ["recover"] and method == "POST":
            return self._admin_recover(body)
        if parts == ["lifecycle"] and method == "POST":
            return self._admin_lifecycle(body)
        if parts == ["lifecycle"] and method == "DELETE":
            return self._admin_clear("life_rules")
        if parts == ["lifecycle"] and method == "GET":
            return 200, {"rules": [_public(r) for r in self.life_rules]}
        if parts == ["unschedulable"] and method == "POST":
            return self._admin_unschedulable(body)
        if parts == ["unschedulable"] and method == "DELETE":
            return self._admin_clear("unsched_rules", then=self._rebind)
        if parts == ["pod-failed"] and method == "POST":
            return self._admin_pod_failed(body)
        if parts == ["pod-failed"] and method == "DELETE":
            return self._admin_clear("failed_rules")
        if parts == ["restart"] and method == "POST":
            return self._admin_restart(body)
        if parts == ["touch-nodes"] and method == "POST":
            return self._admin_touch(body)
        if parts == ["heartbeat"] and method == "POST":
            self._command(self._heartbeat)
            return 200, {"heartbeat": True}
        if parts == ["settle"] and method in ("GET", "POST"):
            timeout = float(query.get("timeout", body.get("timeout", 10)) or 10)
            ok = self.settle(timeout)
            return (200, {"settled": True}) if ok else status_error(504, "Timeout", "cluster did not settle")
        if parts == ["status"] and method == "GET":
            return 200, self.status()
        out = self.disruption.handle_admin(method, parts, query, body)  # /_sim/workloads, /_sim/evictions
        if out is not None:
            return out
        return status_error(404, "NotFound", "no admin endpoint %s %s" % (method, path))

    def _command(self, fn):
        self._put(("cmd", fn))

    def status(self):
        with self._mu:
            pods = list(self.pods.values())
            out = {"nodes": len(self.nodes),
                   "gpuNodes": sum(1 for n in self.nodes.values() if self._gpu_count(n) > 0),
                   "gpuAllocatable": sum(1 for n in self.nodes.values() if n.gpu_alloc),
                   "daemonsets": len(self.daemonsets),
                   "podsTerminating": sum(1 for p in self.pods.values() if p.deleting),
                   "podsUnbound": sum(1 for p in self.pods.values() if not p.bound),
                   "podsUnschedulable": sum(1 for p in self.pods.values() if p.unschedulable),
                   "pods": len(pods),
                   "podsReady": sum(1 for p in pods if p.ready),
                   "podsByPhase": {}, "failRules": len(self.fail_rules),
                   "queued": self._q.qsize(), "timers": len(self._timers)}
        for p in pods:
            out["podsByPhase"][p.phase] = out["podsByPhase"].get(p.phase, 0) + 1
        out["counters"] = dict(self.counters)
        if getattr(self, "last_error", None):
            out["lastError"] = self.last_error
        return out

    def _admin_add_node(self, body):
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest('"name" (string) is required')
        gpu = bool(body.get("gpu", True))
        gpus = body.get("gpus", self.gpus_per_node if gpu else 0)
        if not isinstance(gpus, int) or gpus < 0:
            raise BadRequest('"gpus" must be a non-negative integer')
        labels = body.get("labels") or {}
        taints = body.get("taints") or []
        if not isinstance(labels, dict) or not isinstance(taints, list):
            raise BadRequest('"labels" must be an object and "taints" a list')
        product = body.get("product", fleet.DEFAULT_GPU_PRODUCT)
        facts = {k: body[k] for k in host.FACT_KEYS if k in body}  # runtime, os, hostDriver, hostToolkit
        try:
            host.check_facts(facts)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        index = self._count(NODES)
        node = fleet.build_node(name, index, gpu and gpus > 0, gpus, product=product, created=now_rfc3339(),
                                labels=labels, taints=taints, facts=facts)
        self.gpu_counts[name] = gpus if gpu else 0
        self.host_facts[name] = facts
        try:
            created = self.store.create(NODES, node)
        except Exception as e:  # noqa: BLE001
            if type(e).__name__ == "AlreadyExists":
                return status_error(409, "AlreadyExists", 'nodes "%s" already exists' % name)
            raise
        return 201, {"name": name, "uid": _meta(created)["uid"], "gpus": self.gpu_counts[name]}

    def _admin_labels(self, name, body):
        set_ = body.get("set") or {}
        remove = body.get("remove") or []
        if not isinstance(set_, dict) or not isinstance(remove, list):
            raise BadRequest('"set" must be an object and "remove" a list of keys')

        def relabel(obj):
            labels = obj.setdefault("metadata", {}).setdefault("labels", {})
            for k in remove:
                labels.pop(k, None)
            for k, v in set_.items():
                labels[k] = str(v)

        out = self._mutate(NODES, "", name, relabel, cow=[("metadata", "labels")])
        if out is None:
            return status_error(404, "NotFound", 'nodes "%s" not found' % name)
        return 200, {"name": name, "labels": _meta(out).get("labels") or {},
                     "resourceVersion": _meta(out).get("resourceVersion")}

    def _admin_node_ready(self, name, body):
        """Mark a node Ready or NotReady (Unknown), with the taints the node lifecycle controller adds."""
        ready = bool(body.get("ready", False))
        stamp = now_rfc3339()

        def cond(obj):
            for c in obj.setdefault("status", {}).setdefault("conditions", []):
                if c.get("type") == "Ready":
                    new = "True" if ready else "Unknown"
                    if c.get("status") != new:
                        c["lastTransitionTime"] = stamp
                    c["status"] = new
                    c["reason"] = "KubeletReady" if ready else "NodeStatusUnknown"
                    c["message"] = ("kubelet is posting ready status" if ready
                                    else "Kubelet stopped posting node status.")
                    c["lastHeartbeatTime"] = stamp

        def taint(obj):
            spec = obj.setdefault("spec", {})
            taints = [t for t in spec.get("taints") or () if t.get("key") != "node.kubernetes.io/unreachable"]
            if not ready:
                taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"})
                taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": stamp})
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)

        if self._mutate(NODES, "", name, cond, subresource="status", cow=[("status", "conditions")]) is None:
            return status_error(404, "NotFound", 'nodes "%s" not found' % name)
        self._mutate(NODES, "", name, taint, cow=[("spec",)])
        done = threading.Event()

        def pods():
            self._set_reachable(name, ready)
            done.set()

        self._command(pods)
        done.wait(10)
        return 200, {"name": name, "ready": ready}

    def _parse_rule(self, body, need_reason):
        node = body.get("node")
        if node is not None and not isinstance(node, str):
            raise BadRequest('"node" must be a string')
        ds = body.get("daemonset")
        sel_text = body.get("labelSelector")
        selector = None
        if sel_text is not None:
            try:
                selector = placement.parse_label_selector(sel_text)
            except ValueError as e:
                raise BadRequest(str(e)) from None
        term_msg = body.get("terminationMessage")
        if term_msg is not None and not isinstance(term_msg, str):
            raise BadRequest('"terminationMessage" must be a string')
        exit_code = body.get("exitCode")
        if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)
                                      or not 1 <= exit_code <= 255):
            raise BadRequest('"exitCode" must be an integer from 1 to 255')
        init = body.get("initContainer")
        if init is not None and not isinstance(init, str):
            raise BadRequest('"initContainer" must be a string')
        return {"node": node or "", "namespace": body.get("namespace") or "", "daemonset": ds or "",
                "selector": selector, "labelSelector": sel_text,
                "reason": body.get("reason") or "CrashLoopBackOff", "message": body.get("message") or "",
                "terminationMessage": term_msg or "", "exitCode": exit_code or 0,
                "sandbox": bool(body.get("sandbox")), "initContainer": init or ""}

    def _admin_fail(self, body):
        rule = self._parse_rule(body, True)
        done = threading.Event()

        def add():
            self.fail_rules.append(rule)
            self._apply_rules()
            done.set()

        self._command(add)
        done.wait(10)
        return 200, {"rule": _rule_public(rule), "rules": len(self.fail_rules)}

    def _admin_recover(self, body):
        want = self._parse_rule(body, False)
        keys = [k for k in ("node", "namespace", "daemonset", "labelSelector") if body.get(k) is not None]
        done = threading.Event()
        removed = []

        def recover():
            keep = []
            for r in self.fail_rules:
                (removed if all(r[k] == want[k] for k in keys) else keep).append(r)
            self.fail_rules[:] = keep
            self._apply_rules()
            done.set()

        self._command(recover)
        done.wait(10)
        return 200, {"removed": len(removed), "rules": len(self.fail_rules)}

    def _in_worker(self, fn):
        """Run fn in the simulation thread and wait for it (so the answer reflects the change)."""
        done = threading.Event()
        out = []

        def run():
            try:
                out.append(fn())
            finally:
                done.set()
        self._command(run)
        done.wait(10)
        return out[0] if out else None

    def _admin_clear(self, attr, then=None):
        def clear():
            n = len(getattr(self, attr))
            getattr(self, attr)[:] = []
            if then is not None:
                then()
            return n
        return 200, {"removed": self._in_worker(clear)}

    def _admin_lifecycle(self, body):
        """Per-operand pod lifecycle timing: startupSeconds (a started or restarted container runs not
        ready, started=false, for that long: its startup probe's window) and stopSeconds (how long its
        containers take to exit after SIGTERM, capped by the grace period; -1 = they never do, so the pod
        stays Terminating)."""
        rule = self._parse_rule(body, False)
        for key in ("startupSeconds", "stopSeconds"):
            v = body.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise BadRequest('"%s" must be a number' % key)
            rule[key] = v
        if rule["startupSeconds"] is not None and rule["startupSeconds"] < 0:
            raise BadRequest('"startupSeconds" must not be negative')

        def add():
            self.life_rules.insert(0, rule)  # the newest rule wins
            return len(self.life_rules)
        return 200, {"rule": _public(rule), "rules": self._in_worker(add)}

    def _admin_unschedulable(self, body):
        """The scheduler cannot place matching DaemonSet pods (created from now on): they stay Pending
        without a node, PodScheduled=False reason Unschedulable with `message`."""
        rule = self._parse_rule(body, False)
        rule["message"] = body.get("message") or ""

        def add():
            self.unsched_rules.append(rule)
            return len(self.unsched_rules)
        return 200, {"rule": _public(rule), "rules": self._in_worker(add)}

    def _admin_pod_failed(self, body):
        """The kubelet ends matching pods: phase Failed with `reason` (default Terminated: node shutdown;
        Evicted; UnexpectedAdmissionError, ...) and `message`. With "repeat": true every future pod there
        fails as it starts (an admission reject), until DELETE /_sim/pod-failed."""
        rule = self._parse_rule(body, False)
        rule["reason"] = body.get("reason") or "Terminated"
        rule["message"] = body.get("message") or ""
        repeat = bool(body.get("repeat"))

        def fail():
            n = 0
            for p in list(self.pods.values()):
                if (p.bound and not p.deleting and p.phase not in ("Failed", "Succeeded")
                        and self._rule_for(p, [rule]) is not None):
                    self._fail_pod(p, rule)
                    n += 1
            if repeat:
                self.failed_rules.append(rule)
            return n
        return 200, {"failed": self._in_worker(fail), "repeat": repeat}

    def _admin_restart(self, body):
        """Kill and restart matching running containers once (liveness failure, OOM): restartCount + 1,
        lastState.terminated {reason (default Error; OOMKilled), exitCode (default 137)}."""
        rule = self._parse_rule(body, False)
        reason = body.get("reason") or "Error"
        exit_code = body.get("exitCode") or 137

        def restart():
            n = 0
            for p in list(self.pods.values()):
                if (p.started and p.bound and not p.deleting and p.phase == "Running"
                        and p.uid not in self.crashing and self._rule_for(p, [rule]) is not None):
                    self._restart(p, reason, exit_code)
                    n += 1
            return n
        return 200, {"restarted": self._in_worker(restart)}

    def _admin_touch(self, body):
        key, value = body.get("label"), body.get("value", "")
        if not isinstance(key, str) or not key:
            raise BadRequest('"label" (string) is required')
        with self._mu:
            names = sorted(self.nodes)
        if not names:
            names = sorted(_meta(o)["name"] for o in self._objects(NODES))
        touched = []
        for name in names:
            def relabel(obj):
                labels = obj.setdefault("metadata", {}).setdefault("labels", {})
                if labels.get(key) == str(value):
                    return False
                labels[key] = str(value)
                touched.append(name)
                return None
            self._mutate(NODES, "", name, relabel, cow=[("metadata", "labels")])
        return 200, {"touched": len(touched), "resourceVersion": str(self.store.rv)}


def _rule_public(rule):
    return {k: rule[k] for k in ("node", "namespace", "daemonset", "labelSelector", "reason", "message",
                                 "terminationMessage", "exitCode", "sandbox", "initContainer") if rule.get(k)}


def _public(rule):
    keys = ("node", "namespace", "daemonset", "labelSelector", "startupSeconds", "stopSeconds", "message")
    return {k: rule[k] for k in keys if rule.get(k) not in (None, "")}
