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
OPS = "gpu-policy-operands"  # the operands' (privileged) namespace; NS is the controller's (restricted)
SA = ("gpu-policy-controller", NS)
VALIDATOR_SA = ("gpu-policy-validator", OPS)
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


CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding")
# Namespaced objects that live in the operands' namespace; everything else namespaced is in NS, but the
# Events Role(Binding) in "default".
IN_OPS = {("ServiceAccount", "gpu-policy-validator"), ("Role", "gpu-policy-controller"),
          ("RoleBinding", "gpu-policy-controller"), ("Role", "gpu-policy-validator"),
          ("RoleBinding", "gpu-policy-validator")}


def test_renders_offline_with_the_objects_of_an_install(rendered):
    kinds = sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")) for d in rendered)
    assert ("Namespace", NS, "") in kinds and ("Namespace", OPS, "") in kinds
    assert ("Deployment", "gpu-policy-controller", NS) in kinds
    assert ("ServiceAccount", "gpu-policy-controller", NS) in kinds
    assert ("ServiceAccount", "gpu-policy-validator", OPS) in kinds
    assert ("NetworkPolicy", "gpu-policy-controller", NS) in kinds
    assert ("ValidatingAdmissionPolicy", "gpu-policy-controller-limits", "") in kinds
    # /metrics is not served off the pod by the base: no Service for it.
    assert not [k for k in kinds if k[0] == "Service"]
    for d in rendered:
        if d["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in d["metadata"], d["metadata"]
        elif d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"].endswith("-events"):
            assert d["metadata"]["namespace"] == "default"
        elif (d["kind"], d["metadata"]["name"]) in IN_OPS:
            assert d["metadata"]["namespace"] == OPS, (d["kind"], d["metadata"])
        else:
            assert d["metadata"].get("namespace") == NS, (d["kind"], d["metadata"])
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gpu-policy-controller"


@pytest.fixture(scope="module")
def proxied():
    return kustomize("manifests/overlays/metrics-proxy")


def test_metrics_proxy_overlay_serves_metrics_only_through_kube_rbac_proxy(rendered, proxied):
    base_dep = one(rendered, "Deployment")
    (mgr,) = base_dep["spec"]["template"]["spec"]["containers"]
    # The base: loopback only, no metrics port on the pod.
    assert "--metrics-bind-address=127.0.0.1:8080" in mgr["args"]
    assert [p["name"] for p in mgr["ports"]] == ["health"]
    dep = one(proxied, "Deployment")
    containers = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"manager", "kube-rbac-proxy"}
    proxy = containers["kube-rbac-proxy"]
    assert "--upstream=http://127.0.0.1:8080/" in proxy["args"]
    assert "--secure-listen-address=0.0.0.0:8443" in proxy["args"]
    assert "--allow-paths=/metrics" in proxy["args"]
    csc = proxy["securityContext"]
    assert csc["readOnlyRootFilesystem"] and not csc["allowPrivilegeEscalation"] and csc["runAsNonRoot"]
    assert csc["capabilities"]["drop"] == ["ALL"]
    svc = one(proxied, "Service", "gpu-policy-controller-metrics")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8443, "https-metrics")]
    assert "https-metrics" in [p["name"] for p in proxy["ports"]]
    # The proxy may review tokens and access; scrapers get the reader role.
    auth = Rbac(proxied, SA).grants()
    assert ("authentication.k8s.io", "tokenreviews", "create", "", "") in auth
    assert ("authorization.k8s.io", "subjectaccessreviews", "create", "", "") in auth
    reader = one(proxied, "ClusterRole", "gpu-policy-controller-metrics-reader")
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    pols = [d for d in proxied if d["kind"] == "NetworkPolicy"]
    ports = {p["port"] for pol in pols for rule in pol["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {"health", "https-metrics"}


def test_servicemonitor_overlay_adds_only_the_servicemonitor(proxied):
    docs = kustomize("manifests/overlays/servicemonitor")
    extra = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(docs) == len(proxied) + 1 and len(extra) == 1
    sm = extra[0]
    svc = one(proxied, "Service")
    assert sm["metadata"]["namespace"] == NS
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ep = sm["spec"]["endpoints"][0]
    assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert ep["scheme"] == "https" and ep["bearerTokenFile"]


def test_operands_privileged_controller_restricted(rendered):
    """Operands in their own privileged namespace; the controller's namespace enforces restricted."""
    assert one(rendered, "Namespace", OPS)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == \
        "privileged"
    labels = one(rendered, "Namespace", NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    args = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=%s" % OPS in args
    assert "--leader-election-namespace=$(POD_NAMESPACE)" in args


def test_networkpolicy_admits_only_the_probe_port(rendered):
    pol = one(rendered, "NetworkPolicy", "gpu-policy-controller")
    dep = one(rendered, "Deployment")
    assert pol["spec"]["podSelector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert pol["spec"]["policyTypes"] == ["Ingress"]
    assert pol["spec"]["ingress"] == [{"ports": [{"port": "health", "protocol": "TCP"}]}]
    probe_ports = {c["livenessProbe"]["httpGet"]["port"] for c in dep["spec"]["template"]["spec"]["containers"]}
    assert probe_ports == {"health"}


def test_admission_policy_limits_the_controllers_node_and_runtimeclass_writes(rendered):
    """RBAC cannot limit patched fields or created names; the ValidatingAdmissionPolicy does. kubesim stores
    it but does not evaluate CEL, so this checks its shape: who it applies to, what it matches, and that
    each limit is there and binding with Deny."""
    vap = one(rendered, "ValidatingAdmissionPolicy", "gpu-policy-controller-limits")
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    (cond,) = spec["matchConditions"]
    assert cond["expression"] == 'request.userInfo.username == "system:serviceaccount:%s:%s"' % (SA[1], SA[0])
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["operations"])
             for r in spec["matchConstraints"]["resourceRules"]}
    assert rules[(("",), ("nodes",))] == {"UPDATE"}
    assert rules[(("node.k8s.io",), ("runtimeclasses",))] == {"CREATE", "UPDATE", "DELETE"}
    text = " ".join(v["expression"] for v in spec["validations"])
    assert 'request.name == "nvidia"' in text
    assert 'startsWith("gpupolicy.dev/")' in text
    annotations = [v["expression"] for v in spec["validations"] if "annotations" in v["expression"]]
    assert len(annotations) == 1 and annotations[0].count('startsWith("gpupolicy.dev/")') == 2, annotations
    assert "annotations" in text and "object.spec.taints" in text and "unschedulable" not in text.replace(
        "spec.unschedulable", "")
    binding = one(rendered, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": "gpu-policy-controller-limits", "validationActions": ["Deny"]}


def test_runtimeclass_rbac_is_limited_to_nvidia(rendered):
    grants = {g for g in Rbac(rendered, SA).grants() if g[1] == "runtimeclasses"}
    assert grants == {("node.k8s.io", "runtimeclasses", "get", "", "nvidia"),
                      ("node.k8s.io", "runtimeclasses", "patch", "", "nvidia"),
                      ("node.k8s.io", "runtimeclasses", "create", "", "")}


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
    assert "--metrics-bind-address=127.0.0.1:8080" in c["args"]
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


def test_rbac_has_no_wildcards(rendered):
    for d in rendered:
        for rule in d.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(key) or []), (d["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule


def test_validator_account_may_only_get_nodes_and_manage_pods_in_its_namespace(rendered):
    with open(os.path.join(ROOT, "templates/validator.yaml")) as f:
        tmpl = yaml.safe_load(f)
    assert tmpl["spec"]["template"]["spec"]["serviceAccountName"] == VALIDATOR_SA[0]
    rbac = Rbac(rendered, VALIDATOR_SA)
    assert rbac.grants() == {("", "nodes", "get", "", "")} | {("", "pods", v, OPS, "")
                                                              for v in ("create", "get", "delete")}


def test_validator_rbac_allows_every_request_and_no_rule_goes_unused(kubesim, rendered, tmp_path):
    """The real validator with --check-plugin --check-allocation against kubesim, its own Pod in the operands'
    namespace: every request it sends is allowed by the rendered rules, and every rule was needed."""
    from test_validator import SMALL, VALIDATOR, deploy_device_plugin, stubs as make_stubs  # noqa: F401
    if not os.path.exists(VALIDATOR):
        pytest.skip("validator binary not built")
    stubs = make_stubs.__wrapped__(_TmpFactory(tmp_path))
    # a host with its own driver and nvidia as the default runtime, so the device plugin runs without operands
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0,
                  extra_args=["--fleet", "containerd/ubuntu22.04/host-driver/host-toolkit-default"])
    sim.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPS}})
    deploy_device_plugin(sim)
    me = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "validator-x", "namespace": OPS},
          "spec": {"nodeName": "gpu-node-0", "containers": [{"name": "validator", "image": "example/gpc:v1",
                                                             "command": ["gpu-policy-validator"]}]}}
    sim.ok("POST", "/api/v1/namespaces/%s/pods" % OPS, me)
    # a leftover of a crashed validator: deleted first
    left = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-policy-alloc-gpu-node-0", "namespace": OPS},
            "spec": {"nodeName": "gpu-node-0", "containers": [{"name": "c", "image": "busybox"}]}}
    sim.ok("POST", "/api/v1/namespaces/%s/pods" % OPS, left)
    sim.reset_counters()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUB_", "GPC_", "KUBERNETES_", "NODE_NAME"))}
    env["STUB_MODE"] = "healthy2"
    p = subprocess.run([VALIDATOR, "--nvml-lib", stubs["nvml"], "--cuda-lib", stubs["cuda"], "--json"] + SMALL +
                       ["--check-plugin", "--check-allocation", "--node", "gpu-node-0", "--namespace", OPS,
                        "--pod-name", "validator-x", "--kubeconfig", sim.kubeconfig],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    requests = [r for r in sim.counters()["detail"] if r["client"] == "gpu-policy-validator"]
    rbac = Rbac(rendered, VALIDATOR_SA)
    used, denied = set(), []
    for req in requests:
        hits = rbac.matching(req["verb"], req["group"], req["resource"], req["namespace"], req["name"])
        if not hits:
            denied.append(req)
        used.update((i, req["verb"]) for i in hits)
    assert not denied, denied
    unused = [(ns, rule, v) for i, (ns, rule) in enumerate(rbac.bound) for v in rule["verbs"] if (i, v) not in used]
    assert not unused, unused


class _TmpFactory:
    """Enough of pytest's tmp_path_factory for test_validator's stubs fixture function."""

    def __init__(self, path):
        self.path = path

    def mktemp(self, name):
        d = self.path / name
        d.mkdir()
        return d


def test_validator_pod_runs_non_root_with_runtime_default_seccomp():
    """A policy can swap the validator's image: the pod itself must refuse root and keep seccomp."""
    with open(os.path.join(ROOT, "templates/validator.yaml")) as f:
        pod = yaml.safe_load(f)["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert psc.get("runAsUser", 65532) != 0
    (c,) = pod["containers"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert not c["securityContext"].get("privileged")
    # ... and it survives rendering, which sets the image from the policy (golden output).
    with open(os.path.join(ROOT, "test/golden/validator.yaml")) as f:
        rendered = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "DaemonSet"]
    assert rendered and rendered[0]["spec"]["template"]["spec"]["securityContext"] == psc


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
    sim.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPS}})
    sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SERVICEMONITOR_CRD)
    sim.wait_for(lambda: sim.get("/apis/monitoring.coreos.com/v1/servicemonitors")[0] == 200,
                 what="ServiceMonitor CRD served")
    sim.reset_counters()
    # As the Deployment runs it: operands in OPS, the Lease in the controller's namespace.
    ctl = Replica(sim, leader_elect=True, timings=(4, 3, 0.5),
                  extra=["--namespace=" + OPS, "--leader-election-namespace=" + NS])
    try:
        wait_until(lambda: ctl.leading(), 15, "leadership")
        sim.ok("POST", CGP, policy("gpus", dcgmExporter={"serviceMonitor": {"enabled": True}}))
        wait_until(lambda: ready(sim, "gpus") == "True", 30, "policy Ready")
        NODE_FIELDS.extend(controller_node_fields(sim))
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


NODE_FIELDS = []  # (node, field path) the controller manages, filled by run_scenario


def controller_node_fields(sim):
    """Every Node field the controller's writes own, from the managedFields kubesim keeps."""
    out = []

    def walk(fields, path):
        for k, v in fields.items():
            if not v:
                out.append(path + (k,))
            else:
                walk(v, path + (k,))

    for n in sim.get(NODES)[1]["items"]:
        for mf in n["metadata"].get("managedFields") or []:
            if mf["manager"] == "gpu-policy-controller":
                before = len(out)
                walk(mf.get("fieldsV1") or {}, ())
                out[before:] = [(n["metadata"]["name"],) + f for f in out[before:]]
    return out


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
    # What the admission policy allows is all the controller does (kubesim does not evaluate its CEL): on
    # Nodes it owns only gpupolicy.dev/* labels, gpupolicy.dev/* annotations and
    # spec.unschedulable (a driver upgrade's cordon); the only RuntimeClass it touches is "nvidia".
    assert NODE_FIELDS, "no Node field owned by the controller"
    for node, *path in NODE_FIELDS:
        assert (path[:2] == ["f:metadata", "f:labels"] and path[2].startswith("f:gpupolicy.dev/")
                and len(path) == 3) or \
               (path[:2] == ["f:metadata", "f:annotations"] and path[2].startswith("f:gpupolicy.dev/")
                and len(path) == 3) or path == ["f:spec", "f:unschedulable"], (node, path)
    rc_names = {r["name"] for r in requests if r["resource"] == "runtimeclasses"}
    assert rc_names == {"nvidia"}, rc_names
    # The scenario really covered what the rules are for.
    seen = {(r["verb"], r["resource"], r["subresource"]) for r in requests}
    for want in [("patch", "clustergpupolicies", "status"), ("delete", "daemonsets", ""),
                 ("patch", "servicemonitors", ""), ("update", "leases", ""), ("create", "events", ""),
                 ("create", "pods", "eviction"), ("delete", "pods", "")]:
        assert want in seen, want


def test_rbac_checker_rejects_what_it_should(rendered):
    """The matcher itself: namespace, name and group all matter."""
    rbac = Rbac(rendered, SA)
    assert rbac.matching("list", "apps", "daemonsets", OPS, "")
    assert not rbac.matching("list", "apps", "daemonsets", NS, "")
    assert not rbac.matching("list", "apps", "daemonsets", "kube-system", "")
    assert not rbac.matching("get", "", "secrets", NS, "x")
    assert not rbac.matching("patch", "node.k8s.io", "runtimeclasses", "", "runc")
    assert not rbac.matching("update", "coordination.k8s.io", "leases", OPS, "gpu-policy-controller-leader")
    assert not rbac.matching("update", "coordination.k8s.io", "leases", NS, "someone-elses-lease")
    assert rbac.matching("update", "coordination.k8s.io", "leases", NS, "gpu-policy-controller-leader")
    assert rbac.matching("create", "", "events", "default", "")
    assert not rbac.matching("create", "", "events", NS, "")
    assert not rbac.matching("create", "", "daemonsets", OPS, "")
    assert needed_verbs({"verb": "patch", "code": 201}) == ["patch", "create"]
    assert needed_verbs({"verb": "patch", "code": 200}) == ["patch"]

