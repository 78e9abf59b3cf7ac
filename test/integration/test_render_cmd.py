"""`gpu-policy-controller render` against kubesim: the objects it prints are
accepted by the API server as they are (kubectl apply, default validation),
and the node label plan it prints, once applied, makes the DaemonSets land on
exactly the GPU nodes, first stage only."""

import json
import os
import re
import subprocess

from kubesim_client import build_dir, repo_root

NS = "gpu-policy-system"


def render(*args):
    exe = os.path.join(build_dir(), "gpu-policy-controller")
    return subprocess.run([exe, "render", *args], capture_output=True, text=True, timeout=60,
                          cwd=repo_root())


def label_plan(out):
    """{node: {label: value or None}} from the '#   node: k=v -k' comment lines."""
    plan = {}
    for line in out.splitlines():
        m = re.match(r"^#   ([^:()]+): (.*)$", line)
        if not m:
            continue
        labels = {}
        for tok in m.group(2).split():
            if tok.startswith("-"):
                labels[tok[1:]] = None
            else:
                k, v = tok.split("=", 1)
                labels[k] = v
        plan[m.group(1)] = labels
    return plan


def test_render_applies_and_schedules_first_stage(kubesim, tmp_path):
    sim = kubesim(gpu_nodes=2, cpu_nodes=1, pod_ready_delay=0.1)
    nodes = sim.kubectl("get", "nodes", "-o", "json").stdout
    nodes_file = tmp_path / "nodes.json"
    nodes_file.write_text(nodes)
    gpu_nodes = sorted(n["metadata"]["name"] for n in json.loads(nodes)["items"]
                       if n["metadata"].get("labels", {}).get("nvidia.com/gpu.present") == "true"
                       or any(k.startswith("feature.node.kubernetes.io/pci-") and k.endswith("10de.present")
                              for k in n["metadata"].get("labels", {})))
    assert len(gpu_nodes) == 2

    r = render("-f", "manifests/samples/minimal.yaml", "--nodes", str(nodes_file))
    assert r.returncode == 0, r.stderr
    plan = label_plan(r.stdout)
    assert sorted(plan) == gpu_nodes
    for labels in plan.values():
        assert labels == {"gpupolicy.dev/policy": "gpus", "gpupolicy.dev/driver": "true"}

    # The rendered objects as they are, through kubectl's default (server-side
    # schema) validation.
    sim.kubectl("create", "namespace", NS, check=False)
    sim.kubectl("apply", "-f", "-", input=r.stdout)
    ds = json.loads(sim.kubectl("get", "daemonsets", "-n", NS, "-o", "json").stdout)["items"]
    assert sorted(d["metadata"]["name"] for d in ds) == [
        "gpus-container-toolkit", "gpus-dcgm-exporter", "gpus-device-plugin", "gpus-driver",
        "gpus-validator"]
    assert sim.kubectl("get", "runtimeclass", "nvidia", "-o", "jsonpath={.handler}").stdout == "nvidia"

    # Nothing is scheduled before the controller (here: us) labels the nodes.
    pods = json.loads(sim.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
    assert pods == []

    for node, labels in plan.items():
        sim.kubectl("label", "node", node, *("%s=%s" % kv for kv in labels.items()))

    def driver_pods():
        items = json.loads(sim.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
        return items if len(items) == 2 else None

    pods = sim.wait_for(driver_pods, timeout=15, what="one driver pod per GPU node")
    assert sorted(p["spec"]["nodeName"] for p in pods) == gpu_nodes
    for p in pods:
        labels = p["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "driver"
        assert labels["app.kubernetes.io/managed-by"] == "gpu-policy-controller"
        assert labels["gpupolicy.dev/policy"] == "gpus"


def test_render_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterGPUPolicy\n"
                   "metadata: {name: gpus}\nspec: {driver: {imagePullPolicy: Sometimes}}\n")
    r = render("-f", str(bad))
    assert r.returncode == 1
    assert "spec.driver.imagePullPolicy" in r.stderr
    assert r.stdout == ""
    r = render()
    assert r.returncode == 2
