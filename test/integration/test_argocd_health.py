"""The Argo CD health script (docs/argocd-health.lua) over status examples.

Argo CD runs health scripts with gopher-lua, a Lua 5.1 interpreter, with the
object in the global `obj`; the script uses only Lua 5.1 constructs, so the
Debian lua5.4 interpreter runs it the same way here.
"""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "argocd-health.lua"
LUA = shutil.which("lua5.4") or shutil.which("lua")

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed (scripts/deps.sh)")


def lua_literal(v):
    """JSON value -> Lua table constructor (as Argo CD's JSON->Lua mapping)."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "{" + ", ".join(lua_literal(x) for x in v) + "}"
    return "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(x)}" for k, x in v.items()) + "}"


def health(obj):
    prog = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({lua_literal(str(SCRIPT))})\n"
        'io.write(hs.status, "\\n", hs.message or "", "\\n")\n'
    )
    out = subprocess.run([LUA, "-"], input=prog, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    status, message = out.stdout.split("\n")[:2]
    return status, message


def policy(generation=3, status=None, deleting=False):
    obj = {
        "apiVersion": "gpupolicy.dev/v1alpha1",
        "kind": "ClusterGPUPolicy",
        "metadata": {"name": "gpus", "generation": generation},
        "spec": {},
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if status is not None:
        obj["status"] = status
    return obj


def cond(type_, status, reason, message="", generation=3):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def test_healthy_when_ready():
    st = {"observedGeneration": 3, "conditions": [
        cond("Ready", "True", "AllOperandsReady", "4/4 nodes ready"),
        cond("Reconciling", "False", "Idle"),
        cond("Stalled", "False", "Idle"),
        cond("NodeConflict", "False", "NoConflict")]}
    assert health(policy(status=st)) == ("Healthy", "4/4 nodes ready")


def test_progressing_while_rolling_out():
    st = {"observedGeneration": 3, "conditions": [
        cond("Ready", "Unknown", "RolloutInProgress", "driver: 2/4 nodes"),
        cond("Reconciling", "True", "Progressing", "rolling out")]}
    assert health(policy(status=st)) == ("Progressing", "driver: 2/4 nodes")


def test_progressing_on_transient_failure_while_reconciling():
    # Ready=False but the controller is still working on it: not yet Degraded.
    st = {"observedGeneration": 3, "conditions": [
        cond("Ready", "False", "DriverNotReady", "driver not ready on gpu-7"),
        cond("Reconciling", "True", "Progressing")]}
    assert health(policy(status=st))[0] == "Progressing"


def test_degraded_when_stalled():
    st = {"observedGeneration": 3, "conditions": [
        cond("Ready", "False", "InvalidSpec", "spec.driver.version: Invalid value"),
        cond("Reconciling", "False", "Idle"),
        cond("Stalled", "True", "InvalidSpec", "spec.driver.version: Invalid value")]}
    assert health(policy(status=st)) == ("Degraded", "spec.driver.version: Invalid value")


def test_degraded_when_not_ready_and_idle():
    st = {"observedGeneration": 3, "conditions": [
        cond("Ready", "False", "DevicePluginNotReady", "device-plugin: CrashLoopBackOff on gpu-2"),
        cond("Reconciling", "False", "Idle")]}
    assert health(policy(status=st)) == ("Degraded", "device-plugin: CrashLoopBackOff on gpu-2")


def test_missing_status_is_progressing():
    assert health(policy())[0] == "Progressing"
    assert health(policy(status={}))[0] == "Progressing"


def test_stale_observed_generation_is_progressing_even_if_ready():
    st = {"observedGeneration": 2, "conditions": [cond("Ready", "True", "AllOperandsReady", "ok", 2)]}
    status, message = health(policy(generation=3, status=st))
    assert status == "Progressing"
    assert "not yet observed" in message


def test_stale_ready_condition_is_progressing():
    st = {"observedGeneration": 3, "conditions": [cond("Ready", "True", "AllOperandsReady", "ok", 2)]}
    assert health(policy(generation=3, status=st))[0] == "Progressing"


def test_deleting_is_progressing():
    st = {"observedGeneration": 3, "conditions": [cond("Ready", "True", "AllOperandsReady")]}
    assert health(policy(status=st, deleting=True))[0] == "Progressing"


def test_ready_unknown_without_reconciling_is_progressing():
    st = {"observedGeneration": 3, "conditions": [cond("Ready", "Unknown", "RolloutInProgress", "")]}
    assert health(policy(status=st))[0] == "Progressing"


def test_gitops_doc_embeds_the_same_script():
    """docs/gitops.md's argocd-cm example carries the tested script verbatim."""
    doc = (ROOT / "docs" / "gitops.md").read_text().splitlines()
    key = "resource.customizations.health.gpupolicy.dev_ClusterGPUPolicy: |"
    start = next(i for i, l in enumerate(doc) if l.strip() == key) + 1
    end = next(i for i in range(start, len(doc)) if doc[i].startswith("```"))
    embedded = [l[4:] if l.startswith("    ") else l for l in doc[start:end]]
    assert embedded == SCRIPT.read_text().splitlines()
