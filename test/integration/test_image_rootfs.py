"""The container image's filesystem, built without a Docker engine by
scripts/build-image-rootfs.sh (the Dockerfile's build stage runs the same
script), runs both binaries as the nonroot user on nothing but its own files."""
import glob
import json
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


# ---- the validator finds the driver however the container toolkit mounts it ------------------------------------

# Where the toolkit puts the driver's libraries. CDI mode: at the host's own paths, /usr/lib/x86_64-linux-gnu on
# Debian/Ubuntu hosts, /usr/lib64 on the RHEL family. Legacy mode (libnvidia-container): /usr/lib/x86_64-linux-gnu
# when the image has /etc/debian_version, else /usr/lib64 (src/nvc_container.c copy_config, USR_LIB_DIR in
# src/common.h) — our image has none, so /usr/lib64 on every host.
LAYOUTS = {"debian": "usr/lib/x86_64-linux-gnu", "rhel": "usr/lib64"}
DRIVER_VERSION = "550.54.15"


@pytest.fixture(scope="module")
def driver_libs(tmp_path_factory):
    """The stub NVML and CUDA libraries, built like the real files: a versioned file with the soname inside, and
    NEEDED entries for the glibc pieces the real libcuda links (librt, libpthread, libdl, libm), which our own
    binaries do not need."""
    d = tmp_path_factory.mktemp("driver")
    src = os.path.join(ROOT, "test", "validator")
    for soname, c in (("libnvidia-ml.so.1", "stub_nvml.c"), ("libcuda.so.1", "stub_cuda.c")):
        real = soname.rsplit(".so.", 1)[0] + ".so." + DRIVER_VERSION
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-Wl,-soname," + soname,
                        "-o", str(d / real), os.path.join(src, c), "-Wl,--no-as-needed", "-l:librt.so.1", "-l:libpthread.so.0",
                        "-l:libdl.so.2", "-lm"], check=True)
    needed = subprocess.run(["readelf", "-d", str(d / ("libcuda.so." + DRIVER_VERSION))], capture_output=True,
                            text=True).stdout
    assert "librt.so.1" in needed
    return str(d)


def mount_driver(root, layout, libs):
    """What the toolkit's mounts and create-symlinks hook leave: the versioned files and their soname links."""
    dst = os.path.join(root, LAYOUTS[layout])
    os.makedirs(dst, exist_ok=True)
    for real in os.listdir(libs):
        shutil.copy(os.path.join(libs, real), os.path.join(dst, real))
        soname = real[:real.index(".so.") + 4] + "1"  # libcuda.so.550.54.15 -> libcuda.so.1
        os.symlink(real, os.path.join(dst, soname))


def update_ldcache_hook(root, folders):
    """The update-ldcache hook of nvidia-container-toolkit v1.16/v1.17 (cmd/nvidia-cdi-hook/update-ldcache/
    update-ldcache.go), re-enacted: the host's ldconfig with -r <container root> -f /etc/ld.so.conf; -C
    /etc/ld.so.cache only when the container has that file, else -N (no cache is built); the folders go into
    /etc/ld.so.conf.d/00-nvcr-*.conf when that directory exists, else on the command line."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    args = [ldconfig, "-r", root, "-f", "/etc/ld.so.conf"]
    if os.path.exists(os.path.join(root, "etc/ld.so.cache")):
        args += ["-C", "/etc/ld.so.cache"]
    else:
        args += ["-N"]
    confd = os.path.join(root, "etc/ld.so.conf.d")
    if os.path.isdir(confd):
        path = os.path.join(confd, "00-nvcr-1234567.conf")
        with open(path, "w") as f:
            f.write("".join(d + "\n" for d in folders))
        os.chmod(path, 0o644)
    else:
        args += folders
    subprocess.run(args, check=True, capture_output=True)


def legacy_ldconfig(root):
    """libnvidia-container (legacy mode) runs ldconfig on the container's own /etc/ld.so.conf and cache, with no
    folder of its own: the image's configuration has to list the directory it mounted into."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    subprocess.run([ldconfig, "-r", root, "-f", "/etc/ld.so.conf", "-C", "/etc/ld.so.cache"], check=True,
                   capture_output=True)


def test_image_has_a_loader_cache_and_all_of_glibc(rootfs):
    # No /etc/debian_version: legacy mode mounts the driver into /usr/lib64 (see LAYOUTS).
    assert not os.path.exists(os.path.join(rootfs, "etc/debian_version"))
    assert os.path.getsize(os.path.join(rootfs, "etc/ld.so.cache")) > 0
    with open(os.path.join(rootfs, "etc/ld.so.conf")) as f:
        assert "include /etc/ld.so.conf.d/*.conf" in f.read()
    confd = "".join(open(p).read() for p in glob.glob(os.path.join(rootfs, "etc/ld.so.conf.d/*.conf")))
    assert "/usr/lib64" in confd and "/usr/lib/x86_64-linux-gnu" in confd
    libdir = os.path.join(rootfs, "lib/x86_64-linux-gnu")
    for lib in ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libresolv.so.2",
                "libnss_files.so.2", "libnss_dns.so.2", "libutil.so.1", "libanl.so.1"):
        assert os.path.exists(os.path.join(libdir, lib)), lib


@pytest.mark.parametrize("hook,layout", [("cdi-update-ldcache", "debian"), ("cdi-update-ldcache", "rhel"),
                                         ("legacy-ldconfig", "rhel"), ("none", "debian"), ("none", "rhel")])
def test_validator_finds_the_driver_in_the_image(rootfs, driver_libs, tmp_path, layout, hook):
    """The validator, run from the image's filesystem in a chroot as the nonroot user with the default library
    names, loads the driver from either host layout: through the cache when the toolkit's hook (CDI) or
    libnvidia-container (legacy) updates it, and through its absolute-path fallbacks when nothing does (an older
    toolkit, a failed hook)."""
    if os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("chroot into the image layout needs root")
    root = str(tmp_path / "root")
    # Hard links: cheap, and nothing below rewrites a linked file in place (ldconfig replaces the cache by rename).
    subprocess.run(["cp", "-al", rootfs, root], check=True)
    os.chmod(root, 0o755)
    mount_driver(root, layout, driver_libs)
    if hook == "cdi-update-ldcache":
        update_ldcache_hook(root, ["/" + LAYOUTS[layout]])
    elif hook == "legacy-ldconfig":
        legacy_ldconfig(root)
    if hook != "none":
        cached = subprocess.run(["ldconfig", "-r", root, "-p"], capture_output=True, text=True).stdout
        assert "/%s/libcuda.so.1" % LAYOUTS[layout] in cached
    r = subprocess.run([shutil.which("chroot"), "--userspec=65532:65532", root, "/usr/bin/gpu-policy-validator", "--json",
                        "--elements", "4096"], env={"PATH": "/usr/bin", "STUB_MODE": "healthy2"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stub-" not in r.stderr
    out = json.loads(r.stdout)
    assert out["result"] == "ok" and len(out["devices"]) == 2
    libs = {c["name"]: c["detail"] for c in out["checks"] if c["name"].endswith("-library")}
    if hook != "none" or layout == "debian":
        # Found by name: the cache, or (Debian layout) the loader's default directories.
        assert libs == {"nvml-library": "libnvidia-ml.so.1", "cuda-library": "libcuda.so.1"}
    else:
        assert libs == {"nvml-library": "/usr/lib64/libnvidia-ml.so.1", "cuda-library": "/usr/lib64/libcuda.so.1"}
