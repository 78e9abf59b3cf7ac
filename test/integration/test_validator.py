"""gpu-policy-validator against stub NVML/CUDA libraries (CI has no GPU).

The stubs (test/validator/stub_*.c) are compiled here into libnvidia-ml.so.1 and libcuda.so.1; STUB_MODE picks
their behaviour: healthy2 (two GPUs whose fake cuLaunchKernel really adds the arrays), nvml_fail, nodevice,
cuda_fail, jit_fail, wrong (device 1 element 123 becomes 0), busy_*, hang, MIG, a GPU CUDA cannot see, CUDA's
order differing from NVML's (see test/validator/stub_common.h). Each case asserts the text lines, the JSON and the
exit code; --wait, --hold, --probe and --check-plugin (against kubesim) are covered too, and that the long-running
validator keeps no driver library, device file or check process between checks.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from kubesim_client import build_dir, repo_root

VALIDATOR = os.path.join(build_dir(), "gpu-policy-validator")
EXIT = {"ok": 0, "usage": 2, "nolib": 10, "nvml": 11, "nodevice": 12, "cuda": 13, "wrong": 14, "plugin": 15,
        "timeout": 16, "busy": 17}
GPU0 = "gpu-0 GPU-5f1c0a2e-0000-4000-8000-000000000000 (00000000:3B:00.0)"
GPU1 = "gpu-1 GPU-5f1c0a2e-0000-4000-8000-000000000001 (00000000:3C:00.0)"
JIT = ("cuModuleLoadDataEx: a PTX JIT compilation failed (218); JIT log: ptxas application ptx input, line 1; "
       "fatal   : Unsupported .version 6.0; current version is '5.0' ptxas fatal   : Ptx assembly aborted due to errors")
SMALL = ["--elements", "65536"]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    d = tmp_path_factory.mktemp("stubs")
    src = os.path.join(repo_root(), "test", "validator")
    for lib, c in (("libnvidia-ml.so.1", "stub_nvml.c"), ("libcuda.so.1", "stub_cuda.c")):
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(d / lib),
                        os.path.join(src, c)], check=True)
    return {"nvml": str(d / "libnvidia-ml.so.1"), "cuda": str(d / "libcuda.so.1")}


def test_pure_parts(tmp_path):
    """test/validator/test_pure.c (cmocka; built and run by `make unit` too): parser, host check, report, its JSON
    round trip, UUID/bus-id matching, busy outcome, probe."""
    exe = os.path.join(build_dir(), "test", "validator", "test_pure")
    if not os.path.exists(exe):
        pytest.skip("%s not built (make unit builds it)" % exe)
    p = subprocess.run([exe, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[  FAILED  ]" not in p.stdout + p.stderr


def run(stubs, *args, mode="healthy2", env=None, timeout=60, libs=True):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("STUB_", "GPC_", "KUBERNETES_", "NODE_NAME"))}
    e["STUB_MODE"] = mode
    e.update(env or {})
    cmd = [VALIDATOR]
    if libs:
        cmd += ["--nvml-lib", stubs["nvml"], "--cuda-lib", stubs["cuda"]]
    p = subprocess.run(cmd + list(args), env=e, capture_output=True, text=True, timeout=timeout)
    # The stubs report contexts, allocations, modules or NVML inits left behind on unload.
    assert "stub-" not in p.stderr, p.stderr
    return p


def stub_processes(stubs):
    """Processes (other than this one) that have a stub library mapped: a check process left behind."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/maps" % pid) as f:
                maps = f.read()
        except OSError:
            continue
        if stubs["nvml"] in maps or stubs["cuda"] in maps:
            found.append(int(pid))
    return found


def run_json(stubs, *args, **kw):
    p = run(stubs, "--json", *args, **kw)
    return p, json.loads(p.stdout)


def lines(p):
    return p.stdout.splitlines()


def check(out, name):
    [c] = [c for c in out["checks"] if c["name"] == name]
    return c


# ---- one-shot results -------------------------------------------------------------------------------------

def test_healthy_two_gpus_text(stubs):
    p = run(stubs, *SMALL)
    assert p.returncode == EXIT["ok"], p.stdout + p.stderr
    out = lines(p)
    assert out[0].split() == ["ok", "nvml-library", stubs["nvml"]]
    assert out[1].split() == ["ok", "nvml-init", "nvmlInit_v2"]
    assert out[2].split() == ["ok", "driver-version", "550.54.15"]
    assert out[3].split() == ["ok", "nvml-devices", "2", "GPUs"]
    assert out[4] == ("ok    gpu-0                NVIDIA H100 80GB HBM3 GPU-5f1c0a2e-0000-4000-8000-000000000000, "
                      "memory 1/81559 MiB used, 30 C")
    assert out[5].startswith("ok    gpu-1                NVIDIA H100 80GB HBM3 "
                             "GPU-5f1c0a2e-0000-4000-8000-000000000001")
    assert out[6].split() == ["ok", "cuda-library", stubs["cuda"]]
    assert out[7].split() == ["ok", "cuda-init", "CUDA", "driver", "API", "12.4"]
    for i in (0, 1):
        assert out[8 + i].startswith("ok    vectoradd-%d          compute capability 9.0, 65536 elements in " % i)
        assert out[8 + i].endswith(" ms")
    assert out[10:] == ["result: ok"]


def test_healthy_two_gpus_json(stubs):
    p, out = run_json(stubs, *SMALL)
    assert p.returncode == 0
    assert out["result"] == "ok" and out["exitCode"] == 0 and out["reason"] is None
    assert out["driverVersion"] == "550.54.15"
    assert out["cudaDriverVersion"] == "12.4"
    assert [c["name"] for c in out["checks"]] == [
        "nvml-library", "nvml-init", "driver-version", "nvml-devices", "gpu-0", "gpu-1", "cuda-library",
        "cuda-init", "vectoradd-0", "vectoradd-1"]
    assert all(c["ok"] for c in out["checks"])
    assert len(out["devices"]) == 2
    for i, d in enumerate(out["devices"]):
        va = d.pop("vectorAdd")
        assert d == {"index": i, "migIndex": None, "name": "NVIDIA H100 80GB HBM3",
                     "uuid": "GPU-5f1c0a2e-0000-4000-8000-%012d" % i, "pciBusId": "00000000:%02X:00.0" % (0x3B + i),
                     "computeMode": "Default", "migEnabled": False, "busy": False,
                     "memoryTotalMiB": 81559, "memoryUsedMiB": 1 + i, "temperatureC": 30 + i,
                     "computeCapability": "9.0"}
        assert va["ok"] is True and va["elements"] == 65536 and va["ms"] >= 0


def test_default_size_is_four_million_elements(stubs):
    p, out = run_json(stubs)
    assert p.returncode == 0
    assert [d["vectorAdd"]["elements"] for d in out["devices"]] == [1 << 22, 1 << 22]


def test_libraries_from_environment(stubs):
    p = run(stubs, *SMALL, libs=False, env={"GPC_NVML_LIB": stubs["nvml"], "GPC_CUDA_LIB": stubs["cuda"]})
    assert p.returncode == 0, p.stdout
    assert lines(p)[0].split() == ["ok", "nvml-library", stubs["nvml"]]


def test_missing_nvml_library(stubs, tmp_path):
    missing = str(tmp_path / "nope" / "libnvidia-ml.so.1")
    p = run(stubs, "--nvml-lib", missing)
    assert p.returncode == EXIT["nolib"]
    assert lines(p)[0].startswith("FAIL  nvml-library         %s: cannot open shared object file" % missing)
    assert lines(p)[-1].startswith("result: failed (exit 10) NoDriverLibrary: %s: cannot open" % missing)
    p, out = run_json(stubs, "--nvml-lib", missing)
    assert out["result"] == "NoDriverLibrary" and out["exitCode"] == 10 and p.returncode == 10
    assert [c["name"] for c in out["checks"]] == ["nvml-library"]
    assert out["devices"] == [] and out["driverVersion"] is None


def test_missing_cuda_library(stubs, tmp_path):
    p, out = run_json(stubs, "--cuda-lib", str(tmp_path / "libcuda.so.1"))
    assert p.returncode == EXIT["nolib"]
    assert check(out, "cuda-library")["ok"] is False
    assert out["reason"].startswith("NoDriverLibrary: ")
    assert out["driverVersion"] == "550.54.15" and len(out["devices"]) == 2


def test_library_without_the_entry_points(stubs):
    # libcuda stub has none of NVML's symbols: a broken install, reported by the missing symbol's name.
    p, out = run_json(stubs, "--nvml-lib", stubs["cuda"])
    assert p.returncode == EXIT["nolib"]
    assert out["reason"] == "NoDriverLibrary: %s lacks nvmlInit_v2" % stubs["cuda"]


def test_nvml_init_failure(stubs):
    p = run(stubs, mode="nvml_fail")
    assert p.returncode == EXIT["nvml"]
    assert lines(p)[1] == "FAIL  nvml-init            nvmlInit_v2: Driver Not Loaded (9)"
    assert lines(p)[-1] == "result: failed (exit 11) NVMLError: nvmlInit_v2: Driver Not Loaded (9)"
    p, out = run_json(stubs, mode="nvml_fail")
    assert (out["result"], out["exitCode"]) == ("NVMLError", 11)
    assert out["reason"] == "NVMLError: nvmlInit_v2: Driver Not Loaded (9)"
    assert [(c["name"], c["ok"]) for c in out["checks"]] == [("nvml-library", True), ("nvml-init", False)]


def test_no_device(stubs):
    p = run(stubs, mode="nodevice")
    assert p.returncode == EXIT["nodevice"]
    assert lines(p)[-2:] == ["FAIL  nvml-devices         0 GPUs",
                             "result: failed (exit 12) NoDevice: NVML reports 0 GPUs"]
    p, out = run_json(stubs, mode="nodevice")
    assert (out["result"], out["exitCode"], out["devices"]) == ("NoDevice", 12, [])


def test_cuda_init_failure(stubs):
    p, out = run_json(stubs, mode="cuda_fail")
    assert p.returncode == EXIT["cuda"]
    assert out["reason"] == ("CUDAError: cuInit: no CUDA-capable device is detected (100) (%s is not visible to CUDA)"
                             % GPU0)
    assert check(out, "cuda-init")["ok"] is False
    assert out["cudaDriverVersion"] is None


def test_ptx_jit_failure_names_each_device(stubs):
    p = run(stubs, *SMALL, mode="jit_fail")
    assert p.returncode == EXIT["cuda"]
    # The JIT's own error log says why (here: a driver too old for the PTX ISA), not just "failed".
    assert "FAIL  vectoradd-0          compute capability 9.0, " + JIT in lines(p)
    assert "FAIL  vectoradd-1          compute capability 9.0, " + JIT in lines(p)
    assert lines(p)[-1] == "result: failed (exit 13) CUDAError: %s %s" % (GPU0, JIT)


def test_wrong_result(stubs, tmp_path):
    log = tmp_path / "termination-log"
    p = run(stubs, *SMALL, "--termination-log", str(log), mode="wrong")
    assert p.returncode == EXIT["wrong"]
    assert lines(p)[8].startswith("ok    vectoradd-0 ")
    assert lines(p)[9] == "FAIL  vectoradd-1          element 123 expected 126.0 got 0.0"
    reason = "WrongResult: %s element 123 expected 126.0 got 0.0" % GPU1
    assert lines(p)[-1] == "result: failed (exit 14) " + reason
    assert log.read_text() == reason + "\n"
    p, out = run_json(stubs, *SMALL, mode="wrong")
    assert (out["result"], out["exitCode"]) == ("WrongResult", 14)
    assert [d["vectorAdd"]["ok"] for d in out["devices"]] == [True, False]


def test_wrong_result_elsewhere(stubs):
    p, out = run_json(stubs, *SMALL, mode="wrong", env={"STUB_WRONG_DEVICE": "0", "STUB_WRONG_ELEMENT": "65535"})
    assert p.returncode == EXIT["wrong"]
    # a[i] = i % 1000, b[i] = 0.5 * (i % 7) + 1: 535 + 0.5 * 1 + 1 = 536.5
    assert out["reason"] == "WrongResult: %s element 65535 expected 536.5 got 0.0" % GPU0


def test_kernel_that_writes_nothing_fails(stubs):
    # The output buffer is uploaded as -1s, so a launch that does nothing cannot pass on stale memory.
    p, out = run_json(stubs, *SMALL, mode="noop")
    assert p.returncode == EXIT["wrong"]
    assert out["reason"] == "WrongResult: %s element 0 expected 1.0 got -1.0" % GPU0


def test_success_leaves_termination_log_alone(stubs, tmp_path):
    log = tmp_path / "termination-log"
    assert run(stubs, *SMALL, "--termination-log", str(log)).returncode == 0
    assert not log.exists()


# ---- command line -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--bogus"], ["--timeout", "x"], ["--interval", "0"], ["--elements", "0"],
                                  ["--elements", "268435457"], ["--timeout"], ["extra"], ["--probe"],
                                  ["--check-plugin"]])
def test_usage_errors(stubs, args):
    p = run(stubs, *args)
    assert p.returncode == EXIT["usage"], (args, p.stdout, p.stderr)
    assert "try gpu-policy-validator --help" in p.stderr
    assert p.stdout == ""


def test_help_documents_exit_codes_and_version():
    p = subprocess.run([VALIDATOR, "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for text in ("0 ok", "2 usage", "10 no driver library", "11 NVML error", "12 no device", "13 CUDA error",
                 "14 wrong result", "15 device plugin", "16 timeout", "17 GPU busy", "18 allocation failed",
                 "--check-plugin", "--check-allocation", "--hold",
                 "--probe", "--phase-timeout", "--recheck-interval"):
        assert text in p.stdout
    v = subprocess.run([VALIDATOR, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("gpu-policy-validator ")


def ptxas():
    for d in [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]:
        if d and os.access(os.path.join(d, "bin", "ptxas"), os.X_OK):
            return os.path.join(d, "bin", "ptxas")
    return shutil.which("ptxas")


def test_embedded_ptx_assembles(tmp_path):
    p = subprocess.run([VALIDATOR, "--dump-ptx"], capture_output=True, text=True)
    assert p.returncode == 0
    assert ".entry vectorAdd(" in p.stdout and ".target sm_50" in p.stdout
    tool = ptxas()
    if not tool:
        pytest.skip("no ptxas (CUDA toolkit) on this machine")
    (tmp_path / "va.ptx").write_text(p.stdout)
    for arch in ("sm_75", "sm_90"):
        r = subprocess.run([tool, "--gpu-name", arch, str(tmp_path / "va.ptx"), "-o", str(tmp_path / "va.cubin")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# ---- --wait, --hold, --probe, status file -----------------------------------------------------------------

def test_wait_retries_until_the_driver_loads(stubs, tmp_path):
    counter = tmp_path / "counter"
    status = tmp_path / "status.json"
    p, out = run_json(stubs, *SMALL, "--wait", "--interval", "0.05", "--timeout", "30", "--status-file", str(status),
                      env={"STUB_FAIL_UNTIL": "3", "STUB_COUNTER": str(counter)})
    assert p.returncode == 0, p.stderr
    assert counter.read_text().strip() == "4"
    assert p.stderr.count("check failed, retrying") == 3
    assert "NVMLError: nvmlInit_v2: Driver Not Loaded (9)" in p.stderr
    assert out["result"] == "ok"
    saved = json.loads(status.read_text())
    assert saved["attempt"] == 4 and saved["exitCode"] == 0
    assert subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)]).returncode == 0


def test_wait_times_out_with_last_reason(stubs, tmp_path):
    log = tmp_path / "termination-log"
    status = tmp_path / "status.json"
    t0 = time.monotonic()
    p, out = run_json(stubs, "--wait", "--interval", "0.1", "--timeout", "0.5", "--termination-log", str(log),
                      "--status-file", str(status), mode="nvml_fail")
    assert time.monotonic() - t0 < 20
    assert p.returncode == EXIT["timeout"]
    assert (out["result"], out["exitCode"]) == ("Timeout", 16)
    assert out["reason"].startswith("Timeout: no success within 0.5s (")
    assert out["reason"].endswith("attempts), last failure: NVMLError: nvmlInit_v2: Driver Not Loaded (9)")
    assert log.read_text() == out["reason"] + "\n"
    assert json.loads(status.read_text())["exitCode"] == 16
    probe = subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)], capture_output=True, text=True)
    assert probe.returncode == 16
    assert probe.stdout.startswith("validator not ready: Timeout: ")


def test_wait_with_zero_timeout_tries_once(stubs):
    p, out = run_json(stubs, "--wait", "--timeout", "0", mode="nodevice")
    assert p.returncode == EXIT["timeout"]
    assert out["reason"] == "Timeout: no success within 0s (1 attempts), last failure: NoDevice: NVML reports 0 GPUs"


def test_hung_driver_call_ends_with_timeout(stubs, tmp_path):
    # cuCtxSynchronize never returns: past --timeout + min(--timeout, 30s) the parent kills the check process
    # (no signal handler involved) and reports which phase hung and in which driver call.
    log = tmp_path / "termination-log"
    status = tmp_path / "status.json"
    reason = re.compile(r"Timeout: phase vectoradd-0 still running after 1\.\d+s \(in cuCtxSynchronize\); "
                        r"check process killed$")
    t0 = time.monotonic()
    p = run(stubs, *SMALL, "--timeout", "0.5", "--termination-log", str(log), "--status-file", str(status),
            mode="hang", timeout=30)
    assert 1.4 < time.monotonic() - t0 < 25
    assert p.returncode == EXIT["timeout"]
    last = lines(p)[-1]
    assert last.startswith("result: failed (exit 16) ") and reason.search(last), p.stdout
    assert re.match(r"FAIL  vectoradd-0          still running after 1\.\d+s \(in cuCtxSynchronize\)", lines(p)[-2])
    assert reason.match(log.read_text().strip())
    assert reason.match(json.loads(status.read_text())["reason"])
    probe = subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)], capture_output=True, text=True)
    assert probe.returncode == 16
    p, out = run_json(stubs, *SMALL, "--wait", "--timeout", "0.5", mode="hang", timeout=30)
    assert p.returncode == EXIT["timeout"]
    assert (out["result"], out["exitCode"]) == ("Timeout", 16) and reason.match(out["reason"])
    assert not stub_processes(stubs)


def test_phase_timeout_names_the_phase(stubs):
    # --phase-timeout bounds each check process on its own, well inside --timeout.
    t0 = time.monotonic()
    p, out = run_json(stubs, *SMALL, "--timeout", "60", "--phase-timeout", "0.5", mode="hang", timeout=30)
    assert time.monotonic() - t0 < 10
    assert p.returncode == EXIT["timeout"]
    assert re.match(r"Timeout: phase vectoradd-0 still running after 0\.5\d*s \(in cuCtxSynchronize\)",
                    out["reason"]), out["reason"]
    assert not stub_processes(stubs)


def test_slow_api_is_named_as_the_device_plugin_phase(stubs, tmp_path):
    # An API server that accepts the connection and never answers: the time-out names the device-plugin
    # phase and the request, not "a driver call".
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        kc = tmp_path / "kubeconfig"
        kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
                      "    server: http://127.0.0.1:%d\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                      "users:\n- name: u\n  user: {}\n" % srv.getsockname()[1])
        p, out = run_json(stubs, *SMALL, "--check-plugin", "--node", "n", "--kubeconfig", str(kc),
                          "--phase-timeout", "1", timeout=60)
    finally:
        srv.close()
    assert p.returncode == EXIT["timeout"]
    assert re.match(r"Timeout: phase device-plugin still running after 1(\.\d+)?s \(in GET node\)", out["reason"]), \
        out["reason"]
    assert "driver call" not in out["reason"]


def test_probe_states(stubs, tmp_path):
    status = tmp_path / "status.json"

    def probe():
        return subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)], capture_output=True, text=True)

    assert probe().returncode == 1  # not written yet
    assert "validator not ready: status file" in probe().stdout
    assert run(stubs, "--status-file", str(status), mode="wrong", *SMALL).returncode == 14
    assert probe().returncode == 14
    assert probe().stdout == "validator not ready: WrongResult: %s element 123 expected 126.0 got 0.0\n" % GPU1
    assert run(stubs, "--status-file", str(status), *SMALL).returncode == 0
    assert probe().returncode == 0 and probe().stdout == ""
    status.write_text("{\"exitCode\": \"zero\"}")
    assert probe().returncode == 1
    status.write_text("not json")
    assert probe().returncode == 1
    assert not [f for f in os.listdir(tmp_path) if ".tmp." in f]


def start(stubs, *args, mode="healthy2", env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("STUB_", "GPC_", "KUBERNETES_", "NODE_NAME"))}
    e["STUB_MODE"] = mode
    e.update(env or {})
    return subprocess.Popen([VALIDATOR, "--nvml-lib", stubs["nvml"], "--cuda-lib", stubs["cuda"]] + list(args),
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(fn, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met")


def test_hold_keeps_running_until_sigterm(stubs, tmp_path):
    status = tmp_path / "status.json"
    proc = start(stubs, *SMALL, "--wait", "--hold", "--status-file", str(status))
    try:
        wait_for(status.exists)
        assert subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)]).returncode == 0
        time.sleep(0.3)
        assert proc.poll() is None  # still holding
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out.splitlines()[-1] == "result: ok"
    assert "stub-" not in err


def test_hold_does_not_hold_a_failure(stubs, tmp_path):
    p = run(stubs, "--hold", mode="nodevice", timeout=10)
    assert p.returncode == EXIT["nodevice"]


def test_sigterm_while_waiting_ends_with_the_failure(stubs, tmp_path):
    log = tmp_path / "termination-log"
    proc = start(stubs, "--wait", "--interval", "30", "--termination-log", str(log), mode="nvml_fail")
    try:
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT["nvml"]
    assert log.read_text() == "NVMLError: nvmlInit_v2: Driver Not Loaded (9)\n"


def test_sigterm_during_a_hung_check_kills_it(stubs, tmp_path):
    log = tmp_path / "termination-log"
    proc = start(stubs, *SMALL, "--wait", "--timeout", "60", "--termination-log", str(log), mode="hang")
    try:
        wait_for(lambda: len(stub_processes(stubs)) >= 1)  # the check process, in cuCtxSynchronize
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT["timeout"]
    assert re.match(r"Timeout: phase vectoradd-0 stopped by a signal after \d+(\.\d+)?s \(in cuCtxSynchronize\); "
                    r"check process killed$", log.read_text().strip()), log.read_text()
    assert not stub_processes(stubs)


def test_a_helper_process_holding_the_pipe_does_not_stall_the_check(stubs):
    # The driver may start processes that inherit the check process's descriptors; the check is over when the
    # check process is, not when the last holder of its pipe goes.
    t0 = time.monotonic()
    try:
        p, out = run_json(stubs, *SMALL, "--phase-timeout", "20", mode="helper", env={"STUB_HELPER_SECONDS": "60"},
                          timeout=90)
    finally:
        for pid in stub_processes(stubs):  # the helpers
            os.kill(pid, signal.SIGKILL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert out["result"] == "ok"
    assert time.monotonic() - t0 < 15


# ---- MIG, device matching, busy GPUs ------------------------------------------------------------------------

def test_mig_devices_are_validated_as_such(stubs):
    # GPU 0 in MIG mode with 3 MIG devices: its aggregate memory answers NO_PERMISSION (nvml.h, unprivileged
    # caller), which is "n/a" like NOT_SUPPORTED; every MIG device runs vectorAdd in its own check process
    # (CUDA enumerates one MIG device per process) under its own MIG UUID; GPU 1 is a whole GPU.
    p, out = run_json(stubs, *SMALL, env={"STUB_MIG": "3"})
    assert p.returncode == 0, p.stdout + p.stderr
    names = [c["name"] for c in out["checks"]]
    assert names == ["nvml-library", "nvml-init", "driver-version", "nvml-devices", "gpu-0", "gpu-0/mig-0",
                     "gpu-0/mig-1", "gpu-0/mig-2", "gpu-1", "cuda-library", "cuda-init", "vectoradd-0/mig-0",
                     "vectoradd-0/mig-1", "vectoradd-0/mig-2", "vectoradd-1"]
    assert "memory n/a" in check(out, "gpu-0")["detail"] and "MIG mode" in check(out, "gpu-0")["detail"]
    by_key = {(d["index"], d["migIndex"]): d for d in out["devices"]}
    parent = by_key[(0, None)]
    assert parent["migEnabled"] and parent["memoryTotalMiB"] is None and parent["vectorAdd"] is None
    for j in range(3):
        d = by_key[(0, j)]
        assert d["uuid"] == "MIG-6a2b0c3d-0000-4000-8000-%012d" % j
        assert d["memoryTotalMiB"] == 9856 and d["vectorAdd"]["ok"] is True
    assert by_key[(1, None)]["vectorAdd"]["ok"] is True


def test_devices_are_matched_by_uuid_not_index(stubs):
    # CUDA numbers the GPUs the other way round from NVML; the wrong sum happens on NVML's GPU 1 and must be
    # reported under GPU 1's UUID, and GPU 0's result under GPU 0's.
    p, out = run_json(stubs, *SMALL, mode="wrong", env={"STUB_CUDA_ORDER": "reverse", "STUB_WRONG_DEVICE": "1"})
    assert p.returncode == EXIT["wrong"]
    assert out["reason"] == "WrongResult: %s element 123 expected 126.0 got 0.0" % GPU1
    assert [(d["uuid"][-1], d["vectorAdd"]["ok"]) for d in out["devices"]] == [("0", True), ("1", False)]


def test_a_gpu_not_given_to_this_container_is_skipped(stubs):
    # nvml.h: nvmlDeviceGetCount_v2 counts every GPU, and nvmlDeviceGetHandleByIndex_v2 answers NO_PERMISSION for
    # one the caller may not use. That GPU is not ours to check and does not fail the node.
    p, out = run_json(stubs, *SMALL, env={"STUB_NO_ACCESS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert check(out, "gpu-1") == {"name": "gpu-1", "ok": True, "detail": (
        "not accessible to this container (nvmlDeviceGetHandleByIndex_v2: Insufficient Permissions (4)), skipped")}
    assert [d["index"] for d in out["devices"]] == [0]
    assert "vectoradd-1" not in [c["name"] for c in out["checks"]]
    p, out = run_json(stubs, *SMALL, env={"STUB_NO_ACCESS": "all"})
    assert p.returncode == EXIT["nodevice"]
    assert out["reason"] == "NoDevice: none of the 2 GPUs NVML reports is accessible to this container"


def test_a_gpu_cuda_cannot_see_fails_by_name(stubs):
    p, out = run_json(stubs, *SMALL, env={"STUB_CUDA_HIDE": "1"})
    assert p.returncode == EXIT["cuda"]
    assert out["reason"] == ("CUDAError: %s is not visible to CUDA (cuInit: no CUDA-capable device is detected (100))"
                             % GPU1)
    assert check(out, "vectoradd-0")["ok"] is True and check(out, "vectoradd-1")["ok"] is False


@pytest.mark.parametrize("mode,why", [
    ("busy_exclusive", "in use, compute mode ExclusiveProcess: cuDevicePrimaryCtxRetain: CUDA-capable device(s) "
                       "is/are busy or unavailable (46)"),
    ("busy_prohibited", "compute mode Prohibited"),
    ("busy_oom", "in use, compute mode Default: cuMemAlloc_v2: out of memory (2)"),
])
def test_busy_gpu_is_reported_not_failed(stubs, tmp_path, mode, why):
    status = tmp_path / "status.json"
    p = run(stubs, *SMALL, "--status-file", str(status), mode=mode)
    assert p.returncode == EXIT["busy"], p.stdout + p.stderr
    reason = "GPUBusy: %s: %s" % (GPU1, why)
    assert lines(p)[-2] == "busy  vectoradd-1          %s: %s" % (GPU1, why)
    assert lines(p)[-1] == "result: busy (exit 17) " + reason
    assert "ok    vectoradd-0 " in p.stdout
    out = json.loads(status.read_text())
    assert (out["result"], out["exitCode"], out["reason"]) == ("GPUBusy", 17, reason)
    assert [d["busy"] for d in out["devices"]] == [False, True]
    probe = subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)], capture_output=True, text=True)
    assert probe.returncode == 0  # busy is not a failure: the pod stays Ready
    assert probe.stdout == "validator ready, GPU busy: %s\n" % reason


def test_a_failure_wins_over_busy(stubs):
    p, out = run_json(stubs, *SMALL, mode="busy_exclusive", env={"STUB_BUSY_DEVICE": "0", "STUB_CUDA_HIDE": "1"})
    assert p.returncode == EXIT["cuda"]
    assert out["busy"].startswith("gpu-0 ") and out["reason"].startswith("CUDAError: gpu-1 ")


def test_wait_stops_at_busy_and_hold_rechecks_until_free(stubs, tmp_path):
    # --wait does not spin on a busy GPU until its timeout; --hold keeps the pod Ready and tries the busy GPU again
    # every --recheck-interval, each time in fresh check processes, until it is free.
    status = tmp_path / "status.json"
    busy = tmp_path / "busy"
    busy.write_text("")
    dev = tmp_path / "nvidiactl"
    dev.write_text("")
    proc = start(stubs, *SMALL, "--wait", "--hold", "--timeout", "30", "--recheck-interval", "0.3",
                 "--status-file", str(status), mode="busy_exclusive",
                 env={"STUB_BUSY_FILE": str(busy), "STUB_DEVICE_FILE": str(dev)})
    try:
        wait_for(status.exists)
        first = json.loads(status.read_text())
        assert (first["result"], first["attempt"]) == ("GPUBusy", 1)
        assert subprocess.run([VALIDATOR, "--probe", "--status-file", str(status)],
                              capture_output=True).returncode == 0
        wait_for(lambda: json.loads(status.read_text())["attempt"] >= 3)
        assert json.loads(status.read_text())["result"] == "GPUBusy"
        assert_holds_nothing(proc.pid, stubs, dev)  # between two re-checks
        busy.unlink()
        wait_for(lambda: json.loads(status.read_text())["result"] == "ok")
        attempts = json.loads(status.read_text())["attempt"]
        time.sleep(1.0)
        assert json.loads(status.read_text())["attempt"] == attempts  # passed: no more re-checks
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "GPU still busy" in err and "stub-" not in err


def assert_holds_nothing(pid, stubs, device_file):
    """The long-running validator has no driver library mapped, no descriptor on the (stub) device file and no
    check process alive."""
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    assert stubs["nvml"] not in maps and stubs["cuda"] not in maps
    fds = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
    assert str(device_file) not in fds, fds
    children = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as f:
            children += f.read().split()
    assert children == []


def test_hold_keeps_nothing_open(stubs, tmp_path):
    # The stubs open STUB_DEVICE_FILE the way the driver opens /dev/nvidiactl (libcuda never closes it). While the
    # validator holds, neither library is mapped and no descriptor on it is open: a driver unload, a GPU reset or
    # a MIG reconfiguration is not blocked by the validator pod.
    status = tmp_path / "status.json"
    dev = tmp_path / "nvidiactl"
    dev.write_text("")
    proc = start(stubs, *SMALL, "--wait", "--hold", "--status-file", str(status), env={"STUB_DEVICE_FILE": str(dev)})
    try:
        wait_for(status.exists)
        assert json.loads(status.read_text())["result"] == "ok"
        time.sleep(0.2)
        assert proc.poll() is None
        assert_holds_nothing(proc.pid, stubs, dev)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_wait_recovers_from_a_sticky_cuinit_failure(stubs, tmp_path):
    # The stub's cuInit fails twice, and once failed it keeps failing in that process (as the real driver's can):
    # only a fresh process per attempt recovers.
    counter = tmp_path / "cuda-counter"
    p, out = run_json(stubs, *SMALL, "--wait", "--interval", "0.05", "--timeout", "30",
                      env={"STUB_CUDA_FAIL_UNTIL": "2", "STUB_CUDA_COUNTER": str(counter)})
    assert p.returncode == 0, p.stdout + p.stderr
    assert out["result"] == "ok"
    assert "CUDAError: cuInit: system not yet initialized (802)" in p.stderr
    assert p.stderr.count("check failed, retrying") == 2


def test_full_disk_for_the_termination_log(stubs):
    # /dev/full answers every write with ENOSPC: the outcome still reaches stdout and the exit code, and stderr
    # says plainly why the termination log is missing.
    p = run(stubs, *SMALL, "--termination-log", "/dev/full", mode="wrong")
    assert p.returncode == EXIT["wrong"]
    assert lines(p)[-1].startswith("result: failed (exit 14) WrongResult: ")
    assert "gpu-policy-validator: termination log /dev/full: No space left on device" in p.stderr.splitlines()
    p = run(stubs, *SMALL, "--termination-log", "/dev/full", "--timeout", "0.3", mode="hang", timeout=30)
    assert p.returncode == EXIT["timeout"]
    assert "gpu-policy-validator: termination log /dev/full: No space left on device" in p.stderr.splitlines()


def test_check_process_crash_is_reported(stubs):
    # A driver that aborts the process inside cuLaunchKernel takes down only that device's check process; the
    # validator names the phase and the call, and still checks the other GPU.
    p, out = run_json(stubs, *SMALL, mode="crash", env={"STUB_CRASH_DEVICE": "0"})
    assert p.returncode == EXIT["cuda"]
    assert out["reason"] == "CUDAError: phase vectoradd-0: check process killed by signal 6 in cuLaunchKernel"
    assert check(out, "vectoradd-1")["ok"] is True


# ---- --check-plugin against kubesim -------------------------------------------------------------------------


@pytest.fixture
def kubesim(kubesim):
    """conftest's, on GPU hosts that can run a bare device plugin: their own driver and nvidia as the
    runtime's default (kubesim enforces the plugin's host contract: no NVML, no plugin)."""
    def make(**kw):
        kw.setdefault("extra_args", ["--fleet", "containerd/ubuntu22.04/host-driver/host-toolkit-default"])
        return kubesim(**kw)
    return make

DEVICE_PLUGIN = {
    "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "nvidia-device-plugin"},
    "spec": {"selector": {"matchLabels": {"app": "nvidia-device-plugin"}},
             "template": {"metadata": {"labels": {"app": "nvidia-device-plugin",
                                                  "app.kubernetes.io/component": "device-plugin"}},
                          "spec": {"nodeSelector": {"feature.node.kubernetes.io/pci-10de.present": "true"},
                                   # as NVIDIA's nvidia-device-plugin.yml: the kubelet's socket directory
                                   "volumes": [{"name": "dp", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                                   "containers": [{"name": "dp",
                                                   "image": "nvcr.io/nvidia/k8s-device-plugin:v0.16.2",
                                                   "volumeMounts": [{"name": "dp", "mountPath":
                                                                     "/var/lib/kubelet/device-plugins"}]}]}}}}


def allocatable(sim, node):
    return sim.ok("GET", "/api/v1/nodes/" + node)["status"]["allocatable"].get("nvidia.com/gpu")


def deploy_device_plugin(sim, node="gpu-node-0", wait=True):
    """kubesim advertises nvidia.com/gpu on a node once a device-plugin pod there is Ready (as the kubelet does
    when the plugin registers); a hand-written status patch would be reverted, as a real kubelet reverts it."""
    sim.ok("POST", "/apis/apps/v1/namespaces/kube-system/daemonsets", DEVICE_PLUGIN)
    if wait:
        sim.wait_for(lambda: allocatable(sim, node) is not None, timeout=30, what="nvidia.com/gpu advertised")


def test_check_plugin_passes_when_gpus_are_advertised(stubs, kubesim):
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0)
    deploy_device_plugin(sim)
    p, out = run_json(stubs, *SMALL, "--check-plugin", "--node", "gpu-node-0", "--kubeconfig", sim.kubeconfig)
    assert p.returncode == 0, p.stdout + p.stderr
    c = check(out, "device-plugin")
    assert c == {"name": "device-plugin", "ok": True, "detail": "node gpu-node-0 allocatable nvidia.com/gpu 2, 2 GPUs"}
    assert out["checks"][-1]["name"] == "device-plugin"


def test_check_plugin_fails_when_not_advertised(stubs, kubesim, tmp_path):
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0)
    log = tmp_path / "termination-log"
    p = run(stubs, *SMALL, "--check-plugin", "--kubeconfig", sim.kubeconfig, "--termination-log", str(log),
            env={"NODE_NAME": "gpu-node-0"})
    assert p.returncode == EXIT["plugin"]
    assert lines(p)[-2] == "FAIL  device-plugin        node gpu-node-0 allocatable nvidia.com/gpu 0, 2 GPUs"
    reason = "PluginNotAdvertising: node gpu-node-0 allocatable nvidia.com/gpu 0 < 2 GPUs"
    assert lines(p)[-1] == "result: failed (exit 15) " + reason
    assert log.read_text() == reason + "\n"


def test_check_plugin_fails_when_fewer_gpus_are_advertised(stubs, kubesim):
    sim = kubesim(gpu_nodes=1, gpus_per_node=1, cpu_nodes=0)  # the plugin sees 1 GPU, NVML (the stub) 2
    deploy_device_plugin(sim)
    assert allocatable(sim, "gpu-node-0") == "1"
    p, out = run_json(stubs, *SMALL, "--check-plugin", "--node", "gpu-node-0", "--kubeconfig", sim.kubeconfig)
    assert p.returncode == EXIT["plugin"]
    assert out["reason"] == "PluginNotAdvertising: node gpu-node-0 allocatable nvidia.com/gpu 1 < 2 GPUs"


def test_check_plugin_unknown_node(stubs, kubesim):
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0)
    p, out = run_json(stubs, *SMALL, "--check-plugin", "--node", "no-such-node", "--kubeconfig", sim.kubeconfig)
    assert p.returncode == EXIT["plugin"]
    assert out["reason"].startswith("PluginNotAdvertising: GET node no-such-node: HTTP 404: ")
    assert "not found" in out["reason"]


def test_check_plugin_unreachable_api(stubs, tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
                  "    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                  "users:\n- name: u\n  user: {}\n")
    p, out = run_json(stubs, *SMALL, "--check-plugin", "--node", "n", "--kubeconfig", str(kc), timeout=120)
    assert p.returncode == EXIT["plugin"]
    assert out["reason"].startswith("PluginNotAdvertising: GET node n: HTTP 0: ")


def test_check_plugin_waits_for_the_device_plugin_daemonset(stubs, kubesim):
    # The real sequence: the validator starts before the device plugin; kubesim adds nvidia.com/gpu to the
    # node's allocatable once the plugin's pod is Ready, and --wait picks it up.
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0, pod_ready_delay=1.0)
    proc = start(stubs, *SMALL, "--json", "--wait", "--interval", "0.2", "--timeout", "60", "--check-plugin",
                 "--node", "gpu-node-0", "--kubeconfig", sim.kubeconfig)
    try:
        time.sleep(0.5)
        deploy_device_plugin(sim, wait=False)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert "PluginNotAdvertising: node gpu-node-0 allocatable nvidia.com/gpu 0 < 2 GPUs" in err
    assert json.loads(out)["checks"][-1]["detail"] == "node gpu-node-0 allocatable nvidia.com/gpu 2, 2 GPUs"


def test_check_plugin_in_cluster_config(stubs, kubesim, tmp_path):
    # In a pod there is no kubeconfig: the service-account token and CA, and KUBERNETES_SERVICE_HOST/PORT.
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0, tls=True)
    deploy_device_plugin(sim)
    sa = tmp_path / "sa"
    sa.mkdir()
    shutil.copy(os.path.join(sim.tls_dir, "ca.crt"), sa / "ca.crt")
    shutil.copy(os.path.join(sim.tls_dir, "token"), sa / "token")
    (sa / "namespace").write_text("gpu-policy-system")
    port = sim.url.rsplit(":", 1)[1].rstrip("/")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port, "GPC_SA_DIR": str(sa),
           "NODE_NAME": "gpu-node-0"}
    p, out = run_json(stubs, *SMALL, "--check-plugin", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert check(out, "device-plugin")["ok"] is True
    (sa / "token").write_text("wrong-token")
    p, out = run_json(stubs, *SMALL, "--check-plugin", env=env)
    assert p.returncode == EXIT["plugin"]
    assert "HTTP 401" in out["reason"]


# ---- memory hygiene --------------------------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("valgrind") or os.environ.get("GPC_SANITIZED"),
                    reason="valgrind not installed, or the binary is sanitized")
@pytest.mark.parametrize("mode", ["healthy2", "wrong", "nvml_fail", "jit_fail"])
def test_valgrind_clean(stubs, mode):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("STUB_", "GPC_"))}
    e["STUB_MODE"] = mode
    p = subprocess.run(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                        "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                        VALIDATOR, "--elements", "4096", "--nvml-lib", stubs["nvml"], "--cuda-lib", stubs["cuda"]],
                       env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode != 99, p.stderr
    assert p.returncode in (0, 11, 13, 14)
    assert "stub-" not in p.stderr


@pytest.mark.skipif(not shutil.which("valgrind") or os.environ.get("GPC_SANITIZED"),
                    reason="valgrind not installed, or the binary is sanitized")
def test_valgrind_clean_plugin_check_over_tls(stubs, kubesim):
    # The API path (kubeconfig with CA and token, libcurl over TLS, the event loop) frees what it took too.
    sim = kubesim(gpu_nodes=1, gpus_per_node=2, cpu_nodes=0, tls=True)
    for node, want in (("gpu-node-0", "allocatable nvidia.com/gpu 0 < 2 GPUs"), ("nope", "HTTP 404")):
        p = subprocess.run(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                            VALIDATOR, "--elements", "4096", "--nvml-lib", stubs["nvml"], "--cuda-lib", stubs["cuda"],
                            "--check-plugin", "--node", node, "--kubeconfig", sim.kubeconfig],
                           env={"PATH": os.environ.get("PATH", ""), "STUB_MODE": "healthy2"},
                           capture_output=True, text=True, timeout=180)
        assert p.returncode == EXIT["plugin"], p.stderr
        assert want in p.stdout.splitlines()[-1]
