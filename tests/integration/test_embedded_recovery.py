"""The bookkeeping depot repairs before it joins an embedded PostgreSQL: the wheel's list of users and a
stale postmaster.pid. Real processes stand in for the dead, the zombie and the pid reused."""


from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil

from adapters.postgres.embedded import prune_dead_handles, remove_stale_postmaster_pid


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_dead_and_zombie_pids_leave_the_list_and_the_living_stay(tmp_path):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits; not reaped until wait()
    dead = dead_pid()
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([os.getpid(), dead, zombie.pid]))
    deadline = time.monotonic() + 10
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        dropped = prune_dead_handles(tmp_path)
    finally:
        zombie.wait()
    assert sorted(dropped) == sorted([dead, zombie.pid])
    assert json.loads(handles.read_text()) == [os.getpid()]


def test_a_list_cut_short_by_a_kill_starts_afresh(tmp_path):
    (tmp_path / ".handle_pids.json").write_text("[12, 3")
    prune_dead_handles(tmp_path)
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == []


def write_pid_file(pgdata, pid: int) -> None:
    socket_dir = pgdata / "sockets"
    socket_dir.mkdir(exist_ok=True)
    (socket_dir / ".s.PGSQL.5432.lock").write_text(f"{pid}\n{pgdata}\n")
    (pgdata / "postmaster.pid").write_text(f"{pid}\n{pgdata}\n1764160000\n5432\n{socket_dir}\n\n* 0\nready\n")


def test_a_pid_file_of_a_gone_server_is_removed_with_its_socket_lock(tmp_path):
    write_pid_file(tmp_path, dead_pid())
    assert remove_stale_postmaster_pid(tmp_path)
    assert not (tmp_path / "postmaster.pid").exists()
    assert not (tmp_path / "sockets" / ".s.PGSQL.5432.lock").exists()


def test_a_pid_file_whose_pid_is_now_another_program_is_removed(tmp_path):
    other = subprocess.Popen(["sleep", "30"])
    try:
        write_pid_file(tmp_path, other.pid)
        assert remove_stale_postmaster_pid(tmp_path)
    finally:
        other.kill()
        other.wait()
    assert not (tmp_path / "postmaster.pid").exists()


def test_a_pid_file_of_a_running_postgres_is_left_alone(pg_server, tmp_path):
    postmaster = next(p for p in psutil.process_iter(["name", "cmdline"])
                      if p.info["name"] == "postgres" and "-D" in (p.info["cmdline"] or []))
    write_pid_file(tmp_path, postmaster.pid)
    assert not remove_stale_postmaster_pid(tmp_path)
    assert (tmp_path / "postmaster.pid").exists()
