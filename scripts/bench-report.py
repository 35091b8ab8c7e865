#!/usr/bin/env python3
"""Prints the mandate-core verification benchmarks as a Markdown table of
times and ratios, from criterion's estimates under $CARGO_TARGET_DIR/criterion.

    cargo bench -p mandate-core --bench verify && python3 scripts/bench-report.py
"""
import json
import os
import sys

root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


def median_us(group, bench):
    path = os.path.join(root, group, bench, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1000.0


NAMES = (
    "floor_chain", "floor_chain_mandate", "cold_chain", "biscuit", "floor_call",
    "floor_call_mandate", "cold_call", "warm_call", "warm_call_real",
    "one_verify_strict", "one_mandate_strict",
)
rows = []
for depth in (1, 2, 4, 8):
    g = f"depth-{depth}"
    try:
        t = {b: median_us(g, b) for b in NAMES}
    except FileNotFoundError as e:
        sys.exit(f"missing estimates: {e.filename}; run the benchmark first")
    rows.append((depth, t))

# Two floors: ed25519-dalek's verify_strict, and Mandate's own strict check
# (PublicKey::from_bytes and PublicKey::verify_strict), same verdict.
print("Median times in µs; ratios are against the floors measured in the same run.\n")
print("| depth | floor (chain) | Mandate's floor (chain) | cold chain | cold / floor | cold / Mandate's floor | biscuit | biscuit / floor |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for depth, t in rows:
    print(
        f"| {depth} | {t['floor_chain']:.1f} | {t['floor_chain_mandate']:.1f} | {t['cold_chain']:.1f} "
        f"| {t['cold_chain'] / t['floor_chain']:.3f} | {t['cold_chain'] / t['floor_chain_mandate']:.3f} "
        f"| {t['biscuit']:.1f} | {t['biscuit'] / t['floor_chain']:.3f} |"
    )
print()
print("| depth | floor (call) | Mandate's floor (call) | cold call | cold / floor | cold / Mandate's floor | warm call | warm call, real cache | one verify_strict | one Mandate check | warm, real / one verify_strict |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for depth, t in rows:
    print(
        f"| {depth} | {t['floor_call']:.1f} | {t['floor_call_mandate']:.1f} | {t['cold_call']:.1f} "
        f"| {t['cold_call'] / t['floor_call']:.3f} | {t['cold_call'] / t['floor_call_mandate']:.3f} "
        f"| {t['warm_call']:.1f} | {t['warm_call_real']:.1f} | {t['one_verify_strict']:.1f} "
        f"| {t['one_mandate_strict']:.1f} | {t['warm_call_real'] / t['one_verify_strict']:.3f} |"
    )
