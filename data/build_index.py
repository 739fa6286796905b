"""Index a folder tree of images into a split CSV, taking columns from path components.

    python -m data.build_index DIR --out splits.csv \
        --pattern "{source_dataset}/{split}/{forgery_type}/{generator}/{video_id}/*"
    python -m data.build_index DIR --out splits.csv \
        --pattern "{generator}/{video_id}/*" --split-ratios 0.8,0.1,0.1 --group-by video_id

Pattern: one component per folder level; ``{column}`` captures a column, ``*`` matches anything, other text must
match literally; the last component matches the file name. The label is 0 where ``{label}`` is real/0, or where the
``forgery_type`` or ``generator`` component equals ``--real-value`` (default ``real``); 1 otherwise. Sets without
a ``{split}`` component get a seeded split, stratified by generator and grouped so that one video (or identity,
``--group-by``) never lands on two sides.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from common.atomic import atomic_output
from common.errors import UsageError

from .media import files_under, is_image
from .schema import IDENTITY_SEPARATOR, OPTIONAL_COLUMNS, SPLITS

KNOWN_FIELDS = {"label", *OPTIONAL_COLUMNS}


class IndexError_(UsageError, ValueError):
    """A pattern or tree that cannot be indexed; the message says what to change."""


def compile_pattern(pattern: str) -> tuple[re.Pattern, list[str]]:
    fields: list[str] = []
    parts = []
    for component in pattern.strip("/").split("/"):
        regex = ""
        for token in re.split(r"(\{[^}]*\}|\*)", component):
            if not token:
                continue
            if token == "*":
                regex += "[^/]*"
            elif token.startswith("{"):
                name = token[1:-1]
                if not name.isidentifier():
                    raise IndexError_(f"pattern {pattern!r}: {token} is not a column name.")
                if name in fields:
                    raise IndexError_(f"pattern {pattern!r} captures {{{name}}} twice.")
                fields.append(name)
                regex += f"(?P<{name}>[^/]+?)"
            else:
                regex += re.escape(token)
        parts.append(regex)
    return re.compile("^" + "/".join(parts) + "$"), fields


def label_of(values: dict[str, str], real_value: str) -> int | None:
    if "label" in values:
        text = values["label"].lower()
        return 0 if text in ("0", "real", real_value.lower()) else 1 if text in ("1", "fake") else None
    for column in ("forgery_type", "generator"):
        if column in values:  # a folder named Real, REAL or real means real
            return 0 if values[column].lower() == real_value.lower() else 1
    return None


def _join_shared_identities(groups: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Merge groups that share a person (an ``a;b`` row joins a's and b's groups): a swap stays with both sources."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for key in groups:
        people = [p.strip() for p in key.split(IDENTITY_SEPARATOR) if p.strip()] if not key.startswith("#row") else []
        for person in people:
            parent[find(f"person:{person}")] = find(f"group:{key}")
    merged: dict[str, list[dict]] = defaultdict(list)
    for key in sorted(groups):
        merged[find(f"group:{key}")] += groups[key]
    return merged


def assign_splits(rows: list[dict], ratios: tuple[float, float, float], group_by: str | None, seed: int) -> None:
    """Seeded split per group (video / identity / row), stratified by generator (or label)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[dict]] = defaultdict(list)
    for i, row in enumerate(rows):
        key = row.get(group_by) if group_by else None
        groups[key if key else f"#row{i}"].append(row)
    if group_by == "identity":
        groups = _join_shared_identities(groups)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        stratum = Counter(m.get("generator") or str(m["label"]) for m in members).most_common(1)[0][0]
        strata[stratum].append(key)
    bounds = np.cumsum(ratios) / sum(ratios)
    for stratum in sorted(strata):
        keys = sorted(strata[stratum])
        order = rng.permutation(len(keys))
        for rank, index in enumerate(order):
            position = (rank + 0.5) / len(keys)
            split = SPLITS[int(np.searchsorted(bounds, position))]
            for member in groups[keys[index]]:
                member["split"] = split


def build_index(
    root, pattern: str, *, real_value="real", split_ratios=None, group_by=None, seed=0
) -> tuple[list[dict], list[str], Counter]:
    """(rows, columns, counts of skipped files by reason)."""
    root = Path(root)
    if not root.is_dir():
        raise IndexError_(f"{root} is not a folder.")
    regex, fields = compile_pattern(pattern)
    if not ({"label", "forgery_type", "generator"} & set(fields)):
        raise IndexError_(
            "the pattern must capture {label}, {forgery_type} or {generator} so real and fake can be told apart."
        )
    if split_ratios is None and "split" not in fields:
        raise IndexError_("the pattern has no {split}: pass --split-ratios (e.g. 0.8,0.1,0.1) to assign splits.")
    if group_by and group_by not in fields:
        raise IndexError_(f"--group-by {group_by}: the pattern does not capture {{{group_by}}}.")
    if split_ratios is not None and "split" in fields:
        raise IndexError_(
            "the pattern captures {split} from the folders and --split-ratios would override it: drop one of them."
        )
    if split_ratios is not None and not group_by:
        grouping = [f for f in ("video_id", "identity") if f in fields]
        if grouping:
            raise IndexError_(
                f"--split-ratios without --group-by would cut {grouping[0]} groups across splits (frames of one video "
                f"in train and test): add --group-by {grouping[0]}."
            )
    rows, skipped = [], Counter()
    for relative in files_under(root):
        if not is_image(relative):
            skipped["not an image"] += 1
            continue
        match = regex.match(relative)
        if not match:
            skipped["does not match the pattern"] += 1
            continue
        values = match.groupdict()
        label = label_of(values, real_value)
        if label is None:
            skipped["label not real/fake/0/1"] += 1
            continue
        row = {"path": relative, "label": label, **{k: v for k, v in values.items() if k != "label"}}
        if "split" in row and row["split"] not in SPLITS:
            row["split"] = {"valid": "val", "validation": "val", "dev": "val"}.get(row["split"].lower(), row["split"])
        rows.append(row)
    if not rows:
        raise IndexError_(f"no image under {root} matches {pattern!r} ({dict(skipped)}).")
    if split_ratios is not None:
        assign_splits(rows, split_ratios, group_by, seed)
    columns = ["path", "label"] + [c for c in ("split", *OPTIONAL_COLUMNS[1:]) if any(c in r for r in rows)]
    columns += [f for f in fields if f not in columns and f != "label"]
    return rows, columns, skipped


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Index a folder tree of face images into a split CSV.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("root", help="folder to index (the CSV's paths are relative to it)")
    parser.add_argument(
        "--pattern", required=True, help='e.g. "{source_dataset}/{split}/{forgery_type}/{generator}/{video_id}/*"'
    )
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--real-value", default="real", help="component value meaning a real image (default: real)")
    parser.add_argument("--split-ratios", help="train,val,test ratios for sets without {split}, e.g. 0.8,0.1,0.1")
    parser.add_argument(
        "--group-by", help="column whose groups never straddle splits (video_id, or an identity column)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    ratios = None
    if args.split_ratios:
        try:
            ratios = tuple(float(x) for x in args.split_ratios.split(","))
        except ValueError:
            ratios = ()
        if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
            raise UsageError(
                f"--split-ratios must be three non-negative numbers train,val,test; got {args.split_ratios!r}."
            )
    rows, columns, skipped = build_index(
        args.root, args.pattern, real_value=args.real_value, split_ratios=ratios, group_by=args.group_by, seed=args.seed
    )
    if ratios is not None and not args.group_by:
        print(
            "note: --split-ratios without --group-by splits single images: fine for still images, a leak for video "
            "frames"
        )
    out = Path(args.out)
    with atomic_output(out) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    labels = Counter(r["label"] for r in rows)
    print(f"wrote {len(rows)} rows ({labels[0]} real, {labels[1]} fake) to {out}")
    for reason, count in skipped.items():
        print(f"skipped {count} file(s): {reason}")
    if out.resolve().parent != Path(args.root).resolve():
        print(
            f"note: the CSV's paths are relative to {Path(args.root).resolve()}: pass --data-root {args.root} when "
            "training"
        )
    return 0


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
