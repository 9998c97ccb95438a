#!/usr/bin/env python3
"""Check that the splitshare commands shown in the docs use only flags the binary knows.

Usage: check_doc_commands.py BINARY ROOT

BINARY is the built splitshare (e.g. build/splitshare), ROOT the repository root. The script reads
ROOT/README.md and ROOT/docs/*.md, takes every fenced code block marked ```sh, ```bash or with no
language, and in it every command line that starts with `./build/splitshare ` or `build/splitshare `
(after an optional `$ ` prompt; a line ending in a backslash continues on the next one). For each
command it finds the subcommand and every `--flag` token (`--flag=value` counts as `--flag`), runs
`BINARY SUBCOMMAND --help` once per subcommand, and reports every flag that the help text does not
list, with the file and line of the command. A flag counts as listed when it appears anywhere in
the help text (so `--k`, which `train --help` mentions as "also --k K", is listed).

For `launch`, the flags before a bare `--` are launch's and the rest is checked as the command
launch runs (`launch --nproc 2 -- train --epochs 1` checks `--nproc` against `launch --help` and
`--epochs` against `train --help`). A command whose subcommand the binary does not list is skipped
with a note. Shell variables (`$common`) are not expanded.

Prints one line per unknown flag and, last, "N passed, M failed" (N and M count commands).
Exit status: 0 when every flag is known, 1 when any is not, 2 on a usage error.
Python 3 standard library only.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

PREFIXES = ("./build/splitshare ", "build/splitshare ")
SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console"}
FLAG = re.compile(r"--[A-Za-z0-9][A-Za-z0-9-]*")
FENCE = re.compile(r"^\s*(```+)\s*([A-Za-z0-9_+-]*)\s*$")
SHELL_OPERATORS = {";", "&&", "||", "|", "&", ">", ">>", "<", "2>", "2>&1"}
# Used only when the binary's own list of commands cannot be read.
FALLBACK_COMMANDS = {"train", "eval", "compare", "info", "bench", "import", "predict", "export",
                     "select", "gradcam", "report", "launch", "version"}


def doc_files(root):
    files = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    return [f for f in files if f.is_file()]


def shell_blocks(text):
    """Yields (line number, line) for every line inside a sh/bash/plain fenced block."""
    inside, shell, fence = False, False, ""
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m and not inside:
            inside, fence, shell = True, m.group(1), m.group(2).lower() in SHELL_LANGUAGES
            continue
        if inside and m and m.group(1) == fence and not m.group(2):
            inside = False
            continue
        if inside and shell:
            yield number, line


def logical_lines(lines):
    """Joins lines that end in a backslash; yields (first line number, joined line)."""
    start, parts = None, []
    for number, line in lines:
        if start is None:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(p.strip() for p in parts)
        start, parts = None, []
    if parts:
        yield start, " ".join(p.strip() for p in parts)


def tokens_of(command):
    """Shell words of one command, up to a comment or the first shell operator."""
    lexer = shlex.shlex(command, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to plain splitting
        words = command.split("#", 1)[0].split()
    out = []
    for word in words:
        if word in SHELL_OPERATORS:
            break
        if word.endswith(";"):
            out.append(word[:-1])
            break
        out.append(word)
    return out


def commands_in(path):
    """Yields (line number, [words after the binary]) for each splitshare command in a doc."""
    text = path.read_text(encoding="utf-8")
    for number, line in logical_lines(shell_blocks(text)):
        stripped = line.strip()
        if stripped.startswith("$ "):
            stripped = stripped[2:].lstrip()
        for prefix in PREFIXES:
            if stripped.startswith(prefix):
                yield number, tokens_of(stripped[len(prefix):])
                break


def run_help(binary, args):
    try:
        result = subprocess.run([binary] + args + ["--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, str(error)
    return result, result.stdout + result.stderr


def known_commands(binary):
    result, text = run_help(binary, [])
    if result is None:
        sys.exit(f"check_doc_commands: cannot run {binary}: {text}")
    names = set(re.findall(r"^\s{2}([a-z][a-z0-9_-]*)\s{2,}\S", text, re.M))
    return names or set(FALLBACK_COMMANDS)


class HelpCache:
    def __init__(self, binary):
        self.binary, self.flags, self.errors = binary, {}, {}

    def get(self, command):
        """The set of flags `BINARY command --help` mentions, or None (see self.errors)."""
        if command not in self.flags:
            result, text = run_help(self.binary, [command])
            if result is None or result.returncode != 0:
                self.flags[command] = None
                self.errors[command] = text.strip().splitlines()[-1:] if text.strip() else ["no output"]
            else:
                self.flags[command] = set(FLAG.findall(text)) | {"--help"}
        return self.flags[command]


def split_command(words, commands):
    """[(subcommand, flags)] for one command line: one entry, or two for `launch … -- command …`."""
    parts, rest = [], list(words)
    while rest:
        sub = next((w for w in rest if not w.startswith("-")), None)
        if sub is None or sub not in commands:
            parts.append((sub, None))
            break
        inner = rest[rest.index(sub) + 1:]
        if sub == "launch" and "--" in inner:
            cut = inner.index("--")
            parts.append((sub, flags_of(inner[:cut])))
            rest = inner[cut + 1:]
            continue
        parts.append((sub, flags_of(inner)))
        break
    return parts


def flags_of(words):
    flags = []
    for word in words:
        if word.startswith("--") and len(word) > 2:
            flags.append(word.split("=", 1)[0])
    return flags


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    binary, root = argv[1], Path(argv[2])
    if not Path(binary).is_file():
        print(f"check_doc_commands: no binary at {binary}", file=sys.stderr)
        return 2
    if not (root / "README.md").is_file():
        print(f"check_doc_commands: {root} has no README.md", file=sys.stderr)
        return 2
    commands = known_commands(binary)
    helps = HelpCache(binary)
    passed = failed = skipped = 0
    for path in doc_files(root):
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        for number, words in commands_in(path):
            shown = "splitshare " + " ".join(words)
            problems = []
            checked = False
            for sub, flags in split_command(words, commands):
                if flags is None:
                    print(f"{name}:{number}: note: skipped, no known subcommand "
                          f"({sub or 'none'}): {shown}")
                    continue
                checked = True
                known = helps.get(sub)
                if known is None:
                    problems.append(f"`splitshare {sub} --help` failed: {' '.join(helps.errors[sub])}")
                    continue
                for flag in flags:
                    if flag not in known:
                        problems.append(f"{flag} is not in `splitshare {sub} --help`")
            if not checked:
                skipped += 1
            elif problems:
                failed += 1
                for problem in problems:
                    print(f"{name}:{number}: {problem}  [{shown}]")
            else:
                passed += 1
    if skipped:
        print(f"({skipped} command(s) skipped)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
