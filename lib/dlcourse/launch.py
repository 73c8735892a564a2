"""Start worker processes from a notebook (torchrun, a tf.distribute script) and always clean them up.

A cell that starts processes must not leave any behind: not when the command fails, not when the
cell is interrupted, not when it runs past its time limit. `run_command` therefore

- starts the command in a session of its own and remembers every process it spawns (torchrun starts
  its workers in *new* sessions, so killing the launcher's process group alone would orphan them);
- streams the output into the cell as it arrives;
- stops the whole tree in a ``finally`` block: SIGTERM, a grace period, then SIGKILL.

`free_port` asks the kernel for a port nobody is listening on, so two labs (or two CI jobs) on one
machine never collide on torchrun's default 29500.
"""

from __future__ import annotations

import atexit
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import psutil

from dlcourse.errors import DlcourseError

_LIVE: dict[int, "ProcessTree"] = {}  # launches still running, for the atexit safety net
# "ValueError: ...", torchrun's "[rank1]: ValueError: ..." from a worker, or the "what(): ..." line of
# a C++ exception that aborted a worker (gloo's "terminate called after throwing ...").
_ERROR_LINE = re.compile(r"^(\[rank\d+\]: )?([A-Za-z_.]*(Error|Exception|Interrupt): |\s*what\(\): )")


class LaunchError(DlcourseError):
    """A launched command failed or ran past its time limit (its processes have been stopped)."""


@dataclass
class Finished:
    command: list[str]
    returncode: int
    seconds: float
    output: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now: bind to port 0 and let the kernel choose."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def worker_threads(n_processes: int) -> int:
    """CPU threads per worker so that all workers together use each core once (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, n_processes))


# The variables PyTorch/OpenMP, MKL, OpenBLAS and TensorFlow read their thread counts from at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def shared_core_env(n_processes: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Thread counts for ``n_processes`` processes that run side by side (pytest workers, grading jobs):
    each gets its share of the cores. Empty for one process, or where ``environ`` (default os.environ)
    already sets any of them. Two kernels that each spin two OpenMP threads on two cores slow each
    other down many times over: lab 14's FAST training cell took 1.7 s alone and 49 s beside another."""
    environ = os.environ if environ is None else environ
    if n_processes < 2 or any(name in environ for name in THREAD_VARIABLES):
        return {}
    return dict.fromkeys(THREAD_VARIABLES, str(worker_threads(n_processes)))


class ProcessTree:
    """A started process and every descendant seen so far (refreshed while it runs)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.known: dict[int, psutil.Process] = {}
        self.refresh()

    def refresh(self) -> None:
        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self.known.setdefault(p.pid, p)
        except psutil.Error:
            pass  # the launcher has exited; the descendants already seen are still remembered

    def alive(self) -> list[psutil.Process]:
        return [p for p in self.known.values() if _running(p)]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to everything (torchrun then stops its workers itself), wait, SIGKILL what is left."""
        self.refresh()
        for p in self.alive():
            _signal(p, signal.SIGTERM)
        _, still = psutil.wait_procs(self.alive(), timeout=grace)
        for p in still:
            _signal(p, signal.SIGKILL)
        psutil.wait_procs(still, timeout=grace)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except psutil.Error:
        pass


@atexit.register
def _stop_all() -> None:
    """Kernel shutdown: stop whatever a cell left running (normally nothing)."""
    for tree in list(_LIVE.values()):
        tree.stop(grace=2.0)


def _stream(tree: ProcessTree, deadline: float, on_line: Callable[[str], None] | None) -> list[str]:
    """Read the merged stdout/stderr line by line until EOF (or the launcher exits), or the deadline."""
    fd = tree.proc.stdout.fileno()
    lines: list[str] = []
    pending = b""
    last_refresh = 0.0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            if now - last_refresh > 0.5:
                tree.refresh()
                last_refresh = now
            if selector.select(timeout=min(0.25, deadline - now)):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace").rstrip("\r")
                    lines.append(line)
                    if on_line is not None and line.strip():  # blank lines are kept in the output, not echoed
                        on_line(line)
            elif tree.proc.poll() is not None:
                break  # exited, but a stray descendant may still hold the pipe open
    if pending:
        lines.append(pending.decode(errors="replace"))
        if on_line is not None:
            on_line(lines[-1])
    return lines


def run_command(command: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
                cwd: str | None = None, on_line: Callable[[str], None] | None = print,
                what: str = "the command") -> Finished:
    """Run ``command``, stream its output to ``on_line``, and stop every process it started on return.

    Raises LaunchError with a sentence (and the last lines of output) when the command exits with an
    error or is still running after ``timeout`` seconds. KeyboardInterrupt (the notebook's stop button,
    nbval's cell timeout) also stops the processes before it propagates.
    """
    command = [str(c) for c in command]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=full_env, cwd=cwd, start_new_session=True)
    tree = ProcessTree(proc)
    _LIVE[proc.pid] = tree
    try:
        lines = _stream(tree, start + timeout, on_line)
        proc.wait(timeout=max(0.1, start + timeout - time.monotonic()))
    except (TimeoutError, subprocess.TimeoutExpired):
        raise LaunchError(f"{what} did not finish within {timeout:.0f} s, so it and all of its processes were "
                          f"stopped. Give it more time (timeout=...) or less work (fewer steps).") from None
    finally:
        tree.stop()
        _LIVE.pop(proc.pid, None)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        errors = [line for line in lines if _ERROR_LINE.match(line)]
        first = f" The first error: {errors[0].strip()}" if errors else ""
        tail = "\n".join(lines[-15:])
        raise LaunchError(f"{what} stopped with exit code {proc.returncode}; its processes were cleaned up.{first} "
                          f"The last lines it printed:\n{tail}")
    return Finished(command, proc.returncode, seconds, "\n".join(lines))


def torchrun_command(module: str, args: Sequence[str] = (), *, nproc_per_node: int = 2, nnodes: int = 1,
                     rdzv_endpoint: str | None = None, rdzv_id: str = "dlcourse",
                     python: str | None = None) -> list[str]:
    """The torchrun command line for ``python -m module args`` on every worker.

    ``torchrun`` is ``python -m torch.distributed.run``; calling it through this interpreter keeps the
    workers in the same environment as the notebook. With one node and no endpoint, a free local port
    is chosen. The c10d rendezvous is the one that also works across machines (see `multi_node_command`).
    """
    if nproc_per_node < 1 or nnodes < 1:
        raise ValueError(f"nproc_per_node and nnodes must be at least 1, not {nproc_per_node} and {nnodes}.")
    if rdzv_endpoint is None:
        if nnodes != 1:
            raise ValueError("Several nodes need a rendezvous endpoint HOST:PORT that every node can reach.")
        rdzv_endpoint = f"127.0.0.1:{free_port()}"
    return [python or sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}",
            f"--nproc-per-node={nproc_per_node}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id={rdzv_id}", "--max-restarts=0", "-m", module, *[str(a) for a in args]]


def multi_node_command(module: str, args: Sequence[str] = (), *, nnodes: int = 2, gpus_per_node: int = 8,
                       host: str = "node0.example.org", port: int = 29400, rdzv_id: str = "job42") -> str:
    """The command to type on EVERY node of a multi-node job (the same on each one).

    The c10d rendezvous runs on ``host:port`` (one of the nodes; the port must be open between them);
    the nodes find each other there, agree on ranks, and ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` reach the
    script exactly as in the single-node case, so the script itself does not change.
    """
    return " ".join(["torchrun", *torchrun_command(module, args, nproc_per_node=gpus_per_node, nnodes=nnodes,
                                                   rdzv_endpoint=f"{host}:{port}", rdzv_id=rdzv_id)[3:]])
