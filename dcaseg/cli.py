"""Command line: ``dcaseg <command> ...``; each command lives in ``dcaseg/commands/<name>.py``.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Engine errors (``DcaError``) are printed as one line and give exit code 2; a closed output pipe
ends the command quietly with 141 (as ``SIGPIPE`` does for other tools). In the commands that
write results (``segment``), SIGTERM (Slicer's Cancel, ``timeout``, batch schedulers) stops the
work as Ctrl-C does, so the same clean-up runs (no partial outputs, no temporary files), and exits
with 143; a second signal during that clean-up is ignored.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence

from . import __version__
from .errors import DcaError

# OpenMP threads that spin while waiting make training steps much slower on a busy machine
# (benchmarks/RESULTS.md, "Hardware notes"); set before any command imports torch (a user's own
# setting wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

COMMANDS = (
    "params", "groups", "info", "devices", "evaluate", "prepare", "phantom", "dataset", "train", "demo", "ablate",
    "segment", "rank",
)

SIGTERM_AS_INTERRUPT = ("segment",)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's ``KeyboardInterrupt`` would be."""


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` command's module is imported (all of them for --help)."""
    parser = argparse.ArgumentParser(prog="dcaseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dcaseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if selected not in (None, name):
            sub.add_parser(name)
            continue
        module = importlib.import_module(f"dcaseg.commands.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected if selected in COMMANDS else None).parse_args(argv)
    try:
        with _signals_as_interrupt(args.command in SIGTERM_AS_INTERRUPT):
            status = int(args.run(args) or 0)
        sys.stdout.flush()  # so a reader that has gone away shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        # `dcaseg info PKG | head -3`: the reader closed the pipe. Stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except DcaError as error:
        print(f"dcaseg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        print(f"dcaseg {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130


@contextlib.contextmanager
def _signals_as_interrupt(enabled: bool) -> Iterator[None]:
    """While enabled: the first SIGTERM raises ``Terminated``, the first SIGINT ``KeyboardInterrupt``;
    later ones are ignored so that the clean-up they started finishes. A signal the process was
    started ignoring (``nohup``) stays ignored."""
    handled = [each for each in (signal.SIGTERM, signal.SIGINT)
               if enabled and signal.getsignal(each) != signal.SIG_IGN]

    def stop(signum: int, frame: object) -> None:
        for each in handled:
            signal.signal(each, signal.SIG_IGN)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {each: signal.signal(each, stop) for each in handled}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
