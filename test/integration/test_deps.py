"""scripts/deps.sh on machines whose apt sources offer no kubectl, or offer only Debian's old one: it goes
on without kubectl and says so in one line, instead of stopping make demo and make test. apt-get and
apt-cache are replaced on PATH (what they were asked is recorded); dpkg-query is the real one, so the
build packages, present on this machine, are found."""

import os
import subprocess

from kubesim_client import repo_root
from test_demo import old_kubectl

ROOT = repo_root()
FALLBACK = "make demo uses 'gpu-policy-controller apply' instead and the kubectl-driven tests are skipped"


def run_deps(tmp_path, apt_offers_kubectl, path=None, **env):
    fake = tmp_path / "fakeapt"
    fake.mkdir(exist_ok=True)
    log = tmp_path / "apt.log"
    (fake / "apt-get").write_text('#!/bin/sh\necho "apt-get $*" >> "%s"\n' % log)
    offer = "exit 0" if apt_offers_kubectl else 'echo "E: No packages found" >&2; exit 100'
    (fake / "apt-cache").write_text('#!/bin/sh\necho "apt-cache $*" >> "%s"\n%s\n' % (log, offer))
    for f in ("apt-get", "apt-cache"):
        (fake / f).chmod(0o755)
    e = dict(os.environ, PATH="%s:%s" % (fake, path or os.environ["PATH"]))
    e.update(env)
    r = subprocess.run(["scripts/deps.sh"], cwd=ROOT, env=e, capture_output=True, text=True, timeout=60)
    return r, (log.read_text() if log.exists() else "")


def test_no_kubectl_anywhere_is_one_line_and_success(tmp_path):
    r, apt = run_deps(tmp_path, False, KUBECTL="no-such-kubectl")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "deps.sh: no kubectl package in the configured apt sources (Debian's kubernetes-client is kubectl "
        "1.20, too old for kubesim); " + FALLBACK], r.stderr
    # The lists are refreshed before asking (a fresh machine has none); nothing else is installed.
    assert apt.splitlines() == ["apt-get update -qq", "apt-cache show kubectl"], apt


def test_kubectl_from_a_configured_repository_is_installed(tmp_path):
    r, apt = run_deps(tmp_path, True, KUBECTL="no-such-kubectl")
    assert r.returncode == 0, r.stderr
    assert "apt-get install -y -qq --no-install-recommends kubectl" in apt, apt


def test_a_kubectl_too_old_for_kubesim_is_named_and_skipped(tmp_path):
    r, apt = run_deps(tmp_path, False, path=old_kubectl(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "deps.sh: kubectl is v1.20.2, older than the 1.29 kubesim needs (OpenAPI v3 validation); " + FALLBACK]
    assert apt == ""  # everything present: a no-op
