#!/usr/bin/env python3
"""Count test cases across meson test logs and print 'N passed, N failed'.

cmocka executables report their own case counts ("[  PASSED  ] 12 test(s).",
"[  FAILED  ] 1 test(s)"); any other test counts as one case. A test that
crashed or timed out counts as failed even if it printed passes first."""
import json
import re
import sys

passed = failed = skipped = 0
for arg in sys.argv[1:]:
    path, _, label = arg.rpartition(":")
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"test-summary: {label}: {e}")
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        res = t.get("result", "")
        out = (t.get("stdout", "") or "") + (t.get("stderr", "") or "")
        p = sum(int(m) for m in re.findall(r"\[  PASSED  \] (\d+) test", out))
        f = sum(int(m) for m in re.findall(r"\[  FAILED  \] (\d+) test", out))
        s = sum(int(m) for m in re.findall(r"\[  SKIPPED \] (\d+) test", out))
        if p == f == s == 0:
            if res == "SKIP":
                skipped += 1
            elif res in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
        else:
            passed += p
            failed += f
            skipped += s
            if res not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
                failed += 1
        if res not in ("OK", "EXPECTEDFAIL", "SKIP"):
            print(f"FAILED [{label}] {t.get('name')}: {res}")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
