"""`make demo` (scripts/demo.sh) from the repository root, as a newcomer runs
it: the rollout is shown stage by stage in order, the policy ends Ready and is
cleaned up, exit 0; a sabotaged rollout exits non-zero and says what is stuck;
both leave no process and no temporary directory behind."""

import os
import re
import shutil
import subprocess

import pytest

from kubesim_client import build_dir, kubectl_usable, repo_root

ROOT = repo_root()
STAGES = ["driver", "container-toolkit", "device-plugin", "dcgm-exporter", "validator"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_demo(timeout=60, **env):
    e = dict(os.environ, GPC_BUILD=os.path.relpath(build_dir(), ROOT))
    e.update({k: str(v) for k, v in env.items()})
    r = subprocess.run(["scripts/demo.sh"], cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)
    return r.returncode, ANSI.sub("", r.stdout), ANSI.sub("", r.stderr)


def workdir_of(out):
    m = re.search(r"log: text on (\S+)/controller\.log", out)
    assert m, out
    return m.group(1)


def assert_left_nothing(work):
    assert not os.path.exists(work), "demo left " + work
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        assert work not in cmd, "demo left process %s running: %s" % (pid, cmd.replace("\0", " "))


def unlock_times(out):
    """{node: {stage: seconds}} from the progress lines."""
    seen = {}
    for m in re.finditer(r"^\[\s*([0-9.]+)s\] (\S+)\s+unlocked (\S+)$", out, re.M):
        seen.setdefault(m.group(2), {})[m.group(3)] = float(m.group(1))
    return seen


@pytest.mark.skipif(not kubectl_usable()[0], reason="the full demo shows kubectl output")
def test_demo_converges_stage_by_stage_and_cleans_up():
    rc, out, err = run_demo(DEMO_GPU_NODES=3, DEMO_CPU_NODES=1)
    assert rc == 0, out + err
    seen = unlock_times(out)
    assert sorted(seen) == ["gpu-node-0", "gpu-node-1", "gpu-node-2"], out  # CPU nodes are never claimed
    for node, t in seen.items():
        assert set(t) == set(STAGES), (node, t)
        # Each stage waits for the one before it on that node; pods take 1 s to be Ready, so the
        # device plugin comes at least 2 s after the driver (a slow poll may see two stages at once).
        assert t["driver"] <= t["container-toolkit"] <= t["device-plugin"], (node, t, out)
        assert t["device-plugin"] <= min(t["dcgm-exporter"], t["validator"]), (node, t, out)
        assert t["device-plugin"] - t["driver"] >= 1.5, (node, t, out)
    assert "policy gpus: Ready=True reason=AllOperandsReady nodes 3/3" in out, out
    ready = out.index("policy gpus: Ready=True reason=AllOperandsReady nodes 3/3")
    assert ready > max(out.index("unlocked validator"), out.index("unlocked dcgm-exporter"))
    assert "clustergpupolicy.gpupolicy.dev/gpus condition met" in out, out  # kubectl wait
    assert re.search(r"^gpus\s+True\s+3/3\s+24\s", out, re.M), out  # kubectl get cgp: 3 nodes x 8 GPUs
    assert re.search(r"^gpu-node-0\s.*\sgpus\s+true\s+true\s+true\s+true\s+true\s*$", out, re.M), out
    assert "policy gpus deleted; no node carries its labels any more" in out, out
    assert_left_nothing(workdir_of(out))


def test_demo_exits_nonzero_when_the_rollout_does_not_converge():
    rc, out, err = run_demo(DEMO_GPU_NODES=2, DEMO_CPU_NODES=0, DEMO_TIMEOUT=5, DEMO_POD_READY_DELAY=0.3,
                            DEMO_FAIL_NODE="gpu-node-1")
    assert rc != 0, out
    assert "Ready=True" not in out
    assert "timed out after 5s: policy gpus is not Ready" in err
    assert re.search(r"failing: node gpu-node-1 operand driver: CrashLoopBackOff", err), err
    assert "controller log" in err  # the failure shows the controller's last lines
    # The healthy node is not held back by the broken one.
    assert "gpu-node-0   unlocked validator" in out
    assert "gpu-node-1   unlocked container-toolkit" not in out
    assert_left_nothing(workdir_of(out))


def test_demo_without_kubectl_uses_the_controllers_apply():
    rc, out, err = run_demo(DEMO_GPU_NODES=2, DEMO_CPU_NODES=1, DEMO_POD_READY_DELAY=0.3, DEMO_NO_KUBECTL=1)
    assert rc == 0, out + err
    assert "no kubectl: gpu-policy-controller apply" in out
    assert "customresourcedefinition.apiextensions.k8s.io/clustergpupolicies.gpupolicy.dev created" in out
    assert "clustergpupolicy.gpupolicy.dev/gpus created" in out
    assert "policy gpus: Ready=True" in out
    assert re.search(r"^gpus\s+True\s+2/2\s+16\s+AllOperandsReady$", out, re.M), out
    assert_left_nothing(workdir_of(out))


def old_kubectl(tmp_path):
    """A PATH whose kubectl is Debian 12's kubernetes-client (1.20): it reports its version, and every
    other use fails as `kubectl apply` does against kubesim (no OpenAPI v2)."""
    fake = tmp_path / "oldkubectl"
    fake.mkdir(exist_ok=True)
    (fake / "kubectl").write_text(
        '#!/bin/sh\nif [ "$1" = version ]; then\n'
        '  printf \'{"clientVersion": {\\n  "major": "1",\\n  "minor": "20",\\n  "gitVersion": "v1.20.2"\\n}}\\n\'\n'
        '  exit 0\nfi\necho "Error from server (NotFound): the server could not find the requested resource" >&2\n'
        'exit 1\n')
    (fake / "kubectl").chmod(0o755)
    return "%s:%s" % (fake, os.environ["PATH"])


def test_demo_with_a_kubectl_too_old_for_kubesim_falls_back_and_says_so(tmp_path):
    rc, out, err = run_demo(DEMO_GPU_NODES=1, DEMO_CPU_NODES=0, DEMO_POD_READY_DELAY=0.3, PATH=old_kubectl(tmp_path))
    assert rc == 0, out + err
    assert "kubectl is v1.20.2, older than the 1.29 kubesim needs" in err, err
    assert "no kubectl: gpu-policy-controller apply" in out
    assert "policy gpus: Ready=True" in out
    assert_left_nothing(workdir_of(out))


def fresh_machine(tmp_path):
    """A PATH that makes this machine look fresh to the Makefile: pkg-config answers nothing (as when
    neither it nor the libraries are installed) until scripts/deps.sh has run, which is seen by its
    first dpkg-query (the packages are really present here, so deps.sh installs nothing)."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    marker = tmp_path / "packages-installed"
    for tool, script in (("pkg-config", '[ -e "%s" ] || exit 1\n' % marker),
                         ("dpkg-query", 'touch "%s"\n' % marker)):
        (fake / tool).write_text("#!/bin/sh\n%sexec %s \"$@\"\n" % (script, shutil.which(tool)))
        (fake / tool).chmod(0o755)
    env = dict(os.environ, MAKEFLAGS="-j2", PATH="%s:%s" % (fake, os.environ["PATH"]))
    for k in ("GPC_BUILD", "MAKELEVEL", "MFLAGS"):
        env.pop(k, None)
    return env, marker


@pytest.mark.skipif(not kubectl_usable()[0] or not shutil.which("git"),
                    reason="needs git to clone and kubectl for the full demo")
def test_make_demo_then_make_test_on_a_fresh_clone_of_a_fresh_machine(tmp_path):
    """What a newcomer types on a fresh machine: a fresh clone, then `make demo`, which installs the
    packages and builds and runs in that one invocation (issue: the compiler flags were read before
    deps had installed pkg-config and the libraries, so the first link failed); then the same for
    `make test` (one unit binary and one integration suite, to keep this test short)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True, timeout=120)
    assert not (clone / "build").exists()
    env, marker = fresh_machine(tmp_path)
    r = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    out = ANSI.sub("", r.stdout)
    assert r.returncode == 0, out[-4000:] + r.stderr[-4000:]
    assert marker.exists()
    assert (clone / "build" / "gpu-policy-controller").exists()
    assert "unlocked validator" in out, out
    assert "policy gpus: Ready=True reason=AllOperandsReady" in out, out
    assert_left_nothing(workdir_of(out))

    # The packages "go away" again, and make test must build (one object, every binary) and run.
    marker.unlink()
    (clone / "build" / "gpu-policy-controller").unlink()
    (clone / "build" / "controller" / "base" / "log.o").unlink()
    r = subprocess.run(["make", "test", "UNIT_BINS=build/test/unit/test_backoff",
                        "INTEGRATION=test/integration/test_render_cmd.py"],
                       cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "== build/test/unit/test_backoff" in r.stdout
    assert re.search(r"\b\d+ passed", r.stdout), r.stdout[-2000:]
    assert (clone / "build" / "gpu-policy-controller").exists()


def test_without_packages_the_build_says_what_to_run(tmp_path):
    """A build that cannot find the libraries stops with one line naming `make deps`, not with hundreds
    of undefined references."""
    env, _ = fresh_machine(tmp_path)
    r = subprocess.run(["make", "BUILD=%s" % (tmp_path / "build"), "all"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "run 'make deps' (scripts/deps.sh) first" in r.stderr, r.stderr
    assert "undefined reference" not in r.stderr
