#!/usr/bin/env python3
"""Stages the documentation site's pages (scripts/site.sh): docs/ as it is,
and README.md as index.md, its links to docs/x.md made links to x.md.

Rust examples are doctests (their info string says so: `rust,no_run`);
as on docs.rs, the site shows them without rustdoc's hidden lines (`# `),
which only make them compile. Nothing else is changed."""

import re
import shutil
import sys
from pathlib import Path

FENCE = re.compile(r"^(\s*)(```+)(\S*)(.*)$")


def rust_as_read(text: str) -> str:
    out, fence, rust = [], None, False
    for line in text.splitlines(keepends=True):
        m = FENCE.match(line)
        if fence is None and m:
            fence, info = m.group(2), m.group(3)
            rust = info.split(",")[0] == "rust"
            if rust:
                line = f"{m.group(1)}{fence}rust\n"
        elif fence is not None and m and m.group(2) == fence and not m.group(3):
            fence, rust = None, False
        elif rust:
            body = line.strip()
            if body == "#" or body.startswith("# "):
                continue
            if body.startswith("##"):
                line = line.replace("##", "#", 1)
        out.append(line)
    if fence is not None:
        raise SystemExit("site-stage: a code fence is never closed")
    return "".join(out)


def main(root: Path, staged: Path) -> None:
    shutil.copytree(root / "docs", staged, dirs_exist_ok=True)
    readme = (root / "README.md").read_text(encoding="utf-8")
    (staged / "index.md").write_text(re.sub(r"\]\(docs/", "](", readme), encoding="utf-8")
    for page in staged.glob("*.md"):
        page.write_text(rust_as_read(page.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
