"""Compare two benchmark result directories, for "the numbers must not change" checks: JSON files value by value
without their provenance and timing keys (differing numbers with their relative difference), Markdown / HTML without
the provenance comment, the "Produced by" line and timing lines, other files byte for byte.

``python .ci/compare_results.py OLD_DIR NEW_DIR`` prints one line per file (and the first differences).
"""

import argparse
import difflib
import json
import re
from pathlib import Path
from typing import Any, List

TIMING_KEY = re.compile(r"second|wall|time|per_s|throughput|elapsed", re.I)
TIMING_LINE = re.compile(r"\b(s/|/s\b|seconds|wall time|ms\b|µs)|\d s\b")


def without_provenance(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_provenance(v) for k, v in value.items() if k != "provenance" and not TIMING_KEY.search(k)}
    if isinstance(value, list):
        return [without_provenance(v) for v in value]
    return value


def differences(old: Any, new: Any, path: str, out: List[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                out.append(f"{path}.{key}: only in {'new' if key not in old else 'old'}")
            else:
                differences(old[key], new[key], f"{path}.{key}", out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new)):
            differences(a, b, f"{path}[{index}]", out)
    elif isinstance(old, float) and isinstance(new, float) and old != new:
        relative = abs(old - new) / max(abs(old), abs(new))
        out.append(f"{path}: {old!r} vs {new!r} (relative {relative:.1e})")
    elif old != new:
        out.append(f"{path}: {old!r} vs {new!r}")


def text_lines(path: Path) -> List[str]:
    text = re.sub(r"<!-- provenance.*?-->", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [line for line in text.splitlines()
            if not line.startswith("*Produced by") and not TIMING_LINE.search(line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    names = sorted({p.relative_to(root) for root in (args.old, args.new) for p in root.rglob("*") if p.is_file()})
    for name in names:
        old, new = args.old / name, args.new / name
        if not old.exists() or not new.exists():
            print(f"{name}: only in {'old' if old.exists() else 'new'}")
        elif name.suffix == ".json":
            found: List[str] = []
            differences(without_provenance(json.loads(old.read_text())), without_provenance(json.loads(new.read_text())),
                        "", found)
            print(f"{name}: " + ("identical without provenance and timings" if not found else f"{len(found)} differences"))
            print("".join(f"    {line}\n" for line in found[:10]), end="")
        elif name.suffix in (".md", ".html", ".txt", ".csv"):
            diff = [line for line in difflib.unified_diff(text_lines(old), text_lines(new), lineterm="", n=0)
                    if not line.startswith(("---", "+++", "@@"))]
            print(f"{name}: " + ("identical without provenance and timing lines" if not diff else
                                 f"{len(diff)} differing lines"))
            print("".join(f"    {line[:160]}\n" for line in diff[:10]), end="")
        else:
            print(f"{name}: " + ("byte-identical" if old.read_bytes() == new.read_bytes() else "bytes differ"))


if __name__ == "__main__":
    main()
