"""pytest fixtures shared by the integration suites.

    def test_x(kubesim):
        sim = kubesim(gpu_nodes=3, gpus_per_node=8, cpu_nodes=1, tls=False, pod_ready_delay=0.2,
                      history=None, state=None, extra_args=[])
        sim.url, sim.kubeconfig, sim.request(...), sim.kubectl("get", "nodes"), sim.restart()

Every sim the factory started is stopped at teardown. See kubesim_client.py for the Sim API.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kubesim_client import CONTROLLER_REQUESTS, Sim  # noqa: E402


@pytest.fixture
def kubesim(tmp_path):
    started = []

    def factory(gpu_nodes=3, gpus_per_node=8, cpu_nodes=1, tls=False, pod_ready_delay=0.2, history=None,
                state=None, extra_args=None, **kw):
        sim = Sim(tmp_path / ("sim%d" % len(started)), gpu_nodes=gpu_nodes, gpus_per_node=gpus_per_node,
                  cpu_nodes=cpu_nodes, tls=tls, pod_ready_delay=pod_ready_delay, history=history, state=state,
                  extra_args=extra_args, **kw)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        collect_controller_requests(sim)
        sim.stop()


def collect_controller_requests(sim):
    """Keeps every request the controller made to this sim (since its last
    counter reset) for the suite-wide RBAC check in test_zz_rbac_suite.py."""
    try:
        detail = sim.counters()["detail"]
    except Exception:  # the sim died or was stopped by the test: nothing to collect
        return
    CONTROLLER_REQUESTS.extend(r for r in detail if r["client"] == "gpu-policy-controller")
