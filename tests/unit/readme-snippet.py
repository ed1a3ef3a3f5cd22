#!/usr/bin/env python3
"""Write README.md's library snippet (the first ```c block after "## Library
at a glance") to a C file, so that test-readme compiles and runs exactly
what the README shows."""
import sys

readme, out = sys.argv[1], sys.argv[2]
text = open(readme, encoding="utf-8").read()
section = text.split("## Library at a glance", 1)[1]
code = section.split("```c\n", 1)[1].split("```", 1)[0]
with open(out, "w", encoding="utf-8") as f:
    f.write("/* Generated from README.md by readme-snippet.py. */\n")
    f.write(code)
