#!/usr/bin/env python3
"""Adds up the test counts in the logs of `make test` and prints one
closing line: "N passed, M failed". Exits non-zero if nothing ran."""
import re
import sys

passed = failed = 0
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
        if m:
            passed += int(m.group(1))
            failed += int(m.group(2))
        # tests/idp/selftest.mjs
        m = re.match(r"^# all (\d+) checks passed$", line.strip())
        if m:
            passed += int(m.group(1))
        # schemathesis: each generated case is a check
        m = re.match(r"^(\d+) generated, (\d+) passed", line.strip())
        if m:
            passed += int(m.group(2))
        m = re.search(r"(\d+) unique failures?", line)
        if m:
            failed += int(m.group(1))
        # tests/walkthrough and tests/oauth
        m = re.match(r"^(?:walkthrough|oauth-rs): (\d+) passed, (\d+) failed$", line.strip())
        if m:
            passed += int(m.group(1))
            failed += int(m.group(2))
        m = re.match(r"^# (pass|fail) (\d+)$", line.strip())
        if m:
            if m.group(1) == "pass":
                passed += int(m.group(2))
            else:
                failed += int(m.group(2))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
