"""One-shot pods of our validator image on a GPU host (issue 11 item 11): pure, no store access.

The validator's allocation check (--check-allocation, docs/validator.md) creates a pod bound to its node
(spec.nodeName, so no scheduler runs) with restartPolicy Never that runs `gpu-policy-validator --json` and asks
for `nvidia.com/gpu: 1` without setting NVIDIA_VISIBLE_DEVICES itself. What a real node does with it, each rule
cited in docs/kubesim.md ("GPU hosts"):

- kubelet admission (K: pkg/kubelet/cm/devicemanager/manager.go devicesToAllocate; the message wrapped by
  pkg/kubelet/cm/admission/errors.go unexpectedAdmissionError and prefixed "Pod was rejected: " by
  pkg/kubelet/kubelet.go rejectPod): a node whose device plugin registered nvidia.com/gpu (its allocatable
  carries the key) admits the pod only while a device is free: allocatable minus what the node's other
  active pods hold. Else phase Failed, reason UnexpectedAdmissionError, message
  `Pod was rejected: Allocate failed due to requested number of devices unavailable for nvidia.com/gpu.
  Requested: 1, Available: 0, which is unexpected`; the container never runs.
- a node that never advertised nvidia.com/gpu (no device plugin registered): the kubelet's own resource check
  ignores extended resources the node does not know (K: pkg/kubelet/lifecycle/predicate.go
  removeMissingExtendedResources) and the device manager skips a resource no plugin registered
  (manager.go allocateContainerResources, isDevicePluginResource): the pod runs with no device injected. Our
  image is no CUDA image, so without NVIDIA_VISIBLE_DEVICES the NVIDIA runtime gives it nothing
  (nvidia-container-toolkit internal/config/image/cuda_image.go VisibleDevicesFromEnvVar: unset means "all"
  only for legacy CUDA images) and the validator ends with NoDriverLibrary (exit 10, docs/validator.md).
- admitted with a free device: the device plugin's Allocate answers NVIDIA_VISIBLE_DEVICES=<that GPU>
  (k8s-device-plugin internal/plugin/server.go Allocate, deviceListStrategy envvar) and the container then
  runs under the host's GPU-user contract (host.Host.contract: the runtime handler, the driver): it passes
  (phase Succeeded, exit 0) or ends Failed with that rule's exit code and termination message, once — a
  restartPolicy Never container is not restarted (K: pkg/kubelet/kubelet_pods.go getPhase).
"""

import disruption
import host

GPU = "nvidia.com/gpu"
NO_LIBRARY = ("NoDriverLibrary: libnvidia-ml.so.1: cannot open shared object file: No such file or directory "
              "(not in /usr/lib/x86_64-linux-gnu, /usr/lib64, /lib/x86_64-linux-gnu, /lib64, /usr/lib either)")


def is_one_shot(pod):
    """A restartPolicy Never pod running our validator image (recognised by its command, as host.py does)."""
    spec = pod.get("spec") or {}
    return spec.get("restartPolicy") == "Never" and any(
        host.operand_of(c) == "validator" for c in spec.get("containers") or ())


def advertised(node_obj):
    """The node's allocatable nvidia.com/gpu, or None when no device plugin registered the resource."""
    v = ((node_obj.get("status") or {}).get("allocatable") or {}).get(GPU)
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def admit(pod, node_obj, used_by_others):
    """None when the kubelet admits the pod, else (reason, message) of its rejection."""
    want = disruption.gpu_request(pod.get("spec") or {})
    alloc = advertised(node_obj)
    if want <= 0 or alloc is None:
        return None
    free = max(alloc - used_by_others, 0)
    if free >= want:
        return None
    return ("UnexpectedAdmissionError",
            "Pod was rejected: Allocate failed due to requested number of devices unavailable for %s. "
            "Requested: %d, Available: %d, which is unexpected" % (GPU, want, free))


def outcome(rule, node_obj, pod):
    """(exit code, termination message or None) of the admitted pod's container under host rule `rule`."""
    if disruption.gpu_request(pod.get("spec") or {}) > 0 and advertised(node_obj) is None:
        return 10, NO_LIBRARY  # nothing injected
    if rule is None:
        return 0, None
    return rule.get("exitCode") or 1, rule.get("terminationMessage") or rule.get("message") or "Error"


def rejected_status(pod, host_ip, reason, message, stamp):
    """What rejectPod posts: phase Failed with the admission reason and message; no container ran."""
    old = pod.get("status") or {}
    return {"phase": "Failed", "reason": reason, "message": message, "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}], "startTime": old.get("startTime") or stamp,
            "qosClass": old.get("qosClass") or "Burstable"}


def terminated_status(pod, host_ip, exit_code, message, stamp):
    """The container ran once and exited: Succeeded (exit 0) or Failed, its termination message kept."""
    spec, old = pod.get("spec") or {}, pod.get("status") or {}
    uid = (pod.get("metadata") or {}).get("uid", "")
    statuses = []
    for c in spec.get("containers") or ():
        cid = "containerd://" + host_hex(uid, c.get("name", ""))
        term = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error", "startedAt": stamp,
                "finishedAt": stamp, "containerID": cid}
        if message:
            term["message"] = message
        statuses.append({"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                         "containerID": cid, "ready": False, "started": False, "restartCount": 0,
                         "state": {"terminated": term}, "lastState": {}})
    phase = "Succeeded" if exit_code == 0 else "Failed"
    conds = [{"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": stamp}
             for t, s in (("PodReadyToStartContainers", "False"), ("Initialized", "True"), ("Ready", "False"),
                          ("ContainersReady", "False"), ("PodScheduled", "True"))]
    return {"phase": phase, "conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "startTime": old.get("startTime") or stamp, "containerStatuses": statuses,
            "qosClass": old.get("qosClass") or "Burstable"}


def host_hex(*parts):
    import kubelet
    return kubelet.hex_id(*parts)
