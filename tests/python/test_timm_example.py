"""examples/python/timm_ssm.py runs as its docstring says: a timm ResNet with the SSM head trains two
epochs on Fashion-MNIST batches from splitshare.data (a share of it, to stay quick), the loss falls
and the head ends far above chance (10 %).

    SPLITSHARE_OPS_LIBRARY=build/python/splitshare/_ops.so PYTHONPATH=python \\
        .venv/bin/python tests/python/test_timm_example.py
"""
import os
import pathlib
import re
import subprocess
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]


class TimmExample(unittest.TestCase):
    def test_two_epochs_learn(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                                         os.environ.get("PYTHONPATH")])))
        run = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "timm_ssm.py"), "--epochs", "2",
                              "--limit-train", "2048", "--limit-val", "500", "--batch-size", "64"],
                             capture_output=True, text=True, timeout=500, env=env)
        self.assertEqual(run.returncode, 0, run.stderr)
        print(run.stdout)
        epochs = re.findall(r"epoch (\d)/2: loss ([0-9.]+), val top-1 ([0-9.]+) % \(splits ([0-9. /]+)\)", run.stdout)
        self.assertEqual([e[0] for e in epochs], ["1", "2"], run.stdout)
        losses, top1 = [float(e[1]) for e in epochs], float(epochs[-1][2])
        self.assertLess(losses[1], losses[0], "the loss did not fall")
        self.assertGreater(top1, 40.0, "two epochs left the head near chance")
        self.assertEqual(len(epochs[-1][3].split(" / ")), 4, "not four splits reported")


if __name__ == "__main__":
    unittest.main(verbosity=2)
