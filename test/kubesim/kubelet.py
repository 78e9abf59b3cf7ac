"""What kubesim's kubelet posts as pod status: pure functions over plain dicts.

Shapes follow pkg/kubelet/kubelet_pods.go (generateAPIPodStatus, getPhase,
convertToAPIContainerStatuses) and pkg/kubelet/status/generate.go (pod conditions).

A started pod is Running with the five pod conditions, IPs and one containerStatuses entry per
container; a pod under a failure rule crash-loops (not Ready, waiting reason/message, last
termination with reason Error, the rule's exit code (default 1) and its terminationMessage as the
message, as a kubelet copies the container's termination log; restartCount as given). A healed
container keeps its last termination, as a kubelet does.
"""

import hashlib

from ktime import now_rfc3339
from simcommon import meta as _meta


def hex_id(*parts):
    """Stable hex digest for IDs that look real (container IDs, image digests, pod IPs)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def qos(spec):
    for c in spec.get("containers") or ():
        res = c.get("resources") or {}
        if res.get("requests") or res.get("limits"):
            return "Burstable"
    return "BestEffort"


# Waiting reasons of a container whose image never arrived: it never ran, so the pod stays Pending
# with no last termination and no restarts (K: pkg/kubelet/images/types.go ErrImagePullBackOff, ...).
IMAGE_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
SANDBOX_MESSAGE = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox '
                   'runtime: no runtime for "nvidia" is configured')


def rule_kind(rule):
    """What a failure rule does to a pod: crash (the container crash-loops), init (an init container
    crash-loops), image (never pulled), sandbox (the sandbox is never created)."""
    if rule is None:
        return None
    if rule.get("sandbox"):
        return "sandbox"
    if rule.get("initContainer"):
        return "init"
    if (rule.get("reason") or "") in IMAGE_REASONS:
        return "image"
    return "crash"


def restarts_of(pod):
    """The highest restartCount among a pod's containers and init containers."""
    st = pod.get("status") or {}
    return max([c.get("restartCount", 0) for c in (st.get("containerStatuses") or []) +
                (st.get("initContainerStatuses") or [])] or [0])


def _pod_ip(pod, host_ip):
    m, spec = _meta(pod), pod.get("spec") or {}
    h = int(hex_id(m.get("uid", ""))[:8], 16) % 64516
    return host_ip if spec.get("hostNetwork") else "192.168.%d.%d" % (h // 254 % 254, h % 254 + 1)


def _conditions(old, stamp, names, ready, initialized=True, sandbox=True, init_names=()):
    """The pod conditions as pkg/kubelet/status/generate.go builds them (GeneratePodReadyCondition,
    GeneratePodInitializedCondition, GeneratePodReadyToStartContainersCondition); a condition keeps
    its lastTransitionTime while its status does not change."""
    old_conds = {c.get("type"): c for c in old.get("conditions") or ()}

    def cond(ctype, ok, reason=None, message=None):
        prev = old_conds.get(ctype) or {}
        status = "True" if ok else "False"
        c = {"type": ctype, "status": status, "lastProbeTime": None,
             "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status else stamp}
        if not ok and reason:
            c["reason"] = reason
            c["message"] = message
        return c

    not_ready = "containers with unready status: [%s]" % " ".join(names)
    not_init = "containers with incomplete status: [%s]" % " ".join(init_names)
    return [cond("PodReadyToStartContainers", sandbox),
            cond("Initialized", initialized, "ContainersNotInitialized", not_init),
            cond("Ready", ready, "ContainersNotReady", not_ready),
            cond("ContainersReady", ready, "ContainersNotReady", not_ready),
            cond("PodScheduled", True)]


def pod_status(pod, host_ip, rule, restarts, starting=False, term=None):
    """Status the kubelet posts for a started pod: Running and Ready; Running but not ready while its
    start-up window lasts (starting: started=false, the startup probe has not passed yet); or the
    shape of the failure rule (rule_kind). term: a termination to record as lastState (a restart)."""
    kind = rule_kind(rule)
    if kind in ("image", "sandbox"):
        return _never_started(pod, host_ip, rule, kind)
    if kind == "init":
        return _init_failing(pod, host_ip, rule, restarts)
    m, spec = _meta(pod), pod.get("spec") or {}
    old = pod.get("status") or {}
    stamp = now_rfc3339()
    ready = rule is None and not starting
    start = old.get("startTime") or stamp
    pod_ip = _pod_ip(pod, host_ip)
    names = [c.get("name", "") for c in spec.get("containers") or ()]

    statuses = []
    old_cs = {c.get("name"): c for c in old.get("containerStatuses") or ()}
    for c in spec.get("containers") or ():
        name, image = c.get("name", ""), c.get("image", "")
        cid = "containerd://" + hex_id(m.get("uid"), name, restarts)
        prev = old_cs.get(name) or {}
        st = {"name": name, "image": image, "imageID": image.split(":")[0] + "@sha256:" + hex_id(image),
              "containerID": cid, "ready": ready, "started": ready, "restartCount": restarts}
        prev_running = (prev.get("state") or {}).get("running") or {}
        if rule is None:
            # a container keeps its startedAt while the same instance runs (ready or not)
            same = prev.get("containerID") == cid and prev_running.get("startedAt")
            st["state"] = {"running": {"startedAt": prev_running["startedAt"] if same else stamp}}
        else:
            msg = rule.get("message") or "back-off 10s restarting failed container=%s pod=%s_%s(%s)" % (
                name, m.get("name"), m.get("namespace"), m.get("uid"))
            st["state"] = {"waiting": {"reason": rule.get("reason") or "CrashLoopBackOff", "message": msg}}
        prev_term = (prev.get("lastState") or {}).get("terminated")
        if term is not None:
            st["lastState"] = {"terminated": dict(term, containerID=prev.get("containerID") or cid)}
        elif rule is None and restarts and prev_term:
            st["lastState"] = {"terminated": prev_term}
        elif restarts:
            # a crash-looping container exits within a second of each start
            t = {"exitCode": (rule.get("exitCode") or 1) if rule else 1, "reason": "Error",
                 "startedAt": stamp if rule else start, "finishedAt": stamp, "containerID": cid}
            if rule and rule.get("terminationMessage"):
                t["message"] = rule["terminationMessage"]
            st["lastState"] = {"terminated": t}
        statuses.append(st)
    status = {"phase": "Running",
              "conditions": _conditions(old, stamp, names, ready),
              "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
              "startTime": start, "containerStatuses": statuses, "qosClass": old.get("qosClass") or qos(spec)}
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            {"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": True,
             "restartCount": 0, "started": False,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start,
                                      "finishedAt": start}}} for c in spec["initContainers"]]
    return status


def _never_started(pod, host_ip, rule, kind):
    """A pod whose containers never ran (K: pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses,
    getPhase): Pending, every container waiting, restartCount 0, no lastState. image: the pull failed
    (waiting ImagePullBackOff/ErrImagePull with the pull error). sandbox: RunPodSandbox failed (an
    unknown runtime handler): containers waiting ContainerCreating, PodReadyToStartContainers=False,
    no pod IP; the error itself is only in the pod's FailedCreatePodSandBox events."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    stamp = now_rfc3339()
    names = [c.get("name", "") for c in spec.get("containers") or ()]
    init_names = [c.get("name", "") for c in spec.get("initContainers") or ()]
    statuses = []
    for c in spec.get("containers") or ():
        image = c.get("image", "")
        if kind == "image":
            waiting = {"reason": rule.get("reason"),
                       "message": rule.get("message") or 'Back-off pulling image "%s"' % image}
        else:
            waiting = {"reason": "PodInitializing" if init_names else "ContainerCreating"}
        statuses.append({"name": c.get("name", ""), "image": image, "imageID": "", "ready": False,
                         "started": False, "restartCount": 0, "state": {"waiting": waiting}, "lastState": {}})
    sandbox = kind != "sandbox"
    status = {"phase": "Pending",
              "conditions": _conditions(old, stamp, names, False, initialized=sandbox or not init_names,
                                        sandbox=sandbox, init_names=init_names),
              "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": old.get("startTime") or stamp,
              "containerStatuses": statuses, "qosClass": old.get("qosClass") or qos(spec)}
    if sandbox:
        ip = _pod_ip(pod, host_ip)
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    if init_names:
        status["initContainerStatuses"] = [
            {"name": n, "image": c.get("image", ""), "imageID": "", "ready": False, "restartCount": 0,
             "started": False, "state": {"waiting": {"reason": "PodInitializing"}}, "lastState": {}}
            for n, c in zip(init_names, spec.get("initContainers"))]
        if kind == "image":
            # init containers run first, each image pulled before it starts (K: kuberuntime_manager.go
            # computePodActions): the pull failure shows on the first one
            first = status["initContainerStatuses"][0]
            first["state"] = {"waiting": {"reason": rule.get("reason"), "message": rule.get("message") or
                                          'Back-off pulling image "%s"' % first["image"]}}
    return status


def _init_failing(pod, host_ip, rule, restarts):
    """An init container that crash-loops (kubectl shows Init:CrashLoopBackOff; K: kubelet_pods.go getPhase
    and convertToAPIContainerStatuses, status/generate.go GeneratePodInitializedCondition): Pending,
    Initialized=False ContainersNotInitialized, the init container waiting CrashLoopBackOff with its
    last termination (exit code, termination message) and restarts; init containers after it and the
    app containers wait with PodInitializing."""
    m, spec = _meta(pod), pod.get("spec") or {}
    old = pod.get("status") or {}
    stamp = now_rfc3339()
    start = old.get("startTime") or stamp
    names = [c.get("name", "") for c in spec.get("containers") or ()]
    inits = spec.get("initContainers") or [{"name": rule["initContainer"], "image": ""}]
    failing = rule["initContainer"]
    init_names = [c.get("name", "") for c in inits]
    at = init_names.index(failing) if failing in init_names else 0
    init_st = []
    for i, c in enumerate(inits):
        name, image = c.get("name", ""), c.get("image", "")
        cid = "containerd://" + hex_id(m.get("uid"), name, restarts)
        st = {"name": name, "image": image, "imageID": image.split(":")[0] + "@sha256:" + hex_id(image),
              "ready": False, "started": False, "restartCount": 0}
        if i > at:  # init containers run in order: the later ones have not started
            st.update(imageID="", state={"waiting": {"reason": "PodInitializing"}}, lastState={})
        elif i == at:
            t = {"exitCode": rule.get("exitCode") or 1, "reason": "Error", "startedAt": stamp, "finishedAt": stamp,
                 "containerID": cid}
            if rule.get("terminationMessage"):
                t["message"] = rule["terminationMessage"]
            st.update(containerID=cid, restartCount=restarts, lastState={"terminated": t},
                      state={"waiting": {"reason": "CrashLoopBackOff", "message": rule.get("message") or
                                         "back-off 10s restarting failed container=%s pod=%s_%s(%s)" % (
                                             name, m.get("name"), m.get("namespace"), m.get("uid"))}})
        else:  # an init container before the failing one completed
            st.update(containerID=cid, ready=True, state={"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": start, "containerID": cid}})
        init_st.append(st)
    statuses = [{"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": False,
                 "started": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}},
                 "lastState": {}} for c in spec.get("containers") or ()]
    ip = _pod_ip(pod, host_ip)
    return {"phase": "Pending",
            "conditions": _conditions(old, stamp, names, False, initialized=False, init_names=[failing]),
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": start, "initContainerStatuses": init_st, "containerStatuses": statuses,
            "qosClass": old.get("qosClass") or qos(spec)}


# What the kubelet writes for a pod it ends (K: pkg/kubelet/nodeshutdown/nodeshutdown_manager_linux.go
# for a node shutdown; pkg/kubelet/eviction for Evicted; pkg/kubelet/lifecycle admission for rejects).
FAILED_DEFAULTS = {"Terminated": "Pod was terminated in response to imminent node shutdown.",
                   "Evicted": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki.",
                   "UnexpectedAdmissionError": "Allocate failed due to can't allocate unhealthy devices "
                                               "nvidia.com/gpu, which is unexpected"}


def failed_status(pod, host_ip, reason, message):
    """A pod the kubelet ended: phase Failed with the pod-level reason/message, not Ready, a
    DisruptionTarget condition (K: pkg/kubelet/status/status_manager.go, node shutdown / eviction), its
    containers terminated (exit 137, killed)."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    stamp = now_rfc3339()
    names = [c.get("name", "") for c in spec.get("containers") or ()]
    message = message or FAILED_DEFAULTS.get(reason) or "Pod was rejected: %s" % reason
    conds = [c for c in _conditions(old, stamp, names, False) if c["type"] != "PodReadyToStartContainers"]
    conds.insert(0, {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None,
                     "lastTransitionTime": stamp})
    if reason in ("Terminated", "Evicted"):
        conds.append({"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": stamp, "reason": "TerminationByKubelet", "message": message})
    statuses = []
    old_cs = {c.get("name"): c for c in old.get("containerStatuses") or ()}
    for c in spec.get("containers") or ():
        prev = old_cs.get(c.get("name")) or {}
        started = ((prev.get("state") or {}).get("running") or {}).get("startedAt") or stamp
        statuses.append({"name": c.get("name", ""), "image": c.get("image", ""), "imageID": prev.get("imageID", ""),
                         "containerID": prev.get("containerID", ""), "ready": False, "started": False,
                         "restartCount": prev.get("restartCount", 0),
                         "state": {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": started,
                                                  "finishedAt": stamp}}})
    out = {"phase": "Failed", "reason": reason, "message": message, "conditions": conds,
           "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": old.get("startTime") or stamp,
           "containerStatuses": statuses, "qosClass": old.get("qosClass") or qos(spec)}
    return out
