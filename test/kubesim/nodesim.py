"""kubesim's node side: reachability (node lifecycle controller + kubelet), heartbeats, and the device
plugin's effect on a node's nvidia.com/gpu capacity."""

import kubelet
from ktime import now_rfc3339
from simcommon import GPU_RESOURCE, NODES, PODS, is_device_plugin

class NodeSim:
    """A mixin of cluster.Cluster: runs on its worker thread, with its caches and store helpers."""

    def _set_reachable(self, node_name, reachable):
        """Node lifecycle controller + kubelet: an unreachable node's pods lose Ready (MarkPodsNotReady);
        when it is back, its kubelet posts their real status again and starts pods that waited."""
        if reachable:
            self.unreachable.discard(node_name)
        else:
            self.unreachable.add(node_name)
        node = self.nodes.get(node_name)
        ip = node.ip if node else "10.0.0.1"
        stamp = now_rfc3339()
        for puid in list(self.pods_by_node.get(node_name, ())):
            p = self.pods.get(puid)
            if p is None:
                continue
            if p.deleting:
                if reachable:
                    self._begin_termination(p)  # the kubelet is back and finishes the kill
                continue
            if not p.started:
                if reachable:
                    self._maybe_start(p)
                continue
            if not reachable:
                def unready(pod):
                    conds = (pod.get("status") or {}).get("conditions") or []
                    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                        return False
                    st = dict(pod["status"])
                    st["conditions"] = [dict(c, status="False", lastTransitionTime=stamp)
                                        if c.get("type") == "Ready" else c for c in conds]
                    pod["status"] = st
                    return None
                self._mutate(PODS, p.ns, p.name, unready, subresource="status", uid=p.uid, cow=[])
            else:
                rule = self._rule_for(p, host=p.uid in self.crashing)

                def repost(pod, rule=rule, starting=p.starting):
                    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                        return False
                    pod["status"] = self._pod_status(pod, ip, rule, restarts=kubelet.restarts_of(pod),
                                                     starting=starting)
                    return None
                self._mutate(PODS, p.ns, p.name, repost, subresource="status", uid=p.uid, cow=[])

    def _heartbeat(self, names=None):
        """Bump lastHeartbeatTime of the given nodes' conditions (all nodes when None)."""
        stamp = now_rfc3339()
        for name in list(self.nodes) if names is None else names:
            if name in self.unreachable or name not in self.nodes:
                continue  # its kubelet is not posting

            def beat(node):
                for c in node.get("status", {}).get("conditions") or ():
                    c["lastHeartbeatTime"] = stamp
            self._mutate(NODES, "", name, beat, subresource="status", cow=[("status", "conditions")])
        self.counters["heartbeats"] += 1

    def _heartbeat_tick(self):
        """--heartbeat S: every node once per S seconds, spread evenly over the interval as kubelets'
        independent timers are (5,000 nodes at S=300 give ~17 node updates/s, not a burst)."""
        names = sorted(self.nodes)
        if names:
            share = max(1, -(-len(names) * self._hb_tick // self.heartbeat))
            start = self._hb_cursor % len(names)
            chunk = (names + names)[start:start + min(int(share), len(names))]
            self._hb_cursor = start + len(chunk)
            self._heartbeat(chunk)

    # ---- device plugin ---------------------------------------------------------------------------------
    def _gpu_count(self, node):
        if node.name in self.gpu_counts:
            return self.gpu_counts[node.name]
        try:
            n = int(node.labels.get("nvidia.com/gpu.count", ""))
        except ValueError:
            n = 0
        if n <= 0 and node.labels.get("feature.node.kubernetes.io/pci-10de.present") == "true":
            n = self.gpus_per_node
        return n

    def _device_plugin(self, name):
        node = self.nodes.get(name)
        if node is None:
            return
        serving = any(p is not None and p.ready and not p.deleting and is_device_plugin(p.labels)
                      for p in (self.pods.get(u) for u in self.pods_by_node.get(name, ())))
        gpus = self._gpu_count(node)
        want = str(gpus) if serving and gpus > 0 else None
        if want == node.gpu_alloc:
            return

        def advertise(obj):
            st = obj.setdefault("status", {})
            changed = False
            for key in ("capacity", "allocatable"):
                sect = st.setdefault(key, {})
                if want is None and GPU_RESOURCE in sect:
                    del sect[GPU_RESOURCE]
                    changed = True
                elif want is not None and sect.get(GPU_RESOURCE) != want:
                    sect[GPU_RESOURCE] = want
                    changed = True
            return None if changed else False

        if self._mutate(NODES, "", name, advertise, subresource="status",
                        cow=[("status", "capacity"), ("status", "allocatable")]) is not None:
            node.gpu_alloc = want
            self.counters["devicePluginUpdates"] += 1
