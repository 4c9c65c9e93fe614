"""Writes one benchmark script's section of BENCHMARKS.md between its
markers, <!-- bench:NAME --> and <!-- /bench:NAME -->, and leaves the rest
of the file as it is: the other scripts' sections and the analyses written
by hand around them. Imported by the scripts' embedded Python
(PYTHONPATH=bench)."""

import os

HEADER = (
    "# Benchmarks\n\nEvery figure here comes from `make bench` on this repository's "
    "machine kind; each section says when and how.\n"
)


def write(out, name, body):
    """Puts `body` (the section's text, without the markers, as it is) in
    place of the previous one, or at the end of the file if it has none yet."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = open(out).read() if os.path.exists(out) else HEADER
    block = f"{begin}\n{body}{'' if body.endswith(chr(10)) else chr(10)}{end}"
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(out, "w") as f:
        f.write(text)
