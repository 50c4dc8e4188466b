"""The ``attnlab`` command.

Each subcommand lives in its own module ``attnlab/cli/cmd_<name>.py`` exposing
``register(subparsers)``, which adds its parser (with examples in the epilog) and sets
``func(args) -> int``. Modules are discovered, so adding a command touches no other file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import attnlab


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlab",
        description="The Transformer family from scratch: train, generate, translate, classify, visualize.",
        epilog="Run 'attnlab COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"attnlab {attnlab.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import attnlab.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"attnlab.cli.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:  # user errors: one clear line, no traceback
        print(f"attnlab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
