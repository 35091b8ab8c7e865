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


rows = []
for depth in (1, 2, 4, 8):
    g = f"depth-{depth}"
    try:
        t = {b: median_us(g, b) for b in ("floor_chain", "cold_chain", "biscuit", "floor_call", "cold_call", "warm_call", "one_verify_strict")}
    except FileNotFoundError as e:
        sys.exit(f"missing estimates: {e.filename}; run the benchmark first")
    rows.append((depth, t))

print("Median times in µs; ratios are against the floor measured in the same run.\n")
print("| depth | floor (chain) | cold chain | cold / floor | biscuit | biscuit / floor | floor (call) | cold call | cold / floor | warm call | one verify_strict | warm / one |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for depth, t in rows:
    print(
        f"| {depth} | {t['floor_chain']:.1f} | {t['cold_chain']:.1f} | {t['cold_chain'] / t['floor_chain']:.3f} "
        f"| {t['biscuit']:.1f} | {t['biscuit'] / t['floor_chain']:.3f} "
        f"| {t['floor_call']:.1f} | {t['cold_call']:.1f} | {t['cold_call'] / t['floor_call']:.3f} "
        f"| {t['warm_call']:.1f} | {t['one_verify_strict']:.1f} | {t['warm_call'] / t['one_verify_strict']:.3f} |"
    )
