"""The docs tell the truth, and keep telling it: every flag `--help` prints is in docs/operations.md's
flag table and every flag there exists; every page links only to files that exist and cites only
sections of docs/design.md that exist, never anything outside the repository; and the "Running the
controller on your machine" recipe works as written."""

import base64
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import ssl
import time
from urllib.parse import urlsplit

import pytest
import yaml

from kubesim_client import build_dir, repo_root
from replica import CGP

ROOT = repo_root()
CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")])


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def section(text, heading):
    m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(heading), text, re.S | re.M)
    assert m, "no section %r" % heading
    return m.group(1)


def help_flags():
    r = subprocess.run([CONTROLLER, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    flags = set(re.findall(r"^  (--[a-z-]+)", r.stdout, re.M))
    assert "--kubeconfig" in flags and len(flags) > 10
    return flags


def test_every_flag_is_documented_and_every_documented_flag_exists():
    table = section(read("docs/operations.md"), "Flags")
    documented = set(re.findall(r"`(--[a-z-]+)`", table))
    flags = help_flags()
    assert flags - documented - {"--help", "--version"} == set(), "flags missing from docs/operations.md"
    assert documented - flags == set(), "docs/operations.md documents flags that do not exist"


def test_docs_link_and_cite_only_what_the_repository_has():
    design = read("docs/design.md")
    sections = set(re.findall(r"^## (\d+)\. ", design, re.M))
    problems = []
    for path in DOCS + glob.glob(os.path.join(ROOT, "controller", "**", "*.[ch]"), recursive=True):
        text = open(path).read()
        rel = os.path.relpath(path, ROOT)
        for bad in ("shared/", "reference/k8s-api-wire-spec", "ecosystem-conventions", "style-anchors"):
            if bad in text:
                problems.append("%s names %s outside the repository" % (rel, bad))
        for m in re.finditer(r"design\.md §(\d+)(?:[–-]§?(\d+))?", text):
            for n in filter(None, m.groups()):
                if n not in sections:
                    problems.append("%s cites design.md §%s, which does not exist" % (rel, n))
        if path.endswith(".md"):
            for target in re.findall(r"\]\(([A-Za-z0-9_./-]+)(?:#[^)]*)?\)", text):
                if re.match(r"[a-z]+://", target):
                    continue
                if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), target))):
                    problems.append("%s links to %s, which does not exist" % (rel, target))
    assert problems == []


def documented_metrics():
    table = section(read("docs/operations.md"), "Metrics")
    names = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_:]+)`", line.split("|")[1]))
    return names


@pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")
def test_every_metric_family_is_documented_and_every_documented_one_is_exported(kubesim):
    from replica import Replica, policy, prepare, ready_condition, wait_until
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    prepare(sim)
    r = Replica(sim, leader_elect=True)
    try:
        sim.ok("POST", CGP, policy("gpus"))
        wait_until(lambda: ready_condition(sim, "gpus") == "True", 30, "Ready")
        exported = set(r.metrics())
    finally:
        r.stop()
    documented = documented_metrics()
    assert exported - documented == set(), "metric families missing from docs/operations.md"
    assert documented - exported == set(), "docs/operations.md documents metrics the controller does not export"


def crd_status_fields():
    crd = yaml.safe_load(read("crds/gpupolicy.dev_clustergpupolicies.yaml"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    out = set()

    def walk(node, prefix):
        props = node.get("properties") or (node.get("items") or {}).get("properties") or {}
        for k, v in props.items():
            name = prefix + k + ("[]" if v.get("type") == "array" else "")
            out.add(name)
            if v.get("type") in ("object", "array") and prefix == "":
                walk(v, name + ".")
    walk(schema, "")
    return out


def test_every_status_field_is_documented():
    """Each status field of the CRD is a row of docs/api.md's status table, or (list items, `nodes.*`)
    named in its parent's row; each row names a field the CRD has. Conditions are metav1.Condition."""
    text = section(read("docs/api.md"), "status")
    rows = {r.replace("[]", "") for r in re.findall(r"^\| `([a-zA-Z.\[\]]+)` \|", text, re.M)}
    fields = {f.replace("[]", "") for f in crd_status_fields()}
    assert rows - fields == set(), "docs/api.md documents status fields the CRD does not have"
    missing = []
    for f in sorted(fields):
        parent, _, leaf = f.rpartition(".")
        if f in rows or parent == "conditions" or any(r.startswith(f + ".") for r in rows):
            continue
        if parent in rows and re.search(r"^\| `%s(\[\])?` \|.*`[^`]*\b%s\b[^`]*`" % (re.escape(parent), leaf),
                                        text, re.M):
            continue
        missing.append(f)
    assert missing == [], "status fields missing from docs/api.md's status section"


CONDITION_TYPES = {"Ready", "Reconciling", "Stalled", "NodeConflict"}


def code_condition_reasons():
    """Reasons the controller writes into conditions: every CamelCase literal status.c uses (its
    condition types and statuses aside) and the reasons reconcile.c hands to status_stalled()."""
    status = read("controller/domain/status.c")
    reasons = set(re.findall(r'"([A-Z][A-Za-z]+)"', status))
    reasons |= set(re.findall(r'status_stalled\([^;]*?"([A-Z][A-Za-z]+)"', read("controller/reconcile.c"), re.S))
    return reasons - CONDITION_TYPES - {"True", "False", "Unknown"}


def test_every_condition_reason_is_documented_and_every_documented_one_is_written():
    table = section(read("docs/api.md"), "Conditions")
    documented = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 4 and cells[1].strip().strip("`") in CONDITION_TYPES:
            documented.update(re.findall(r"`([A-Z][A-Za-z]+)`", cells[3]))
    code = code_condition_reasons()
    assert {"AllOperandsReady", "InvalidSpec", "ApplyFailed", "DriverNotReady"} <= code
    assert code - documented == set(), "condition reasons missing from docs/api.md#conditions"
    assert documented - code == set(), "docs/api.md documents condition reasons the controller never writes"


def recipe():
    """The shell commands of the local-run recipe, one string each (continuation lines joined)."""
    block = re.search(r"## Running the controller on your machine\n.*?```sh\n(.*?)```",
                      read("docs/operations.md"), re.S).group(1)
    cmds, cur = [], ""
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line)
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cmds.append((cur + line).strip())
        cur = ""
    return [c for c in cmds if c]


def ready(kubeconfig, policy):
    """The Ready condition's status of `policy`, read with the kubeconfig kubesim wrote (CA data, token)."""
    cfg = yaml.safe_load(open(kubeconfig))
    cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    u = urlsplit(cluster["server"])
    c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=5)
    try:
        c.request("GET", "%s/%s" % (CGP, policy), headers={"Authorization": "Bearer " + user["token"]})
        r = c.getresponse()
        obj = json.loads(r.read() or b"{}")
    except OSError:
        return None
    finally:
        c.close()
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status")
    return None


@pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")
def test_the_local_run_recipe_works_as_written(tmp_path):
    """Run in a directory that looks like the repository root (the recipe's paths are relative)."""
    for d in ("test", "crds", "manifests"):
        os.symlink(os.path.join(ROOT, d), tmp_path / d)
    os.symlink(build_dir(), tmp_path / "build")
    cmds = recipe()
    assert cmds[0].startswith("python3 test/kubesim/kubesim.py") and cmds[0].endswith("&")
    assert cmds[-1].startswith("build/gpu-policy-controller --kubeconfig")
    # Free ports instead of the documented 8080/8081, which may be taken on a shared machine.
    ctl = re.sub(r"127\.0\.0\.1:808[01]", "127.0.0.1:0", cmds[-1])
    env = dict(os.environ, PATH="%s:%s" % (os.path.dirname(shutil.which("python3") or "/usr/bin/python3"),
                                           os.environ["PATH"]))
    sim = subprocess.Popen(["bash", "-c", cmds[0][:-1]], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    ctl_proc = None
    try:
        for c in cmds[1:-1]:
            r = subprocess.run(["bash", "-c", c], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, (c, r.stdout, r.stderr)
        ctl_proc = subprocess.Popen(["bash", "-c", "exec " + ctl], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        kc = str(tmp_path / "kubesim.kubeconfig")
        deadline = time.monotonic() + 60
        while ready(kc, "gpus") != "True":
            assert ctl_proc.poll() is None, ctl_proc.stdout.read()
            assert time.monotonic() < deadline, "policy gpus never became Ready"
            time.sleep(0.5)
    finally:
        if ctl_proc:
            ctl_proc.send_signal(signal.SIGTERM)
            ctl_proc.wait(20)
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(20)
