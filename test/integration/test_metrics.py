"""/metrics, /healthz and /readyz of the real controller against kubesim (issue 6).

/metrics is read with a strict parser of the text format (promtext.py) and its counters must move as
work happens; /readyz answers 503 while the informers' first LIST is held back by kubesim latency
injection, and 200 once caches are synced; the CLI's --help/--version/config errors.
"""

import os
import subprocess
import time

import pytest

import promtext
from promtext import value
from replica import CGP, CONTROLLER, Replica, policy, prepare, ready_condition, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")

FAMILIES = {
    "controller_runtime_reconcile_total": "counter",
    "controller_runtime_reconcile_errors_total": "counter",
    "controller_runtime_reconcile_time_seconds": "histogram",
    "workqueue_depth": "gauge",
    "workqueue_adds_total": "counter",
    "workqueue_retries_total": "counter",
    "rest_client_requests_total": "counter",
    "leader_election_master_status": "gauge",
    "gpupolicy_nodes": "gauge",
    "gpupolicy_operand_ready": "gauge",
    "gpupolicy_gpus_allocatable": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}


@pytest.fixture
def replica():
    started = []

    def make(sim, **kw):
        r = Replica(sim, **kw)
        started.append(r)
        return r

    yield make
    for r in started:
        assert r.stop() == 0, r.logs()[-3000:]


def test_metrics_parse_and_move(kubesim, replica):
    sim = kubesim(gpu_nodes=3, gpus_per_node=8, cpu_nodes=1, pod_ready_delay=0.1)
    prepare(sim)
    r = replica(sim, leader_elect=False)
    wait_until(lambda: r.http("health", "/readyz")[0] == 200, 15, "ready")
    assert r.http("health", "/healthz") == (200, "ok")
    assert r.http("health", "/metrics")[0] == 404
    assert r.http("metrics", "/healthz")[0] == 404

    fams = r.metrics()
    for name, typ in FAMILIES.items():
        assert name in fams and fams[name].type == typ and fams[name].help, name
    c = "clustergpupolicy"
    # controller-runtime pre-sets every result so rate() works from the first scrape
    for result in ("success", "error", "requeue", "requeue_after"):
        assert value(fams, "controller_runtime_reconcile_total", controller=c, result=result) is not None
    lists0 = value(fams, "rest_client_requests_total", method="GET", code="200")
    assert lists0 and lists0 >= 4  # one LIST per informer at least
    success0 = value(fams, "controller_runtime_reconcile_total", controller=c, result="success")
    assert value(fams, "leader_election_master_status") == 1
    assert 1 << 20 < value(fams, "process_resident_memory_bytes") < 1 << 30
    assert abs(value(fams, "process_start_time_seconds") - time.time()) < 60
    assert value(fams, "process_open_fds") >= 5  # epoll, sockets, the listeners

    sim.ok("POST", CGP, policy("default"))
    wait_until(lambda: ready_condition(sim, "default") == "True", 30, "policy Ready")

    def settled():
        f = r.metrics()
        return f if value(f, "gpupolicy_nodes", policy="default", state="ready") == 3 else None
    fams = wait_until(settled, 10, "gpupolicy_nodes ready=3")
    assert value(fams, "gpupolicy_nodes", policy="default", state="matched") == 3
    assert value(fams, "gpupolicy_nodes", policy="default", state="conflicted") == 0
    assert value(fams, "gpupolicy_gpus_allocatable", policy="default") == 24
    for op in ("driver", "container-toolkit", "device-plugin", "dcgm-exporter", "validator"):
        assert value(fams, "gpupolicy_operand_ready", policy="default", operand=op) == 1, op
    assert value(fams, "controller_runtime_reconcile_total", controller=c, result="success") > success0
    assert value(fams, "controller_runtime_reconcile_time_seconds_count", controller=c) > 0
    assert value(fams, "controller_runtime_reconcile_time_seconds_sum", controller=c) > 0
    assert value(fams, "workqueue_adds_total", name=c) > 0
    assert value(fams, "rest_client_requests_total", method="PATCH") > 0  # labels, SSA, status
    assert value(fams, "rest_client_requests_total", method="GET", code="200") > lists0 - 1

    # a deleted policy's series go away
    sim.ok("DELETE", CGP + "/default")
    wait_until(lambda: sim.get(CGP + "/default")[0] == 404, 20, "policy gone")
    wait_until(lambda: value(r.metrics(), "gpupolicy_nodes", policy="default") is None, 10,
               "series dropped")


def test_readyz_503_until_caches_sync(kubesim, replica):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    prepare(sim)
    # hold every LIST back for 3 s: the informers cannot sync before that
    sim.admin("/_sim/inject", {"verb": "list", "latencyMs": 3000, "count": 20})
    r = replica(sim, leader_elect=False)
    wait_until(lambda: r.http("health", "/healthz")[0] == 200, 5, "healthz up")
    code, body = r.http("health", "/readyz")
    assert code == 503 and "not synced" in body, (code, body)
    wait_until(lambda: r.http("health", "/readyz")[0] == 200, 15, "ready after sync")
    sim.admin("/_sim/inject", method="DELETE")


def test_strict_parser_rejects_defects():
    ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\n"
    assert promtext.value(promtext.parse(ok), "a_total", k="v") == 1
    bad = [
        "a_total 1\n",                                                       # no HELP/TYPE
        ok.replace("counter", "gauge\n# TYPE a_total counter"),              # TYPE twice
        ok.replace("1\n", "-1\n"),                                           # negative counter
        ok.replace('"v"', '"\\q"'),                                          # bad escape
        ok + "a_total{k=\"v\"} 2\n",                                         # duplicate series
        ok.rstrip("\n"),                                                     # no final newline
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",   # no +Inf
    ]
    for text in bad:
        with pytest.raises(promtext.PromError):
            promtext.parse(text)


def run(*args):
    return subprocess.run([CONTROLLER, *args], capture_output=True, text=True, timeout=10)


def test_cli_help_version_and_config_errors():
    p = run("--help")
    assert p.returncode == 0
    for flag in ("--metrics-bind-address", "--health-probe-bind-address", "--leader-elect", "--kubeconfig",
                 "--namespace", "--qps", "--burst", "--templates-dir", "--log-level", "--log-format",
                 "--leader-elect-lease-duration"):
        assert flag in p.stdout, flag
    assert ":8080" in p.stdout and ":8081" in p.stdout
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("gpu-policy-controller ")
    for args, needle in ((["--qps=fast"], "--qps"), (["--nope"], "--nope"),
                         (["--metrics-bind-address=8080"], "--metrics-bind-address"),
                         (["--leader-elect-renew-deadline=30"], "--leader-elect-renew-deadline"),
                         (["--kubeconfig=/nonexistent/kubeconfig"], "kubeconfig")):
        p = run(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, p.stderr)


def test_a_port_in_use_is_one_line_on_stderr(tmp_path):
    """docs/operations.md: a port already in use exits 2 with **one** line naming the flag (libwebsockets'
    own bind errors are debug detail then)."""
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                  "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                  "users: [{name: u, user: {token: x}}]\n"
                  "contexts: [{name: c, context: {cluster: c, user: u}}]\n")
    try:
        for flag, other in (("--metrics-bind-address", "--health-probe-bind-address"),
                            ("--health-probe-bind-address", "--metrics-bind-address")):
            r = subprocess.run([CONTROLLER, "--kubeconfig", str(kc), "%s=127.0.0.1:%d" % (flag, port),
                                "%s=127.0.0.1:0" % other], capture_output=True, text=True, timeout=20)
            assert r.returncode == 2, r.stderr
            assert r.stderr == ('gpu-policy-controller: %s: cannot listen on "127.0.0.1:%d" (address in use or '
                                'not local?)\n' % (flag, port)), r.stderr
    finally:
        taken.close()
