"""kubesim's kubelet side of a pod's life: starting its containers (with the host's rules, hostsim.py),
binding (the scheduler for DaemonSet pods), graceful termination, crash loops and the /_sim/ failure rules."""

import time

import hostsim
import kubelet
import placement
from ktime import now_rfc3339
from simcommon import PODS

class PodSim:
    """A mixin of cluster.Cluster: runs on its worker thread, with its caches and store helpers."""

    # ---- kubelet -------------------------------------------------------------------------------------
    def _maybe_start(self, p):
        if (p.bound and p.node in self.nodes and p.phase == "Pending"
                and p.uid not in self._start_pending):
            self._start_pending.add(p.uid)
            self._schedule(self.ready_delay, "start", (p.uid, p.ns, p.name))

    def _rule_for(self, p, rules=None, host=True):
        """The first rule (of fail_rules, or the given list) whose node/namespace/DaemonSet/selector
        keys all match the pod; for fail_rules, then the host contract of its images (host.py), checked
        when containers are (re)created (host=False for a running pod)."""
        for rule in self.fail_rules if rules is None else rules:
            if rule["node"] and rule["node"] != p.node:
                continue
            if rule["namespace"] and rule["namespace"] != p.ns:
                continue
            if rule["daemonset"] and not (p.owner_kind == "DaemonSet" and p.owner_name == rule["daemonset"]):
                continue
            if rule["selector"] is not None and not placement.labels_match(rule["selector"], p.labels):
                continue
            if rule.get("initContainer") and rule["initContainer"] not in p.init_names:
                continue  # no such init container in this pod
            return rule
        return self._host_rule(p) if host and rules is None else None

    def _life(self, p, key):
        """A lifecycle setting (startupSeconds, stopSeconds) for the pod, or None."""
        for rule in self.life_rules:
            if rule.get(key) is not None and self._rule_for(p, [rule]) is not None:
                return rule[key]
        return None

    def _kubelet_start(self, uid, ns, name):
        self._start_pending.discard(uid)
        p = self.pods.get(uid)
        if p is None or p.started or p.deleting:
            return
        node = self.nodes.get(p.node)
        if node is None or p.node in self.unreachable:
            return  # started when the node's kubelet comes back
        failed = self._rule_for(p, self.failed_rules)
        if failed is not None:  # e.g. admission rejects every pod there
            self._fail_pod(p, failed)
            return
        if self._host_one_shot(p, node):  # hostsim.py: a one-shot validator pod is admitted and ends there
            return
        rule = self._rule_for(p)
        if rule is None:
            rule = self._host_start(p)  # it runs on its GPU host: None when its readiness probe passes
        kind = kubelet.rule_kind(rule)
        waits = hostsim.waits(rule)  # a host wait (sandbox, init container, readiness): no restart
        startup = self._life(p, "startupSeconds") if rule is None else None

        def run(pod):
            if pod.get("status", {}).get("containerStatuses"):
                return False
            pod["status"] = self._pod_status(pod, node.ip, rule,
                                             restarts=1 if kind in ("crash", "init") and not waits else 0,
                                             starting=bool(startup))
            return None

        if self._mutate(PODS, ns, name, run, subresource="status", uid=uid, cow=[]) is not None:
            self.counters["podsStarted"] += 1
            if kind in ("crash", "init"):
                self.crashing[uid] = 1.0
                self._schedule(1.0, "crash", (uid, ns, name))
            elif kind is not None:
                self.static_fail.add(uid)
            elif startup:
                self._schedule(startup, "startup", (uid, ns, name))

    def _startup_done(self, uid, ns, name):
        """The startup probe passed: the container is started and (readiness passing) Ready."""
        p = self.pods.get(uid)
        if p is None or not p.starting or p.node in self.unreachable or self._rule_for(p, host=False) is not None:
            return
        self._post_running(p)

    def _post_running(self, p, starting=False, term=None, bump=False):
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"

        def post(pod):
            restarts = kubelet.restarts_of(pod) + (1 if bump else 0)
            pod["status"] = kubelet.pod_status(pod, ip, None, restarts=restarts, starting=starting, term=term)
        self._mutate(PODS, p.ns, p.name, post, subresource="status", uid=p.uid, cow=[])

    def _restart(self, p, reason, exit_code):
        """A container killed and restarted (liveness failure, OOM): restartCount + 1, lastState.terminated
        {reason, exitCode}, running again; not ready through its start-up window, if it has one."""
        startup = self._life(p, "startupSeconds")
        stamp = now_rfc3339()
        self._post_running(p, starting=bool(startup), bump=True,
                           term={"exitCode": exit_code, "reason": reason, "startedAt": stamp, "finishedAt": stamp})
        if startup:
            self._schedule(startup, "startup", (p.uid, p.ns, p.name))

    def _fail_pod(self, p, rule):
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"
        self.crashing.pop(p.uid, None)

        def fail(pod):
            if (pod.get("status") or {}).get("phase") == "Failed":
                return False
            pod["status"] = kubelet.failed_status(pod, ip, rule.get("reason") or "Terminated", rule.get("message"))
            return None
        if self._mutate(PODS, p.ns, p.name, fail, subresource="status", uid=p.uid, cow=[]) is not None:
            self.counters["podsFailed"] += 1

    # ---- scheduler ---------------------------------------------------------------------------------
    def _bind(self, uid):
        """The default scheduler for DaemonSet pods (created unbound with a node affinity): bind to that
        node (K: pkg/registry/core/pod/storage/storage.go BindingREST assignPod: spec.nodeName and
        PodScheduled=True in one write), or, under an /_sim/unschedulable rule, record the failed attempt
        (K: pkg/scheduler/schedule_one.go handleSchedulingFailure: PodScheduled=False, reason
        Unschedulable, the fit error as message) and leave the pod Pending without a node."""
        p = self.pods.get(uid)
        if p is not None and not p.node:
            self.disruption.schedule(uid)  # not a DaemonSet pod: the general filters (issue 12)
            return
        if p is None or p.bound or p.deleting or p.node not in self.nodes:
            return
        rule = self._rule_for(p, self.unsched_rules)
        stamp = now_rfc3339()
        if rule is not None:
            n = len(self.nodes)
            msg = rule.get("message") or (
                "0/%d nodes are available: 1 Insufficient cpu, %d node(s) didn't match Pod's node "
                "affinity/selector. preemption: 0/%d nodes are available: 1 No preemption victims found for "
                "incoming pod, %d Preemption is not helpful for scheduling." % (n, n - 1, n, n - 1))

            def unschedulable(pod):
                st = pod["status"] = dict(pod.get("status") or {})  # never mutate the stored object
                conds = [c for c in st.get("conditions") or () if c.get("type") != "PodScheduled"]
                prev = next((c for c in st.get("conditions") or () if c.get("type") == "PodScheduled"), {})
                if prev.get("status") == "False" and prev.get("message") == msg:
                    return False
                conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                              "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == "False"
                              else stamp, "reason": "Unschedulable", "message": msg})
                st["conditions"] = conds
                return None
            self._mutate(PODS, p.ns, p.name, unschedulable, subresource="status", uid=uid, cow=[])
            return

        def bind(pod):
            if (pod.get("spec") or {}).get("nodeName"):
                return False
            pod["spec"] = dict(pod.get("spec") or {}, nodeName=p.node)
            st = pod["status"] = dict(pod.get("status") or {})
            conds = [c for c in st.get("conditions") or () if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": stamp})
            st["conditions"] = conds
            return None
        if self._mutate(PODS, p.ns, p.name, bind, subresource="binding", uid=uid, cow=[]) is not None:
            self.counters["podsBound"] += 1

    def _rebind(self):
        """After an unschedulable rule went away: the scheduler retries its unschedulable pods."""
        for p in list(self.pods.values()):
            if not p.bound and p.node and not p.deleting:
                self._bind(p.uid)

    # ---- graceful termination ----------------------------------------------------------------------
    def _begin_termination(self, p):
        """The kubelet sees deletionTimestamp (K: pkg/kubelet/pod_workers.go, kuberuntime killPod): it
        stops the containers within the grace period, then finishes the deletion with grace 0
        (K: pkg/kubelet/status/status_manager.go syncPod, canBeDeleted). The prober reports startup and
        liveness as succeeded once deletion started (K: pkg/kubelet/prober/worker.go doProbe, "Graceful
        shutdown of the pod"), so a container inside its start-up window becomes started and, with
        readiness passing, Ready while Terminating. A node whose kubelet is down never finishes: its pods
        stay Terminating until it is back (or the node object is deleted)."""
        if not p.bound or p.node not in self.nodes or p.node in self.unreachable:
            return
        if p.starting and self._rule_for(p, host=False) is None:
            self._post_running(p)
        stop = self._life(p, "stopSeconds")
        stop = self.stop_delay if stop is None else stop
        if stop < 0:
            return  # stuck: the containers never stop (a hung preStop hook, an unkillable process)
        left = max(0.0, p.delete_at - time.time()) if p.delete_at else 0.0
        self._schedule(min(stop, left), "kill", p.uid)

    def _kill(self, uid):
        p = self.pods.get(uid)
        if p is None or not p.deleting or p.node in self.unreachable:
            return
        if self._delete(PODS, p.ns, p.name, grace=0, uid=uid) is not None:
            self.counters["podsTerminated"] += 1

    def _crash_tick(self, uid, ns, name):
        backoff = self.crashing.get(uid)
        p = self.pods.get(uid)
        if backoff is None or p is None:
            return
        rule = self._rule_for(p)
        if rule is None:
            self.crashing.pop(uid, None)
            if not p.ready and p.node not in self.unreachable and not p.deleting and self._host_heal(p):
                self.crashing[uid] = backoff  # running, but its readiness probe still fails: probe again
                self._schedule(backoff, "crash", (uid, ns, name))
            return
        if p.node in self.unreachable:  # nobody reports the restarts meanwhile
            self._schedule(backoff, "crash", (uid, ns, name))
            return
        node = self.nodes.get(p.node)
        ip = node.ip if node else "10.0.0.1"

        def crash(pod):
            waiting = hostsim.waits(rule)
            if waiting and _waiting_as(pod, rule):
                return False  # still waiting for the same thing: the kubelet posts no change
            pod["status"] = self._pod_status(pod, ip, rule, restarts=kubelet.restarts_of(pod) + (0 if waiting else 1))

        self._mutate(PODS, ns, name, crash, subresource="status", uid=uid, cow=[])
        backoff = min(backoff * 2, 10.0)
        self.crashing[uid] = backoff
        self._schedule(backoff, "crash", (uid, ns, name))

    def _apply_rules(self):
        """After fail/recover: crash running pods that now match a rule, heal failing ones that don't.
        A healed container restarts: with a start-up window (/_sim/lifecycle startupSeconds) it runs not
        ready, its last termination kept, until the window ends."""
        for p in list(self.pods.values()):
            if not p.started or p.deleting or p.phase in ("Failed", "Succeeded"):
                continue
            rule = self._rule_for(p, host=p.uid in self.crashing)
            kind = kubelet.rule_kind(rule)
            node = self.nodes.get(p.node)
            ip = node.ip if node else "10.0.0.1"
            if kind in ("image", "sandbox"):
                if p.uid in self.static_fail:
                    continue
                self.crashing.pop(p.uid, None)
                self.static_fail.add(p.uid)

                def block(pod, rule=rule, ip=ip):
                    pod["status"] = kubelet.pod_status(pod, ip, rule, restarts=0)
                self._mutate(PODS, p.ns, p.name, block, subresource="status", uid=p.uid, cow=[])
            elif rule is not None and p.uid not in self.crashing:
                self.static_fail.discard(p.uid)

                def crash(pod, rule=rule, ip=ip):
                    pod["status"] = self._pod_status(pod, ip, rule, restarts=kubelet.restarts_of(pod) + 1)
                self._mutate(PODS, p.ns, p.name, crash, subresource="status", uid=p.uid, cow=[])
                self.crashing[p.uid] = 1.0
                self._schedule(1.0, "crash", (p.uid, p.ns, p.name))
            elif rule is None and (p.uid in self.crashing or p.uid in self.static_fail or
                                   (not p.ready and not p.starting)):
                self.crashing.pop(p.uid, None)
                self.static_fail.discard(p.uid)
                startup = self._life(p, "startupSeconds")
                self._post_running(p, starting=bool(startup))
                self._host_started(p, True)
                if startup:
                    self._schedule(startup, "startup", (p.uid, p.ns, p.name))



def _waiting_as(pod, rule):
    """Whether a pod already shows the waiting state a host rule would post (no write needed)."""
    cs = (pod.get("status") or {}).get("containerStatuses") or []
    if rule.get("unready"):
        return bool(cs) and all("running" in (c.get("state") or {}) and not c.get("ready") for c in cs)
    if rule.get("hostSandbox"):
        return bool(cs) and (pod.get("status") or {}).get("phase") == "Pending" and all(
            ((c.get("state") or {}).get("waiting") or {}).get("reason") in ("ContainerCreating", "PodInitializing")
            for c in cs)
    return bool(cs) and all(((c.get("state") or {}).get("waiting") or {}).get("message") == rule.get("message")
                            for c in cs)
