"""The `dlcourse` command: doctor, data verify/fetch, labs build/refresh/new/reset, run, grade.

Every expected failure (missing data, drifted labs, a failing notebook) ends with one sentence
and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlcourse.errors import DlcourseError


def course_root() -> Path:
    """The checkout this package lives in, or the current folder when installed elsewhere."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "solutions").is_dir() else Path.cwd()


def _notebooks(folder: Path, which: list[str]) -> list[Path]:
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if which and which != ["all"]:
        wanted = {w.zfill(2) for w in which}
        found = [p for p in found if p.name[:2] in wanted]
        missing = wanted - {p.name[:2] for p in found}
        if missing:
            raise DlcourseError(f"No notebook for lab(s) {', '.join(sorted(missing))} in {folder}.")
    if not found:
        raise DlcourseError(f"No NN_name.ipynb notebooks in {folder}.")
    return found


def cmd_data_verify(args: argparse.Namespace) -> int:
    from dlcourse.data import known_datasets, verify_dataset

    bad = 0
    for name in args.datasets or known_datasets():
        for status in verify_dataset(name, args.root):
            where = status.path or "-"
            print(f"{'OK ' if status.ok else 'BAD'}  {status.file.relpath:<42} {where}")
            if not status.ok:
                bad += 1
                print(f"     {status.message}")
    print(f"{'all files verified' if not bad else f'{bad} file(s) missing or corrupt'}.")
    return 1 if bad else 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from dlcourse.data import dataset_files, locate

    for name in args.datasets:
        for file in dataset_files(name):
            print(f"OK   {file.relpath:<42} {locate(file, args.root)}")
    return 0


def cmd_labs_build(args: argparse.Namespace) -> int:
    from dlcourse.notebooks import build_labs

    root = course_root()
    changed = build_labs(root / "solutions", root / "labs", check=args.check)
    if args.check:
        if changed:
            print(f"labs/ is out of date with solutions/ for: {', '.join(changed)}; run `make labs`.")
            return 1
        print("labs/ matches solutions/.")
        return 0
    print(f"regenerated {len(changed)} lab(s): {', '.join(changed) or 'none needed'}.")
    return 0


def cmd_labs_refresh(args: argparse.Namespace) -> int:
    """Re-execute solution notebooks in place so their stored outputs are current."""
    from dlcourse.notebooks import build_labs
    from dlcourse.runner import refresh_outputs

    root = course_root()
    for path in _notebooks(root / "solutions", args.labs):
        result = refresh_outputs(path, fast=args.fast, timeout=args.timeout)
        print(f"{path.name}: {result.status} in {result.seconds:.1f} s {result.error}")
        if not result.ok:
            return 1
    build_labs(root / "solutions", root / "labs")
    return 0


def cmd_labs_new(args: argparse.Namespace) -> int:
    from dlcourse.scaffold import new_lab

    root = course_root()
    written = new_lab(root, args.number, args.name)
    print("wrote " + ", ".join(str(p.relative_to(root)) for p in written) + ".")
    print("Next: write the lab in the solution notebook, then `make labs`, `make refresh`, add its README row, "
          "and `make test`.")
    return 0


def cmd_labs_reset(args: argparse.Namespace) -> int:
    from dlcourse.scaffold import reset_lab

    root = course_root()
    lab, backup = reset_lab(root, args.number)
    if backup is None:
        print(f"{lab.relative_to(root)} is already a fresh copy; nothing was changed.")
    else:
        print(f"{lab.relative_to(root)} is a fresh copy again. Your previous version is kept in {backup}.")
        print("If the notebook is open in JupyterLab, close its tab without saving (or use File > Reload "
              "Notebook from Disk), so the old version is not saved over the fresh one.")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from dlcourse.grading import format_summary, grade_all, write_feedback, write_gradebook, write_report

    if args.no_sandbox:
        print("dlcourse grade: --no-sandbox: submissions run with your permissions (the report records it).",
              file=sys.stderr)
    reports = grade_all([Path(p) for p in args.submissions], args.lab, course_root(), cell_timeout=args.timeout,
                        notebook_timeout=args.notebook_timeout, jobs=args.jobs,
                        keep=Path(args.keep) if args.keep else None, sandboxed=not args.no_sandbox,
                        memory_mb=args.memory or None, hidden=Path(args.hidden) if args.hidden else None)
    print(format_summary(reports))
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() == ".csv":
            write_gradebook(reports, args.lab, out, args.lms)
            print(f"gradebook ({args.lms} layout) written to {args.out}")
        else:
            write_report(reports, args.lab, out)
            print(f"report written to {args.out}")
    if args.details:
        write_report(reports, args.lab, Path(args.details))
        print(f"per-exercise report written to {args.details}")
    if args.feedback:
        written = write_feedback(reports, args.lab, Path(args.feedback), args.feedback_format)
        print(f"{len(written)} feedback file(s) written to {args.feedback}/")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from dlcourse.progress import format_progress, lab_progress

    folder = Path(args.folder) if args.folder else course_root() / "labs"
    print(format_progress(lab_progress(folder)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from dlcourse.runner import format_table, missed_bounds, run_all

    root = course_root()
    folder = Path(args.folder) if args.folder else root / ("labs" if args.student else "solutions")
    results = run_all(_notebooks(folder, args.labs), Path(args.out), fast=args.fast, timeout=args.timeout)
    print(format_table(results))
    print(f"executed notebooks are in {args.out}/")
    missed = missed_bounds(results)
    for sentence in missed:
        print(f"bound missed: {sentence}")
    if args.fast:
        print("FAST mode trains on subsets, so the bounds in [ ] are shown, not enforced.")
    return 0 if all(r.ok for r in results) and not missed else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    import os

    from dlcourse.env import report
    from dlcourse.notebooks import build_labs

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not a finding
    rep = report(frameworks=not args.quick)
    problems = [k for k, v in rep.rows if k.startswith("data:") and not v.startswith("verified")]
    root = course_root()
    if (root / "solutions").is_dir():
        drift = build_labs(root / "solutions", root / "labs", check=True)
        rep.add("labs in sync", "yes" if not drift else "no: " + ", ".join(drift) + " (run `make labs`)")
        problems += drift
    print(rep)
    print("doctor: everything looks ready." if not problems else f"doctor: {len(problems)} problem(s) above.")
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlcourse", description="Tools for the dlcourse labs.")
    sub = p.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="report versions, devices and data; check the labs are in sync")
    doctor.add_argument("--quick", action="store_true", help="skip importing TensorFlow and PyTorch")
    doctor.set_defaults(func=cmd_doctor)

    data = sub.add_parser("data", help="verify or fetch the datasets").add_subparsers(dest="action", required=True)
    verify = data.add_parser("verify", help="check every file's SHA-256 (never downloads)")
    fetch = data.add_parser("fetch", help="download missing datasets into the cache, verified")
    for cmd, func in ((verify, cmd_data_verify), (fetch, cmd_data_fetch)):
        cmd.add_argument("datasets", nargs="*" if cmd is verify else "+", help="mnist, fashion-mnist, tinyshakespeare")
        cmd.add_argument("--root", help="a data folder to use before $DLCOURSE_DATA")
        cmd.set_defaults(func=func)

    labs = sub.add_parser("labs", help="generate labs/ from solutions/").add_subparsers(dest="action", required=True)
    build = labs.add_parser("build", help="regenerate labs/ (a timestamped backup of each replaced lab goes to build/)")
    build.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    build.set_defaults(func=cmd_labs_build)
    refresh = labs.add_parser("refresh", help="re-execute solutions in place, then rebuild labs/")
    refresh.add_argument("labs", nargs="*", default=["all"])
    refresh.add_argument("--fast", action="store_true")
    refresh.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    refresh.set_defaults(func=cmd_labs_refresh)

    new = labs.add_parser("new", help="scaffold solutions/NN_name.ipynb, its lab and its checks module")
    new.add_argument("number", help="two digits, e.g. 13")
    new.add_argument("name", help="lower case words joined by _, e.g. attention_masks")
    new.set_defaults(func=cmd_labs_new)
    reset = labs.add_parser("reset", help="give labs/NN_*.ipynb a fresh copy (your version is backed up first)")
    reset.add_argument("number", help="the lab number, e.g. 03")
    reset.set_defaults(func=cmd_labs_reset)

    grade = sub.add_parser("grade", help="grade student notebooks with the official checks")
    grade.add_argument("submissions", nargs="+", help="the students' .ipynb files (never modified)")
    grade.add_argument("--lab", required=True, help="the lab these notebooks are, e.g. 03")
    grade.add_argument("--timeout", type=float, default=120.0, help="seconds per cell before it is interrupted")
    grade.add_argument("--notebook-timeout", type=float, default=900.0, help="seconds per submission in all")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once (one kernel each)")
    grade.add_argument("--out", help="gradebook.csv (one row per student, --lms layout) or report.json (everything)")
    grade.add_argument("--lms", choices=["canvas", "gradescope"], default="canvas", help="the gradebook's column layout")
    grade.add_argument("--details", help="report.csv: one row per student and exercise, with the check's sentence")
    grade.add_argument("--feedback", help="a folder for one feedback file per student (status, sentence, hint)")
    grade.add_argument("--feedback-format", choices=["md", "html"], default="md")
    grade.add_argument("--keep", help="a folder for the executed notebooks (to read what each student's run printed)")
    grade.add_argument("--memory", type=int, default=4096, help="MiB of memory per process of a submission (0: no limit)")
    grade.add_argument("--hidden", help="a folder of instructor-only checks (labNN.py with @hidden_check functions)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run submissions without bubblewrap (only inside a container of your own)")
    grade.set_defaults(func=cmd_grade)

    progress = sub.add_parser("progress", help="which exercises your labs' check cells last showed as passed")
    progress.add_argument("folder", nargs="?", help="the folder of your labs (default: this course's labs/)")
    progress.set_defaults(func=cmd_progress)

    run = sub.add_parser("run", help="execute notebooks headless and print a table")
    run.add_argument("labs", nargs="*", default=["all"], help="lab numbers (00 01 ...) or 'all'")
    run.add_argument("--fast", action="store_true", help="FAST mode (small subsets, as in CI)")
    run.add_argument("--student", action="store_true", help="run the student labs/ instead of solutions/")
    run.add_argument("--folder", default=None, help="run the NN_name.ipynb notebooks of this folder instead")
    run.add_argument("--out", default=str(course_root() / "build" / "executed"))
    run.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    run.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except DlcourseError as exc:
        print(f"dlcourse: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dlcourse: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
