#!/usr/bin/env python3
"""The runtime around the controller, against kubesim (figures only, nothing asserted).

Reports, with the production Lease timings (15 s lease / 10 s renew deadline / 2 s retry) unless
--fast is given:
  - SIGTERM hand-over: from the leader's SIGTERM to the standby reporting leader_election_master_status 1
    (the leader releases the Lease on its way out),
  - kill -9 take-over: from SIGKILL of the leader to the standby leading (about one lease duration),
  - idle CPU of a leading replica (Lease renewals only) over --idle seconds,
  - /metrics: size, mean round trip and the controller's CPU per scrape over --scrapes requests.

    /usr/bin/python3 bench/bench_runtime.py [--fast] [--idle 10] [--scrapes 200]
"""

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))

from kubesim_client import Sim  # noqa: E402
from replica import Replica, prepare, wait_until  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def leader_of(rs, timeout=40):
    def check():
        states = [r.leading() for r in rs]
        return states.count(True) == 1 and None not in states
    wait_until(check, timeout, "one leader", interval=0.05)
    return [r for r in rs if r.leading()][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fast", action="store_true", help="4 s / 3 s / 0.5 s Lease timings")
    ap.add_argument("--idle", type=float, default=10)
    ap.add_argument("--scrapes", type=int, default=200)
    a = ap.parse_args()
    timings = (4, 3, 0.5) if a.fast else None
    label = "4/3/0.5 s" if a.fast else "15/10/2 s"
    work = tempfile.mkdtemp(prefix="bench-runtime-")
    sim = Sim(work, gpu_nodes=3, cpu_nodes=1, pod_ready_delay=0.1)
    started = []
    try:
        prepare(sim)
        rs = [Replica(sim, timings=timings) for _ in range(2)]
        started += rs
        leader = leader_of(rs)
        standby = [r for r in rs if r is not leader][0]

        c0 = cpu_seconds(leader.proc.pid)
        time.sleep(a.idle)
        c1 = cpu_seconds(leader.proc.pid)
        print("idle leader CPU: %.3f s over %.0f s (%.2f %%)" % (c1 - c0, a.idle, 100 * (c1 - c0) / a.idle))

        body = leader.metrics_text()
        t = time.monotonic()
        for _ in range(a.scrapes):
            leader.http("metrics", "/metrics")
        rtt = (time.monotonic() - t) / a.scrapes
        c2 = cpu_seconds(leader.proc.pid)
        print("/metrics: %d bytes, %.2f ms mean round trip, %.3f ms controller CPU per scrape (%d scrapes)"
              % (len(body), rtt * 1000, (c2 - c1) * 1000 / a.scrapes, a.scrapes))

        leader.sigterm()
        t = time.monotonic()
        leader.wait(20)
        wait_until(lambda: standby.leading(), 40, "hand-over", interval=0.02)
        print("SIGTERM hand-over (%s): %.2f s" % (label, time.monotonic() - t))

        third = Replica(sim, timings=timings)
        started.append(third)
        wait_until(lambda: third.http("health", "/readyz")[0] == 200, 20, "third ready")
        time.sleep(3)
        standby.kill9()
        t = time.monotonic()
        wait_until(lambda: third.leading(), 60, "take-over", interval=0.05)
        print("kill -9 take-over (%s): %.2f s" % (label, time.monotonic() - t))
    finally:
        for r in started:
            if r.alive():
                r.stop()
        sim.stop()


if __name__ == "__main__":
    main()
