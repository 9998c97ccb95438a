#!/usr/bin/env python3
"""Shows that scripts/check-structure can fail: it is run on planted trees with functions and test
bodies one line over their limits (and exactly at them), upward includes of both kinds, functions
in headers, and without ctags on PATH.

    python3 tests/structure/test_check_structure.py
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-structure"
SUMMARY = re.compile(r"^check-structure: \d+ files, \d+ functions and test bodies measured "
                     r"\(\d+ test bodies\), \d+ problem\(s\)$")

AREAS = """\
# architecture

## Area order (read by scripts/check-structure)

```areas
0 util
1 image
2 data
3 nn
4 checkpoint distributed
5 eval export
6 run
7 train
8 explain report bench
```
"""


def function(name, length, indent=""):
    """A C++ function `length` lines long counted from its name line, its signature wrapped over
    3 lines, with a lambda, and braces in strings, a char and comments that must not count."""
    head = [f"{indent}int {name}(int a,", f"{indent}        int b,", f"{indent}        int c) {{"]
    body = [f'{indent}  const char* s = "}}}} {{";  // }} in a comment',
            f"{indent}  char open = '{{';  /* }} */",
            f"{indent}  auto twice = [](int v) {{",
            f"{indent}    return 2 * v;",
            f"{indent}  }};"]
    filler = [f"{indent}  a += b + twice(c) + open + s[0];" for _ in range(length - len(head) - len(body) - 2)]
    return head + body + filler + [f"{indent}  return a;", f"{indent}}}"]


def test_body(macro, suite, name, length):
    """A GoogleTest body `length` lines long from its TEST line to its closing brace."""
    head = [f"{macro}({suite}, {name}) {{"]
    body = ['  const char* json = R"({"a": {"b": 1}})";  // {',
            "  const char* brace = \"}\";",
            "  char c = '}';"]
    filler = ["  EXPECT_EQ(1, 1);" for _ in range(length - len(head) - len(body) - 1)]
    return head + body + filler + ["}"]


class CheckStructure(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="check-structure-test-")
        self.root = pathlib.Path(self.scratch.name, "tree")
        self.write("docs/architecture.md", AREAS)
        self.write("src/train/y.cpp", "#include <splitshare/data/x.h>\nint y() { return 1; }\n")
        self.write("src/train/y.h", "#pragma once\nint y();\n")
        self.write("include/splitshare/train/y.h", "#pragma once\nint y();\n")
        self.write("include/splitshare/data/x.h", "#pragma once\nint x();\n")

    def tearDown(self):
        self.scratch.cleanup()

    def write(self, rel, text):
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if isinstance(text, str) else "\n".join(text) + "\n")

    def run_check(self, *args, root=None, env=None, command=None):
        command = command or [sys.executable, str(SCRIPT)]
        run = subprocess.run(command + ["--root", str(root or self.root), *args],
                             capture_output=True, text=True, env=env, timeout=300)
        return run.returncode, run.stdout, run.stderr

    def problems(self):
        rc, out, err = self.run_check()
        self.assertIn(rc, (0, 1), f"check-structure could not run:\n{out}{err}")
        lines = out.splitlines()
        self.assertTrue(lines and SUMMARY.match(lines[-1]), f"no summary line:\n{out}{err}")
        self.assertEqual(rc, 1 if lines[:-1] else 0, out)
        return lines[:-1]

    def test_a_wrapped_function_over_80_lines_is_reported_and_one_of_80_is_not(self):
        self.write("src/data/x.cpp", ["#include <splitshare/data/x.h>", ""] + function("at_limit", 80) + [""] +
                   function("over_limit", 81))
        self.assertEqual(self.problems(), ["src/data/x.cpp:84: function over_limit is 81 lines (limit 80)"])

    def test_a_lambda_is_part_of_its_function(self):
        lines = ["int outer(int a) {", "  auto inner = [](int v) {"] + ["    v += 1;"] * 82
        lines += ["    return v;", "  };", "  return inner(a);", "}"]
        self.write("src/data/x.cpp", lines)
        self.assertEqual(self.problems(), ["src/data/x.cpp:1: function outer is 88 lines (limit 80)"])

    def test_b_upward_includes_are_reported_angle_and_quoted(self):
        self.write("src/data/x.cpp", ["#include <splitshare/data/x.h>", "#include <splitshare/train/y.h>",
                                      "int x() { return 0; }"])
        self.write("src/data/z.cpp", ['#include "../train/y.h"', "// #include <splitshare/train/y.h>",
                                      "int z() { return 0; }"])
        problems = self.problems()
        self.assertEqual(len(problems), 2, problems)
        self.assertRegex(problems[0], r"^src/data/x\.cpp:2: area data \(rank 2\) includes splitshare/train/y\.h "
                                      r"of area train \(rank 7\)")
        self.assertRegex(problems[1], r"^src/data/z\.cpp:1: area data \(rank 2\) includes src/train/y\.h "
                                      r"of area train \(rank 7\)")

    def test_b_same_rank_and_unknown_areas_are_reported_tools_may_include_anything(self):
        self.write("src/checkpoint/c.cpp", ["#include <splitshare/distributed/d.h>", "#include <splitshare/nn/n.h>"])
        self.write("src/util/u.cpp", ["#include <splitshare/gadgets/g.h>"])
        self.write("tools/splitshare/main.cpp", ["#include <splitshare/train/y.h>", '#include "../../src/train/y.h"'])
        problems = self.problems()
        self.assertEqual(len(problems), 2, problems)
        self.assertRegex(problems[0], r"^src/checkpoint/c\.cpp:1: area checkpoint \(rank 4\) includes "
                                      r"splitshare/distributed/d\.h of area distributed \(rank 4\)")
        self.assertRegex(problems[1], r"^src/util/u\.cpp:1: includes splitshare/gadgets/g\.h of area gadgets, "
                                      r"which is not in the area order")

    def test_umbrella_headers_belong_to_their_area_and_the_top_one_may_include_anything(self):
        self.write("include/splitshare/data.h", ["#pragma once", "#include <splitshare/data/x.h>",
                                                 "#include <splitshare/train/y.h>"])
        self.write("include/splitshare/splitshare.h", ["#pragma once", "#include <splitshare/data.h>",
                                                       "#include <splitshare/train/y.h>"])
        self.write("src/data/w.cpp", ["#include <splitshare/train.h>", "int w() { return 0; }"])
        problems = self.problems()
        self.assertEqual(len(problems), 2, problems)
        self.assertRegex(problems[0], r"^include/splitshare/data\.h:3: area data \(rank 2\) includes "
                                      r"splitshare/train/y\.h of area train")
        self.assertRegex(problems[1], r"^src/data/w\.cpp:1: area data \(rank 2\) includes splitshare/train\.h "
                                      r"of area train")

    def test_c_functions_defined_in_headers_are_measured(self):
        lines = ["#pragma once", "namespace splitshare::data {", "inline"] + function("in_header", 81)
        lines += ["struct Holder {"] + function("member", 81, indent="  ") + ["};", "}  // namespace splitshare::data"]
        self.write("include/splitshare/data/x.h", lines)
        self.assertEqual(self.problems(), [
            "include/splitshare/data/x.h:4: function in_header is 81 lines (limit 80)",
            "include/splitshare/data/x.h:86: function Holder::member is 81 lines (limit 80)"])

    def test_d_test_bodies_over_120_lines_are_reported_and_one_of_120_is_not(self):
        lines = ["#include <gtest/gtest.h>", ""] + test_body("TEST", "Suite", "AtLimit", 120) + [""]
        lines += test_body("TEST", "Suite", "OverLimit", 121) + [""] + test_body("TEST_F", "Fixture", "Over", 121)
        lines += [""] + function("helper_at_test_limit", 120)
        self.write("tests/test_t.cpp", lines)
        self.assertEqual(self.problems(), [
            "tests/test_t.cpp:124: TEST(Suite, OverLimit) is 121 lines (limit 120)",
            "tests/test_t.cpp:246: TEST_F(Fixture, Over) is 121 lines (limit 120)"])

    def test_files_over_500_lines_are_reported_in_tests_too(self):
        self.write("tests/long.cpp", [f"int v{i} = {i};" for i in range(501)])
        self.write("tests/fixtures/long.cpp", [f"int v{i} = {i};" for i in range(501)])
        self.write("src/data/x.cpp", [f"int v{i} = {i};" for i in range(500)])
        self.assertEqual(self.problems(), ["tests/long.cpp:1: file is 501 lines (limit 500)"])

    def test_a_function_in_an_else_branch_is_measured(self):
        # Inside braces ctags itself reads only the #if branch.
        self.write("src/data/x.cpp", ["namespace splitshare::data {", "#ifdef WITH_X", "int x() { return 1; }",
                                      "#else"] + function("x", 81) + ["#endif", "}  // namespace splitshare::data"])
        self.assertEqual(self.problems(), ["src/data/x.cpp:5: function x is 81 lines (limit 80)"])

    def test_e_missing_ctags_fails_with_exit_2_and_says_how_to_install_it(self):
        bin_dir = pathlib.Path(self.scratch.name, "bin")
        bin_dir.mkdir()
        (bin_dir / "python3").symlink_to(sys.executable)
        rc, out, err = self.run_check(command=[str(SCRIPT)], env={"PATH": str(bin_dir)})
        self.assertEqual(rc, 2, out + err)
        self.assertIn("ctags", err)
        self.assertIn("Universal Ctags", err)
        self.assertIn("scripts/setup", err)
        self.assertIn("apt-get install universal-ctags", err)

        fake = bin_dir / "ctags"
        fake.write_text("#!/bin/sh\necho 'Exuberant Ctags 5.8, Copyright (C) 1996-2009 Darren Hiebert'\n")
        fake.chmod(0o755)
        rc, out, err = self.run_check(command=[str(SCRIPT)], env={"PATH": str(bin_dir)})
        self.assertEqual(rc, 2, out + err)
        self.assertIn("is not Universal Ctags", err)
        self.assertIn("apt-get install universal-ctags", err)

    def test_a_missing_areas_block_fails_with_exit_2(self):
        self.write("docs/architecture.md", "# architecture\n\nno block\n")
        rc, out, err = self.run_check()
        self.assertEqual(rc, 2, out + err)
        self.assertIn("areas", err)

    def test_f_the_repository_gives_problem_lines_and_a_summary(self):
        rc, out, err = self.run_check(root=REPO)
        self.assertIn(rc, (0, 1), out + err)
        lines = out.splitlines()
        self.assertTrue(lines and SUMMARY.match(lines[-1]), f"no summary line:\n{out}{err}")
        for line in lines[:-1]:
            self.assertRegex(line, r"^[^:\s]+:\d+: \S.*$")
        self.assertEqual(rc, 1 if lines[:-1] else 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
