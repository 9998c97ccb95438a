"""The Python package's SSM head (splitshare.ops.ssm_head, splitshare.nn.SplitShareHead) against the
plain PyTorch reference python/splitshare_torch.py: same outputs and gradients in both BatchNorm
variants, train and eval; gradcheck in float64; running statistics; torch.library.opcheck;
torch.compile(fullgraph=True); autocast; errors by name; state dicts shared with checkpoints.

    SPLITSHARE_OPS_LIBRARY=build/python/splitshare/_ops.so PYTHONPATH=python \\
        .venv/bin/python tests/python/test_ssm_head.py
"""
import atexit
import copy
import os
import pathlib
import shutil
import sys
import tempfile
import unittest

# A fresh inductor cache: kernels generated under another CPU capability (ATEN_CPU_CAPABILITY=avx2,
# docs/platform.md) and found in the shared cache corrupted the heap of the compile test.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="splitshare-inductor-")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)

import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import splitshare  # noqa: E402
import splitshare_torch  # noqa: E402


def pair(in_features=16, classes=5, splits=4, norm="first", dtype=torch.float32, seed=0):
    """(ours, the reference) with the same parameters and statistics."""
    torch.manual_seed(seed)
    ours = splitshare.nn.SplitShareHead(in_features, classes, splits, norm).to(dtype)
    for bn in ours.bn:  # not the identity, so that the affine and the statistics matter
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    reference = splitshare_torch.SplitAndShare(in_features, classes, splits, last_plain=norm == "first").to(dtype)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def grads(module, x, weights):
    x = x.clone().requires_grad_(True)
    out = module(x)
    loss = (out.logits * weights[0]).sum() + sum((h * w).sum() for h, w in zip(out.head_logits, weights[1:]))
    loss.backward()
    return out, x.grad, {n: p.grad.clone() for n, p in module.named_parameters()}


class AgainstTheReference(unittest.TestCase):
    def check(self, norm, training):
        ours, reference = pair(norm=norm)
        ours.train(training)
        reference.train(training)
        x = torch.randn(8, 16) * 2 + 0.3
        weights = [torch.randn(8, 5) for _ in range(5)]
        out, gx, gp = grads(ours, x, weights)
        ref, rgx, rgp = grads(reference, x, weights)
        torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-5)
        for h, r in zip(out.head_logits, ref.head_logits):
            torch.testing.assert_close(h, r, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx, rgx, rtol=1e-4, atol=1e-5)
        self.assertEqual(gp.keys(), rgp.keys())
        for name in gp:
            torch.testing.assert_close(gp[name], rgp[name], rtol=1e-4, atol=1e-5, msg=name)
        for mine, theirs in zip(ours.bn, reference.bn):
            torch.testing.assert_close(mine.running_mean, theirs.running_mean)
            torch.testing.assert_close(mine.running_var, theirs.running_var)
            self.assertEqual(int(mine.num_batches_tracked), int(theirs.num_batches_tracked))

    def test_train_and_eval_both_norm_variants(self):
        for norm in ("first", "all"):
            for training in (True, False):
                with self.subTest(norm=norm, training=training):
                    self.check(norm, training)

    def test_state_dict_names_are_the_checkpoints(self):
        ours, _ = pair()
        names = set(ours.state_dict())
        self.assertIn("fc.3.weight", names)
        self.assertIn("bn.2.running_var", names)
        self.assertNotIn("bn.3.weight", names)   # the text's variant: the last split is plain
        self.assertIn("bn.3.weight", pair(norm="all")[0].state_dict())


class Gradients(unittest.TestCase):
    def test_gradcheck_float64(self):
        for norm in ("first", "all"):
            for training in (True, False):
                ours, _ = pair(in_features=8, classes=3, splits=2, norm=norm, dtype=torch.float64)
                ours.train(training)
                x = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
                params = list(ours.parameters())

                def f(x, *p):
                    # The module's forward with these parameters (functional_call keeps gradcheck's
                    # perturbations of the parameters); the running statistics are left alone.
                    state = dict(zip([n for n, _ in ours.named_parameters()], p))
                    frozen = copy.deepcopy(ours)
                    out = torch.func.functional_call(frozen, state, (x,))
                    return (out.logits, *out.head_logits)

                with self.subTest(norm=norm, training=training):
                    self.assertTrue(torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5))

    def test_opcheck(self):
        ours, _ = pair()
        x = torch.randn(8, 16, requires_grad=True)
        for training in (True, False):
            ours.train(training)
            means, invstds, batch_stats = ours._statistics(x.detach())
            args = (x, means, invstds, [b.weight for b in ours.bn], [b.bias for b in ours.bn],
                    [f.weight for f in ours.fc], [f.bias for f in ours.fc], 0.25, batch_stats)
            torch.library.opcheck(torch.ops.splitshare.ssm_head_forward.default, args)


class Compile(unittest.TestCase):
    def test_fullgraph_compile_matches_eager(self):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), splitshare.nn.SplitShareHead(16, 5))
        eager = copy.deepcopy(model)
        compiled = torch.compile(model, fullgraph=True)  # inductor: C++ code generated and built
        x = torch.randn(8, 12)
        out, ref = compiled(x), eager(x)
        torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-5)
        out.logits.sum().backward()
        ref.logits.sum().backward()
        for (name, p), (_, q) in zip(model.named_parameters(), eager.named_parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


class Precision(unittest.TestCase):
    def test_autocast_runs_the_head_in_float32(self):
        ours, reference = pair()
        ours.eval()
        reference.eval()
        x = torch.randn(4, 16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = ours(x.bfloat16())
        self.assertEqual(out.logits.dtype, torch.float32)
        torch.testing.assert_close(out.logits, reference(x.bfloat16().float()).logits, rtol=1e-5, atol=1e-5)


class ReplaceClassifier(unittest.TestCase):
    def check(self, model, features):
        splitshare.nn.replace_classifier(model, num_classes=7)
        head = model.fc
        self.assertIsInstance(head, splitshare.nn.SplitShareHead)
        self.assertEqual((head.in_features, head.num_classes, len(head.bn)), (features, 7, 3))
        out = model.train()(torch.randn(2, 3, 32, 32))
        self.assertEqual(tuple(out.logits.shape), (2, 7))
        self.assertEqual(len(out.head_logits), 4)
        out.logits.sum().backward()
        self.assertIsNotNone(model.conv1.weight.grad)   # the gradient reaches the backbone

    def test_torchvision_resnet(self):
        import torchvision
        self.check(torchvision.models.resnet18(), 512)

    def test_timm_resnet(self):
        import timm
        self.check(timm.create_model("resnet18", pretrained=False), 512)

    def test_a_model_without_a_linear_classifier_is_refused(self):
        with self.assertRaisesRegex(ValueError, r"model.fc is Identity, not the nn.Linear"):
            model = torch.nn.Module()
            model.fc = torch.nn.Identity()
            splitshare.nn.replace_classifier(model)


class Errors(unittest.TestCase):
    def test_bad_shapes_are_named(self):
        ours, _ = pair()
        with self.assertRaisesRegex(RuntimeError, r"x's 15 channels do not split into 4"):
            splitshare.ops.ssm_head(torch.randn(2, 15), [f.weight for f in ours.fc], [f.bias for f in ours.fc],
                                    [], [], [], [])
        with self.assertRaisesRegex(RuntimeError, r"split 1 needs a weight \[K, 8\]"):
            weights = [f.weight for f in ours.fc]
            weights[1] = torch.randn(5, 7)
            ours.eval()
            means, invstds, _ = ours._statistics(torch.randn(2, 16))
            splitshare.ops.ssm_head(torch.randn(2, 16), weights, [f.bias for f in ours.fc],
                                    [b.weight for b in ours.bn], [b.bias for b in ours.bn], means, invstds)
        with self.assertRaisesRegex(ValueError, r"in_features \(10\) must split into splits \(4\)"):
            splitshare.nn.SplitShareHead(10, 3)
        with self.assertRaisesRegex(ValueError, r"more than 1 sample"):
            pair()[0].train()(torch.randn(1, 16))


if __name__ == "__main__":
    unittest.main()
