"""The ``captum-text-ext`` command line.

Sub-commands:

- ``demo [--out DIR]``: train a small model on the embedded synthetic corpus and explain it (no files, no network).
- ``download NAME [--root DIR]``: fetch a public dataset, verify its checksum and unpack it safely.

Errors a user can fix (a bad argument, a missing dataset) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from captum_text_ext._version import __version__


def _build_parser() -> argparse.ArgumentParser:
    from captum_text_ext.datasets.download import DOWNLOADS

    parser = argparse.ArgumentParser(prog="captum-text-ext", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"captum_text_ext {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train and explain a small model on the synthetic corpus")
    demo.add_argument("--out", type=Path, default=Path("captum-text-ext-demo"), help="report directory")
    demo.add_argument("--seed", type=int, default=0, help="seed for data, model and batch order (default 0)")
    demo.add_argument("--n-train", type=int, default=4000, help="training sentences (default 4000)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    download = commands.add_parser("download", help="download a public dataset into the data directory")
    download.add_argument("name", choices=sorted(DOWNLOADS), help="dataset name")
    download.add_argument("--root", type=Path, default=None, help="data directory (default: $CAPTUM_TEXT_EXT_DATA "
                          "or ~/.cache/captum_text_ext)")
    download.add_argument("--source", default=None, help="alternative source, where the dataset has several")
    download.add_argument("--allow-unverified", action="store_true",
                          help="accept a file whose checksum nobody has published or verified")
    return parser


def _run(args: argparse.Namespace) -> List[str]:
    if args.command == "demo":
        from captum_text_ext.demo import format_summary, run_demo

        return format_summary(run_demo(args.out, seed=args.seed, n_train=args.n_train, progress=not args.quiet))
    from captum_text_ext.datasets.download import download

    path = download(args.name, args.root, allow_unverified=args.allow_unverified, source=args.source)
    return [f"{args.name} is in {path}"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        lines = _run(args)
    except (ValueError, OSError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"captum-text-ext {args.command}: error: {message}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
