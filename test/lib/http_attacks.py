#!/usr/bin/env python3
# test/lib/http_attacks.py
# Attack clients for test/integration/transport_attacks.sh (loopback only, bounded in time and bytes). Each
# subcommand prints one JSON object on stdout.
#   starve HOST PORT SECONDS TOKEN API_PATH   16 slowloris + 200 idle + 16 keep-alive sockets while a probe client
#                                             times GET /healthz and GET API_PATH every 0.5 s
#   flood HOST PORT MIB                       one request whose headers go on for MIB MiB (lines under 8 KiB)
#   raw HOST PORT BYTES [SECONDS]             sends BYTES (Python escapes: \r\n, \x00) and collects every answer
#   hold HOST PORT SECONDS                    16 slowloris + 50 idle sockets + 4 clients that do not read a large
#                                             answer, held open for SECONDS (for the SIGTERM drain test)
import json
import re
import socket
import sys
import threading
import time


def connect(host, port, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_answers(s, seconds):
    """Reads until the peer closes or `seconds` pass; returns (data, closed_by_peer)."""
    data = b""
    deadline = time.monotonic() + seconds
    closed = False
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        if len(data) > 64 * 1024 * 1024:
            break
    return data, closed


def status_lines(data):
    # Status lines anywhere (a body without a trailing CRLF runs straight into the next answer's status line).
    return [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.[01] (\d{3}) ", data)]


def timed_get(host, port, path, token, bound):
    start = time.monotonic()
    try:
        s = connect(host, port, timeout=bound)
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        if token:
            req += f"Authorization: Bearer {token}\r\n"
        s.sendall((req + "\r\n").encode())
        data, _ = read_answers(s, bound)
        s.close()
        codes = status_lines(data)
        return (codes[0] if codes else 0), time.monotonic() - start
    except OSError:
        return 0, time.monotonic() - start


def starve(host, port, seconds, token, api_path):
    seconds = float(seconds)
    stop = threading.Event()
    socks = []
    lock = threading.Lock()
    stats = {"slowloris_closed_by_server": 0, "keepalive_requests": 0, "keepalive_errors": 0}

    def slowloris():
        # A head that never ends: one header line per second; reconnects when the server gives up on it.
        while not stop.is_set():
            try:
                s = connect(host, port)
                with lock:
                    socks.append(s)
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
                i = 0
                while not stop.is_set():
                    time.sleep(1)
                    s.sendall(f"X-Slow-{i}: {i}\r\n".encode())
                    i += 1
            except OSError:
                with lock:
                    stats["slowloris_closed_by_server"] += 1
                time.sleep(0.2)

    def keepalive():
        # An ordinary client: a request now and then on one kept-alive connection, idle in between.
        s = None
        while not stop.is_set():
            try:
                if s is None:
                    s = connect(host, port)
                    with lock:
                        socks.append(s)
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                s.settimeout(10)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionResetError()
                    buf += chunk
                with lock:
                    stats["keepalive_requests"] += 1
                stop.wait(2.0)
            except OSError:
                with lock:
                    stats["keepalive_errors"] += 1
                s = None
                time.sleep(0.2)

    threads = [threading.Thread(target=slowloris, daemon=True) for _ in range(16)]
    threads += [threading.Thread(target=keepalive, daemon=True) for _ in range(16)]
    idle = []
    for _ in range(200):
        try:
            idle.append(connect(host, port))
        except OSError:
            pass
    for t in threads:
        t.start()
    time.sleep(1.5)  # let every attacker settle in
    probes = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        code_h, t_h = timed_get(host, port, "/healthz", None, 5.0)
        code_a, t_a = timed_get(host, port, api_path, token, 5.0)
        probes.append({"healthz": code_h, "healthz_s": round(t_h, 3), "api": code_a, "api_s": round(t_a, 3)})
        time.sleep(0.5)
    stop.set()
    idle_open = 0
    for s in idle:
        # An idle socket the server has closed reads EOF at once.
        s.setblocking(False)
        try:
            idle_open += 1 if s.recv(1) else 0
        except BlockingIOError:
            idle_open += 1
        except OSError:
            pass
        s.close()
    with lock:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
    print(json.dumps({
        "probes": probes,
        "idle_sockets_opened": len(idle),
        "idle_sockets_still_open": idle_open,
        **stats,
    }))


def flood(host, port, mib):
    # Sends while a reader thread waits for the answer: how much had been sent when the server answered tells
    # whether it refused early (a server may go on reading and dropping the rest before it closes).
    total = int(float(mib) * 1024 * 1024)
    s = connect(host, port)
    state = {"sent": 0, "sent_at_answer": None, "data": b""}

    def reader():
        s.settimeout(30)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                if state["sent_at_answer"] is None:
                    state["sent_at_answer"] = state["sent"]
                state["data"] += chunk
        except OSError:
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    line = b"X-Flood: " + b"a" * 8000 + b"\r\n"
    head = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode()
    closed = False
    start = time.monotonic()
    try:
        s.sendall(head)
        state["sent"] += len(head)
        while state["sent"] < total:
            s.sendall(line)
            state["sent"] += len(line)
    except OSError:
        closed = True
    t.join(5)
    s.close()
    codes = status_lines(state["data"])
    print(json.dumps({"sent_bytes": state["sent"], "sent_at_answer": state["sent_at_answer"],
                      "closed_before_end": closed, "seconds": round(time.monotonic() - start, 2),
                      "status": codes[0] if codes else 0}))


def raw(host, port, payload, seconds=3):
    data_out = payload.encode("latin-1").decode("unicode_escape").encode("latin-1")
    s = connect(host, port)
    try:
        s.sendall(data_out)
    except OSError:
        pass
    data, closed = read_answers(s, float(seconds))
    s.close()
    print(json.dumps({"answers": status_lines(data), "closed": closed, "bytes": len(data),
                      "text": data[:4000].decode("latin-1")}))


def hold(host, port, seconds):
    seconds = float(seconds)
    socks = []
    for _ in range(50):
        socks.append(connect(host, port))
    slow = []
    for i in range(16):
        s = connect(host, port)
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
        slow.append(s)
    readers = []
    for _ in range(4):
        s = connect(host, port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(("".join(f"GET /api/v1/openapi.json HTTP/1.1\r\nHost: {host}\r\n\r\n" for _ in range(64))).encode())
        readers.append(s)
    print(json.dumps({"held": len(socks) + len(slow) + len(readers)}), flush=True)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        time.sleep(1)
        for s in slow:
            try:
                s.sendall(f"X-Slow-{i}: {i}\r\n".encode())
            except OSError:
                pass
        i += 1


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    host, port = args[0], int(args[1])
    if cmd == "starve":
        starve(host, port, args[2], args[3], args[4])
    elif cmd == "flood":
        flood(host, port, args[2])
    elif cmd == "raw":
        raw(host, port, args[2], *(args[3:4]))
    elif cmd == "hold":
        hold(host, port, args[2])
    else:
        sys.exit("unknown subcommand " + cmd)
