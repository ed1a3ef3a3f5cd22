#!/usr/bin/env python3
"""Count test cases across meson test logs and print 'N passed, N failed'.

cmocka executables report their own case counts ("[  PASSED  ] 12 test(s).",
"[  FAILED  ] 1 test(s)"); any other test counts as one case. A test that
crashed or timed out counts as failed even if it printed passes first.
Every skipped case is named ("SKIPPED [label] suite: case"), so that a
skip is never mistaken for a pass."""
import ast
import json
import re
import sys

passed = failed = skipped = 0
skipped_names = []
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
        # cmocka names a skipped case when it runs and again in its list;
        # Python's unittest as "name (class) ... skipped REASON", the reason
        # as repr() writes it (in double quotes when it holds an apostrophe),
        # so literal_eval reads it back.
        cases = re.findall(r"^\[  SKIPPED \] (?!\d+ test)(\S+)\s*$", out, re.M)
        cases += ["%s (%s)" % (m[1].removeprefix("__main__."), ast.literal_eval(m[2]))
                  for m in re.findall(r"^(\w+) \(([\w.]+)\)(?: \([^)]*\))? \.\.\. skipped ('.*'|\".*\")$",
                                      out, re.M)]
        cases = list(dict.fromkeys(cases))
        for case in cases:
            skipped_names.append(f"[{label}] {t.get('name')}: {case}")
        if res == "SKIP":
            skipped_names.append(f"[{label}] {t.get('name')}")
        p = sum(int(m) for m in re.findall(r"\[  PASSED  \] (\d+) test", out))
        f = sum(int(m) for m in re.findall(r"\[  FAILED  \] (\d+) test", out))
        s = sum(int(m) for m in re.findall(r"\[  SKIPPED \] (\d+) test", out))
        # A unittest run: its own counts (expected failures pass, as
        # meson's EXPECTEDFAIL; unexpected successes fail).
        ran = re.search(r"^Ran (\d+) tests? in ", out, re.M)
        if ran and p == f == s == 0:
            tail = re.search(r"^(?:OK|FAILED)(?: \((.*)\))?$", out[ran.end():], re.M)
            counts = dict((k.strip(), int(v)) for k, v in
                          (kv.split("=") for kv in (tail.group(1).split(",") if tail and tail.group(1) else [])))
            f = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpected successes", 0)
            s = counts.get("skipped", 0)
            p = int(ran.group(1)) - f - s
            if p == f == s == 0:
                p = 1 if res in ("OK", "EXPECTEDFAIL") else 0
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
            if s > len(cases):
                skipped_names.append(f"[{label}] {t.get('name')}: {s - len(cases)} more case(s) its output does not name")
            if res not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
                failed += 1
        if res not in ("OK", "EXPECTEDFAIL", "SKIP"):
            print(f"FAILED [{label}] {t.get('name')}: {res}")
for name in skipped_names:
    print(f"SKIPPED {name}")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
