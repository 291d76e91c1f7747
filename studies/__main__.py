"""Runs every study, each in its own process, and writes `report.md`.

`python -m studies [--quick] [--seeds 0,1,2] [--output DIR] [--only a,b]`
runs `python -m studies.<name> --output DIR/<name>` for each study in
`STUDIES` order (or those named by `--only`), one after the other, each in a
fresh process so that no study inherits another's random state, memory or
compiled functions. `DIR/report.md` then lists every study: its verdict, the
first line of its evidence, links to its `summary.md` and `figure.png`, and
its duration. A study that fails (non-zero exit status, or no
`results.json`) is listed as FAILED with the last line of its error and a
link to its `log.txt`, and the exit status is 1. Each study's output and
errors are kept in `DIR/<name>/log.txt`.

Example:

>>> main(["--only", "no_such_study"])
2
"""

import json
import os
import pathlib
import subprocess
import sys
import time

from studies import STUDIES
from studies.common import parse_seeds
from templates.cli import ArgumentParser
from templates.errors import TemplateError

DEFAULT_OUTPUT = pathlib.Path("runs") / "studies"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def parse_only(text):
    """Parses `--only a,b` into study names, in the order given.

    Example:

    >>> parse_only("learning_rate, vanishing_gradients")
    ('learning_rate', 'vanishing_gradients')
    """
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in STUDIES]
    if unknown or not names:
        raise TemplateError(
            f"invalid --only {text!r}; expected study names separated by "
            f"commas, from: {', '.join(STUDIES)}"
        )
    return names


def build_parser():
    parser = ArgumentParser(
        prog="python -m studies",
        description="Run the studies, each in its own process, and write report.md.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny runs of a few seconds each, for tests")
    parser.add_argument("--seeds", type=parse_seeds, default=None,
                        help="comma-separated seeds passed to every study")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT,
                        help=f"results folder (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--only", default=",".join(STUDIES),
                        help="comma-separated studies to run (default: all)")
    return parser


def _command(name):
    return [sys.executable, "-m", f"studies.{name}"]


def _environment():
    """The environment of a study's process: this package importable from anywhere."""
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_study(name, output, *, quick=False, seeds=None):
    """Runs one study in a new process and returns what `report.md` shows.

    Args:
        name: str, the study.
        output: pathlib.Path, its folder.
        quick: bool, pass `--quick`. Defaults to `False`.
        seeds: tuple of int or None, pass `--seeds`. Defaults to `None`.

    Returns:
        dict with `name`, `verdict` (`"FAILED"` when the study failed),
        `evidence` (one line), `duration_s` and `failed`.
    """
    output.mkdir(parents=True, exist_ok=True)
    for stale in ("results.json", "summary.md", "figure.png", "results.csv"):
        (output / stale).unlink(missing_ok=True)
    argv = [*_command(name), "--output", str(output)]
    if quick:
        argv.append("--quick")
    if seeds:
        argv += ["--seeds", ",".join(map(str, seeds))]
    started = time.perf_counter()
    completed = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=_environment()
    )
    duration = time.perf_counter() - started
    (output / "log.txt").write_text(
        f"$ {' '.join(argv)}\n{completed.stdout}{completed.stderr}"
        f"exit status {completed.returncode}\n"
    )
    record_path = output / "results.json"
    if completed.returncode != 0 or not record_path.exists():
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else "no results.json written"
        return {
            "name": name,
            "verdict": "FAILED",
            "evidence": f"exit status {completed.returncode}: {reason}",
            "claim": "",
            "duration_s": duration,
            "failed": True,
        }
    record = json.loads(record_path.read_text())
    evidence = next(
        (line.strip() for line in record["evidence"].splitlines() if line.strip()), ""
    )
    return {
        "name": name,
        "verdict": record["verdict"],
        "evidence": evidence.lstrip("-* "),
        "claim": record["claim"].strip(),
        "duration_s": duration,
        "failed": False,
    }


def write_report(rows, output, command, quick):
    """Writes `output/report.md`: the verdict table, then each study's figure."""
    quick_note = (
        "\n> Run with `--quick`: tiny versions for tests. Their verdicts rest on "
        "too little to be read.\n"
        if quick
        else ""
    )
    lines = [
        "# Studies of the explainer's claims",
        quick_note,
        (f"Made by `{command}`. Each study ran in its own process; its folder "
        "holds `summary.md` (claim, protocol, table, verdict, literature), "
        "`figure.png`, `results.csv`, `results.json` and `log.txt`."),
        "",
        "| # | Study | Verdict | Evidence | Summary | Figure | Time |",
        "| ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for row in rows:
        number = STUDIES.index(row["name"]) + 1
        name = row["name"]
        evidence = row["evidence"].replace("|", "\\|")
        if row["failed"]:
            links = f"[log]({name}/log.txt) | "
        else:
            links = f"[summary]({name}/summary.md) | [figure]({name}/figure.png)"
        lines.append(
            f"| {number} | {name} | **{row['verdict']}** | {evidence} | {links} "
            f"| {row['duration_s']:.0f} s |"
        )
    for row in rows:
        if row["failed"]:
            continue
        number = STUDIES.index(row["name"]) + 1
        lines += [
            "",
            f"## {number}. {row['name']}: {row['verdict']}",
            "",
            row["claim"],
            "",
            f"![{row['name']}]({row['name']}/figure.png)",
            "",
            f"{row['evidence']} [More]({row['name']}/summary.md).",
        ]
    path = output / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None):
    """Runs the studies and writes `report.md`; returns the exit status.

    0 when every study ran, 1 when one or more failed (they are listed in
    the report), 2 for bad arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        names = parse_only(args.only)
    except TemplateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = []
    for position, name in enumerate(names, start=1):
        row = run_study(name, args.output / name, quick=args.quick, seeds=args.seeds)
        rows.append(row)
        print(f"[{position}/{len(names)}] {name}: {row['verdict']} "
              f"({row['duration_s']:.0f} s)", flush=True)
    command = " ".join(["python", "-m", "studies", *argv])
    report = write_report(rows, args.output, command, args.quick)
    failed = [row["name"] for row in rows if row["failed"]]
    print(f"wrote {report}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
