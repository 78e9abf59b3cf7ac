"""The container image's filesystem, built without a Docker engine by
scripts/build-image-rootfs.sh (the Dockerfile's build stage runs the same
script), runs both binaries as the nonroot user on nothing but its own files."""
import glob
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    out = tmp_path_factory.mktemp("rootfs")
    subprocess.run([os.path.join(ROOT, "scripts/build-image-rootfs.sh"), str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    return str(out)


def in_image(rootfs, *argv):
    if os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("chroot into the image layout needs root")
    return subprocess.run(["chroot", "--userspec=65532:65532", rootfs, *argv],
                          capture_output=True, text=True, timeout=60)


def test_layout(rootfs):
    for path in ("usr/bin/gpu-policy-controller", "usr/bin/gpu-policy-validator",
                 "etc/passwd", "etc/ssl/certs/ca-certificates.crt"):
        assert os.path.exists(os.path.join(rootfs, path)), path
    templates = glob.glob(os.path.join(rootfs, "usr/share/gpu-policy-controller/templates/*.yaml"))
    assert len(templates) == len(glob.glob(os.path.join(ROOT, "templates/*.yaml")))
    with open(os.path.join(rootfs, "etc/passwd")) as f:
        assert "nonroot:x:65532:65532:" in f.read()
    # No shell and no package manager in the runtime image.
    assert not os.path.exists(os.path.join(rootfs, "bin/sh"))
    assert not os.path.exists(os.path.join(rootfs, "usr/bin/apt-get"))


def test_binaries_run_as_nonroot_from_the_layout(rootfs):
    for binary in ("gpu-policy-controller", "gpu-policy-validator"):
        r = in_image(rootfs, "/usr/bin/" + binary, "--version")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(binary + " ")


def test_controller_renders_a_sample_inside_the_image(rootfs):
    samples = sorted(glob.glob(os.path.join(ROOT, "manifests/samples/*.yaml")))
    if not samples:
        pytest.fail("manifests/samples/ has no policy to render")
    dst = os.path.join(rootfs, "tmp/policy.yaml")
    shutil.copy(samples[0], dst)
    r = in_image(rootfs, "/usr/bin/gpu-policy-controller", "render", "-f", "/tmp/policy.yaml")
    assert r.returncode == 0, r.stderr
    assert "kind: DaemonSet" in r.stdout


def test_controller_serves_probes_inside_the_image(rootfs, kubesim):
    """The shared-library closure is complete for real work: TLS to the API
    server (OpenSSL, CA from the kubeconfig), name lookups (libnss), and
    libwebsockets' libuv event-loop plugin behind /readyz."""
    if os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("chroot into the image layout needs root")
    # A container runtime provides /dev; libwebsockets reads /dev/urandom.
    dev = os.path.join(rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    for name, minor in (("null", 3), ("urandom", 9)):
        path = os.path.join(dev, name)
        if not os.path.exists(path):
            try:
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            except OSError as e:
                pytest.skip("cannot create %s in the image layout: %s" % (path, e))
            os.chmod(path, 0o666)
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, tls=True)
    sim.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
    shutil.copy(sim.kubeconfig, os.path.join(rootfs, "tmp/kubeconfig"))
    os.chmod(os.path.join(rootfs, "tmp/kubeconfig"), 0o644)
    port = free_port()
    proc = subprocess.Popen(["chroot", "--userspec=65532:65532", rootfs, "/usr/bin/gpu-policy-controller",
                             "--kubeconfig=/tmp/kubeconfig", "--metrics-bind-address=0",
                             "--health-probe-bind-address=127.0.0.1:%d" % port, "--log-format=text"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, "readyz %s; controller exited %s" % (status, proc.poll())
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out


def test_dockerfile_runtime_stage_matches_the_layout_and_the_deployment(rootfs):
    """The Dockerfile's final stage copies this layout, runs as the layout's
    nonroot user and starts a binary that exists in it; the Deployment runs
    the same user and command."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        stages = f.read().split("\nFROM ")
    final = stages[-1]
    assert final.startswith("scratch"), "runtime stage must be minimal, got FROM " + final.split()[0]
    assert "scripts/build-image-rootfs.sh /rootfs" in stages[0] + "".join(stages[1:-1])
    assert "COPY --from=build /rootfs/ /" in final
    assert "USER 65532:65532" in final
    entry = final.split("ENTRYPOINT", 1)[1].strip().splitlines()[0]
    binary = entry.strip('[]" ').split('"')[0]
    assert os.access(os.path.join(rootfs, binary.lstrip("/")), os.X_OK), binary
    with open(os.path.join(ROOT, "manifests/base/deployment.yaml")) as f:
        pod = yaml.safe_load(f)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["containers"][0]["command"] == [binary]
