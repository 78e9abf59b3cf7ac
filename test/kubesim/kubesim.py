#!/usr/bin/env python3
"""kubesim: a local Kubernetes API server with a simulated GPU fleet (Python standard library only).

    python3 test/kubesim/kubesim.py --port 0 [--tls] [--gpu-nodes N --gpus-per-node G --cpu-nodes M]
        [--kubeconfig-out FILE] [--pod-ready-delay S] [--history K] [--state FILE] [--bookmark-interval S]
        [--heartbeat S]

Prints `kubesim listening on http(s)://127.0.0.1:PORT` once it serves (after writing the kubeconfig).
With --state, objects and the resourceVersion counter are saved on SIGTERM/SIGINT and loaded at start.
With --tls it generates a CA and a server certificate with the openssl CLI (kept in --tls-dir when given,
so a restart keeps them) and requires `Authorization: Bearer <token>` (401 otherwise).
"""

import argparse
import base64
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import server  # noqa: E402
import store as st  # noqa: E402

import cluster as cluster_mod  # noqa: E402

BASE_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="kubesim: local Kubernetes API server with a simulated GPU fleet")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0 = pick a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA; require a bearer token")
    p.add_argument("--tls-dir", default=None, help="where to keep/reuse ca.crt, server.crt, server.key, token")
    p.add_argument("--token", default=None, help="bearer token to require (default: random with --tls, none without)")
    p.add_argument("--gpu-nodes", type=int, default=3)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--cpu-nodes", type=int, default=1)
    p.add_argument("--fleet", default=None,
                   help="GPU hosts, in order: runtime/os[/host-driver][/host-toolkit][:count],... e.g. "
                        "containerd/ubuntu22.04:2,cri-o/rhel9.4,docker/ubuntu20.04 (the rest: containerd/ubuntu22.04)")
    p.add_argument("--kubeconfig-out", default=None, help="write a kubeconfig for kubectl and the controller here")
    p.add_argument("--pod-ready-delay", type=float, default=1.0, help="seconds until a scheduled pod is Ready")
    p.add_argument("--pod-stop-delay", type=float, default=0.1,
                   help="seconds a deleted pod's containers take to stop (capped by its grace period)")
    p.add_argument("--heartbeat", type=float, default=0.0,
                   help="seconds between node heartbeats (lastHeartbeatTime bumps, as a kubelet does); 0 = off")
    p.add_argument("--history", type=int, default=10000, help="watch events kept (older versions get 410)")
    p.add_argument("--state", default=None, help="load objects from this file at start, save them on shutdown")
    p.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between watch BOOKMARK events")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p.parse_args(argv)


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("kubesim: openssl %s failed: %s" % (args[0], r.stderr.strip()))


def make_tls(tls_dir):
    """CA + server certificate (SANs 127.0.0.1, ::1, localhost, kubernetes) and a token; reused if present."""
    paths = {n: os.path.join(tls_dir, n) for n in ("ca.crt", "ca.key", "server.crt", "server.key", "token")}
    if not all(os.path.exists(p) for p in paths.values()):
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
                 "-subj", "/CN=kubesim-ca", cwd=tls_dir)
        _openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kubernetes",
                 cwd=tls_dir)
        with open(os.path.join(tls_dir, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "server.crt", "-days", "3650", "-extfile", "san.ext", cwd=tls_dir)
        with open(paths["token"], "w") as f:
            f.write(secrets.token_hex(24))
    with open(paths["token"]) as f:
        token = f.read().strip()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths["server.crt"], paths["server.key"])
    return ctx, paths["ca.crt"], token


def write_kubeconfig(path, url, ca_file, token):
    lines = ["apiVersion: v1", "kind: Config", "current-context: kubesim", "clusters:", "- name: kubesim",
             "  cluster:", "    server: %s" % url]
    if ca_file:
        with open(ca_file, "rb") as f:
            lines.append("    certificate-authority-data: %s" % base64.b64encode(f.read()).decode())
    if url.startswith("http://"):
        # Loopback test server without TLS: the token may go in cleartext only with the
        # controller's explicit opt-in (docs/operations.md, Security); kubectl ignores it.
        lines += ["    extensions:", "    - name: gpupolicy.dev/allow-plain-http",
                  "      extension: {allow: true}"]
    lines += ["users:", "- name: kubesim-admin", "  user:"]
    lines.append("    token: %s" % (token or "kubesim"))
    lines += ["contexts:", "- name: kubesim", "  context:", "    cluster: kubesim", "    user: kubesim-admin",
              "    namespace: default", "preferences: {}", ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def save_state(store, path):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(store.dump())
    os.replace(tmp, path)


def ensure_namespaces(store):
    for ns in BASE_NAMESPACES:
        if store.get_entry("/v1/namespaces", "", ns) is None:
            store.create("/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})


def main(argv=None):
    args = parse_args(argv)
    store = st.Store(history=args.history)
    registry = server.make_registry(store)
    loaded = False
    if args.state and os.path.exists(args.state):
        with open(args.state, "rb") as f:
            store.load(f.read())
        loaded = True
    cluster = cluster_mod.Cluster(store, args)

    ssl_ctx, ca_file, token = None, None, args.token
    if args.tls:
        tls_dir = args.tls_dir or tempfile.mkdtemp(prefix="kubesim-tls-")
        os.makedirs(tls_dir, exist_ok=True)
        ssl_ctx, ca_file, generated = make_tls(tls_dir)
        token = token or generated

    sim = server.Kubesim(store, registry, cluster, token=token, bookmark_interval=args.bookmark_interval)
    if loaded:
        for crd in store.list(server.CRD_RES)[0]:
            registry.on_crd_change(crd)
    else:
        cluster.seed()
        ensure_namespaces(store)

    httpd = server.Server((args.host, args.port), sim, ssl_ctx, verbose=args.verbose)
    port = httpd.server_address[1]
    url = "%s://%s:%d" % ("https" if args.tls else "http", args.host, port)
    if args.kubeconfig_out:
        write_kubeconfig(args.kubeconfig_out, url, ca_file, token)
    cluster.start()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    print("kubesim listening on %s" % url, flush=True)
    while not stop.wait(1.0):
        pass
    cluster.stop()
    if args.state:
        save_state(store, args.state)
    with store.lock:
        store.closing = True
        store.cond.notify_all()
    httpd.shutdown()
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
