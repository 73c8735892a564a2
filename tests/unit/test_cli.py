"""The `dlcourse` command: data verify/fetch, labs build --check, run, doctor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlcourse import cli

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env_data: str | None = None, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DLCOURSE_")}
    if env_data:
        env["DLCOURSE_DATA"] = env_data
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "dlcourse.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_data_verify_all_ok(shared_data: Path) -> None:
    out = run_cli("data", "verify", env_data=str(shared_data))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("OK ") == 9 and "all files verified." in out.stdout


def test_data_verify_names_the_corrupted_file(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(shared_data, copy, ignore=shutil.ignore_patterns("train-images*"))
    for dataset in ("mnist", "fashion-mnist"):
        (copy / dataset / "train-images-idx3-ubyte.gz").symlink_to(shared_data / dataset / "train-images-idx3-ubyte.gz")
    target = copy / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0x01
    target.write_bytes(bytes(raw))
    out = run_cli("data", "verify", env_data=str(copy), extra_env={"DLCOURSE_CACHE": str(tmp_path / "c")})
    assert out.returncode == 1
    assert "BAD  fashion-mnist/t10k-labels-idx1-ubyte.gz" in out.stdout
    assert f"{target} is corrupt" in out.stdout and "1 file(s) missing or corrupt." in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_data_fetch_offline_is_one_line(tmp_path: Path) -> None:
    out = run_cli("data", "fetch", "mnist", extra_env={"DLCOURSE_OFFLINE": "1", "DLCOURSE_CACHE": str(tmp_path)})
    assert out.returncode == 1 and out.stderr.startswith("dlcourse: mnist/train-images-idx3-ubyte.gz was not found")
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_data_fetch_unknown_dataset(tmp_path: Path) -> None:
    out = run_cli("data", "fetch", "cifar10", extra_env={"DLCOURSE_CACHE": str(tmp_path)})
    assert out.returncode == 1 and "There is no dataset called 'cifar10'" in out.stderr


def test_labs_build_check_passes_on_the_repository() -> None:
    out = run_cli("labs", "build", "--check")
    assert out.returncode == 0 and "labs/ matches solutions/." in out.stdout


def test_run_unknown_lab_is_a_sentence(capsys) -> None:
    assert cli.main(["run", "77", "--fast"]) == 1
    assert "No notebook for lab(s) 77" in capsys.readouterr().err


def test_doctor_quick(shared_data: Path) -> None:
    out = run_cli("doctor", "--quick", env_data=str(shared_data))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "labs in sync           yes" in out.stdout and "doctor: everything looks ready." in out.stdout


def test_help_lists_the_commands() -> None:
    out = run_cli("--help")
    for word in ("doctor", "data", "labs", "run"):
        assert word in out.stdout


@pytest.mark.parametrize("argv", [["data"], ["labs"], []])
def test_incomplete_commands_show_usage(argv: list[str]) -> None:
    out = run_cli(*argv)
    assert out.returncode == 2 and "usage:" in out.stderr
