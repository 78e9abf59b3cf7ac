"""--log-level as docs/operations.md shows it: every component the code logs under can be raised on its
own, an unknown one is refused (it would silently change nothing), and the documented example
`--log-level=info,leader=debug` really shows the leader's debug lines."""

import glob
import os
import re
import subprocess

from kubesim_client import repo_root
from replica import CONTROLLER, Replica, prepare, wait_until

ROOT = repo_root()


def logged_components():
    """The names the controller's modules log under: `#define COMP "x"` and literal first arguments."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "controller", "**", "*.c"), recursive=True):
        text = open(path).read()
        names.update(re.findall(r'^#define COMP "([a-z_]+)"', text, re.M))
        names.update(re.findall(r'\blog_(?:error|warn|info|debug)\("([a-z_]+)"', text))
    return names


def known_components():
    text = open(os.path.join(ROOT, "controller", "base", "log.c")).read()
    m = re.search(r"static const char \*const components\[\] = \{(.*?)\};", text, re.S)
    return set(re.findall(r'"([a-z_]+)"', m.group(1)))


def test_the_known_components_are_exactly_those_that_log():
    assert known_components() == logged_components()


def test_every_component_is_accepted_and_an_unknown_one_refused():
    for c in sorted(known_components()):
        r = subprocess.run([CONTROLLER, "--log-level=info,%s=debug" % c, "--version"], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, (c, r.stderr)
    r = subprocess.run([CONTROLLER, "--log-level=info,bogus=debug"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and 'unknown component "bogus"' in r.stderr, r.stderr


def test_leader_debug_as_documented_shows_the_lease_rounds(kubesim):
    doc = open(os.path.join(ROOT, "docs", "operations.md")).read()
    assert "--log-level=info,leader=debug" in doc
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    prepare(sim)
    r = Replica(sim, leader_elect=True, extra=["--log-level=info,leader=debug"])
    try:
        wait_until(lambda: r.leading(), 20, "leadership")
        wait_until(lambda: "component=leader msg=\"wrote the lease\"" in r.logs() or
                   "component=leader msg=wrote the lease" in r.logs(), 10, "a debug line from the leader")
        assert "level=debug component=leader" in r.logs()
        assert "level=debug component=informer" not in r.logs()  # only the raised component
    finally:
        r.stop()
