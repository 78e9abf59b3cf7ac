"""Two controller replicas with --leader-elect against kubesim (issue 6).

Exactly one leads and writes; the other stands by with its caches synced (ready, but no writes). kill -9
of the leader: the other takes over once the lease has gone unrenewed for its duration, as measured from
its own observation, and converges new work. SIGTERM of the leader releases the Lease, so the other takes
over within one retry period instead of a lease duration.
"""

import os
import re
import time

import pytest

from replica import (CGP, CONTROLLER, LEASE, Replica, free_port, policy, prepare, ready_condition,
                     wait_until)

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")

MICROTIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
FAST = (4, 3, 0.5)  # lease, renew deadline, retry (seconds): keeps the takeover test short


@pytest.fixture
def replicas():
    started = []

    def make(sim, n=2, **kw):
        rs = [Replica(sim, **kw) for _ in range(n)]
        started.extend(rs)
        return rs

    yield make
    for r in started:
        r.stop()


def lease(sim):
    code, obj, _ = sim.get(LEASE)
    return obj if code == 200 else None


def one_leader(rs, timeout=15):
    """Waits until exactly one live replica reports leading; returns (leader, others)."""
    def check():
        states = [r.leading() for r in rs if r.alive()]
        if None in states or states.count(True) != 1:
            return None
        leader = [r for r in rs if r.alive() and r.leading()][0]
        return leader, [r for r in rs if r is not leader]
    return wait_until(check, timeout, "exactly one leader")


def test_exactly_one_leader_writes(kubesim, replicas):
    sim = kubesim(gpu_nodes=3, cpu_nodes=1, pod_ready_delay=0.1)
    prepare(sim)
    rs = replicas(sim, timings=FAST)
    leader, (standby,) = one_leader(rs)

    # the Lease as client-go writes it
    obj = lease(sim)
    spec = obj["spec"]
    assert re.match(r".+_[0-9a-f]{16}\Z", spec["holderIdentity"]), spec
    assert spec["leaseDurationSeconds"] == 4
    assert MICROTIME.match(spec["acquireTime"]) and MICROTIME.match(spec["renewTime"]), spec

    # both are ready (caches synced): readiness does not depend on leadership
    for r in rs:
        wait_until(lambda: r.http("health", "/readyz")[0] == 200, 10, "readyz 200")

    sim.ok("POST", CGP, policy("default"))
    wait_until(lambda: ready_condition(sim, "default") == "True", 30, "policy Ready")
    assert leader.writes() > 0
    assert standby.writes() == 0, standby.metrics_text()
    assert standby.leading() is False

    # the leader keeps renewing (renewTime moves), acquireTime stays
    first = lease(sim)["spec"]
    time.sleep(1.2)
    later = lease(sim)["spec"]
    assert later["holderIdentity"] == first["holderIdentity"]
    assert later["acquireTime"] == first["acquireTime"]
    assert later["renewTime"] > first["renewTime"]


def test_kill9_leader_other_takes_over(kubesim, replicas):
    sim = kubesim(gpu_nodes=2, cpu_nodes=1, pod_ready_delay=0.1)
    prepare(sim)
    rs = replicas(sim, timings=FAST)
    leader, (standby,) = one_leader(rs)
    before = lease(sim)["spec"]
    sim.ok("POST", CGP, policy("first"))
    wait_until(lambda: ready_condition(sim, "first") == "True", 30, "first Ready")

    leader.kill9()
    t0 = time.monotonic()
    wait_until(lambda: standby.leading(), 15, "standby takes over")
    took = time.monotonic() - t0
    # lease duration from the standby's last observation of a renewal (at most one retry old),
    # plus its retry jitter and one request: never more than duration + 2 x retry + slack
    assert took <= FAST[0] + 2 * FAST[2] + 1.5, took
    assert took >= FAST[0] - FAST[2] - 0.5, "took over before the lease could have expired: %.2fs" % took

    after = lease(sim)["spec"]
    assert after["holderIdentity"] != before["holderIdentity"]
    assert after["leaseTransitions"] == before.get("leaseTransitions", 0) + 1

    # the new leader converges new work
    sim.ok("POST", CGP, policy("second", nodeSelector={"matchLabels": {"kubernetes.io/hostname": "nope"}}))
    wait_until(lambda: ready_condition(sim, "second") is not None, 20, "second gets a status")
    assert standby.writes() > 0


def test_sigterm_leader_hands_over_at_once(kubesim, replicas):
    sim = kubesim(gpu_nodes=2, cpu_nodes=1, pod_ready_delay=0.1)
    prepare(sim)
    rs = replicas(sim)  # production timings: 15 s lease, 10 s renew deadline, 2 s retry
    leader, (standby,) = one_leader(rs, timeout=20)

    leader.sigterm()
    t0 = time.monotonic()
    assert leader.wait(10) == 0, leader.logs()[-2000:]
    released = lease(sim)["spec"]
    assert released.get("holderIdentity", "") == "", released
    assert released["leaseDurationSeconds"] == 1
    wait_until(lambda: standby.leading(), 6, "standby takes over after release")
    took = time.monotonic() - t0
    assert took <= 3.5, "hand-over took %.2fs (a lease duration is 15 s)" % took
    assert "released the lease" in leader.logs()


def test_without_leader_election_it_leads_alone(kubesim, replicas):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    prepare(sim)
    (r,) = replicas(sim, n=1, leader_elect=False)
    wait_until(lambda: r.leading() is True, 10, "leader gauge 1")
    assert lease(sim) is None  # no Lease traffic at all


def test_port_in_use_is_one_line_config_error(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        import subprocess
        p = subprocess.run([CONTROLLER, "--kubeconfig", sim.kubeconfig,
                            "--metrics-bind-address=127.0.0.1:%d" % busy,
                            "--health-probe-bind-address=127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=10)
    finally:
        s.close()
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.startswith("gpu-policy-controller:")]
    assert len(err) == 1 and "--metrics-bind-address" in err[0], p.stderr


def test_leader_that_cannot_renew_stops_writing(kubesim, replicas):
    sim = kubesim(gpu_nodes=2, cpu_nodes=1, pod_ready_delay=0.1)
    prepare(sim)
    rs = replicas(sim, timings=FAST)
    leader, (standby,) = one_leader(rs)
    # every Lease update now fails: nobody can renew or acquire
    sim.admin("/_sim/inject", {"method": "PUT", "pathPrefix": LEASE, "code": 500, "count": 100000})
    t0 = time.monotonic()
    wait_until(lambda: leader.leading() is False, 10, "leader gives up")
    took = time.monotonic() - t0
    # renew deadline counted from its last good renewal (at most one retry period before t0)
    assert took <= FAST[1] + 1.0, took
    assert "failed to renew the lease within the renew deadline" in leader.logs()

    # with nobody leading, new work is not written by anyone
    w = (leader.writes(), standby.writes())
    sim.ok("POST", CGP, policy("orphan"))
    time.sleep(1.5)
    assert (leader.writes(), standby.writes()) == w
    assert ready_condition(sim, "orphan") is None
    assert standby.leading() is False

    # the API recovers: a leader is elected again and converges the policy
    sim.admin("/_sim/inject", method="DELETE")
    one_leader(rs, timeout=FAST[0] + 5)
    wait_until(lambda: ready_condition(sim, "orphan") == "True", 30, "orphan Ready")
