"""Validate a dataset directory against the data contract.

    python -m geneface.data.check <dir> [--max-clips N] [--no-progress]

Prints a one-paragraph summary and exits 0 when the dataset is valid; prints what is wrong (file,
array, expected vs found, what to do) to stderr and exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from geneface.data.validate import DatasetError, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geneface.data.check",
        description="Check a speaker or corpus dataset directory against the geneface data contract "
                    "(docs/data_format.md). Exit status 0: valid; 1: the first problem is printed.")
    parser.add_argument("dir", help="dataset directory (the one holding meta.json)")
    parser.add_argument("--max-clips", type=int, default=None, metavar="N",
                        help="corpus only: check at most N clips, evenly spaced over the index "
                             "(the index itself is always checked in full)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.max_clips is not None and args.max_clips < 0:
        parser.error("--max-clips must be >= 0")
    try:
        report = validate(args.dir, max_clips=args.max_clips, progress=False if args.no_progress else None)
    except DatasetError as err:
        print(f"INVALID: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
