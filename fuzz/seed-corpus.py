#!/usr/bin/env python3
"""Seeds the fuzz corpora from tests/vectors: every chain (one token per
line, with its proof as a last "pop " line) and every single token."""
import glob
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
vectors = sorted(glob.glob(os.path.join(here, "..", "tests", "vectors", "*.json")))
for target in ("parse_token", "verify_chain"):
    os.makedirs(os.path.join(here, "corpus", target), exist_ok=True)
for path in vectors:
    v = json.load(open(path))
    name = os.path.splitext(os.path.basename(path))[0]
    lines = list(v["chain"])
    if v.get("pop"):
        lines.append("pop " + v["pop"]["token"])
    open(os.path.join(here, "corpus", "verify_chain", name), "w").write("\n".join(lines))
    for i, token in enumerate(v["chain"][:2]):
        open(os.path.join(here, "corpus", "parse_token", f"{name}-{i}"), "w").write(token)
print(f"seeded from {len(vectors)} vectors")
