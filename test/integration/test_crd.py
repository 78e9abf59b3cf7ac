"""The ClusterGPUPolicy CRD and samples against kubesim, driven with kubectl's default flags.

What a user does first: `kubectl apply -f crds/`, apply a sample, `kubectl get cgp`, `kubectl explain`,
and get a clear rejection naming the field when a policy is wrong.
"""
import glob
import json
import os
import subprocess

import pytest

from kubesim_client import build_dir, repo_root

ROOT = repo_root()
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "manifests", "samples", "*.yaml")))
CRD_NAME = "clustergpupolicies.gpupolicy.dev"
BASE = "/apis/gpupolicy.dev/v1alpha1/clustergpupolicies"


@pytest.fixture
def sim(kubesim):
    s = kubesim(gpu_nodes=2, cpu_nodes=0)
    r = s.kubectl("apply", "-f", os.path.join(ROOT, "crds") + "/")
    assert "clustergpupolicies.gpupolicy.dev created" in r.stdout
    s.kubectl("wait", "--for=condition=Established", "crd/" + CRD_NAME, "--timeout=20s")
    return s


def policy_yaml(name, spec):
    return json.dumps({"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
                       "metadata": {"name": name}, "spec": spec})


def test_crds_dir_holds_only_crds():
    for path in glob.glob(os.path.join(ROOT, "crds", "*")):
        with open(path) as f:
            text = f.read()
        assert "kind: CustomResourceDefinition" in text, path
        assert text.count("\nkind: ") == 1, "%s: one CRD per file" % path


def test_every_sample_applies_and_lists_with_columns(sim):
    assert len(SAMPLES) >= 4
    r = sim.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "samples") + "/")
    for name in ("gpus", "production", "h100-pool", "preinstalled"):
        assert "clustergpupolicy.gpupolicy.dev/%s created" % name in r.stdout
    for resource in ("clustergpupolicy", "cgp", "clustergpupolicies.gpupolicy.dev"):
        out = sim.kubectl("get", resource).stdout.splitlines()
        assert out[0].split() == ["NAME", "READY", "NODES", "GPUS", "DRIVER", "AGE"], out[0]
        assert len(out) == 5
    wide = sim.kubectl("get", "cgp", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "NODES", "GPUS", "DRIVER", "UPGRADE", "REASON", "AGE"]
    # The category lists them too.
    assert "gpus" in sim.kubectl("get", "gpu").stdout


def test_columns_show_status_written_through_the_subresource(sim):
    sim.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "samples", "minimal.yaml"))
    status = {"status": {
        "observedGeneration": 1, "nodesSummary": "2/2", "driverSummary": "550.54.14-ubuntu22.04",
        "nodes": {"matched": 2, "ready": 2, "conflicted": 0},
        "gpus": {"allocatable": 16},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AllOperandsReady", "message": "2/2 nodes ready",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
            {"type": "Reconciling", "status": "False", "reason": "Idle", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
        "operands": [{"name": "driver", "daemonSet": "gpus-driver", "desired": 2, "ready": 2, "updated": 2,
                      "available": 2, "state": "Ready"},
                     {"name": "container-toolkit", "state": "Disabled"}],
        "failingNodes": []}}
    sim.ok("PATCH", BASE + "/gpus/status", status, ctype="application/merge-patch+json")
    row = sim.kubectl("get", "cgp", "gpus", "-o", "wide", "--no-headers").stdout.split()
    assert row[:6] == ["gpus", "True", "2/2", "16", "550.54.14-ubuntu22.04", "AllOperandsReady"]
    # Status writes do not bump the generation; kubectl wait sees Ready.
    obj = sim.ok("GET", BASE + "/gpus")
    assert obj["metadata"]["generation"] == 1
    sim.kubectl("wait", "--for=condition=Ready", "clustergpupolicy/gpus", "--timeout=10s")
    # The main resource ignores status; spec changes bump the generation.
    obj["status"]["nodesSummary"] = "0/9"
    obj["spec"]["driver"]["version"] = "550.90.07-ubuntu22.04"
    sim.ok("PUT", BASE + "/gpus", obj)
    obj = sim.ok("GET", BASE + "/gpus")
    assert obj["status"]["nodesSummary"] == "2/2"
    assert obj["metadata"]["generation"] == 2


def test_too_many_failing_nodes_rejected(sim):
    sim.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "samples", "minimal.yaml"))
    failing = [{"node": "gpu-%d" % i, "operand": "driver", "reason": "CrashLoopBackOff", "message": ""}
               for i in range(11)]
    code, body, _ = sim.request("PATCH", BASE + "/gpus/status", {"status": {"failingNodes": failing}},
                                ctype="application/merge-patch+json")
    assert code == 422, body
    assert "status.failingNodes" in json.dumps(body)


def test_server_defaults_match_the_decoder(sim, tmp_path):
    """A sample decoded from its file and as stored (defaulted) by the API server resolve identically."""
    tool = os.path.join(build_dir(), "test", "tools", "policy_decode")
    if not os.path.exists(tool):
        pytest.skip("build/test/tools/policy_decode not built (make all)")
    sim.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "samples") + "/")
    for sample in SAMPLES:
        name = json.loads(sim.kubectl("create", "--dry-run=client", "-o", "json", "-f", sample).stdout)[
            "metadata"]["name"]
        stored = sim.kubectl("get", "cgp", name, "-o", "json").stdout
        path = tmp_path / (name + ".json")
        path.write_text(stored)
        from_file = subprocess.run([tool, sample], capture_output=True, text=True, check=True).stdout
        from_server = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True).stdout
        assert json.loads(from_file) == json.loads(from_server), sample


def stored_schema(sim):
    crd = json.loads(sim.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_no_defaults_inside_list_items(sim):
    """Defaults inside list items make Argo CD's diff report drift forever (so the CRD never defaults inside list items; docs/design.md §2)."""
    schema = stored_schema(sim)
    bad = []

    def walk(node, path, in_items):
        if not isinstance(node, dict):
            return
        if in_items and "default" in node:
            bad.append(path)
        for k, v in (node.get("properties") or {}).items():
            walk(v, path + "." + k, in_items)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]", True)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], path + "{}", in_items)

    walk(schema, "", False)
    assert not bad, "defaults inside list items: %s" % bad


def test_every_field_has_a_description(sim):
    schema = stored_schema(sim)
    missing = []

    def walk(node, path):
        for k, v in (node.get("properties") or {}).items():
            if "description" not in v and path + "." + k not in (".metadata", ".metadata.name"):
                missing.append(path + "." + k)
            walk(v, path + "." + k)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(schema, "")
    assert not missing, missing


def test_explain_shows_field_docs(sim):
    out = sim.kubectl("explain", "clustergpupolicy.spec.driver").stdout
    assert "imagePullPolicy" in out and "Image pull policy" in out
    assert "driver-upgrade-state" in out and "PodDisruptionBudgets honoured" in out
    out = sim.kubectl("explain", "cgp.status.conditions").stdout
    assert "kubectl wait --for=condition=Ready" in out
    out = sim.kubectl("explain", "cgp.spec.toolkit.runtime").stdout
    assert "containerd" in out


INVALID = [
    # (name, spec, the field the message must name, a fragment of the message)
    ("bad-pull-policy", {"driver": {"imagePullPolicy": "Sometimes"}}, "spec.driver.imagePullPolicy",
     'Unsupported value: "Sometimes"'),
    ("bad-digest", {"devicePlugin": {"version": "sha256:1234"}}, "spec.devicePlugin.version", "should match"),
    ("negative-max-unavailable", {"daemonsets": {"maxUnavailable": -1}}, "spec.daemonsets.maxUnavailable",
     "greater than or equal to 1"),
    ("zero-percent", {"daemonsets": {"maxUnavailable": "0%"}}, "spec.daemonsets.maxUnavailable",
     "should match"),
    ("bad-runtime", {"toolkit": {"runtime": "podman"}}, "spec.toolkit.runtime", 'Unsupported value: "podman"'),
    ("bad-port", {"dcgmExporter": {"service": {"port": 0}}}, "spec.dcgmExporter.service.port",
     "greater than or equal to 1"),
    ("bad-repository", {"driver": {"repository": "https://nvcr.io"}}, "spec.driver.repository", "should match"),
    ("bad-quantity", {"driver": {"resources": {"limits": {"memory": "1GB"}}}},
     "spec.driver.resources.limits.memory", "should match"),
    ("bad-selector-op", {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
     "spec.nodeSelector.matchExpressions[0].operator", 'Unsupported value: "Near"'),
]


@pytest.mark.parametrize("name,spec,field,fragment", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_policies_rejected_naming_the_field(sim, name, spec, field, fragment):
    r = sim.kubectl("apply", "-f", "-", input=policy_yaml(name, spec), check=False)
    assert r.returncode != 0, r.stdout
    assert field in r.stderr, r.stderr
    assert fragment in r.stderr, r.stderr
    assert sim.request("GET", BASE + "/" + name)[0] == 404


def test_unknown_field_rejected_with_strict_validation(sim):
    r = sim.kubectl("apply", "--validate=strict", "-f", "-",
                    input=policy_yaml("typo", {"driver": {"enable": False}}), check=False)
    assert r.returncode != 0
    assert "spec.driver.enable" in r.stderr, r.stderr
    assert "unknown field" in r.stderr, r.stderr


def test_metadata_name_longer_than_a_label_value_rejected(sim):
    r = sim.kubectl("apply", "-f", "-", input=policy_yaml("a" * 64, {}), check=False)
    assert r.returncode != 0
    assert "metadata.name" in r.stderr, r.stderr


def crd_schema():
    import yaml
    with open(os.path.join(ROOT, "crds", "gpupolicy.dev_clustergpupolicies.yaml")) as f:
        crd = [d for d in yaml.safe_load_all(f) if d][0]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_list_string_and_map_is_bounded():
    """maxItems on every array, maxLength on every string that is not an enum (int-or-string included),
    maxProperties on every map: a policy's size is bounded by the schema (issue 18). apiVersion and kind
    are the API server's own."""
    unbounded = []

    def walk(s, path):
        t = s.get("type")
        if t == "array" and "maxItems" not in s:
            unbounded.append(path + " (maxItems)")
        if (t == "string" or s.get("x-kubernetes-int-or-string")) and "enum" not in s and "maxLength" not in s \
                and path not in (".apiVersion", ".kind"):
            unbounded.append(path + " (maxLength)")
        if isinstance(s.get("additionalProperties"), dict):
            if "maxProperties" not in s:
                unbounded.append(path + " (maxProperties)")
            walk(s["additionalProperties"], path + "{*}")
        for k, v in (s.get("properties") or {}).items():
            walk(v, path + "." + k)
        if isinstance(s.get("items"), dict):
            walk(s["items"], path + "[]")

    walk(crd_schema(), "")
    assert not unbounded, unbounded


@pytest.mark.parametrize("spec,field", [
    ({"driver": {"args": ["x"] * 65}}, "spec.driver.args"),
    ({"validator": {"env": [{"name": "V%d" % i, "value": "v"} for i in range(65)]}}, "spec.validator.env"),
    ({"toolkit": {"env": [{"name": "BIG", "value": "x" * 8193}]}}, "spec.toolkit.env[0].value"),
    ({"daemonsets": {"annotations": {"a": "x" * 4097}}}, "spec.daemonsets.annotations.a"),
])
def test_oversized_policy_rejected_by_the_schema(sim, spec, field):
    p = subprocess.run(["kubectl", "apply", "-f", "-"], input=policy_yaml("big", spec), capture_output=True,
                       text=True, env=dict(os.environ, KUBECONFIG=sim.kubeconfig), timeout=60)
    assert p.returncode != 0
    assert field in p.stderr, p.stderr
