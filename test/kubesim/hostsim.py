"""Glue between kubesim's cluster (cluster.py) and the GPU hosts (host.py): a mixin of cluster.Cluster.

cluster.py calls four hooks from its worker thread: _host_rule(pod) (the host contract, consulted after the
injected failure rules), _host_started(pod view, ready) once a pod's containers run, _host_stopped(uid) when
a pod is gone, and _pod_status(...) to post either a kubelet status (kubelet.py) or, for a pod whose sandbox
cannot be created or whose init container still waits, a Pending one (host.sandbox_status). The admin
endpoints GET /_sim/nodes/<name>/host and POST /_sim/nodes/<name>/reboot are served from here. A fifth hook,
_host_one_shot(pod, node), lets a one-shot pod of our validator image be admitted and run to its end
(oneshot.py) before the usual start.
"""

import threading
import time

import host
import kubelet
import oneshot
from ktime import now_rfc3339 as _now

NODES = "/v1/nodes"
PODS = "/v1/pods"
RUNTIMECLASSES = "node.k8s.io/v1/runtimeclasses"


def waits(rule):
    """A host rule under which the containers are not (re)started: the sandbox cannot be created, an init
    container still waits, or the readiness probe fails. No restart is counted for it."""
    return bool(rule) and bool(rule.get("hostSandbox") or rule.get("wait") or rule.get("unready"))


class HostSim:
    """Needs from the host class: store, nodes, pods, pods_by_node, gpu_counts, counters, _gpu_count, _mutate,
    _command, _maybe_start, _schedule, crashing, _start_pending."""

    def _host_init(self, args):
        self.hosts = {}  # node name -> host.Host (GPU nodes only)
        self.host_facts = {}  # node name -> facts given at creation (fleet / admin API)
        self.fleet_facts = host.parse_fleet(getattr(args, "fleet", None) or "")
        self._sandbox_events = {}  # pod uid -> the sandbox error an Event was recorded for

    def _host_for_node(self, name, node):
        """Called when the worker first sees a node: GPU nodes become hosts."""
        if name in self.hosts:
            return
        gpus = self._gpu_count(node)
        if gpus <= 0:
            return
        self.hosts[name] = host.Host(name, self.host_facts.get(name) or self._facts_from_node(name), gpus)

    def _facts_from_node(self, name):
        obj = self.store.get(NODES, "", name) or {}
        return {"runtime": host.runtime_of(obj), "os": host.os_of(obj)}

    def _host_forget(self, name):
        self.hosts.pop(name, None)

    def _pod_obj(self, p):
        get_entry = getattr(self.store, "get_entry", None)
        if get_entry is not None:
            e = get_entry(PODS, p.ns, p.name)
            return e.obj if e is not None else None
        return self.store.get(PODS, p.ns, p.name)

    def _handler(self, pod):
        rc = (pod.get("spec") or {}).get("runtimeClassName")
        if not rc:
            return ""
        obj = self.store.get(RUNTIMECLASSES, "", rc)
        return (obj or {}).get("handler", rc)

    def _host_rule(self, p):
        h = self.hosts.get(p.node)
        if h is None:
            return None
        pod = self._pod_obj(p)
        if pod is None or (pod.get("metadata") or {}).get("uid") != p.uid:
            return None
        cs = (pod.get("status") or {}).get("containerStatuses") or []
        if p.uid in self.crashing and cs and all("running" in (c.get("state") or {}) for c in cs):
            msg = h.probe(pod)  # started, failing its readiness probe: only that matters now
            return None if msg is None else {"unready": True, "host": True, "reason": None, "message": msg}
        rule = h.contract(pod, self._handler(pod))
        if rule is not None and rule.get("hostSandbox") and self._sandbox_events.get(p.uid) != rule["message"]:
            self._sandbox_events[p.uid] = rule["message"]
            self._sandbox_event(p, rule["message"])
        return rule

    def _sandbox_event(self, p, message):
        """The kubelet reports a failed RunPodSandbox only as a Warning Event on the pod
        (K: pkg/kubelet/kuberuntime/kuberuntime_manager.go SyncPod: FailedCreatePodSandBox)."""
        stamp = _now()
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": "%s.%x" % (p.name, time.time_ns()), "namespace": p.ns},
              "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": p.name, "namespace": p.ns, "uid": p.uid},
              "reason": "FailedCreatePodSandBox", "message": message, "type": "Warning",
              "source": {"component": "kubelet", "host": p.node}, "firstTimestamp": stamp, "lastTimestamp": stamp,
              "count": 1, "reportingComponent": "kubelet", "reportingInstance": p.node}
        try:
            self.store.create("/v1/events", ev)
        except Exception:  # noqa: BLE001 — events are best effort, as in client-go
            return

    def _host_started(self, p, ready):
        h = self.hosts.get(p.node)
        if h is None:
            return
        pod = self._pod_obj(p)
        if pod is not None:
            h.started(pod, self._handler(pod), ready)

    def _host_stopped(self, uid, node):
        self._sandbox_events.pop(uid, None)
        h = self.hosts.get(node)
        if h is not None:
            h.stopped(uid)

    def _host_start(self, p):
        """The pod's containers run on its host (contract passed): apply what they change there, then its
        readiness probes. None when Ready, else an "unready" rule (running, probe failing)."""
        h = self.hosts.get(p.node)
        pod = self._pod_obj(p) if h is not None else None
        if pod is None:
            return None
        handler = self._handler(pod)
        h.started(pod, handler, ready=False)
        return self._host_probe(h, pod)

    def _host_probe(self, h, pod):
        msg = h.probe(pod)
        if msg is None:
            h.became_ready(pod)
            return None
        return {"unready": True, "host": True, "reason": None, "message": msg}

    def _pod_status(self, pod, ip, rule, restarts, starting=False):
        if rule is not None and rule.get("hostSandbox"):
            # as any RunPodSandbox failure: Pending, ContainerCreating; the error is in the Event
            return kubelet.pod_status(pod, ip, {"sandbox": True}, restarts=0)
        if rule is not None and rule.get("wait"):
            return host.sandbox_status(pod, ip, rule, _now())
        if rule is not None and rule.get("unready"):
            return host.unready_status(kubelet.pod_status(pod, ip, None, restarts=restarts), rule)
        return kubelet.pod_status(pod, ip, rule, restarts=restarts, starting=starting)

    def _host_heal(self, p):
        """A pod that failed on its host's contract is tried again and now runs (a crash-looping container
        restarts once more; a pod waiting for its sandbox or an init container starts its containers); one
        that runs but failed its readiness probe is probed again. Returns True while it stays unready."""
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"
        h = self.hosts.get(p.node)
        pod = self._pod_obj(p)
        if pod is None:
            return False
        cs = (pod.get("status") or {}).get("containerStatuses") or []
        running = bool(cs) and all("running" in (c.get("state") or {}) for c in cs)
        if running and h is not None:
            rule = self._host_probe(h, pod)  # already running: only its readiness probe
        else:
            rule = self._host_start(p)
        # each failed try was counted when it was posted; this one runs
        restarts = max([c.get("restartCount", 0) for c in cs] or [0])
        if running and rule is not None:
            return True  # still unready: nothing new to post

        def heal(pod):
            pod["status"] = self._pod_status(pod, ip, rule, restarts=restarts)
        self._mutate(PODS, p.ns, p.name, heal, subresource="status", uid=p.uid, cow=[])
        return rule is not None

    # ---- one-shot validator pods (oneshot.py; issue 11 item 11) ------------------------------------------
    def _host_one_shot(self, p, node):
        """Called by the kubelet before it starts a pod: a one-shot pod of our validator image on a GPU host is
        admitted (or rejected) by the device manager and runs to its end here. False for any other pod, or
        one whose sandbox/init containers must wait first (the usual path shows that)."""
        h = self.hosts.get(p.node)
        pod = self._pod_obj(p) if h is not None else None
        if pod is None or (pod.get("metadata") or {}).get("uid") != p.uid or not oneshot.is_one_shot(pod):
            return False
        node_obj = self.store.get(NODES, "", p.node) or {}
        want = oneshot.disruption.gpu_request(pod.get("spec") or {})
        rejected = oneshot.admit(pod, node_obj, self.disruption._used_gpus(p.node) - want)
        stamp = _now()
        if rejected is not None:
            status = oneshot.rejected_status(pod, node.ip, rejected[0], rejected[1], stamp)
        else:
            rule = h.contract(pod, self._handler(pod))
            if rule is not None and (rule.get("hostSandbox") or rule.get("wait")):
                return False
            code, msg = oneshot.outcome(rule, node_obj, pod)
            status = oneshot.terminated_status(pod, node.ip, code, msg, stamp)

        def post(obj):
            if (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                return False
            obj["status"] = status
            return None
        if self._mutate(PODS, p.ns, p.name, post, subresource="status", uid=p.uid, cow=[]) is not None:
            self.counters["podsStarted"] += 1
        return True

    # ---- admin ----------------------------------------------------------------------------------------------
    def _admin_host(self, name):
        done, out = threading.Event(), {}

        def read():
            h = self.hosts.get(name)
            out["h"] = h.to_json() if h is not None else None
            done.set()
        self._command(read)
        done.wait(10)
        if out.get("h") is None:
            return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                         "reason": "NotFound", "message": 'node "%s" is not a simulated GPU host' % name}
        return 200, out["h"]

    def _admin_crash(self, name, body):
        """POST /_sim/nodes/<name>/crash {"component": "driver"}: that operand's container on the node exits
        once (as an OOM kill or a bug would), and the kubelet restarts it in the same pod, which must pass its
        host contract again."""
        comp = body.get("component")
        if not isinstance(comp, str) or not comp:
            return 400, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400,
                         "reason": "BadRequest", "message": '"component" (string) is required'}
        done, out = threading.Event(), {"crashed": []}

        def crash():
            h = self.hosts.get(name)
            node = self.nodes.get(name)
            ip = node.ip if node else "10.0.0.1"
            for puid in list(self.pods_by_node.get(name, ())):
                p = self.pods.get(puid)
                if p is None or p.deleting or not p.started or p.labels.get("app.kubernetes.io/component") != comp:
                    continue
                if h is not None:
                    h.crashed(puid)
                rule = {"reason": "CrashLoopBackOff", "message": None, "exitCode": 137,
                        "terminationMessage": "container exited"}

                def down(pod, rule=rule):
                    cs = (pod.get("status") or {}).get("containerStatuses") or []
                    restarts = max([c.get("restartCount", 0) for c in cs] or [0])
                    pod["status"] = kubelet.pod_status(pod, ip, rule, restarts=restarts + 1)
                if self._mutate(PODS, p.ns, p.name, down, subresource="status", uid=puid, cow=[]) is not None:
                    out["crashed"].append(p.name)
                    self.crashing[puid] = 1.0
                    self._schedule(1.0, "crash", (puid, p.ns, p.name))
            done.set()
        self._command(crash)
        done.wait(10)
        return 200, out

    def _admin_reboot(self, name):
        """The node reboots: new bootID, /run cleared, modules unloaded unless the host has its own driver, and
        every pod on it restarts (its containers are created again by the kubelet, in no particular order)."""
        if self.store.get(NODES, "", name) is None:
            return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                         "reason": "NotFound", "message": 'nodes "%s" not found' % name}
        done, out = threading.Event(), {}

        def reboot():
            out["r"] = self._reboot(name)
            done.set()
        self._command(reboot)
        done.wait(10)
        return 200, out.get("r") or {}

    def _reboot(self, name):
        h = self.hosts.get(name)
        boot_id = None
        if h is not None:
            h.reboot()
            boot_id = h.boot_id

        def new_boot(node):
            info = node.setdefault("status", {}).setdefault("nodeInfo", {})
            info["bootID"] = boot_id or info.get("bootID")
        if boot_id:
            self._mutate(NODES, "", name, new_boot, subresource="status", cow=[("status", "nodeInfo")])
        restarted = 0
        stamp = _now()
        for puid in list(self.pods_by_node.get(name, ())):
            p = self.pods.get(puid)
            if p is None or p.deleting:
                continue
            self.crashing.pop(puid, None)

            def down(pod):
                st = pod.get("status") or {}
                # the kubelet starts again: every container is created anew (Pending until then)
                pod["status"] = {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime":
                     stamp}], "startTime": st.get("startTime"), "qosClass": st.get("qosClass") or "BestEffort"}
            if self._mutate(PODS, p.ns, p.name, down, subresource="status", uid=puid, cow=[]) is not None:
                restarted += 1
        self.counters["reboots"] += 1
        return {"node": name, "bootID": boot_id, "podsRestarted": restarted}
