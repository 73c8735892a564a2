"""dlcourse.launch: free ports, streamed output, sentences on failure, and no process left behind."""

from __future__ import annotations

import socket
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from dlcourse.launch import LaunchError, free_port, multi_node_command, run_command, torchrun_command

# A parent that, like torchrun, starts a worker in a NEW session (out of its process group), then waits.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    open(sys.argv[1], "w").write(str(child.pid))
    print("worker started", flush=True)
    time.sleep(120)
""")


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 1024 <= port <= 65535


def test_output_is_streamed_and_returned() -> None:
    lines: list[str] = []
    done = run_command([sys.executable, "-c", "print('one'); print('two')"], timeout=60, on_line=lines.append)
    assert lines == ["one", "two"] and done.returncode == 0 and done.output == "one\ntwo"


def test_a_failing_command_gives_a_sentence_with_its_last_lines() -> None:
    with pytest.raises(LaunchError, match="exit code 3.*last lines.*\n.*boom"):
        run_command([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], timeout=60, on_line=None,
                    what="the job")


def test_timeout_stops_the_launcher_and_its_new_session_workers(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    start = time.monotonic()
    with pytest.raises(LaunchError, match="did not finish within 3 s"):
        run_command([sys.executable, "-c", PARENT, pid_file], timeout=3, on_line=None)
    assert time.monotonic() - start < 30
    assert _pids_alive([int(pid_file.read_text())]) == []


def test_an_interrupt_also_stops_everything(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt  # what the notebook's stop button (or nbval's cell timeout) delivers

    with pytest.raises(KeyboardInterrupt):
        run_command([sys.executable, "-c", PARENT, pid_file], timeout=60, on_line=interrupt)
    assert _pids_alive([int(pid_file.read_text())]) == []


def test_torchrun_command_picks_a_port_and_validates() -> None:
    command = torchrun_command("dlcourse.ddp_train", ["--out", "x"], nproc_per_node=2)
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in command
    endpoint = next(c for c in command if c.startswith("--rdzv-endpoint="))
    assert endpoint.startswith("--rdzv-endpoint=127.0.0.1:") and command[-3:] == ["dlcourse.ddp_train", "--out", "x"]
    with pytest.raises(ValueError, match="rendezvous endpoint"):
        torchrun_command("m", nnodes=2)
    with pytest.raises(ValueError, match="at least 1"):
        torchrun_command("m", nproc_per_node=0)


def test_multi_node_command_is_the_same_on_every_node() -> None:
    line = multi_node_command("dlcourse.ddp_train", ["--epochs", 3], nnodes=2, gpus_per_node=8, host="h0", port=29400)
    assert line.startswith("torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=h0:29400")
    assert line.endswith("-m dlcourse.ddp_train --epochs 3") and sys.executable not in line


def test_a_worker_killed_by_a_cpp_exception_is_named_in_the_error() -> None:
    from dlcourse.launch import _ERROR_LINE

    assert _ERROR_LINE.match("  what():  [pair.cc:589] Read error [127.0.0.1]:3977: Connection reset by peer")
    assert _ERROR_LINE.match("[rank1]: ValueError: bad") and not _ERROR_LINE.match("step 3 loss 0.1")


def test_processes_side_by_side_share_the_cores_and_a_set_thread_count_is_kept(monkeypatch):
    from dlcourse import launch

    monkeypatch.setattr(launch.os, "cpu_count", lambda: 8)
    assert launch.shared_core_env(1, {}) == {}
    assert launch.shared_core_env(2, {}) == dict.fromkeys(launch.THREAD_VARIABLES, "4")
    assert launch.shared_core_env(3, {})["OMP_NUM_THREADS"] == "2"
    assert launch.shared_core_env(16, {})["TF_NUM_INTRAOP_THREADS"] == "1"
    assert launch.shared_core_env(2, {"OMP_NUM_THREADS": "3"}) == {}  # the caller's choice stands

