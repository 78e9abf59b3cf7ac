"""The probe and metrics endpoints under abuse (issue 18, design.md §7), on loopback against the real
controller: methods other than GET/HEAD get 405, HEAD has no body, and pipelined floods that never read
their replies, idle-connection floods and fd exhaustion cost little CPU and little log.

CPU is the controller's own user+system time from /proc/PID/stat, not wall-clock time, so a busy
machine slows the test but does not fail it. Each abuse phase runs for a fixed wall time; an endpoint
that spins (the bug: epoll_wait in a loop while a client does not read) burns a core for the whole phase.
"""

import os
import resource
import socket
import threading
import time

import pytest

from replica import CONTROLLER, Replica, prepare, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")

CLK_TCK = os.sysconf("SC_CLK_TCK")
PHASE_S = 6.0
# A spinning endpoint burns ~1 CPU-second per wall second; a sound one a few percent.
MAX_CPU_FRACTION = 0.15


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def raw(port, data, read=True, timeout=3):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    s.close()
    return out


@pytest.fixture
def ctl(kubesim):
    sim = kubesim(gpu_nodes=1, gpus_per_node=1, cpu_nodes=0, pod_ready_delay=0.1)
    prepare(sim)
    r = Replica(sim, leader_elect=False)
    wait_until(lambda: r.http("health", "/readyz")[0] == 200, 20, "ready")
    yield r
    assert r.stop() == 0, r.logs()[-3000:]


def test_methods_and_head(ctl):
    for port, path in ((ctl.hport, "/healthz"), (ctl.mport, "/metrics")):
        # lws itself answers methods it does not know (TRACE, CONNECT) with 403 and closes.
        trace = raw(port, b"TRACE %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        assert trace.split(b" ")[1] in (b"403", b"405"), trace[:200]
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            out = raw(port, b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % (method.encode(), path.encode()))
            assert out.startswith(b"HTTP/1.1 405"), (method, path, out[:200])
            assert b"\r\nallow: get, head\r\n" in out.lower(), out[:300]
        get = raw(port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        head = raw(port, b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        assert get.startswith(b"HTTP/1.1 200") and head.startswith(b"HTTP/1.1 200"), (get[:100], head[:100])
        hdr, _, body = head.partition(b"\r\n\r\n")
        assert body == b"", "HEAD returned a body: %r" % body[:100]
        assert b"content-length:" in hdr.lower()


def flood_pipelined(port, path, stop, n=1000):
    req = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path * n
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.settimeout(0.5)
            try:
                s.sendall(req)
            except socket.timeout:
                pass
            stop.wait(3)  # never reads its replies
            s.close()
        except OSError:
            stop.wait(0.05)


def test_pipelined_floods_that_never_read_do_not_spin(ctl):
    pid = ctl.proc.pid
    stop = threading.Event()
    threads = [threading.Thread(target=flood_pipelined, args=(p, path, stop), daemon=True)
               for p, path in ((ctl.hport, b"/healthz"), (ctl.hport, b"/readyz"), (ctl.mport, b"/metrics"),
                               (ctl.mport, b"/metrics"))]
    c0, t0 = cpu_seconds(pid), time.monotonic()
    for t in threads:
        t.start()
    time.sleep(PHASE_S)
    stop.set()
    for t in threads:
        t.join(5)
    used, wall = cpu_seconds(pid) - c0, time.monotonic() - t0
    print("pipelined flood: %.2f CPU s in %.1f s wall (%.0f%%)" % (used, wall, 100 * used / wall))
    assert used / wall < MAX_CPU_FRACTION, "controller used %.2f CPU s in %.1f s under a pipelined flood" % (used, wall)
    assert ctl.http("health", "/healthz") == (200, "ok")


def test_idle_connection_flood_is_capped_and_timed_out(ctl):
    pid = ctl.proc.pid
    socks = []
    c0, t0 = cpu_seconds(pid), time.monotonic()
    for _ in range(300):
        try:
            socks.append(socket.create_connection(("127.0.0.1", ctl.hport), timeout=2))
        except OSError:
            break
    # The server holds at most its cap of them (the rest wait in the kernel's backlog) and drops each
    # idle one after its timeout (5 s): a closed socket reads b"" (or is reset).
    max_fds, closed = 0, set()
    deadline = time.monotonic() + 3 * PHASE_S
    while time.monotonic() < deadline and len(closed) < 60:
        max_fds = max(max_fds, len(os.listdir("/proc/%d/fd" % pid)))
        for i, s in enumerate(socks):
            if i in closed:
                continue
            s.settimeout(0.001)
            try:
                if s.recv(1) == b"":
                    closed.add(i)
            except socket.timeout:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.2)
    used, wall = cpu_seconds(pid) - c0, time.monotonic() - t0
    for s in socks:
        s.close()
    print("idle flood: %d connections, %d closed by the server, at most %d fds, %.2f CPU s in %.1f s"
          % (len(socks), len(closed), max_fds, used, wall))
    assert len(closed) >= 60, "idle connections were not timed out: %d of %d closed" % (len(closed), len(socks))
    assert max_fds < 100, "the server held %d descriptors" % max_fds
    assert used / wall < MAX_CPU_FRACTION
    wait_until(lambda: ctl.http("health", "/healthz") == (200, "ok"), 15, "healthz after the flood")


def test_fd_exhaustion_neither_spins_nor_floods_the_log(kubesim):
    """Under a low fd limit, connections beyond it are not accepted in a loop that logs each EMFILE."""
    sim = kubesim(gpu_nodes=1, gpus_per_node=1, cpu_nodes=0, pod_ready_delay=0.1)
    prepare(sim)
    lim = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, lim[1]))  # inherited by the controller
    try:
        r = Replica(sim, leader_elect=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, lim)
    try:
        wait_until(lambda: r.http("health", "/readyz")[0] == 200, 20, "ready")
        pid = r.proc.pid
        log0 = len(r.logs())
        socks = []
        c0, t0 = cpu_seconds(pid), time.monotonic()
        for _ in range(120):
            try:
                socks.append(socket.create_connection(("127.0.0.1", r.hport), timeout=1))
            except OSError:
                pass
        time.sleep(PHASE_S)
        used, wall = cpu_seconds(pid) - c0, time.monotonic() - t0
        for s in socks:
            s.close()
        grown = len(r.logs()) - log0
        print("fd exhaustion: %.2f CPU s in %.1f s, log grew %d bytes" % (used, wall, grown))
        assert used / wall < MAX_CPU_FRACTION
        assert grown < 20000, "log grew by %d bytes under fd exhaustion:\n%s" % (grown, r.logs()[-1500:])
        wait_until(lambda: r.http("health", "/healthz") == (200, "ok"), 15, "healthz after the flood")
    finally:
        assert r.stop() == 0, r.logs()[-3000:]
