"""The validator's allocation check (issue 11 item 11, docs/validator.md): --check-allocation creates a one-shot
pod on its node that asks for nvidia.com/gpu: 1 and runs the validator there, reports the result and removes the
pod. Run here against kubesim, whose kubelet admits such a pod only with a free device and runs it under the
host's GPU contract (test/kubesim/oneshot.py, docs/kubesim.md "GPU hosts"). The validator itself runs on this
machine with the stub driver libraries, as in test_validator.py; its own Pod is a real one in kubesim.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from replica import NS
from test_node_side import converge, fleet, pod_of  # noqa: F401 (fleet is a fixture)
from test_validator import (SMALL, VALIDATOR, deploy_device_plugin, run, run_json, start,  # noqa: F401
                            stubs)  # stubs is a fixture

ALLOC = "gpu-policy-alloc-"
PODS = "/api/v1/namespaces/%s/pods" % NS
TEMPLATE_IMAGE = "ghcr.io/gpu-policy-controller/gpu-policy-controller:v0.1.0"

pytestmark = pytest.mark.skipif(not os.path.exists(VALIDATOR), reason="validator binary not built")


def alloc_pods(sim):
    return [p["metadata"]["name"] for p in sim.get(PODS)[1]["items"] if p["metadata"]["name"].startswith(ALLOC)]


def own_pod(sim, node, runtime_class="nvidia"):
    """A stand-in for the validator's own Pod, shaped like templates/validator.yaml's."""
    spec = {"nodeName": node, "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                                  "seccompProfile": {"type": "RuntimeDefault"}},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "validator", "image": TEMPLATE_IMAGE, "command": ["gpu-policy-validator"],
                            "args": ["--wait", "--hold"],
                            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}}]}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "validator-self", "namespace": NS}, "spec": spec}
    code, body, _ = sim.post(PODS, pod)
    assert code == 201, body
    return body


def check_args(sim, node, pod_name, *extra):
    return list(SMALL) + ["--check-allocation", "--node", node, "--namespace", NS, "--pod-name", pod_name,
                          "--kubeconfig", sim.kubeconfig] + list(extra)


def child_pids(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                continue
    return out


def allocation(out):
    [c] = [c for c in out["checks"] if c["name"] == "allocation"]
    return c


def validator_requests(sim):
    return [r for r in sim.counters()["detail"] if r["client"] == "gpu-policy-validator"]


def test_allocation_passes_on_a_healthy_gpu_host(stubs, fleet):
    """Driver, toolkit and device plugin from the controller: the pod is admitted, gets one GPU and passes; a
    leftover pod of that name (a crashed validator's) is replaced; nothing is left behind."""
    sim, _ = fleet("containerd/ubuntu22.04")
    converge(sim)
    node = "gpu-node-0"
    me = pod_of(sim, node, "validator")
    leftover = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ALLOC + node, "namespace": NS},
                "spec": {"nodeName": node, "restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}
    assert sim.post(PODS, leftover)[0] == 201
    sim.reset_counters()
    p, out = run_json(stubs, *check_args(sim, node, me["metadata"]["name"], "--check-plugin"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert allocation(out) == {"name": "allocation", "ok": True, "detail": "pod gpu-policy-alloc-gpu-node-0 on node "
                               "gpu-node-0 got one nvidia.com/gpu, vectorAdd passed"}
    assert [c["name"] for c in out["checks"]][-2:] == ["device-plugin", "allocation"]
    assert alloc_pods(sim) == []
    reqs = {(r["verb"], r["resource"], r["name"], r["code"]) for r in validator_requests(sim)}
    assert ("delete", "pods", ALLOC + node, 200) in reqs  # the leftover
    assert ("create", "pods", ALLOC + node, 201) in reqs
    assert ("get", "pods", me["metadata"]["name"], 200) in reqs


def test_allocation_is_busy_when_no_gpu_is_free(stubs, fleet):
    """Every GPU of the node taken by workload pods: the device manager refuses the pod (UnexpectedAdmissionError
    "requested number of devices unavailable"). Other pods hold the GPUs, so the node is busy (17), not failing,
    as a GPU in use is for the other checks."""
    sim, _ = fleet("containerd/ubuntu22.04")
    converge(sim)
    node = "gpu-node-0"
    me = pod_of(sim, node, "validator")
    gpus = int(sim.get("/api/v1/nodes/" + node)[1]["status"]["allocatable"]["nvidia.com/gpu"])
    sim.admin("/_sim/workloads", {"name": "train", "nodes": [node], "gpus": gpus})
    p, out = run_json(stubs, *check_args(sim, node, me["metadata"]["name"]))
    assert p.returncode == 17, p.stdout + p.stderr
    assert out["result"] == "GPUBusy"
    assert out["reason"] == (
        "GPUBusy: every nvidia.com/gpu of node gpu-node-0 is allocated to other pods (pod gpu-policy-alloc-gpu-node-0 "
        "not admitted: UnexpectedAdmissionError: Pod was rejected: Allocate failed due to requested number of devices "
        "unavailable for nvidia.com/gpu. Requested: 1, Available: 0, which is unexpected)")
    assert allocation(out)["ok"] is False
    assert alloc_pods(sim) == []
    # one GPU freed: it passes again
    train = [q["metadata"]["name"] for q in sim.get("/api/v1/namespaces/default/pods")[1]["items"]]
    sim.ok("DELETE", "/apis/apps/v1/namespaces/default/replicasets/train")
    for name in train:
        sim.request("DELETE", "/api/v1/namespaces/default/pods/%s?gracePeriodSeconds=0" % name)
    p, out = run_json(stubs, *check_args(sim, node, me["metadata"]["name"]))
    assert p.returncode == 0, p.stdout + p.stderr


def test_allocation_fails_without_the_device_plugin(stubs, fleet):
    """Host driver and runtime but no device plugin: nvidia.com/gpu is unknown to the node, the kubelet admits the
    pod and nothing injects a GPU, so the validator in it finds no driver library. --check-plugin says so first."""
    sim, _ = fleet("containerd/ubuntu22.04/host-driver/host-toolkit-default", start=False)
    node = "gpu-node-0"
    me = own_pod(sim, node)
    p, out = run_json(stubs, *check_args(sim, node, me["metadata"]["name"]))
    assert p.returncode == 18, p.stdout + p.stderr
    assert out["reason"].startswith(
        "AllocationFailed: vectorAdd failed in pod gpu-policy-alloc-gpu-node-0 with one nvidia.com/gpu on node "
        "gpu-node-0 (exit 10): NoDriverLibrary: libnvidia-ml.so.1: cannot open shared object file"), out["reason"]
    assert alloc_pods(sim) == []
    p, out = run_json(stubs, *check_args(sim, node, me["metadata"]["name"], "--check-plugin"))
    assert p.returncode == 15 and out["result"] == "PluginNotAdvertising"
    assert "allocation" not in [c["name"] for c in out["checks"]]
    assert alloc_pods(sim) == []


def test_a_pod_that_never_starts_times_out_and_is_removed(stubs, fleet):
    """No `nvidia` handler on the node: the pod waits in ContainerCreating; the check gives up within its phase
    and deletes it."""
    sim, _ = fleet("containerd/ubuntu22.04", start=False)
    node = "gpu-node-0"
    me = own_pod(sim, node)
    t0 = time.monotonic()
    p, out = run_json(stubs, *check_args(sim, node, me["metadata"]["name"], "--phase-timeout", "4"))
    assert time.monotonic() - t0 < 15
    assert p.returncode == 18, p.stdout + p.stderr
    assert out["reason"].startswith("AllocationFailed: pod gpu-policy-alloc-gpu-node-0 asking for one nvidia.com/gpu "
                                    "did not finish on node gpu-node-0 within 2s: phase Pending, ContainerCreating"), \
        out["reason"]
    assert alloc_pods(sim) == []


def test_sigterm_mid_check_removes_the_pod(stubs, fleet):
    sim, _ = fleet("containerd/ubuntu22.04", start=False)
    node = "gpu-node-0"
    me = own_pod(sim, node)
    proc = start(stubs, "--json", *check_args(sim, node, me["metadata"]["name"], "--phase-timeout", "60"))
    try:
        sim.wait_for(lambda: alloc_pods(sim) != [], timeout=20, what="the one-shot pod")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 16, out + err
    assert "stopped by a signal" in out
    assert alloc_pods(sim) == []


def test_the_validator_pod_going_away_takes_the_one_shot_pod_with_it(stubs, fleet):
    """The ownerReference: should the validator die mid-check, the garbage collector removes its pod."""
    sim, _ = fleet("containerd/ubuntu22.04", start=False)
    node = "gpu-node-0"
    me = own_pod(sim, node)
    proc = start(stubs, "--json", *check_args(sim, node, me["metadata"]["name"], "--phase-timeout", "60"))
    try:
        sim.wait_for(lambda: alloc_pods(sim) != [], timeout=20, what="the one-shot pod")
        children = [pid for pid in child_pids(proc.pid)]
        proc.kill()  # SIGKILL: no clean-up of its own
        proc.communicate(timeout=30)
        for pid in children:  # its check process would delete the pod at the end of its wait: not that
            os.kill(pid, signal.SIGKILL)
        # its check process may live on a moment; what matters is the GC
        sim.request("DELETE", PODS + "/validator-self?gracePeriodSeconds=0")
        sim.wait_for(lambda: alloc_pods(sim) == [], timeout=20, what="the one-shot pod collected")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_usage_needs_namespace_and_pod(stubs):
    p = run(stubs, "--check-allocation", "--node", "n", env={"POD_NAMESPACE": "x"})
    assert p.returncode == 2
    assert "--check-allocation needs --node, --namespace and --pod-name" in p.stderr


@pytest.mark.skipif(not shutil.which("valgrind") or os.environ.get("GPC_SANITIZED"),
                    reason="valgrind not installed, or the binary is sanitized")
def test_valgrind_clean_allocation_check(stubs, kubesim):
    """The allocation check's API path (own Pod, delete, create, polling, delete) frees what it took, passing and
    failing, in the check process and in the validator."""
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0, tls=True,
                  extra_args=["--fleet", "containerd/ubuntu22.04/host-driver/host-toolkit-default"])
    sim.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    me = own_pod(sim, "gpu-node-0")
    for plugin, code in ((False, 18), (True, 0)):
        if plugin:
            deploy_device_plugin(sim)
        p = subprocess.run(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                            VALIDATOR, "--nvml-lib", stubs["nvml"], "--cuda-lib", stubs["cuda"]]
                           + check_args(sim, "gpu-node-0", me["metadata"]["name"]),
                           env={"PATH": os.environ.get("PATH", ""), "STUB_MODE": "healthy2"},
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == code, p.stdout + p.stderr
        assert alloc_pods(sim) == []
