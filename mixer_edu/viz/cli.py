"""The command line: `python -m mixer_edu.viz CHECKPOINT --out DIR`.

Writes every picture of a trained checkpoint (`render_checkpoint`) and prints their paths. Bad
input ends in one `error: ...` line and exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

from ..support.errors import command_line
from ..support.paths import check_folder
from .render import render_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.viz",
        description="Write every picture of a trained Mixer checkpoint as PNG files.",
        epilog="Example: python -m mixer_edu.viz runs/mixer_cifar_small-standin/checkpoint.pt "
        "--out runs/mixer_cifar_small-standin/pictures",
    )
    parser.add_argument("checkpoint", type=Path, help="DIR/checkpoint.pt (or a snapshot, or DIR)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    parser.add_argument("--data-root", type=Path, help="data folder (default data/)")
    parser.add_argument("--test-images", type=int, help="use only the first N test images")
    parser.add_argument("--no-gif", action="store_true", help="skip the animation over training")
    return parser


@command_line  # bad input ends in one `error:` line and exit status 2
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    matplotlib.use("Agg")  # files only: no window, works without a display
    check_folder(args.out, "--out")
    paths = render_checkpoint(
        args.checkpoint,
        args.out,
        data_root=args.data_root,
        test_images=args.test_images,
        gif=not args.no_gif,
    )
    for path in paths:
        print(path)
    return 0
