"""The node side (issue 11): kubesim's GPU nodes are hosts whose kubelet enforces each operand image's host
contract (test/kubesim/host.py, cited in docs/kubesim.md and docs/operands.md), and the operands the
controller renders satisfy them on every runtime (containerd, cri-o, docker) and driver (ours, the host's).

Each test runs the real controller against a kubesim fleet built with --fleet / the admin API.
"""

import json
import os

import pytest

from kubesim_client import build_dir
from replica import CGP, NS, Replica, policy, prepare
from test_reconcile import condition, get_policy, wait_condition

CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")
PODS_PATH = "/api/v1/namespaces/%s/pods" % NS
DS_PATH = "/apis/apps/v1/namespaces/%s/daemonsets" % NS
MIXED = "containerd/ubuntu22.04,cri-o/rhel9.4,docker/ubuntu20.04,containerd/ubuntu22.04/host-driver"

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")


@pytest.fixture
def fleet(kubesim):
    """factory(spec, **kw) -> (sim, controller): a kubesim with --fleet spec, the CRD, a running controller."""
    started = []

    def make(spec, start=True, **kw):
        sim = kubesim(gpu_nodes=0, cpu_nodes=kw.pop("cpu_nodes", 0), pod_ready_delay=kw.pop("pod_ready_delay", 0.1),
                      extra_args=["--fleet", spec], **kw)
        prepare(sim)
        ctl = Replica(sim, leader_elect=False) if start else None
        if ctl:
            started.append(ctl)
        return sim, ctl

    yield make
    for ctl in started:
        if ctl.proc.poll() is None:
            ctl.stop()


def host(sim, node):
    return sim.admin("/_sim/nodes/%s/host" % node, method="GET")


def pods(sim, node=None):
    items = sim.get(PODS_PATH)[1]["items"]
    return [p for p in items if node is None or p["spec"].get("nodeName") == node]


def pod_of(sim, node, component):
    for p in pods(sim, node):
        if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component \
                and not p["metadata"].get("deletionTimestamp"):
            return p
    return None


def waiting(p):
    for c in (p or {}).get("status", {}).get("containerStatuses") or []:
        w = (c.get("state") or {}).get("waiting")
        if w:
            return w.get("reason"), w.get("message") or ((c.get("lastState") or {}).get("terminated") or {}).get(
                "message")
    return None


def failing(sim, name):
    return ((get_policy(sim, name) or {}).get("status") or {}).get("failingNodes") or []


def dump(sim, name):
    return json.dumps({"status": (get_policy(sim, name) or {}).get("status"),
                       "pods": [(p["spec"].get("nodeName"), p["metadata"]["name"], waiting(p)) for p in pods(sim)]},
                      indent=1)


# ---- part A: the simulated hosts ------------------------------------------------------------------------------

def test_fleet_facts_are_on_the_nodes(fleet):
    sim, _ = fleet(MIXED, start=False)
    nodes = {n["metadata"]["name"]: n for n in sim.get("/api/v1/nodes")[1]["items"]}
    assert sorted(nodes) == ["gpu-node-0", "gpu-node-1", "gpu-node-2", "gpu-node-3"]
    info = {k: (v["status"]["nodeInfo"]["containerRuntimeVersion"].split(":")[0],
                v["metadata"]["labels"]["feature.node.kubernetes.io/system-os_release.ID"]
                + v["metadata"]["labels"]["feature.node.kubernetes.io/system-os_release.VERSION_ID"],
                v["status"]["nodeInfo"]["osImage"].split()[0])
            for k, v in nodes.items()}
    assert info == {"gpu-node-0": ("containerd", "ubuntu22.04", "Ubuntu"), "gpu-node-1": ("cri-o", "rhel9.4", "Red"),
                    "gpu-node-2": ("docker", "ubuntu20.04", "Ubuntu"),
                    "gpu-node-3": ("containerd", "ubuntu22.04", "Ubuntu")}
    assert host(sim, "gpu-node-0")["modulesLoaded"] is False
    h3 = host(sim, "gpu-node-3")
    assert h3["modulesLoaded"] and h3["modulesBy"] == "host" and h3["driverRoot"] == "/"
    code, body, _ = sim.request("POST", "/_sim/nodes", {"name": "x", "runtime": "podman"})
    assert code == 400 and "runtime" in body["message"]
    assert sim.request("GET", "/_sim/nodes/nope/host")[0] == 404
    code, body, _ = sim.request("POST", "/_sim/nodes", {"name": "gpu-rhel", "runtime": "cri-o", "os": "rhel9.4"})
    assert code == 201, body
    sim.wait_for(lambda: sim.request("GET", "/_sim/nodes/gpu-rhel/host")[0] == 200, what="new host")
    assert host(sim, "gpu-rhel")["facts"]["runtime"] == "cri-o"


def test_reboot_clears_run_and_restarts_pods(fleet):
    sim, _ = fleet("containerd/ubuntu22.04/host-driver,containerd/ubuntu22.04", start=False)
    boot = sim.get("/api/v1/nodes/gpu-node-1")[1]["status"]["nodeInfo"]["bootID"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w", "namespace": "default"},
           "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "c", "image": "busybox"}]}}
    assert sim.post("/api/v1/namespaces/default/pods", pod)[0] == 201
    sim.wait_for(lambda: sim.get("/api/v1/namespaces/default/pods/w")[1]["status"].get("phase") == "Running",
                 what="running")
    r = sim.admin("/_sim/nodes/gpu-node-1/reboot")
    assert r["podsRestarted"] == 1 and r["bootID"] != boot
    assert sim.get("/api/v1/nodes/gpu-node-1")[1]["status"]["nodeInfo"]["bootID"] == r["bootID"]
    sim.wait_for(lambda: sim.get("/api/v1/namespaces/default/pods/w")[1]["status"].get("phase") == "Running",
                 what="running again")
    assert host(sim, "gpu-node-1")["boots"] == 2
    sim.admin("/_sim/nodes/gpu-node-0/reboot")
    assert host(sim, "gpu-node-0")["modulesLoaded"] is True  # the host's own driver loads at boot


def test_unknown_runtime_handler_is_a_sandbox_error(fleet):
    """A pod naming a RuntimeClass whose handler the node's runtime lacks never gets a sandbox: Pending,
    ContainerCreating, and a FailedCreatePodSandBox Event with the runtime's own message (containerd /
    cri-o / cri-dockerd)."""
    sim, _ = fleet("containerd/ubuntu22.04,cri-o/rhel9.4,docker/ubuntu20.04", start=False)
    sim.ok("POST", "/apis/node.k8s.io/v1/runtimeclasses",
           {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "nvidia"})
    for i in range(3):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p%d" % i, "namespace": "default"},
               "spec": {"nodeName": "gpu-node-%d" % i, "runtimeClassName": "nvidia",
                        "containers": [{"name": "c", "image": "busybox"}]}}
        assert sim.post("/api/v1/namespaces/default/pods", pod)[0] == 201

    def msgs():
        evs = {e["involvedObject"]["name"]: e["message"] for e in sim.get("/api/v1/namespaces/default/events")[1]["items"]
               if e["reason"] == "FailedCreatePodSandBox" and e["source"]["component"] == "kubelet"}
        out = []
        for i in range(3):
            st = sim.get("/api/v1/namespaces/default/pods/p%d" % i)[1].get("status") or {}
            cs = st.get("containerStatuses") or [{}]
            out.append((st.get("phase"), ((cs[0].get("state") or {}).get("waiting") or {}).get("reason"),
                        evs.get("p%d" % i)))
        return out
    sim.wait_for(lambda: all(m for _, _, m in msgs()), what="sandbox errors")
    got = [(ph, r, m) for ph, r, m in msgs()]
    assert all(ph == "Pending" and r == "ContainerCreating" for ph, r, _ in got), got
    got = [(ph, m) for ph, _, m in got]
    assert 'no runtime for "nvidia" is configured' in got[0][1]
    assert "failed to find runtime handler nvidia" in got[1][1]
    assert 'RuntimeHandler "nvidia" not supported' in got[2][1]


def converge(sim, name="gpus", timeout=40, **spec):
    sim.ok("POST", CGP, policy(name, **spec))
    try:
        return wait_condition(sim, name, "Ready", "True", timeout=timeout)
    except AssertionError:
        raise AssertionError(dump(sim, name)) from None


def ds_names(sim):
    return sorted(d["metadata"]["name"] for d in sim.get(DS_PATH)[1]["items"])


def pod_spec(sim, ds):
    return sim.get(DS_PATH + "/" + ds)[1]["spec"]["template"]["spec"]


def env(spec, name):
    for e in spec["containers"][0].get("env") or []:
        if e["name"] == name:
            return e.get("value")
    return None


def node_labels(sim, name):
    return {k: v for k, v in sim.get("/api/v1/nodes/" + name)[1]["metadata"]["labels"].items()
            if k.startswith("gpupolicy.dev/")}


# ---- part B: operands that satisfy the contracts ----------------------------------------------------------------

def test_mixed_fleet_converges_under_one_empty_policy(fleet):
    """containerd/ubuntu22.04, cri-o/rhel9.4, docker/ubuntu20.04 and a host-driver node under spec: {}: one
    DaemonSet per runtime and per driver OS, each node's runtime set up the way its runtime needs
    (before: the driver crash-looped on every node on its read-only /lib/modules)."""
    sim, _ = fleet(MIXED)
    pol = converge(sim)
    assert pol["status"]["gpus"]["allocatable"] == 32 and pol["status"]["nodesSummary"] == "4/4"
    assert ds_names(sim) == sorted(
        ["gpus-driver", "gpus-driver-rhel9-4", "gpus-driver-ubuntu20-04"]
        + ["gpus-%s%s" % (op, sfx) for op in ("container-toolkit", "device-plugin", "dcgm-exporter", "validator")
           for sfx in ("", "-crio", "-docker")])
    # only the nodes that differ from the default variant carry variant labels
    assert node_labels(sim, "gpu-node-0").get("gpupolicy.dev/runtime") is None
    assert node_labels(sim, "gpu-node-1")["gpupolicy.dev/runtime"] == "crio"
    assert node_labels(sim, "gpu-node-1")["gpupolicy.dev/os"] == "rhel9.4"
    assert node_labels(sim, "gpu-node-2")["gpupolicy.dev/runtime"] == "docker"
    assert node_labels(sim, "gpu-node-2")["gpupolicy.dev/os"] == "ubuntu20.04"
    # driver image per OS
    images = {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in pods(sim)
              if p["metadata"]["labels"]["app.kubernetes.io/component"] == "driver"}
    assert images["gpu-node-1"].endswith(":550.54.14-rhel9.4")
    assert images["gpu-node-2"].endswith(":550.54.14-ubuntu20.04")
    assert images["gpu-node-0"].endswith(":550.54.14-ubuntu22.04")
    # the RuntimeClass is named only where the runtime has the handler (containerd)
    assert pod_spec(sim, "gpus-device-plugin").get("runtimeClassName") == "nvidia"
    for ds in ("gpus-device-plugin-crio", "gpus-device-plugin-docker", "gpus-validator-crio",
               "gpus-dcgm-exporter-docker"):
        assert "runtimeClassName" not in pod_spec(sim, ds), ds
    crio = pod_spec(sim, "gpus-container-toolkit-crio")
    assert env(crio, "RUNTIME") == "crio" and env(crio, "CRIO_CONFIG_MODE") == "hook"
    assert env(pod_spec(sim, "gpus-container-toolkit-docker"), "RUNTIME") == "docker"
    h = {i: host(sim, "gpu-node-%d" % i) for i in range(4)}
    assert "nvidia" in h[0]["runtime"]["handlers"]
    assert h[1]["runtime"]["crioHook"] is True and "nvidia" not in h[1]["runtime"]["handlers"]
    assert h[2]["runtime"]["default"] == "nvidia" and h[2]["runtime"]["handlers"] == []
    for i in range(4):
        assert h[i]["modulesLoaded"] and h[i]["devCharLinks"] and h[i]["devicePluginSocket"], h[i]
        assert h[i]["validations"] == [".driver-ctr-ready", "toolkit-ready"], h[i]
    for p in pods(sim):
        cs = p["status"]["containerStatuses"][0]
        assert cs["ready"] and cs["restartCount"] == 0, (p["metadata"]["name"], cs)


def test_a_contract_breach_shows_in_failing_nodes(fleet, tmp_path):
    """The driver template as it was (host /lib/modules read-only) crash-loops on the simulated node the way
    the driver script fails, and status names the node."""
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "templates", "driver.yaml")).read()
    anchor = "          mountPath: /run/nvidia/validations\n"  # the main container's mounts
    assert src.count(anchor) == 1
    old = src.replace(anchor, anchor + "        - name: lib-modules\n          mountPath: /lib/modules\n"
                      "          readOnly: true\n", 1)
    old = old.replace("      volumes:\n", "      volumes:\n      - name: lib-modules\n        hostPath:\n"
                      "          path: /lib/modules\n          type: Directory\n", 1)
    (tmp_path / "driver.yaml").write_text(old)
    sim, _ = fleet("containerd/ubuntu22.04", start=False)
    ctl = Replica(sim, leader_elect=False, extra=("--templates-dir", str(tmp_path)))
    try:
        sim.ok("POST", CGP, policy("gpus"))
        sim.wait_for(lambda: any(f["operand"] == "driver" and f["node"] == "gpu-node-0" for f in failing(sim, "gpus")),
                     timeout=30, what="failingNodes")
        p = pod_of(sim, "gpu-node-0", "driver")
        term = p["status"]["containerStatuses"][0]["lastState"]["terminated"]
        assert "Read-only file system" in term["message"], term
        assert condition(get_policy(sim, "gpus"), "Ready")["status"] != "True"
    finally:
        ctl.stop()


def test_host_driver_with_our_toolkit(fleet):
    """driver.enabled=false on hosts with their own driver: the toolkit finds it under /host (before:
    DRIVER_ROOT_CTR_PATH defaulted to /run/nvidia/driver, empty there, and CDI generation failed)."""
    sim, _ = fleet("containerd/ubuntu22.04/host-driver,cri-o/rhel9.4/host-driver")
    converge(sim, driver={"enabled": False})
    tk = pod_spec(sim, "gpus-container-toolkit")
    assert env(tk, "DRIVER_ROOT_CTR_PATH") == "/host" and env(tk, "NVIDIA_DRIVER_ROOT") == "/"
    assert [c["name"] for c in tk["initContainers"]] == ["dev-char-symlinks"]  # no wait for a driver of ours
    h = host(sim, "gpu-node-0")
    assert h["modulesBy"] == "host" and h["runtime"]["driverRoot"] == "/" and h["devCharLinks"]


def test_preinstalled_sample_on_hosts_with_their_own_toolkit(fleet):
    """manifests/samples/preinstalled.yaml on hosts configured with `nvidia-ctk runtime configure` (handler
    nvidia, not the default): the pods name the RuntimeClass, which the policy now renders (before: no
    runtimeClassName, so no GPUs unless nvidia happened to be the default)."""
    sim, _ = fleet("containerd/ubuntu22.04/host-driver/host-toolkit:2")
    pol = converge(sim, name="preinstalled", driver={"enabled": False}, toolkit={"enabled": False})
    assert pol["status"]["gpus"]["allocatable"] == 16
    assert sim.get("/apis/node.k8s.io/v1/runtimeclasses/nvidia")[0] == 200
    assert pod_spec(sim, "preinstalled-device-plugin")["runtimeClassName"] == "nvidia"
    assert host(sim, "gpu-node-0")["runtime"]["default"] == "runc"


def node_settled(sim, node, n_pods=5):
    ps = pods(sim, node)
    return len(ps) == n_pods and all((p["status"].get("containerStatuses") or [{}])[0].get("ready") for p in ps)


def test_reboot_comes_back_in_stage_order_without_the_controller(fleet):
    """After a reboot (/run cleared, modules gone, every pod restarting at once) each later stage waits in an
    init container for the earlier stage's file under /run/nvidia/validations, so nothing crash-loops, and
    the controller is not needed for it (before: toolkit and plugin crash-looped until the driver was back).
    With the controller running, a reboot costs it no writes beyond status."""
    sim, ctl = fleet("containerd/ubuntu22.04:2,cri-o/rhel9.4", pod_ready_delay=0.3)
    converge(sim)
    assert ctl.stop() == 0
    for node in ("gpu-node-0", "gpu-node-2"):
        r = sim.admin("/_sim/nodes/%s/reboot" % node)
        assert r["podsRestarted"] == 5
        assert host(sim, node)["validations"] == [] and not host(sim, node)["modulesLoaded"]
        sim.wait_for(lambda: node_settled(sim, node), timeout=40, what="%s back" % node)
        for p in pods(sim, node):
            cs = p["status"]["containerStatuses"][0]
            assert cs["restartCount"] == 0 and "lastState" not in cs, (p["metadata"]["name"], cs)
        h = host(sim, node)
        assert h["modulesLoaded"] and h["devicePluginSocket"] and h["validations"] == [".driver-ctr-ready",
                                                                                       "toolkit-ready"]
    ctl2 = Replica(sim, leader_elect=False)
    try:
        wait_condition(sim, "gpus", "Ready", "True", timeout=30)
        sim.reset_counters()
        sim.admin("/_sim/nodes/gpu-node-1/reboot")
        sim.wait_for(lambda: node_settled(sim, "gpu-node-1"), timeout=40, what="gpu-node-1 back")
        wait_condition(sim, "gpus", "Ready", "True", timeout=30)
        writes = [r for r in sim.counters()["detail"] if r["client"] == "gpu-policy-controller"
                  and r["verb"] not in ("get", "list", "watch") and r.get("subresource") != "status"
                  and r.get("resource") not in ("leases", "events")]
        assert writes == [], writes
    finally:
        ctl2.stop()


def test_deleted_driver_pod_takes_over_its_node(fleet):
    """The documented upgrade path: delete the driver pod. The new one waits (init container) while the
    device plugin, exporter and validator hold the GPUs; the controller moves every later stage off the node
    (the new driver pod is newer than their pods), the driver loads, and they come back in stage order.
    The driver container never fails with "driver is in use" (before: it crash-looped on it for good)."""
    sim, _ = fleet("containerd/ubuntu22.04,cri-o/rhel9.4", pod_ready_delay=0.2)
    converge(sim)
    for node in ("gpu-node-0", "gpu-node-1"):
        old = pod_of(sim, node, "driver")
        before = {c: pod_of(sim, node, c)["metadata"]["uid"] for c in
                  ("container-toolkit", "device-plugin", "dcgm-exporter", "validator")}
        import time
        time.sleep(1.1)  # creationTimestamp has one-second resolution
        assert sim.delete(PODS_PATH + "/" + old["metadata"]["name"])[0] == 200
        sim.wait_for(lambda: (pod_of(sim, node, "driver") or old)["metadata"]["uid"] != old["metadata"]["uid"],
                     what="new driver pod")
        sim.wait_for(lambda: node_settled(sim, node) and all(
            (pod_of(sim, node, c) or {}).get("metadata", {}).get("uid") not in (None, before[c]) for c in before),
            timeout=40, what="%s back in order" % node)
        new = pod_of(sim, node, "driver")
        cs = new["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 0 and "lastState" not in cs, cs
        created = {c: pod_of(sim, node, c)["metadata"]["creationTimestamp"] for c in before}
        assert created["container-toolkit"] <= created["device-plugin"] <= created["validator"], created
        wait_condition(sim, "gpus", "Ready", "True", timeout=20)
        assert host(sim, node)["gpuHolders"] == 3


def test_toolkit_is_ready_only_once_the_runtime_is_configured(fleet):
    """A toolkit that edits a config file the node's runtime does not read runs, but is not Ready, so the
    device plugin is never unlocked there (before: Ready as soon as its binary existed, and the next stage
    sat in ContainerCreating on a handler the runtime never got)."""
    sim, _ = fleet("containerd/ubuntu22.04:2", pod_ready_delay=0.1)
    sim.ok("POST", CGP, policy("gpus", toolkit={"runtimeConfig": "/etc/containerd-unused/config.toml"}))
    sim.wait_for(lambda: pod_of(sim, "gpu-node-0", "container-toolkit") and pod_of(
        sim, "gpu-node-0", "container-toolkit")["status"].get("phase") == "Running", timeout=20, what="toolkit runs")
    import time
    time.sleep(3)
    tk = pod_of(sim, "gpu-node-0", "container-toolkit")
    cs = tk["status"]["containerStatuses"][0]
    assert "running" in cs["state"] and cs["ready"] is False, cs
    assert "gpupolicy.dev/device-plugin" not in node_labels(sim, "gpu-node-0")
    assert "nvidia" not in host(sim, "gpu-node-0")["runtime"]["handlers"]
    assert condition(get_policy(sim, "gpus"), "Ready")["status"] != "True"


def test_crashed_driver_comes_back_without_unloading(fleet):
    """The driver container exits while the plugin, exporter and validator hold the GPUs: the same pod
    restarts, finds its DRIVER_CONFIG_DIGEST in /run/nvidia/nvidia-driver.state with the modules loaded and
    reinstalls userspace only (before: no digest, so it tried to unload and crash-looped on "driver is in
    use" for good); the node is Ready again without anyone acting and the other operands never moved."""
    sim, _ = fleet("containerd/ubuntu22.04,docker/ubuntu20.04", pod_ready_delay=0.1)
    converge(sim)
    for node in ("gpu-node-0", "gpu-node-1"):
        others = {c: pod_of(sim, node, c)["metadata"]["uid"] for c in ("device-plugin", "validator")}
        r = sim.admin("/_sim/nodes/%s/crash" % node, {"component": "driver"})
        assert len(r["crashed"]) == 1, r
        sim.wait_for(lambda: (pod_of(sim, node, "driver")["status"]["containerStatuses"][0]).get("ready")
                     and pod_of(sim, node, "driver")["status"]["containerStatuses"][0]["restartCount"] == 1,
                     timeout=20, what="driver restarted")
        assert {c: pod_of(sim, node, c)["metadata"]["uid"] for c in others} == others
        assert host(sim, node)["gpuHolders"] == 3
    wait_condition(sim, "gpus", "Ready", "True", timeout=20)
