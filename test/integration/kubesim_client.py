"""Start/stop kubesim from tests and talk to it (stdlib only).

Use the `kubesim` fixture from conftest.py; this module holds the machinery and small helpers the
other suites share:
    repo_root()  -> absolute path of the repository
    build_dir()  -> $GPC_BUILD (default "build"), resolved against the repository root
    Sim          -> a running kubesim process: .url, .kubeconfig, .request()/get/post/put/patch/delete,
                    .admin(), .counters(), .reset_counters(), .kubectl(), .watch(), .stop(), .restart()
"""

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from urllib.parse import urlencode, urlsplit

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable



# Requests the controller made to any sim of this pytest session (filled by
# conftest.py at each sim's teardown; read by test_zz_rbac_suite.py).
CONTROLLER_REQUESTS = []

def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    b = os.environ.get("GPC_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(repo_root(), b)


class KubesimError(RuntimeError):
    pass


_KUBECTL = []


def kubectl_usable():
    """(usable, line) from scripts/kubectl-usable.sh, asked once per session: a kubectl that can
    drive kubesim (1.29+), or why not. Without one the kubectl-driven tests skip, as deps.sh says."""
    if not _KUBECTL:
        r = subprocess.run([os.path.join(repo_root(), "scripts", "kubectl-usable.sh")], capture_output=True,
                           text=True)
        _KUBECTL.append((r.returncode == 0, r.stdout.strip()))
    return _KUBECTL[0]


class Sim:
    """One kubesim process. Everything lives under `workdir` (a pytest tmp_path)."""

    def __init__(self, workdir, gpu_nodes=3, gpus_per_node=8, cpu_nodes=1, tls=False, pod_ready_delay=0.2,
                 history=None, state=None, extra_args=None, bookmark_interval=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.tls = tls
        self.port = 0
        self.state = state or os.path.join(self.workdir, "kubesim-state.json")
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        self.tls_dir = os.path.join(self.workdir, "tls")
        self.args = ["--gpu-nodes", str(gpu_nodes), "--gpus-per-node", str(gpus_per_node),
                     "--cpu-nodes", str(cpu_nodes), "--pod-ready-delay", str(pod_ready_delay)]
        if history is not None:
            self.args += ["--history", str(history)]
        if bookmark_interval is not None:
            self.args += ["--bookmark-interval", str(bookmark_interval)]
        if tls:
            os.makedirs(self.tls_dir, exist_ok=True)
            self.args += ["--tls", "--tls-dir", self.tls_dir]
        self.args += list(extra_args or [])
        self.proc = None
        self.url = None
        self.token = None
        self._ssl = None
        self._kubectl_n = 0
        self._start()

    # ---- process ---------------------------------------------------------------------------------
    def _start(self, timeout=20):
        n = getattr(self, "_starts", 0) + 1
        self._starts = n
        self._out = os.path.join(self.workdir, "kubesim-%d.out" % n)
        self._err = os.path.join(self.workdir, "kubesim-%d.err" % n)
        cmd = [PYTHON, "-u", os.path.join(repo_root(), "test", "kubesim", "kubesim.py"), "--port", str(self.port),
               "--kubeconfig-out", self.kubeconfig, "--state", self.state] + self.args
        with open(self._out, "wb") as out, open(self._err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=repo_root())
        deadline = time.monotonic() + timeout
        while True:
            with open(self._out, "r", errors="replace") as f:
                for line in f:
                    if line.startswith("kubesim listening on "):
                        self.url = line.split()[-1].strip()
                        break
            if self.url:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise KubesimError("kubesim did not start (rc=%s); stderr:\n%s" % (self.proc.returncode,
                                                                                    self.stderr()))
            time.sleep(0.05)
        self.port = urlsplit(self.url).port
        if self.tls:
            with open(os.path.join(self.tls_dir, "token")) as f:
                self.token = f.read().strip()
            self._ssl = ssl.create_default_context(cafile=os.path.join(self.tls_dir, "ca.crt"))
        else:
            self.token = None
            self._ssl = None

    def stderr(self):
        try:
            with open(self._err, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout=10):
        """SIGTERM (state is saved), wait; kill if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()

    def restart(self):
        """Stop and start again on the same port with the same --state: objects and RVs survive."""
        self.stop()
        url = self.url
        self.url = None
        self._start()
        assert self.url == url or url is None

    # ---- HTTP ---------------------------------------------------------------------------------------
    def connection(self, timeout=30):
        u = urlsplit(self.url)
        if u.scheme == "https":
            return http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)

    def _headers(self, headers, body_ctype=None):
        h = {"Accept": "application/json", "User-Agent": "kubesim-tests/1.0"}
        if body_ctype:
            h["Content-Type"] = body_ctype
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        return h

    def request(self, method, path, body=None, headers=None, query=None, ctype="application/json", timeout=30):
        """-> (status, parsed JSON or text, headers dict with lower-case keys)."""
        if query:
            path = path + ("&" if "?" in path else "?") + urlencode(query)
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=self._headers(headers, ctype if data is not None else None))
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed, hdrs

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def ok(self, method, path, body=None, **kw):
        """request() that asserts a 2xx and returns the JSON body."""
        code, out, _ = self.request(method, path, body, **kw)
        if code // 100 != 2:
            raise KubesimError("%s %s -> %d %s" % (method, path, code, out))
        return out

    def watch(self, path, query=None, timeout=30):
        """Start a watch; returns a Watch whose .events() yields decoded events until the stream ends."""
        q = {"watch": "true"}
        q.update(query or {})
        conn = self.connection(timeout)
        full = path + ("&" if "?" in path else "?") + urlencode(q)
        conn.request("GET", full, headers=self._headers(None))
        return Watch(conn, conn.getresponse())

    def admin(self, path, body=None, method="POST"):
        if not path.startswith("/_sim/"):
            path = "/_sim/" + path.lstrip("/")
        code, out, _ = self.request(method, path, body)
        if code // 100 != 2:
            raise KubesimError("admin %s %s -> %d %s" % (method, path, code, out))
        return out

    def counters(self):
        return self.admin("/_sim/counters", method="GET")

    def reset_counters(self):
        return self.admin("/_sim/counters", method="DELETE")

    def count(self, verb=None, resource=None, code=None, subresource=None):
        """Sum of request counters matching the given verb/resource/code/subresource."""
        n = 0
        for r in self.counters()["requests"]:
            if (verb is None or r["verb"] == verb) and (resource is None or r["resource"] == resource) and \
                    (code is None or r["code"] == code) and (subresource is None or r["subresource"] == subresource):
                n += r["count"]
        return n

    # ---- kubectl ------------------------------------------------------------------------------------
    def kubectl(self, *args, check=True, input=None, timeout=60):
        """Run kubectl against this sim with a fresh discovery cache; returns CompletedProcess (text)."""
        usable, why = kubectl_usable()
        if not usable:
            import pytest
            pytest.skip("kubectl-driven: " + why)
        self._kubectl_n += 1
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["KUBECACHEDIR"] = os.path.join(self.workdir, "kubecache-%d" % self._kubectl_n)
        env["HOME"] = self.workdir
        r = subprocess.run(["kubectl", *args], env=env, input=input, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise KubesimError("kubectl %s failed (rc=%d):\nstdout: %s\nstderr: %s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def install_crds(self):
        """Applies crds/ with the controller's own `apply` command, so suites that only need the CRD
        served run without kubectl."""
        subprocess.run([os.path.join(build_dir(), "gpu-policy-controller"), "apply", "--kubeconfig",
                        self.kubeconfig, "-f", os.path.join(repo_root(), "crds")],
                       check=True, capture_output=True, text=True, timeout=60)

    def wait_for(self, fn, timeout=10, interval=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                raise KubesimError("timed out waiting for %s" % what)
            time.sleep(interval)


class Watch:
    def __init__(self, conn, resp):
        self.conn, self.resp, self.status = conn, resp, resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self._buf = b""

    def events(self):
        """Yield decoded events; ends when the server ends the stream."""
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
            chunk = self.resp.read1(65536) if hasattr(self.resp, "read1") else self.resp.read(1)
            if not chunk:
                if self._buf.strip():
                    yield json.loads(self._buf)
                return
            self._buf += chunk

    def next(self):
        return next(self.events())

    def collect(self, n=None, until=None):
        """Events until n were read, until(ev) is true, or the stream ends."""
        out = []
        for ev in self.events():
            out.append(ev)
            if (n is not None and len(out) >= n) or (until is not None and until(ev)):
                break
        return out

    def close(self):
        self.conn.close()
