"""`pip install .` end to end: the wheel pyproject.toml builds (scikit-build-core, against the torch
of the interpreter running this) holds the package and its operator library, and the installed
package works with no build tree around (no SPLITSHARE_OPS_LIBRARY) and without torchvision.

    .venv/bin/python tests/python/test_install.py
"""
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Run with torchvision made unimportable: the head and the loaders need torch alone.
USE = """
import sys
sys.modules["torchvision"] = None
import torch, splitshare
head = splitshare.nn.SplitShareHead(16, 5)
out = head(torch.randn(4, 16, requires_grad=True))
out.logits.sum().backward()
images, labels = next(iter(splitshare.data.open("fashion-mnist", batch_size=8, limit_train=16, limit_val=8).train))
print(splitshare.__file__)
print(len(out.head_logits), tuple(out.logits.shape), head.fc[0].weight.grad is not None, tuple(images.shape))
"""


class Install(unittest.TestCase):
    def test_wheel_builds_installs_and_runs(self):
        with tempfile.TemporaryDirectory(prefix="splitshare-wheel-") as scratch:
            scratch = pathlib.Path(scratch)
            # As scripts/build has them, so that ccache reuses build/'s objects of the same target:
            # its settings, and CMake's default compiler name (scikit-build-core would otherwise set
            # Python's, g++, and ccache keys objects by the compiler's name).
            env = dict(os.environ, CCACHE_BASEDIR=str(ROOT), CCACHE_SLOPPINESS=os.environ.get(
                "CCACHE_SLOPPINESS", "pch_defines,time_macros,include_file_mtime,include_file_ctime"))
            env.setdefault("CXX", "c++")
            build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                                    "--disable-pip-version-check", "-w", str(scratch / "wheels"), str(ROOT)],
                                   capture_output=True, text=True, timeout=1500, env=env)
            self.assertEqual(build.returncode, 0, build.stdout[-3000:] + build.stderr[-3000:])
            wheels = sorted((scratch / "wheels").glob("splitshare-*.whl"))
            self.assertEqual(len(wheels), 1, wheels)
            site = scratch / "site"
            install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                                      "--disable-pip-version-check", "--target", str(site), str(wheels[0])],
                                     capture_output=True, text=True, timeout=300)
            self.assertEqual(install.returncode, 0, install.stderr)
            self.assertTrue(list((site / "splitshare").glob("_ops*.so")), sorted(os.listdir(site / "splitshare")))
            env = {k: v for k, v in os.environ.items() if k not in ("SPLITSHARE_OPS_LIBRARY", "PYTHONPATH")}
            env["PYTHONPATH"] = str(site)
            run = subprocess.run([sys.executable, "-c", USE], capture_output=True, text=True, env=env,
                                 cwd=scratch, timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr)
            where, figures = run.stdout.strip().splitlines()
            self.assertTrue(where.startswith(str(site)), where)
            self.assertEqual(figures, "4 (4, 5) True (8, 1, 28, 28)")


if __name__ == "__main__":
    unittest.main()
