"""manifests/: the kustomize install renders offline, follows the deployment
conventions of design.md §7 (restricted pod, privileged operand namespace),
installs on kubesim with kubectl, and its RBAC is exactly what the controller
uses: the real binary runs a full scenario against kubesim, every request it
sent is checked against the rendered rules (namespace- and name-aware), and
every rule must have been needed by some request."""

import os
import shutil
import subprocess

import pytest
import yaml

from kubesim_client import kubectl_usable, repo_root
from replica import CGP, NS, SERVICEMONITOR_CRD, Replica, policy, prepare, wait_until

pytestmark = pytest.mark.skipif(not kubectl_usable()[0], reason="kubectl renders the kustomize install")

ROOT = repo_root()
SA = ("gpu-policy-controller", NS)
VALIDATOR_SA = ("gpu-policy-validator", NS)
NODES = "/api/v1/nodes"

# Rules no request of the scenario can need, and why.
UNUSED_OK = {
    ("gpupolicy.dev", "clustergpupolicies/finalizers", "update"):
        "not a request: the OwnerReferencesPermissionEnforcement admission plugin asks for it when the "
        "controller sets blockOwnerDeletion on an ownerReference to a policy",
}



def kustomize(path):
    r = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, path)], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, KUBECONFIG="/dev/null"))
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.fixture(scope="module")
def rendered():
    return kustomize("manifests")


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, "%s %s: %d found" % (kind, name, len(found))
    return found[0]


# ---- static checks of the rendered install --------------------------------------------------------------


def test_renders_offline_with_the_objects_of_an_install(rendered):
    kinds = sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")) for d in rendered)
    assert ("Namespace", NS, "") in kinds
    assert ("Deployment", "gpu-policy-controller", NS) in kinds
    assert ("Service", "gpu-policy-controller-metrics", NS) in kinds
    assert ("ServiceAccount", "gpu-policy-controller", NS) in kinds
    assert ("ServiceAccount", "gpu-policy-validator", NS) in kinds
    # Every namespaced object has a namespace; only the Events Role(Binding) is outside ours.
    for d in rendered:
        if d["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in d["metadata"], d["metadata"]
        elif d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"].endswith("-events"):
            assert d["metadata"]["namespace"] == "default"
        else:
            assert d["metadata"].get("namespace") == NS, (d["kind"], d["metadata"])
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gpu-policy-controller"


def test_servicemonitor_overlay_adds_only_the_servicemonitor(rendered):
    docs = kustomize("manifests/overlays/servicemonitor")
    extra = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(docs) == len(rendered) + 1 and len(extra) == 1
    sm = extra[0]
    svc = one(rendered, "Service")
    assert sm["metadata"]["namespace"] == NS
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in svc["spec"]["ports"]]


def test_namespace_admits_privileged_operands(rendered):
    ns = one(rendered, "Namespace", NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_deployment_ha_probes_resources_and_restricted_security(rendered):
    dep = one(rendered, "Deployment", "gpu-policy-controller")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == SA[0]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (c,) = pod["containers"]
    assert "--leader-elect" in c["args"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert "--health-probe-bind-address=:%d" % ports["health"] in c["args"]
    assert "--metrics-bind-address=:%d" % ports["metrics"] in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    # The restricted Pod Security profile, at pod or container level.
    psc, csc = pod.get("securityContext", {}), c["securityContext"]
    assert psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True
    assert (csc.get("seccompProfile") or psc.get("seccompProfile")) == {"type": "RuntimeDefault"}
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert not csc.get("capabilities", {}).get("add")
    assert not csc.get("privileged")
    # The image's nonroot user (Dockerfile USER 65532).
    assert (csc.get("runAsUser") or psc.get("runAsUser")) == 65532
    # The metrics Service reaches the pods.
    svc = one(rendered, "Service")
    assert svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()


def test_rbac_has_no_wildcards(rendered):
    for d in rendered:
        for rule in d.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(key) or []), (d["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule


def test_validator_account_may_only_get_nodes(rendered):
    with open(os.path.join(ROOT, "templates/validator.yaml")) as f:
        tmpl = yaml.safe_load(f)
    assert tmpl["spec"]["template"]["spec"]["serviceAccountName"] == VALIDATOR_SA[0]
    rbac = Rbac(rendered, VALIDATOR_SA)
    assert rbac.grants() == {("", "nodes", "get", "", "")}


# ---- RBAC against what the controller actually does -------------------------------------------------------


class Rbac:
    """The rules bound to one ServiceAccount, evaluated like the RBAC authorizer."""

    def __init__(self, docs, sa):
        roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
                 for d in docs if d["kind"] in ("Role", "ClusterRole")}
        self.bound = []  # (namespace or None for cluster-wide, rule)
        for b in docs:
            if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            if not any(s["kind"] == "ServiceAccount" and (s["name"], s.get("namespace")) == sa
                       for s in b.get("subjects") or []):
                continue
            ref = b["roleRef"]
            ns = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
            role = roles.get((ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"]))
            assert role is not None, "binding %s refers to a missing %s" % (b["metadata"]["name"], ref)
            for rule in role.get("rules") or []:
                self.bound.append((ns, rule))

    def matching(self, verb, group, resource, ns, name):
        """Indices of the bound rules that allow this request."""
        out = []
        for i, (bns, rule) in enumerate(self.bound):
            if bns is not None and bns != ns:
                continue
            if group not in rule.get("apiGroups", []) or resource not in rule.get("resources", []) or \
                    verb not in rule.get("verbs", []):
                continue
            names = rule.get("resourceNames")
            if names and name not in names:
                continue
            out.append(i)
        return out

    def grants(self):
        """Every (group, resource, verb, namespace, resourceName) the rules name."""
        out = set()
        for ns, rule in self.bound:
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    for v in rule.get("verbs", []):
                        for n in rule.get("resourceNames") or [""]:
                            out.add((g, r, v, ns or "", n))
        return out


def needed_verbs(req):
    """RBAC verbs one recorded request needs. Server-side apply that creates
    the object is also authorized as "create" (apiserver handlers/patch.go)."""
    verbs = [req["verb"]]
    if req["verb"] == "patch" and req["code"] == 201:
        verbs.append("create")
    return verbs


def run_scenario(sim):
    """policy create -> converge -> node label changes -> policy delete, by a
    --leader-elect controller; returns the controller's requests."""
    prepare(sim)
    sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SERVICEMONITOR_CRD)
    sim.wait_for(lambda: sim.get("/apis/monitoring.coreos.com/v1/servicemonitors")[0] == 200,
                 what="ServiceMonitor CRD served")
    sim.reset_counters()
    ctl = Replica(sim, leader_elect=True, timings=(4, 3, 0.5))
    try:
        wait_until(lambda: ctl.leading(), 15, "leadership")
        sim.ok("POST", CGP, policy("gpus", dcgmExporter={"serviceMonitor": {"enabled": True}}))
        wait_until(lambda: ready(sim, "gpus") == "True", 30, "policy Ready")
        # A node stops matching (its labels go), another opts out of one operand.
        nodes = sorted(n["metadata"]["name"] for n in sim.get(NODES)[1]["items"]
                       if n["metadata"].get("labels", {}).get("gpupolicy.dev/policy") == "gpus")
        gone, opted = nodes[0], nodes[1]
        labels = sim.get(NODES + "/" + gone)[1]["metadata"]["labels"]
        sim.admin("/_sim/nodes/%s/labels" % gone,
                  {"remove": [k for k in labels if k.startswith("feature.node.kubernetes.io/pci-")
                              or k == "nvidia.com/gpu.present"]})
        sim.admin("/_sim/nodes/%s/labels" % opted, {"set": {"gpupolicy.dev/dcgm-exporter": "false"}})
        wait_until(lambda: "gpupolicy.dev/policy" not in node_labels(sim, gone)
                   and "gpupolicy.dev/driver" not in node_labels(sim, gone), 20, "labels removed from " + gone)
        wait_until(lambda: ready(sim, "gpus") == "True", 30, "policy Ready again")
        # A node's driver pod fails twice: the second identical NodeFailing
        # Event is a count update of the first, a PATCH (events.h).
        flaky = nodes[2]
        for _ in range(2):
            sim.admin("/_sim/fail", {"node": flaky, "daemonset": "gpus-driver"})
            wait_until(lambda: failing(sim, "gpus"), 20, "failingNodes lists " + flaky)
            sim.admin("/_sim/recover", {"node": flaky})
            wait_until(lambda: not failing(sim, "gpus"), 20, "failingNodes empty again")
        wait_until(lambda: any(r["verb"] == "patch" and r["resource"] == "events"
                               for r in sim.counters()["detail"]), 15, "an aggregated Event update", interval=0.2)
        wait_until(lambda: ready(sim, "gpus") == "True", 30, "policy Ready after the flaky node")
        # A driver upgrade with autoUpgrade: the workload pod cache (pods of
        # every namespace), an eviction, the old driver pods' deletes.
        sim.admin("/_sim/workloads", {"name": "job", "namespace": "ml", "node": nodes[2], "gpus": 1,
                                      "terminationGracePeriodSeconds": 1})
        code, _, _ = sim.patch(CGP + "/gpus", {"spec": {"driver": {
            "version": "550.90.07-ubuntu22.04", "upgradePolicy": {"autoUpgrade": True, "maxUnavailable": 1}}}})
        assert code == 200
        wait_until(lambda: all(node_labels(sim, n).get("gpupolicy.dev/driver-upgrade-state") == "done"
                               for n in nodes[1:]), 60, "driver upgrade done")
        assert sim.ok("DELETE", CGP + "/gpus") is not None
        wait_until(lambda: sim.get(CGP + "/gpus")[0] == 404, 30, "policy deleted (finalizer dropped)")
        assert ctl.stop() == 0  # SIGTERM: releases the Lease
    finally:
        if ctl.alive():
            ctl.kill9()
    return [r for r in sim.counters()["detail"] if r["client"] == "gpu-policy-controller"], ctl


def ready(sim, name):
    code, obj, _ = sim.get(CGP + "/" + name)
    if code != 200:
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"]
    return None


def failing(sim, name):
    code, obj, _ = sim.get(CGP + "/" + name)
    return code == 200 and (obj.get("status") or {}).get("failingNodes")


def node_labels(sim, name):
    return sim.get(NODES + "/" + name)[1]["metadata"].get("labels", {})


def test_install_applies_on_kubesim(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, tls=True)
    sim.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
    out = sim.kubectl("apply", "-k", os.path.join(ROOT, "manifests")).stdout
    assert "deployment.apps/gpu-policy-controller created" in out
    assert "clusterrole.rbac.authorization.k8s.io/gpu-policy-controller created" in out
    again = sim.kubectl("apply", "-k", os.path.join(ROOT, "manifests")).stdout
    assert "created" not in again and "configured" not in again, again
    code, role, _ = sim.get("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/"
                            "gpu-policy-controller-events")
    assert code == 200 and role["rules"][0]["resources"] == ["events"]


def test_rbac_allows_every_request_and_no_rule_goes_unused(kubesim, rendered):
    sim = kubesim(gpu_nodes=3, gpus_per_node=2, cpu_nodes=1, pod_ready_delay=0.1)
    requests, ctl = run_scenario(sim)
    assert requests, "no request recorded for the controller"
    rbac = Rbac(rendered, SA)
    denied, used = [], set()
    for req in requests:
        resource = req["resource"] + ("/" + req["subresource"] if req["subresource"] else "")
        for verb in needed_verbs(req):
            hits = rbac.matching(verb, req["group"], resource, req["namespace"], req["name"])
            if not hits:
                denied.append("%s %s/%s ns=%r name=%r (code %d)" % (verb, req["group"], resource, req["namespace"],
                                                                   req["name"], req["code"]))
            for i in hits:
                used.add((i, verb))
    assert not denied, "requests the manifests' RBAC would forbid:\n  " + "\n  ".join(denied) + \
        "\ncontroller log tail:\n" + ctl.logs()[-2000:]
    unused = []
    for i, (ns, rule) in enumerate(rbac.bound):
        for verb in rule["verbs"]:
            if (i, verb) in used:
                continue
            if all((g, r, verb) in UNUSED_OK for g in rule["apiGroups"] for r in rule["resources"]):
                continue
            unused.append("%s %s %s ns=%s names=%s" % (verb, rule["apiGroups"], rule["resources"], ns,
                                                       rule.get("resourceNames")))
    assert not unused, "rules no request needed (drop them, or list them in UNUSED_OK with a reason):\n  " + \
        "\n  ".join(unused)
    # The scenario really covered what the rules are for.
    seen = {(r["verb"], r["resource"], r["subresource"]) for r in requests}
    for want in [("patch", "clustergpupolicies", "status"), ("delete", "daemonsets", ""),
                 ("patch", "servicemonitors", ""), ("update", "leases", ""), ("create", "events", ""),
                 ("create", "pods", "eviction"), ("delete", "pods", "")]:
        assert want in seen, want


def test_rbac_checker_rejects_what_it_should(rendered):
    """The matcher itself: namespace, name and group all matter."""
    rbac = Rbac(rendered, SA)
    assert rbac.matching("list", "apps", "daemonsets", NS, "")
    assert not rbac.matching("list", "apps", "daemonsets", "kube-system", "")
    assert not rbac.matching("get", "", "secrets", NS, "x")
    assert not rbac.matching("update", "coordination.k8s.io", "leases", NS, "someone-elses-lease")
    assert rbac.matching("update", "coordination.k8s.io", "leases", NS, "gpu-policy-controller-leader")
    assert rbac.matching("create", "", "events", "default", "")
    assert not rbac.matching("create", "", "events", NS, "")
    assert not rbac.matching("create", "", "daemonsets", NS, "")
    assert needed_verbs({"verb": "patch", "code": 201}) == ["patch", "create"]
    assert needed_verbs({"verb": "patch", "code": 200}) == ["patch"]

