"""A real `depot serve` exposed on 0.0.0.0: refused without keys, served with them; keys, limits and
the access log checked over real HTTP (memory storage: nothing here needs the database)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.e2e.depot_process import DepotProcess, clean_env

WRITE_KEY = "live-write-" + "w" * 24
READ_KEY = "live-read-" + "r" * 24
LIMIT = 10_000


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    process = DepotProcess(tmp_path_factory.mktemp("exposed") / "data", args=("--storage", "memory"),
                           host="0.0.0.0", api_keys=f"{WRITE_KEY}:write,{READ_KEY}:read",
                           max_body_bytes=str(LIMIT))
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


def test_serving_on_all_interfaces_without_keys_is_refused_with_the_fix(tmp_path):
    result = subprocess.run([sys.executable, "-m", "entrypoints.cli", "serve", "--host", "0.0.0.0"],
                            env=clean_env(data_dir=str(tmp_path / "data")), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "DEPOT_API_KEYS" in result.stderr and "127.0.0.1" in result.stderr
    assert not (tmp_path / "data").exists(), "refused before starting anything"


def test_keys_and_roles_over_real_http(depot):
    with depot.client() as client:
        assert client.get("/health").status_code == 200
        assert client.get("/api/airlines").status_code == 401
        read, write = ({"Authorization": f"Bearer {key}"} for key in (READ_KEY, WRITE_KEY))
        assert client.post("/api/airlines", json={"carrier": "LV", "name": "Live"}, headers=read).status_code == 403
        assert client.post("/api/airlines", json={"carrier": "LV", "name": "Live"}, headers=write).status_code == 201
        assert [r["carrier"] for r in client.get("/api/airlines", headers=read).json()] == ["LV"]


def raw_request(depot: DepotProcess, head: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", depot.port), timeout=10) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_huge_declared_body_is_refused_before_it_is_sent(depot):
    """A 1 GB Content-Length and no body at all: the 413 comes at once (a server that read first would hang)."""
    answer = raw_request(depot, "\r\n".join([
        "POST /api/airlines HTTP/1.1", "Host: depot", f"Authorization: Bearer {WRITE_KEY}",
        "Content-Type: application/json", "Content-Length: 1000000000"]))
    assert answer.startswith(b"HTTP/1.1 413")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "PGRST413"


def test_a_chunked_body_is_cut_off_at_the_limit(depot):
    chunk = b"[" + b" " * 998 + b"]"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    answer = raw_request(depot, "\r\n".join([
        "POST /api/airlines HTTP/1.1", "Host: depot", f"Authorization: Bearer {WRITE_KEY}",
        "Content-Type: application/json", "Transfer-Encoding: chunked"]), body)
    assert answer.startswith(b"HTTP/1.1 413")


def test_the_log_has_a_line_per_request_and_no_key(depot):
    with depot.client() as client:
        response = client.get("/api/airlines?name=eq.private-value", headers={"Authorization": f"Bearer {READ_KEY}",
                                                                              "X-Request-Id": "trace-me-42"})
    assert response.headers["x-request-id"] == "trace-me-42"
    depot.stop()  # flush and close: everything it logged is in the file now
    log = depot.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line["request_id"] == "trace-me-42" and line["status"] == 200 and line["role"] == "read"
               for line in lines)
    assert READ_KEY not in log and WRITE_KEY not in log and "private-value" not in log
