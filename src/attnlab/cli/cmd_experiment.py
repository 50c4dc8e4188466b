"""``attnlab experiment NAME``: run one of the reproduced-claim experiments under ``experiments/``."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

EPILOG = """examples:
  attnlab experiment --list
  attnlab experiment scaling                 # reduced CPU run, writes experiments/scaling/scaling.png
  attnlab experiment positions --full        # the GPU-sized setting
  attnlab experiment norms --out /tmp/norms  # write figure and results.json elsewhere
"""


def experiments_root() -> Path:
    """The ``experiments/`` folder: searched from the working directory up, then beside the package source."""
    for base in (Path.cwd(), *Path.cwd().parents):
        if (base / "experiments" / "_common.py").is_file():
            return base / "experiments"
    here = Path(__file__).resolve().parents[3] / "experiments"  # src/attnlab/cli -> repo root
    if (here / "_common.py").is_file():
        return here
    raise FileNotFoundError(
        "no experiments/ folder found: run from a checkout of the attnlab repository (the experiments are "
        "scripts beside the package, not part of the installed wheel)"
    )


def available(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/run.py"))


def _run(args: argparse.Namespace) -> int:
    root = experiments_root()
    names = available(root)
    if args.list or not args.name:
        for name in names:
            doc = (root / name / "run.py").read_text().split('"""')[1].strip().splitlines()[0]
            print(f"{name:<14} {doc}")
        return 0
    if args.name not in names:
        raise ValueError(f"unknown experiment {args.name!r}; choose one of {names}")
    spec = importlib.util.spec_from_file_location(f"attnlab_experiment_{args.name}", root / args.name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(args.rest) or 0)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "experiment", help="run a reproduced-claim experiment (scaling, positions, heads, norms, ...)",
        description="Run one experiment folder's run.py; extra arguments go to the experiment (--full, --out).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="experiment folder name")
    p.add_argument("--list", action="store_true", help="list the experiments and their claims")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the experiment itself")
    p.set_defaults(func=_run)
