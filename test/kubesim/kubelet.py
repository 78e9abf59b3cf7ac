"""What kubesim's kubelet posts as pod status: pure functions over plain dicts.

A started pod is Running with the five pod conditions, IPs and one containerStatuses entry per
container; a pod under a failure rule crash-loops (not Ready, waiting reason/message, last
termination with reason Error, the rule's exit code (default 1) and its terminationMessage as the
message, as a kubelet copies the container's termination log; restartCount as given). A healed
container keeps its last termination, as a kubelet does.
"""

import hashlib
import time


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _meta(obj):
    return obj.get("metadata") or {}


def hex_id(*parts):
    """Stable hex digest for IDs that look real (container IDs, image digests, pod IPs)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def qos(spec):
    for c in spec.get("containers") or ():
        res = c.get("resources") or {}
        if res.get("requests") or res.get("limits"):
            return "Burstable"
    return "BestEffort"


def pod_status(pod, host_ip, rule, restarts):
    """Status the kubelet posts for a started pod: Running and Ready, or crash-looping per rule."""
    m, spec = _meta(pod), pod.get("spec") or {}
    old = pod.get("status") or {}
    stamp = now_rfc3339()
    ready = rule is None
    start = old.get("startTime") or stamp
    h = int(hex_id(m.get("uid", ""))[:8], 16) % 64516
    pod_ip = host_ip if spec.get("hostNetwork") else "192.168.%d.%d" % (h // 254 % 254, h % 254 + 1)
    names = [c.get("name", "") for c in spec.get("containers") or ()]
    old_conds = {c.get("type"): c for c in old.get("conditions") or ()}

    def cond(ctype, ok):
        prev = old_conds.get(ctype) or {}
        status = "True" if ok else "False"
        c = {"type": ctype, "status": status, "lastProbeTime": None,
             "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status else stamp}
        if not ok:
            c["reason"] = "ContainersNotReady"
            c["message"] = "containers with unready status: [%s]" % " ".join(names)
        return c

    statuses = []
    old_cs = {c.get("name"): c for c in old.get("containerStatuses") or ()}
    for c in spec.get("containers") or ():
        name, image = c.get("name", ""), c.get("image", "")
        cid = "containerd://" + hex_id(m.get("uid"), name, restarts)
        prev = old_cs.get(name) or {}
        st = {"name": name, "image": image, "imageID": image.split(":")[0] + "@sha256:" + hex_id(image),
              "containerID": cid, "ready": ready, "started": ready, "restartCount": restarts}
        if ready:
            st["state"] = {"running": {"startedAt": stamp if restarts or not prev else
                                       (prev.get("state", {}).get("running", {}).get("startedAt") or stamp)}}
        else:
            msg = rule.get("message") or "back-off 10s restarting failed container=%s pod=%s_%s(%s)" % (
                name, m.get("name"), m.get("namespace"), m.get("uid"))
            st["state"] = {"waiting": {"reason": rule.get("reason") or "CrashLoopBackOff", "message": msg}}
        prev_term = (prev.get("lastState") or {}).get("terminated")
        if ready and restarts and prev_term:
            st["lastState"] = {"terminated": prev_term}
        elif restarts:
            term = {"exitCode": (rule.get("exitCode") or 1) if rule else 1, "reason": "Error", "startedAt": start,
                    "finishedAt": stamp, "containerID": cid}
            if rule and rule.get("terminationMessage"):
                term["message"] = rule["terminationMessage"]
            st["lastState"] = {"terminated": term}
        statuses.append(st)
    status = {"phase": "Running",
              "conditions": [cond("PodReadyToStartContainers", True), cond("Initialized", True),
                             cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", True)],
              "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
              "startTime": start, "containerStatuses": statuses, "qosClass": old.get("qosClass") or qos(spec)}
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            {"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": True,
             "restartCount": 0, "started": False,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start,
                                      "finishedAt": start}}} for c in spec["initContainers"]]
    return status
