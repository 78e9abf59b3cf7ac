"""docs/install.md's "With kubectl" steps, run as written against kubesim (HTTPS, token).

kubesim stores Deployments but runs no pods for them, so the one step that waits for the Deployment
(`kubectl rollout status`) is where this test starts the Deployment's pod itself: the real controller binary
with the container args and environment of the Deployment the previous step applied. Every other line is
run by bash, in order, from the repository root: the CRD, the kustomize install, the Lease holder, the
sample policy, `kubectl wait` and `kubectl get cgp -o wide`."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from kubesim_client import build_dir, kubectl_usable, repo_root

ROOT = repo_root()
CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")
pytestmark = [pytest.mark.skipif(not kubectl_usable()[0], reason="the steps are kubectl's"),
              pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")]


def steps():
    text = open(os.path.join(ROOT, "docs", "install.md")).read()
    block = re.search(r"## With kubectl\n+```sh\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_deployment_pod(sim, env):
    """The pod the Deployment would run: its container's args and env, our kubeconfig, free ports."""
    deps = sim.ok("GET", "/apis/apps/v1/deployments")["items"]
    dep = [d for d in deps if d["metadata"]["name"] == "gpu-policy-controller"][0]
    ns = dep["metadata"]["namespace"]
    ctr = dep["spec"]["template"]["spec"]["containers"][0]
    pod_env = {"POD_NAMESPACE": ns, "POD_NAME": "gpu-policy-controller-0"}
    args = [re.sub(r"\$\((\w+)\)", lambda m: pod_env.get(m.group(1), m.group(0)), a) for a in ctr["args"]]
    args = [a for a in args if not a.startswith(("--metrics-bind-address", "--health-probe-bind-address"))]
    args += ["--kubeconfig", sim.kubeconfig, "--metrics-bind-address=127.0.0.1:%d" % free_port(),
             "--health-probe-bind-address=127.0.0.1:%d" % free_port(), "--log-format=text"]
    log = open(os.path.join(sim.workdir, "deployment-pod.log"), "wb")
    proc = subprocess.Popen([CONTROLLER, *args], env=dict(env, **pod_env), stdout=log, stderr=subprocess.STDOUT,
                            cwd=ROOT)
    return proc, ns


def test_install_steps_as_written(kubesim):
    sim = kubesim(gpu_nodes=3, cpu_nodes=1, tls=True, pod_ready_delay=0.1)
    env = dict(os.environ, KUBECONFIG=sim.kubeconfig, KUBECACHEDIR=os.path.join(sim.workdir, "kubecache"),
               HOME=sim.workdir)
    lines = steps()
    assert lines[0] == "kubectl apply -f crds/" and any("apply -k manifests/" in ln for ln in lines)
    proc = None
    outputs = {}
    try:
        for line in lines:
            if "rollout status deployment/gpu-policy-controller" in line:
                proc, ns = start_deployment_pod(sim, env)
                assert "-n %s " % ns in line, "the step names the namespace the Deployment is in"
                continue
            deadline = time.monotonic() + 60
            while True:
                r = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=120)
                # The Lease exists once the controller has campaigned: the step is worth retrying.
                if r.returncode == 0 and (" get lease " not in line or r.stdout.strip()):
                    break
                assert time.monotonic() < deadline, "step failed: %s\n%s%s" % (line, r.stdout, r.stderr)
                time.sleep(0.5)
            outputs[line] = r.stdout
        lease = [out for ln, out in outputs.items() if " get lease " in ln][0]
        # <hostname>_<16 hex digits>: in a pod the hostname is the pod's name (troubleshooting.md's recipe)
        assert re.fullmatch(re.escape(socket.gethostname()) + r"_[0-9a-f]{16}", lease.strip()), lease
        wide = [out for ln, out in outputs.items() if ln.startswith("kubectl get cgp")][0]
        assert re.search(r"^gpus\s+True\s+3/3\s+24\s", wide, re.M), wide
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_the_rbac_table_names_every_resource_and_verb_the_manifests_grant():
    """install.md's "What it creates" table, held against manifests/base/rbac.yaml: each Role and ClusterRole
    row names every resource (a subresource as `/status`) and every verb its rules grant."""
    import yaml
    text = open(os.path.join(ROOT, "docs", "install.md")).read()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    problems = []
    with open(os.path.join(ROOT, "manifests", "base", "rbac.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") in ("Role", "ClusterRole")]
    assert docs
    for role in docs:
        name, kind = role["metadata"]["name"], role["kind"]
        row = [r for r in rows if "`%s`" % name in r and re.search(r"\b%s\b" % kind, r)]
        if len(row) != 1:
            problems.append("%s %s: %d rows" % (kind, name, len(row)))
            continue
        for rule in role.get("rules") or ():
            for res in rule["resources"]:
                base, _, sub = res.partition("/")
                word = "policies" if base == "clustergpupolicies" else base
                if word not in row[0] or (sub and "/" + sub not in row[0]):
                    problems.append("%s %s: resource %s not named" % (kind, name, res))
            for verb in rule["verbs"]:
                if not re.search(r"\b%s\b" % verb, row[0]):
                    problems.append("%s %s: verb %s on %s not named" % (kind, name, verb, rule["resources"]))
    assert problems == []
