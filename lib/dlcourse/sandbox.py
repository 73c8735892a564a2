"""The sandbox `dlcourse grade` runs each submission in: bubblewrap (`bwrap`) plus resource limits.

Inside it, a submission sees the whole filesystem read-only (the course's files included), except
its own working folder and a private /tmp (a small tmpfs); it has no network (a new network
namespace holds only a loopback, which the kernel's own sockets use), no capabilities, and a new
PID namespace whose processes all die when the worker ends (`--die-with-parent` and the namespace's
init ending), so nothing it starts outlives the submission.

Limits, set on the worker and inherited by the kernel and every child:

* memory: ``RLIMIT_DATA`` (a process's heap and private mappings; libraries' code and address
  space reserved but unused do not count, so PyTorch and TensorFlow import under it) per process;
* processes: a ``pids`` cgroup when the grader may make one (root, cgroup v1 or v2), else
  ``RLIMIT_NPROC`` (which the kernel does not apply to root, hence the cgroup);
* file size: ``RLIMIT_FSIZE``, so one file cannot fill the disk.

`SandboxError` says in one sentence why the sandbox cannot start; the grader then refuses unless
``--no-sandbox`` is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from dlcourse.errors import DlcourseError

TMPFS_BYTES = 256 * 2**20  # the private /tmp
MAX_PROCESSES = 1024  # per submission, threads included (PyTorch and TensorFlow start one pool per core each)
FILE_BYTES = 2 * 2**30  # largest file a submission may write


class SandboxError(DlcourseError):
    """The sandbox cannot start here."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = 4096  # None: no memory limit
    processes: int = MAX_PROCESSES

    def worker_args(self, cgroup: bool) -> list[str]:
        """grade_worker options that set the rlimits (the process limit only without a cgroup)."""
        args = ["--file-bytes", str(FILE_BYTES)]
        if self.memory_mb:
            args += ["--memory-mb", str(self.memory_mb)]
        if not cgroup:
            args += ["--max-processes", str(self.processes)]
        return args


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


_PROBED: dict[str, str] = {}


def sandbox_problem() -> str:
    """'' when bubblewrap can start a sandbox here, else one sentence that says why not."""
    if "result" in _PROBED:
        return _PROBED["result"]
    bwrap = bwrap_path()
    if bwrap is None:
        problem = ("bubblewrap (bwrap) is not installed, so submissions cannot be sandboxed: install it "
                   "(`bash scripts/install_bubblewrap.sh` or `apt-get install bubblewrap`) or grade with --no-sandbox")
    else:
        try:
            done = subprocess.run([bwrap, *_namespace_args(), "--", "true"], capture_output=True, text=True,
                                  timeout=30)
            problem = "" if done.returncode == 0 else (
                f"bubblewrap cannot start a sandbox here ({' '.join(done.stderr.split())[:200] or done.returncode}); "
                "this host may not allow user namespaces: grade with --no-sandbox inside a container of your own")
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"bubblewrap could not be run ({exc}): grade with --no-sandbox inside a container of your own"
    _PROBED["result"] = problem
    return problem


def _namespace_args() -> list[str]:
    return ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
            "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]


def sandbox_env(workdir: Path) -> dict[str, str]:
    """Where the kernel may write its own files (home, Jupyter runtime, caches): inside ``workdir``."""
    home = workdir / "home"
    return {"HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
            "MPLCONFIGDIR": str(home / "matplotlib"), "XDG_CACHE_HOME": str(home / "cache"),
            "TMPDIR": "/tmp", "DLCOURSE_SANDBOX": "bwrap"}


def _bind_paths(folder: Path) -> list[str]:
    """Where a shown folder must appear: its real path, and the path it was named by when a symlink (or ``..``)
    leads there, e.g. ``DLCOURSE_DATA=/tmp/course/../shared/data`` with ``/tmp/shared`` a symlink."""
    real, named = str(folder.resolve()), os.path.abspath(folder)
    return [real] if named == real else [real, named]


def wrap(command: list[str], workdir: Path, readable: list[Path] | tuple[Path, ...] = ()) -> list[str]:
    """``command`` run inside the sandbox, with ``workdir`` its only writable folder besides /tmp.

    ``readable`` folders are shown read-only at their own paths; it matters only for those under
    /tmp, which the private /tmp would otherwise hide (a data folder, the hidden checks). The
    interpreter's environment and the course (its checkout, for an editable install) are always shown,
    for a course cloned under /tmp."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError(sandbox_problem())
    readable = [*readable, Path(sys.prefix), Path(__file__).resolve().parents[2]]
    shown = [arg for folder in readable if Path(folder).is_dir() for path in _bind_paths(Path(folder))
             for arg in ("--ro-bind", str(Path(folder).resolve()), path)]
    return [bwrap, *_namespace_args(), *shown, "--bind", str(workdir), str(workdir), "--chdir", str(workdir),
            "--", *command]


OPEN_CGROUPS: set[Path] = set()  # made by this process and not yet removed (the tests read it)


class ProcessCgroup:
    """A ``pids`` cgroup that caps how many processes one submission may have (root only).

    ``prefix()`` is a shell prefix that moves the launching shell into the cgroup before it execs
    the sandbox, so every process of the submission is counted from its first fork."""

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
            limit_file = "pids.max"
            if not (root / "cgroup.procs").is_file() or not os.access(root, os.W_OK):
                continue
            if root.name == "cgroup" and "pids" not in _read(root / "cgroup.subtree_control").split():
                continue  # cgroup v2 without the pids controller delegated here
            path = root / f"dlcourse-grade-{uuid.uuid4().hex[:12]}"
            try:
                path.mkdir()
                (path / limit_file).write_text(str(limit))
            except OSError:
                shutil.rmtree(path, ignore_errors=True) if path.exists() else None
                continue
            self.path = path
            OPEN_CGROUPS.add(path)
            break

    def command(self, command: list[str]) -> list[str]:
        if self.path is None:
            return command
        procs = self.path / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", *command]

    def close(self) -> None:
        """Kill what is still in the cgroup and remove it."""
        if self.path is None:
            return
        import signal
        import time

        for _ in range(300):  # up to 30 s (then sweep_cgroups): killed processes leave it once reaped
            pids = [int(p) for p in _read(self.path / "cgroup.procs").split()]
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.path.rmdir()  # succeeds once the cgroup is empty
                OPEN_CGROUPS.discard(self.path)
                return
            except OSError:
                time.sleep(0.1)


def sweep_cgroups(seconds: float = 60.0) -> None:
    """Remove the cgroups whose processes were still being reaped when their submission ended."""
    import time

    deadline = time.monotonic() + seconds
    while OPEN_CGROUPS and time.monotonic() < deadline:
        for path in list(OPEN_CGROUPS):
            try:
                path.rmdir()
                OPEN_CGROUPS.discard(path)
            except FileNotFoundError:
                OPEN_CGROUPS.discard(path)
            except OSError:
                pass
        time.sleep(0.5)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
