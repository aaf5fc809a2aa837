#!/usr/bin/env python3
"""The parts of scripts/mutate.sh that are easier in Python: reading the mutation list, selecting,
planting one mutation, syncing the scratch tree and formatting the report.

  mutate_helper.py select LIST ROOT [SELECTOR...]   one line per selected mutation:
                                                    id file tests requires status desc, separated by
                                                    \x1f (not a tab: read would merge empty fields)
                                                    (status: ok, or NOT FOUND / AMBIGUOUS (n) in ROOT)
  mutate_helper.py apply LIST ID SRC DST            writes SRC/file with mutation ID planted to DST/file
  mutate_helper.py sync SRC DST                     copies the NUL-separated paths on stdin from SRC to
                                                    DST where the content differs; prints a digest of all
  mutate_helper.py report RESULTS TITLE             the kill table and summary from the results TSV

A SELECTOR is a number (3 selects M03), an id (M03), or a regular expression matched against
"id file desc".
"""
import hashlib
import os
import re
import shutil
import sys

KEYS = ("id", "file", "find", "replace", "desc", "tests", "requires")
REQUIRED = ("id", "file", "find", "replace", "desc")


def parse(path):
    """The mutation blocks of the list, in order; exits with a message naming the line on errors."""
    blocks, cur, start = [], {}, 0

    def close():
        if not cur:
            return
        missing = [k for k in REQUIRED if k not in cur]
        if missing:
            sys.exit(f"{path}:{start}: mutation block lacks {', '.join(missing)}")
        blocks.append(dict(cur))
        cur.clear()

    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                close()
                continue
            if line.startswith("#"):
                continue
            m = re.match(r"([a-z]+):(?: (.*))?$", line)
            if not m or m.group(1) not in KEYS:
                sys.exit(f"{path}:{n}: expected 'key: value' with key one of {', '.join(KEYS)}, got {line!r}")
            if not cur:
                start = n
            if m.group(1) in cur:
                sys.exit(f"{path}:{n}: repeated key {m.group(1)!r} in one block")
            cur[m.group(1)] = m.group(2) or ""
    close()
    seen = set()
    for b in blocks:
        if b["id"] in seen:
            sys.exit(f"{path}: repeated id {b['id']}")
        seen.add(b["id"])
        if not b["find"] or b["find"] == b["replace"]:
            sys.exit(f"{path}: {b['id']}: find must be non-empty and differ from replace")
    return blocks


def status(root, b):
    try:
        with open(os.path.join(root, b["file"]), encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        return f"NOT FOUND (file: {e.strerror})"
    n = text.count(b["find"])
    if n == 0:
        return "NOT FOUND"
    if n > 1:
        return f"AMBIGUOUS ({n} matches)"
    line = next(l for l in text.splitlines() if b["find"] in l)
    if line.count(b["find"]) != 1:
        return "AMBIGUOUS (twice on one line)"
    return "ok"


def selected(blocks, selectors):
    if not selectors:
        return blocks
    out = []
    for b in blocks:
        for s in selectors:
            if re.fullmatch(r"\d+", s):
                hit = re.fullmatch(r"[A-Za-z]*0*(\d+)", b["id"]) and int(re.sub(r"\D", "", b["id"])) == int(s)
            elif s == b["id"]:
                hit = True
            else:
                hit = re.search(s, f"{b['id']} {b['file']} {b['desc']}") is not None
            if hit:
                out.append(b)
                break
    return out


def cmd_select(lst, root, selectors):
    blocks = parse(lst)
    chosen = selected(blocks, selectors)
    if not chosen:
        sys.exit(f"no mutation in {lst} matches {' '.join(selectors)}")
    for b in chosen:
        fields = [b["id"], b["file"], b.get("tests", ""), b.get("requires", ""), status(root, b), b["desc"]]
        print("\x1f".join(f.replace("\x1f", " ") for f in fields))


def cmd_apply(lst, ident, src, dst):
    b = next((b for b in parse(lst) if b["id"] == ident), None)
    if b is None:
        sys.exit(f"no mutation {ident} in {lst}")
    st = status(src, b)
    if st != "ok":
        sys.exit(f"{ident}: '{b['find']}' in {b['file']}: {st}")
    with open(os.path.join(src, b["file"]), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(dst, b["file"]), "w", encoding="utf-8") as f:
        f.write(text.replace(b["find"], b["replace"], 1))


def cmd_sync(src, dst):
    digest = hashlib.sha256()
    paths = [p for p in sys.stdin.buffer.read().decode().split("\0") if p]
    for p in sorted(paths):
        s, d = os.path.join(src, p), os.path.join(dst, p)
        if not os.path.isfile(s):  # deleted in the working tree but still in the index
            continue
        with open(s, "rb") as f:
            data = f.read()
        digest.update(p.encode() + b"\0" + hashlib.sha256(data).digest())
        try:
            with open(d, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(d) or ".", exist_ok=True)
            shutil.copyfile(s, d)  # a fresh mtime: make rebuilds what changed
            shutil.copymode(s, d)
    print(digest.hexdigest())


def cmd_report(results, title):
    rows = []
    with open(results, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 6:
                rows.append(parts)  # id, file, desc, result, first failing test, seconds
    heads = ("id", "file", "description", "result", "first failing test / note")
    width = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads[:4])]
    out = [title, ""]
    fmt = lambda cells: "  ".join(c.ljust(width[i]) for i, c in enumerate(cells[:4])) + "  " + cells[4]
    out.append(fmt(heads))
    out.append(fmt(tuple("-" * w for w in width) + ("-" * 25,)))
    for r in rows:
        out.append(fmt(r[:5]))
    count = lambda p: sum(1 for r in rows if r[3].startswith(p))
    killed, survived, build, skipped = count("KILLED"), count("SURVIVED"), count("BUILD ERROR"), count("SKIPPED")
    errors = count("NOT FOUND") + count("AMBIGUOUS")
    total = sum(float(r[5]) for r in rows)
    out.append("")
    summary = f"{killed} killed, {survived} survived, {build} build errors"
    if skipped:
        summary += f", {skipped} skipped"
    if errors:
        summary += f", {errors} not applied (NOT FOUND / AMBIGUOUS)"
    scored = killed + survived
    if scored:
        summary += f" — mutation score {100.0 * killed / scored:.1f}% ({killed}/{scored})"
    out.append(summary)
    out.append(f"time in mutations: {total / 60:.1f} min")
    print("\n".join(out))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "select" and len(args) >= 2:
        cmd_select(args[0], args[1], args[2:])
    elif cmd == "apply" and len(args) == 4:
        cmd_apply(*args)
    elif cmd == "sync" and len(args) == 2:
        cmd_sync(*args)
    elif cmd == "report" and len(args) == 2:
        cmd_report(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
