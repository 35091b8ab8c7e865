#!/usr/bin/env python3
"""Fails when `cargo build --workspace --bins` and `cargo test --workspace`
would compile a dependency with different features.

Cargo resolves features once per invocation, and dev-dependencies only
count when a test, bench or example is built. When a dev-dependency turns
on a feature the binaries' build does not, that dependency, and every crate
above it, compiles twice: once for the binaries (which the end-to-end and
WebDriver tests run, and `make run` builds), once for the tests. The
`[dependencies]` of tests/e2e turn those features on in every workspace
build; this script names what is missing there.

It compares the unit graphs of the two builds (`--unit-graph`, which cargo
prints without building; still unstable, so it is asked for with cargo's
channel override). Nothing is built.

    scripts/feature-drift.py
"""

import json
import os
import subprocess
import sys

BUILDS = {
    "bins": ["cargo", "build", "--workspace", "--bins", "--locked"],
    "tests": ["cargo", "test", "--workspace", "--all-targets", "--no-run", "--locked"],
    "doc tests": ["cargo", "test", "--workspace", "--doc", "--locked"],
}


def units(command):
    """Each registry or git dependency's (package, target, mode) mapped to
    the feature sets it is built with."""
    env = dict(os.environ, __CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS="nightly")
    done = subprocess.run(
        command + ["-Zunstable-options", "--unit-graph"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    if done.returncode != 0:
        sys.exit(f"feature-drift: {' '.join(command)} --unit-graph failed:\n{done.stderr}")
    graph = json.loads(done.stdout)
    found = {}
    for unit in graph["units"]:
        if unit["pkg_id"].startswith("path+"):
            continue  # the workspace's own crates
        key = (unit["pkg_id"].rsplit("#", 1)[-1], unit["target"]["name"], unit["mode"])
        found.setdefault(key, set()).add(frozenset(unit["features"]))
    return found


def main():
    graphs = {name: units(command) for name, command in BUILDS.items()}
    bins = graphs["bins"]
    drift = {}
    for name, graph in graphs.items():
        for key, features in graph.items():
            # A dependency the binaries' build also compiles, but here with
            # a feature set it does not have.
            if key in bins and not features <= bins[key]:
                extra = set().union(*features) - set().union(*bins[key])
                seen = drift.setdefault(key[0], ({}, set()))
                seen[0][name] = None
                seen[1].update(extra)
    if drift:
        print("feature-drift: these dependencies compile twice, with other features for the tests "
              "than for the binaries; turn the features on in tests/e2e/Cargo.toml's "
              "[dependencies] (or [build-dependencies], for proc macros and build scripts):",
              *(f"  {package}: {', '.join(sorted(extra)) or 'another feature set'} "
                f"(in the {' and '.join(builds)} builds)"
                for package, (builds, extra) in sorted(drift.items())),
              sep="\n", file=sys.stderr)
        return 1
    print(f"feature-drift: the binaries' and the tests' builds share all "
          f"{len(bins)} dependency units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
