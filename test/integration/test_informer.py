"""The informer against kubesim (issue 2's integration check).

build/test/tools/informer_probe runs one informer and prints JSON lines
(events, synced, stats). The tests drive kubesim over HTTP and read kubesim's
request counters to prove: paginated LIST (2,000 objects in 4 pages), the
watch following creates/updates/deletes, resume without re-list after
dropped watches, exactly one re-list after a 410, retries of an injected 429
(Retry-After) and 500 on LIST, retries of a LIST or WATCH the client refused to
submit, and TLS + bearer token.
"""
import json
import os
import subprocess
import threading
import time

import pytest

from kubesim_client import build_dir

PROBE = os.path.join(build_dir(), "test", "tools", "informer_probe")
NS = "inf"


class Probe:
    def __init__(self, sim, *args):
        cmd = [PROBE, "--kubeconfig", sim.kubeconfig, "--version", "v1", "--resource", "configmaps",
               "--namespace", NS, "--events", "--backoff-base-ms", "200"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.lines.append(obj)
                self.cv.notify_all()

    def stats(self):
        with self.cv:
            for obj in reversed(self.lines):
                if "stats" in obj:
                    return obj["stats"]
        return {}

    def events(self, kind=None):
        with self.cv:
            return [o for o in self.lines if "event" in o and (kind is None or o["event"] == kind)]

    def wait(self, pred, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                if pred(self):
                    return
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("timed out waiting for %s; last stats %s; stderr:\n%s" % (
                        what, self.stats(), self._stderr()))
                self.cv.wait(min(left, 0.2))

    def _stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.t.join(5)
        return self.proc.returncode


def create_configmaps(sim, n, ns=NS, prefix="cm"):
    """Creates n configmaps over one keep-alive connection."""
    conn = sim.connection()
    headers = sim._headers(None, "application/json")
    try:
        for i in range(n):
            body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "%s-%04d" % (prefix, i), "namespace": ns},
                               "data": {"v": str(i)}})
            conn.request("POST", "/api/v1/namespaces/%s/configmaps" % ns, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            assert r.status == 201, r.status
    finally:
        conn.close()


def make_ns(sim, ns=NS):
    code, out, _ = sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": ns}})
    assert code in (201, 409), out


def cm_lists(sim):
    return sim.counters()["lists"].get("configmaps", 0)


@pytest.fixture
def probe_bin():
    if not os.path.exists(PROBE):
        pytest.skip("informer_probe not built")


def test_list_pages_watch_resume_and_relist(kubesim, probe_bin):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    make_ns(sim)
    create_configmaps(sim, 2000)
    sim.reset_counters()
    p = Probe(sim)
    try:
        p.wait(lambda p: p.stats().get("synced") and p.stats().get("watches", 0) >= 1,
               what="initial sync")
        st = p.stats()
        assert st["objects"] == 2000 and st["list_pages"] == 4 and st["lists"] == 1
        assert cm_lists(sim) == 4, sim.counters()
        assert len(p.events("add")) == 2000

        # the watch follows create, update, delete
        create_configmaps(sim, 1, prefix="new")
        code, _, _ = sim.patch("/api/v1/namespaces/%s/configmaps/cm-0000" % NS, {"data": {"v": "x"}})
        assert code == 200
        code, _, _ = sim.delete("/api/v1/namespaces/%s/configmaps/cm-0001" % NS)
        assert code == 200
        p.wait(lambda p: any(e["key"] == NS + "/cm-0001" for e in p.events("delete")),
               what="watch events")
        assert any(e["key"] == NS + "/new-0000" for e in p.events("add"))
        assert any(e["key"] == NS + "/cm-0000" for e in p.events("update"))
        assert p.stats()["objects"] == 2000

        # dropped watches: resumed from the last resourceVersion, no re-list
        for i in range(3):
            w = p.stats()["watches"]
            sim.admin("/_sim/drop-watches")
            p.wait(lambda p, w=w: p.stats()["watches"] > w, what="re-watch after drop %d" % i)
            time.sleep(0.3)  # let the server register the new watch before dropping again
        create_configmaps(sim, 1, prefix="after-drop")
        p.wait(lambda p: any(e["key"] == NS + "/after-drop-0000" for e in p.events("add")),
               what="event after drops")
        assert p.stats()["relists"] == 0 and cm_lists(sim) == 4

        # compaction + a dropped watch: 410 → exactly one re-list
        make_ns(sim, "other")
        create_configmaps(sim, 1, ns="other", prefix="elsewhere")  # moves the RV past ours
        # changes the informer misses while its watch is down must show after the re-list
        sim.admin("/_sim/compact")
        sim.admin("/_sim/drop-watches")
        p.wait(lambda p: p.stats()["lists"] == 2 and p.stats()["watches"] >= 5,
               what="re-list after 410")
        time.sleep(1.0)  # nothing else happens: no second re-list
        st = p.stats()
        assert st["gone"] >= 1 and st["relists"] == 1 and st["lists"] == 2
        assert cm_lists(sim) == 4 + 5  # 2,001 objects now: five pages
        assert st["objects"] == 2001
    finally:
        assert p.stop() == 0


def test_relist_reports_changes_missed_while_away(kubesim, probe_bin):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    make_ns(sim)
    create_configmaps(sim, 30)
    p = Probe(sim, "--page-size", "7")
    try:
        p.wait(lambda p: p.stats().get("watches", 0) >= 1, what="sync")
        assert p.stats()["list_pages"] == 5
        # Block watches so the informer misses changes, then force a 410.
        sim.admin("/_sim/inject", {"code": 503, "verb": "watch", "count": 1000})
        sim.admin("/_sim/drop-watches")
        sim.delete("/api/v1/namespaces/%s/configmaps/cm-0003" % NS)
        sim.patch("/api/v1/namespaces/%s/configmaps/cm-0004" % NS, {"data": {"v": "changed"}})
        create_configmaps(sim, 1, prefix="late")
        sim.admin("/_sim/compact")
        sim.request("DELETE", "/_sim/inject")
        p.wait(lambda p: p.stats()["lists"] == 2, what="re-list")
        p.wait(lambda p: any(e["key"] == NS + "/cm-0003" for e in p.events("delete")),
               what="delete from re-list")
        assert any(e["key"] == NS + "/cm-0004" for e in p.events("update"))
        assert any(e["key"] == NS + "/late-0000" for e in p.events("add"))
        # unchanged objects produce no update on re-list
        assert not any(e["key"] == NS + "/cm-0010" for e in p.events("update"))
        assert p.stats()["objects"] == 30
    finally:
        assert p.stop() == 0


def test_list_retries_429_and_500(kubesim, probe_bin):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    make_ns(sim)
    create_configmaps(sim, 3)
    sim.reset_counters()
    sim.admin("/_sim/inject", [{"code": 429, "retryAfter": 1, "verb": "list", "count": 1},
                               {"code": 500, "verb": "list", "count": 1}])
    t0 = time.monotonic()
    p = Probe(sim, "--exit-after-synced")
    try:
        assert p.proc.wait(30) == 0
    finally:
        p.stop()
    took = time.monotonic() - t0
    st = p.stats()
    assert st["objects"] == 3 and st["lists"] == 1
    assert st["retries"] == 2, st  # retried inside the client, not by re-listing
    codes = {r["code"]: r["count"] for r in sim.counters()["requests"]
             if r["verb"] == "list" and r["resource"] == "configmaps"}
    assert codes.get(429) == 1 and codes.get(500) == 1 and codes.get(200) == 1, codes
    assert took >= 1.0  # Retry-After: 1 honoured


def test_refused_submits_are_retried(kubesim, probe_bin):
    """kube_client_submit refusing a LIST page or a WATCH (injected with
    kube_client_fail_submits) must not leave the informer idle: the LIST is
    redone from its first page, the WATCH resumed from the list's RV."""
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    make_ns(sim)
    create_configmaps(sim, 5)
    sim.reset_counters()
    # page 1 goes out, page 2 is refused, then the retried page 1 is refused too
    p = Probe(sim, "--page-size", "2", "--fail-submits", "1,2")
    try:
        p.wait(lambda p: p.stats().get("synced") and p.stats().get("watches", 0) >= 1,
               what="sync after refused list submits")
        st = p.stats()
        assert st["objects"] == 5 and st["lists"] == 1 and st["errors"] == 2, st
        assert st["list_pages"] == 4 and cm_lists(sim) == 4  # 1 + a full 3-page LIST
    finally:
        assert p.stop() == 0

    sim.reset_counters()
    # the 3 LIST pages go out, the first WATCH is refused
    p = Probe(sim, "--page-size", "2", "--fail-submits", "3,1")
    try:
        p.wait(lambda p: p.stats().get("watches", 0) >= 2, what="watch after refused submit")
        create_configmaps(sim, 1, prefix="late")
        p.wait(lambda p: any(e["key"] == NS + "/late-0000" for e in p.events("add")),
               what="event on the retried watch")
        st = p.stats()
        assert st["errors"] == 1 and st["lists"] == 1 and st["relists"] == 0, st
        assert cm_lists(sim) == 3
    finally:
        assert p.stop() == 0


def test_tls_with_token(kubesim, probe_bin):
    sim = kubesim(gpu_nodes=2, cpu_nodes=1, tls=True)
    assert sim.url.startswith("https://") and sim.token
    cmd = [PROBE, "--kubeconfig", sim.kubeconfig, "--version", "v1", "--resource", "nodes",
           "--exit-after-synced"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    synced = [o for o in lines if "synced" in o]  # not the stats lines
    assert synced and synced[0]["objects"] == 3
    assert sim.count(verb="list", resource="nodes", code=200) == 1


def test_error_paths_against_scripted_server(tmp_path, probe_bin):
    """Failures kubesim cannot produce: a truncated LIST page, a watch ERROR
    event that is not 410, and a watch that ends at once with no events."""
    from test_kube_client import Handler, Script, Server

    srv = Server(("127.0.0.1", 0), Handler)
    srv.script = Script()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters:\n- name: k\n  cluster: {server: '%s'}\n"
        "users:\n- name: u\n  user: {}\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n" % url)

    def cm(name, rv):
        return {"metadata": {"name": name, "namespace": NS, "resourceVersion": rv}}

    def page(rv, *items):
        return json.dumps({"kind": "ConfigMapList", "apiVersion": "v1",
                           "metadata": {"resourceVersion": rv}, "items": list(items)}).encode()

    s = srv.script
    s.push(200, page("9", cm("a", "5"))[:-20])  # truncated
    s.push(200, page("10", cm("a", "5")))
    s.push(200, [json.dumps({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
        "reason": "InternalError", "message": "boom"}}).encode() + b"\n"])
    s.push(200, page("11", cm("a", "5"), cm("b", "11")))
    s.push(200, [])  # a watch that ends at once: backoff, then watch again (no re-list)
    s.push(200, [json.dumps({"type": "BOOKMARK", "object": {"metadata": {
        "resourceVersion": "12"}}}).encode() + b"\n", 30.0])
    p = subprocess.Popen([PROBE, "--kubeconfig", str(kubeconfig), "--version", "v1", "--resource",
                          "configmaps", "--namespace", NS, "--events", "--backoff-base-ms", "100"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with s.lock:
                if len(s.requests) >= 6:
                    break
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
        srv.shutdown()
        srv.server_close()
    paths = [r["path"] for r in s.requests]
    lst = "/api/v1/namespaces/inf/configmaps?limit=500"
    w = "/api/v1/namespaces/inf/configmaps?watch=true&resourceVersion=%s&allowWatchBookmarks=true"
    assert [x.split("&timeoutSeconds")[0] for x in paths] == [lst, lst, w % "10", lst, w % "11",
                                                               w % "11"], paths
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    events = [(o["event"], o["key"]) for o in lines if "event" in o]
    assert events == [("add", NS + "/a"), ("add", NS + "/b")]  # a unchanged on re-list
    st = [o["stats"] for o in lines if "stats" in o][-1]
    assert st["lists"] == 2 and st["relists"] == 1 and st["watches"] == 3
    assert st["errors"] == 3 and st["rv"] == "12" and st["objects"] == 2
