#!/usr/bin/env python3
"""Seeds the fuzz corpora from tests/vectors: every chain (one token per
line, with its proof as a last "pop " line), every single token, and the
claims of every grant as JSON text."""
import base64
import glob
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
vectors = sorted(glob.glob(os.path.join(here, "..", "tests", "vectors", "*.json")))
for target in ("parse_token", "verify_chain", "plain_claims", "location_grammar"):
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
    for i, token in enumerate(v["chain"]):
        parts = token.split(".")
        if len(parts) != 3:
            continue
        try:
            claims = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        except ValueError:
            continue
        open(os.path.join(here, "corpus", "plain_claims", f"{name}-{i}"), "wb").write(claims)
# Receipts appear in no vector's chain: two plain ones, written as
# mandate-core writes them, give the fuzzer the receipt's shape.
receipts = [
    '{"grant":"EqqAnj6z1oEYUKcdh_O2n5I5sdpNoM379wpTm6gQvFk","action":{"type":"files.read",'
    '"target":"https://files.example/q3.pdf","summary":"Read the Q3 report"},"outcome":"succeeded",'
    '"rationale":"The summary needs its figures","cause":"EqqAnj6z1oEYUKcdh_O2n5I5sdpNoM379wpTm6gQvFk",'
    '"iat":1796003549,"jti":"r-1"}',
    '{"grant":"EqqAnj6z1oEYUKcdh_O2n5I5sdpNoM379wpTm6gQvFk","action":{"type":"purchase_order.create",'
    '"target":"https://erp.example/vendors/17","summary":"Ordered 3 laptops"},"outcome":"refused",'
    '"iat":1796003549,"jti":"r-2"}',
]
for i, text in enumerate(receipts):
    open(os.path.join(here, "corpus", "plain_claims", f"receipt-{i}"), "w").write(text)
print(f"seeded from {len(vectors)} vectors")

# The location grammar: every location and htu the vectors hold, and the
# classes of protocol 5.3 that a seed helps the fuzzer reach.
locations = set()
for path in vectors:
    v = json.load(open(path))
    if v.get("call"):
        locations.add(v["call"]["location"])
    if v.get("pop"):
        locations.add(v["pop"]["htu"])
locations.update([
    "https://files.example/v1/reports/caf%C3%A9%20q3;v=2?x=1#top",
    "https://[::1]:8080/files/",
    "ns/%EF%BC%8F/x*",
    "a/%F0%9F%98%80/..;x/b",
])
for i, loc in enumerate(sorted(locations)):
    open(os.path.join(here, "corpus", "location_grammar", f"seed-{i}"), "w").write(loc)
