"""`gpu-policy-controller apply`: server-side apply through the project's own client (issue 6).

Against kubesim: apply crds/ and a sample in one run (the CRD's kind is looked up again until it is
served), find them with kubectl, re-apply and see nothing change, read from stdin, and fail clearly.
"""

import os
import subprocess

import pytest

from kubesim_client import repo_root
from replica import CGP, CONTROLLER

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")

CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clustergpupolicies.gpupolicy.dev"


def apply(sim, *args, input=None):
    return subprocess.run([CONTROLLER, "apply", "--kubeconfig", sim.kubeconfig, *args], input=input,
                          capture_output=True, text=True, timeout=60, cwd=repo_root())


def rv(sim, path):
    code, obj, _ = sim.get(path)
    assert code == 200, (path, obj)
    return obj["metadata"]["resourceVersion"]


def test_apply_crds_and_sample_then_reapply_is_a_no_op(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    sample = os.path.join(repo_root(), "manifests", "samples", "minimal.yaml")
    p = apply(sim, "-f", os.path.join(repo_root(), "crds"), "-f", sample)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "customresourcedefinition.apiextensions.k8s.io/clustergpupolicies.gpupolicy.dev created"
    assert len(lines) == 2 and lines[1].startswith("clustergpupolicy.gpupolicy.dev/") and \
        lines[1].endswith(" created"), lines
    name = lines[1].split("/", 1)[1].split(" ")[0]

    # kubectl sees both, and the field manager is ours
    out = sim.kubectl("get", "cgp", name, "-o", "jsonpath={.metadata.managedFields[*].manager}").stdout
    assert "gpu-policy-controller-cli" in out.split()
    before = (rv(sim, CRD), rv(sim, CGP + "/" + name))

    p = apply(sim, "-f", os.path.join(repo_root(), "crds"), "-f", sample)
    assert p.returncode == 0, p.stderr
    assert all(line.endswith(" unchanged") for line in p.stdout.strip().splitlines()), p.stdout
    assert (rv(sim, CRD), rv(sim, CGP + "/" + name)) == before

    # a changed document is "configured"; stdin works; core kinds get the default namespace
    doc = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cli-test}\ndata: {a: '1'}\n---\n"
           "apiVersion: v1\nkind: Namespace\nmetadata: {name: cli-ns}\n")
    p = apply(sim, "-f", "-", input=doc)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["configmap/cli-test created", "namespace/cli-ns created"]
    p = apply(sim, "-f", "-", input=doc.replace("'1'", "'2'"))
    assert p.stdout.splitlines() == ["configmap/cli-test configured", "namespace/cli-ns unchanged"], p.stdout
    code, cm, _ = sim.get("/api/v1/namespaces/default/configmaps/cli-test")
    assert code == 200 and cm["data"] == {"a": "2"}


def test_apply_errors_are_clear(kubesim, tmp_path):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    # unknown kind: one error line naming it, exit 1, other documents still applied
    doc = ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\n"
           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n")
    p = apply(sim, "-f", "-", input=doc)
    assert p.returncode == 1
    assert 'no matches for kind "Widget" in version "example.com/v1"' in p.stderr, p.stderr
    assert p.stdout.strip() == "configmap/ok created"
    # server-side validation errors come back as the API's message
    p = apply(sim, "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n")
    assert p.returncode == 1 and "Bad_Name" in p.stderr, p.stderr
    # missing fields, unreadable files, bad YAML, no -f: exit 2 or 1 with one line
    p = apply(sim, "-f", "-", input="kind: ConfigMap\nmetadata: {name: x}\n")
    assert p.returncode == 1 and "apiVersion" in p.stderr
    p = apply(sim, "-f", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "missing.yaml" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    p = apply(sim, "-f", str(bad))
    assert p.returncode == 2 and "bad.yaml" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = apply(sim)
    assert p.returncode == 2 and "-f" in p.stderr


def test_dot_segment_names_never_reach_the_server(kubesim):
    """A ConfigMap named ".." once sent its PATCH to the namespace itself (libcurl collapses dot segments);
    such names are refused before a URL is built, as client-go does, and nothing is written."""
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    sim.reset_counters()
    for name in ("..", "."):
        p = apply(sim, "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '%s'}\ndata: {a: b}\n"
                  % name)
        assert p.returncode == 1, (name, p.stdout, p.stderr)
        assert 'invalid name "%s"' % name in p.stderr, p.stderr
    assert sim.counters()["writes"] == 0
    code, ns, _ = sim.get("/api/v1/namespaces/default")
    assert code == 200 and "a" not in (ns.get("data") or {})
