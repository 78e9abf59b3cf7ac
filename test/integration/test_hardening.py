"""The binaries carry the hardening the Makefile asks for (issue 18): stack protector
(-fstack-protector-strong: __stack_chk_fail), _FORTIFY_SOURCE (checked __*_chk variants of libc calls),
full RELRO (GNU_RELRO segment + BIND_NOW). Read with readelf from the built binaries; the sanitizer build
(GPC_SANITIZED) leaves _FORTIFY_SOURCE out on purpose and is checked for the rest only."""

import os
import re
import shutil
import subprocess

import pytest

from kubesim_client import build_dir

BINARIES = ["gpu-policy-controller", "gpu-policy-validator"]
pytestmark = pytest.mark.skipif(not shutil.which("readelf"), reason="readelf (binutils) not installed")


def readelf(*args):
    return subprocess.run(["readelf", "-W"] + list(args), capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", BINARIES)
def test_full_relro_and_bind_now(name):
    path = os.path.join(build_dir(), name)
    if not os.path.exists(path):
        pytest.skip("not built")
    assert "GNU_RELRO" in readelf("-l", path)
    dyn = readelf("-d", path)
    assert re.search(r"\(FLAGS\)\s.*BIND_NOW", dyn) or re.search(r"\(FLAGS_1\)\s.*\bNOW\b", dyn), dyn


@pytest.mark.parametrize("name", BINARIES)
def test_stack_protector_and_fortify(name):
    path = os.path.join(build_dir(), name)
    if not os.path.exists(path):
        pytest.skip("not built")
    syms = readelf("--dyn-syms", path)
    assert "__stack_chk_fail" in syms
    if os.environ.get("GPC_SANITIZED"):
        return
    checked = set(re.findall(r"\b(__\w+_chk)@", syms)) - {"__stack_chk_fail"}
    assert checked, "no _FORTIFY_SOURCE __*_chk symbol in %s" % name


def dockerfile():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "Dockerfile")) as f:
        return f.read()


def arg_default(text, name):
    m = re.search(r"^ARG %s=(\S*)$" % name, text, re.M)
    assert m, "no ARG %s with a default" % name
    return m.group(1)


def test_dockerfile_base_is_pinned_by_digest_and_its_packages_by_snapshot():
    """Every FROM but scratch names a digest, and the default BASE_DIGEST is a literal one (the manifest
    list docker-library/repo-info records); apt reads snapshot.debian.org at a fixed moment by default."""
    text = dockerfile()
    froms = [l.split()[1] for l in text.splitlines() if l.startswith("FROM ")]
    assert froms[-1] == "scratch"
    for ref in froms[:-1]:
        assert re.search(r"@sha256:[0-9a-f]{64}$", ref) or ref.endswith("@${BASE_DIGEST}"), ref
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", arg_default(text, "BASE_DIGEST"))
    assert re.fullmatch(r"\d{8}T\d{6}Z", arg_default(text, "DEBIAN_SNAPSHOT"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "operations.md")) as f:
        ops = f.read()
    assert "BASE_DIGEST" in ops and "DEBIAN_SNAPSHOT" in ops


@pytest.mark.skipif(not shutil.which("apt-get"), reason="apt-get not installed")
def test_dockerfile_snapshot_sources_are_what_apt_reads(tmp_path):
    """The deb822 file the build stage writes, run through the Dockerfile's own printf, parses for apt and
    points every suite (security too) at the snapshot."""
    text = dockerfile()
    m = re.search(r"(printf '.*?)\s*\\\n\s*> /etc/apt/sources.list.d/debian.sources", text, re.S)
    assert m, "no printf writing debian.sources"
    cmd = re.sub(r"\\\n", " ", m.group(1))
    snap = arg_default(text, "DEBIAN_SNAPSHOT")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    subprocess.run(["bash", "-c", cmd + " > %s/debian.sources" % parts], check=True,
                   env={"DEBIAN_SNAPSHOT": snap, "PATH": os.environ["PATH"]})
    out = subprocess.run(["apt-get", "-o", "Dir::Etc::sourceparts=%s" % parts, "-o", "Dir::Etc::sourcelist=/dev/null",
                          "-o", "Dir::State::lists=%s" % (tmp_path / "lists"), "--print-uris", "update"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    releases = sorted(re.findall(r"'(http\S+/InRelease)'", out.stdout))
    assert releases == sorted("http://snapshot.debian.org/archive/%s/%s/dists/%s/InRelease" % (a, snap, s)
                              for a, s in (("debian", "bookworm"), ("debian", "bookworm-updates"),
                                           ("debian-security", "bookworm-security"))), out.stdout
