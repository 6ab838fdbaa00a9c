"""`cgdmer` command line: one subcommand per module in `cgdmer_hf.commands`.

Each command module defines `HELP: str`, `add_arguments(parser)` and `run(args) -> int`. User errors
(`ValueError`, `KeyError`, `OSError` such as `FileNotFoundError` / `FileExistsError`) are printed as one line and
exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

COMMANDS = ("prepare", "pretrain", "evaluate", "embed", "push")


def _load(name: str):
    return importlib.import_module(f"cgdmer_hf.commands.{name}")


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cgdmer", description="CG-DMER ECG-report foundation model tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in commands:
        module = _load(name)
        # argparse %-formats help strings (not descriptions): a literal % must be doubled there.
        module.add_arguments(sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Build only the requested subcommand's parser so that `cgdmer push` does not import the trainer.
    chosen = [argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS)
    args = build_parser(chosen).parse_args(argv)
    try:
        return int(_load(args.command).run(args) or 0)
    except (ValueError, OSError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cgdmer {args.command}: error: {_one_line(message)}", file=sys.stderr)
        return 2


def _one_line(message: object) -> str:
    """A (possibly multi-line) error message on one line."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
