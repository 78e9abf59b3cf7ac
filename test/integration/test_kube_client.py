"""kube_client against a tiny scripted HTTP server (no kubesim needed).

Each test scripts the server's answers and runs build/test/tools/kube_call,
which prints one JSON line per response and a final stats line. Covers: URL
and headers on the wire, retries of 429 (Retry-After) and 5xx for idempotent
verbs only, Status parsing, the response-body cap, watch streaming and
cancellation, connection reuse and the QPS limiter.
"""
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("GPC_BUILD", "build"))
TOOL = os.path.join(BUILD, "test", "tools", "kube_call")


class Script:
    def __init__(self):
        self.lock = threading.Lock()
        self.answers = []  # list of (code, headers, body or list-of-chunks, delay)
        self.requests = []
        self.ports = set()

    def push(self, code, body=b"{}", headers=None, delay=0.0):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        self.answers.append((code, headers or {}, body, delay))

    def next(self):
        with self.lock:
            return self.answers.pop(0) if self.answers else (200, {}, b"{}", 0.0)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _serve(self):
        s = self.server.script
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with s.lock:
            s.requests.append({"method": self.command, "path": self.path,
                               "headers": dict(self.headers), "body": body.decode()})
            s.ports.add(self.client_address[1])
        code, headers, payload, delay = s.next()
        if delay:
            time.sleep(delay)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for k, v in headers.items():
            self.send_header(k, v)
        if isinstance(payload, list):  # chunked stream
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in payload:
                if isinstance(chunk, float):
                    time.sleep(chunk)
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def srv():
    if not os.path.exists(TOOL):
        pytest.skip("kube_call not built")
    s = Server(("127.0.0.1", 0), Handler)
    s.script = Script()
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    s.url = "http://127.0.0.1:%d" % s.server_address[1]
    yield s
    s.shutdown()
    s.server_close()


def call(srv, *args, timeout=30):
    # The scripted server is plain HTTP: the token goes only with the explicit opt-in.
    cmd = [TOOL, "--server", srv.url, "--token", "t0k3n", "--allow-plain-http"] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    # Without the opt-in's warning line: watch tests read the stream from stderr.
    err = "".join(l for l in p.stderr.splitlines(True) if "gpupolicy.dev/allow-plain-http" not in l)
    return lines[:-1], lines[-1]["stats"], err


def test_get_url_headers_and_body(srv):
    srv.script.push(200, {"kind": "ConfigMap", "metadata": {"name": "a b"}})
    res, st, _ = call(srv, "--verb", "get", "--version", "v1", "--resource", "configmaps",
                      "--namespace", "ns", "--name", "a b")
    assert res[0]["rc"] == 0 and res[0]["code"] == 200
    assert json.loads(res[0]["body"])["metadata"]["name"] == "a b"
    r = srv.script.requests[0]
    assert r["method"] == "GET"
    assert r["path"] == "/api/v1/namespaces/ns/configmaps/a%20b"
    assert r["headers"]["Authorization"] == "Bearer t0k3n"
    assert r["headers"]["Accept"] == "application/json"
    assert st["attempts"] == 1 and st["retries"] == 0


def test_apply_patch_wire(srv):
    srv.script.push(201, {"kind": "DaemonSet"})
    body = '{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"d"}}'
    res, _, _ = call(srv, "--verb", "patch", "--group", "apps", "--version", "v1", "--resource",
                     "daemonsets", "--namespace", "n", "--name", "d", "--patch-type", "apply",
                     "--field-manager", "gpu-policy-controller", "--force", "--body", body)
    assert res[0]["rc"] == 0 and res[0]["code"] == 201
    r = srv.script.requests[0]
    assert r["method"] == "PATCH"
    assert r["path"] == ("/apis/apps/v1/namespaces/n/daemonsets/d"
                         "?fieldManager=gpu-policy-controller&force=true")
    assert r["headers"]["Content-Type"] == "application/apply-patch+yaml"
    assert r["body"] == body


def test_429_retry_after_then_success(srv):
    srv.script.push(429, {"kind": "Status", "code": 429, "reason": "TooManyRequests",
                          "message": "slow down"}, headers={"Retry-After": "1"})
    srv.script.push(200, {"kind": "NodeList", "items": []})
    t0 = time.monotonic()
    res, st, _ = call(srv, "--verb", "list", "--version", "v1", "--resource", "nodes")
    took = time.monotonic() - t0
    assert res[0]["rc"] == 0 and res[0]["attempts"] == 2
    assert st["retries"] == 1 and st["attempts"] == 2
    assert took >= 0.9, "Retry-After: 1 must delay the retry by about a second"


def test_5xx_retried_until_attempts_exhausted(srv):
    for _ in range(3):
        srv.script.push(500, b"<html>oops</html>")
    res, st, _ = call(srv, "--verb", "list", "--version", "v1", "--resource", "nodes",
                      "--max-attempts", "3")
    assert res[0]["rc"] != 0 and res[0]["code"] == 500
    assert res[0]["reason"] == "InternalError"
    assert "oops" in res[0]["message"]
    assert res[0]["attempts"] == 3 and st["retries"] == 2


def test_create_is_not_retried(srv):
    srv.script.push(503, {"kind": "Status", "code": 503, "reason": "ServiceUnavailable",
                          "message": "x"})
    res, st, _ = call(srv, "--verb", "create", "--version", "v1", "--resource", "configmaps",
                      "--namespace", "n", "--body", '{"metadata":{"name":"a"}}')
    assert res[0]["code"] == 503 and res[0]["attempts"] == 1 and st["retries"] == 0
    assert srv.script.requests[0]["method"] == "POST"


def test_status_with_causes(srv):
    srv.script.push(422, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
                          "reason": "Invalid", "message": "bad",
                          "details": {"causes": [{"reason": "FieldValueInvalid",
                                                  "message": "must be > 0",
                                                  "field": "spec.size"}]}})
    res, _, _ = call(srv, "--verb", "update", "--version", "v1", "--resource", "configmaps",
                     "--namespace", "n", "--name", "a", "--body", "{}")
    r = res[0]
    assert r["code"] == 422 and r["reason"] == "Invalid" and r["attempts"] == 1
    assert r["causes"] == [{"type": "FieldValueInvalid", "message": "must be > 0",
                            "field": "spec.size"}]


def test_body_cap(srv):
    srv.script.push(200, b"x" * 100000)
    res, _, _ = call(srv, "--verb", "list", "--version", "v1", "--resource", "nodes",
                     "--max-body", "50000")
    assert res[0]["rc"] == -2  # GPC_E_TOO_LARGE
    assert "50000" in res[0]["error"]


def test_watch_streams_chunks(srv):
    ev = [b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}\n',
          b'{"type":"MODIFIED","obj', 0.2, b'ect":{"metadata":{"name":"a"}}}\n']
    srv.script.push(200, ev)
    res, _, stream = call(srv, "--verb", "watch", "--version", "v1", "--resource", "nodes",
                          "--rv", "4", "--timeout-seconds", "60")
    assert res[0]["rc"] == 0
    assert stream.count("\n") == 2 and '"MODIFIED","object"' in stream
    p = srv.script.requests[0]["path"]
    assert p == "/api/v1/nodes?watch=true&resourceVersion=4&timeoutSeconds=60"


def test_watch_error_status_not_streamed(srv):
    srv.script.push(410, {"kind": "Status", "code": 410, "reason": "Expired", "message": "old"})
    res, _, stream = call(srv, "--verb", "watch", "--version", "v1", "--resource", "nodes")
    assert res[0]["code"] == 410 and res[0]["rc"] == -8 and res[0]["reason"] == "Expired"
    assert stream == ""


def test_cancel_in_flight_watch(srv):
    srv.script.push(200, [b"\n", 5.0, b"\n"])
    res, st, _ = call(srv, "--verb", "watch", "--version", "v1", "--resource", "nodes",
                      "--cancel-after-ms", "300", timeout=10)
    assert st["cancelled"] == 1 and st["completed"] == 0


def test_connection_reuse_and_qps(srv):
    n = 20
    for _ in range(n):
        srv.script.push(200, {"kind": "Node"})
    t0 = time.monotonic()
    res, st, _ = call(srv, "--verb", "get", "--version", "v1", "--resource", "nodes",
                      "--name", "x", "--repeat", str(n), "--qps", "20", "--burst", "5")
    took = time.monotonic() - t0
    assert all(r["rc"] == 0 for r in res) and len(res) == n
    # burst 5 then 15 more at 20/s: at least ~0.75 s
    assert took >= 0.6 and st["throttled"] >= 1
    # keep-alive: far fewer TCP connections than requests
    assert len(srv.script.ports) < n


def test_401_rereads_token_file_and_retries_once(srv, tmp_path):
    token = tmp_path / "token"
    token.write_text("old-token\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters:\n- name: k\n  cluster: {server: '%s', extensions: "
        "[{name: gpupolicy.dev/allow-plain-http, extension: {allow: true}}]}\n"
        "users:\n- name: u\n  user: {tokenFile: '%s'}\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n" % (srv.url, token))
    # The first answer is a slow 401; the token rotates while it is pending.
    srv.script.push(401, {"kind": "Status", "code": 401, "reason": "Unauthorized",
                          "message": "Unauthorized"}, delay=0.6)
    srv.script.push(200, {"kind": "Node"})
    threading.Timer(0.2, lambda: token.write_text("new-token\n")).start()
    p = subprocess.run([TOOL, "--kubeconfig", str(kubeconfig), "--verb", "get", "--version", "v1",
                        "--resource", "nodes", "--name", "n"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.splitlines()[0])
    assert res["rc"] == 0 and res["attempts"] == 2
    auth = [r["headers"]["Authorization"] for r in srv.script.requests]
    assert auth == ["Bearer old-token", "Bearer new-token"]

    # a second 401 after the re-read is final (no loop)
    srv.script.requests.clear()
    srv.script.push(401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "no"})
    srv.script.push(401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "no"})
    p = subprocess.run([TOOL, "--kubeconfig", str(kubeconfig), "--verb", "get", "--version", "v1",
                        "--resource", "nodes", "--name", "n"], capture_output=True, text=True,
                       timeout=30)
    res = json.loads(p.stdout.splitlines()[0])
    assert res["code"] == 401 and res["reason"] == "Unauthorized" and res["attempts"] == 2
    assert len(srv.script.requests) == 2


def test_token_is_not_sent_over_plain_http_without_opt_in(srv):
    p = subprocess.run([TOOL, "--server", srv.url, "--token", "t0k3n", "--verb", "get", "--version", "v1",
                        "--resource", "configmaps", "--namespace", "ns", "--name", "a"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "refusing to send credentials in cleartext" in p.stderr + p.stdout
    assert srv.script.requests == []
    # With the opt-in it goes, with a warning in the log.
    p = subprocess.run([TOOL, "--server", srv.url, "--token", "t0k3n", "--allow-plain-http", "--verb", "get",
                        "--version", "v1", "--resource", "configmaps", "--namespace", "ns", "--name", "a"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[0])["code"] == 200
    assert srv.script.requests[0]["headers"]["Authorization"] == "Bearer t0k3n"
    assert "credentials are sent over plain HTTP" in p.stderr


def test_only_the_servers_scheme_is_spoken(srv, tmp_path):
    """CURLOPT_PROTOCOLS_STR: an https:// client never follows a URL to another protocol; here the
    server itself is file:// (set past the kubeconfig loader, which refuses it too)."""
    (tmp_path / "api" / "v1").mkdir(parents=True)
    (tmp_path / "api" / "v1" / "x").write_text('{"kind": "List", "items": []}')  # what file:// would read
    p = subprocess.run([TOOL, "--server", "file://" + str(tmp_path), "--verb", "list", "--version", "v1",
                        "--resource", "x", "--max-attempts", "1"], capture_output=True, text=True, timeout=30)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert lines and lines[0]["rc"] != 0 and lines[0]["error"].startswith("Unsupported protocol"), p.stdout + p.stderr


def test_https_to_a_plain_http_server_says_so(srv):
    """A kubeconfig with https:// for a server that speaks plain HTTP: the error names the server and says
    it answers in plain HTTP (before: only curl's "SSL connect error"); a TLS error is not retried."""
    url = srv.url.replace("http://", "https://")
    p = subprocess.run([TOOL, "--server", url, "--token", "t0k3n", "--verb", "get", "--version", "v1",
                        "--resource", "nodes", "--name", "n1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    res, st = lines[0], lines[-1]["stats"]
    assert res["rc"] != 0 and res["code"] == 0, res
    assert "plain HTTP, not TLS" in res["error"] and url in res["error"], res["error"]
    assert st["attempts"] == 1, st
    assert srv.script.requests == []  # the TLS hello is not an HTTP request
