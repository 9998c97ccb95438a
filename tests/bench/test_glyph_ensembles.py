"""bench/glyph_ensembles.py's bounds: a sample is counted correct or wrong only when every way the
unlisted probabilities could fall gives that answer, and undetermined otherwise.

    python3 tests/bench/test_glyph_ensembles.py
"""
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))

import glyph_ensembles as ge  # noqa: E402


class Outcome(unittest.TestCase):
    def test_label_first_in_both_lists_is_correct(self):
        self.assertEqual(ge.outcome("A", {"A": 0.6, "B": 0.1}, 0.1, {"A": 0.5, "C": 0.2}, 0.2), "correct")

    def test_an_unlisted_class_can_still_win(self):
        # A: 0.3 + 0.25 = 0.55 listed; an unlisted class could reach 0.3 + 0.25 = 0.55 as well.
        self.assertEqual(ge.outcome("A", {"A": 0.3, "B": 0.3}, 0.3, {"A": 0.25, "C": 0.25}, 0.25), "undetermined")

    def test_a_class_listed_once_is_bounded_by_the_other_lists_floor(self):
        # B: 0.5 + at most 0.15 (unlisted in the second list) = 0.65 > A's 0.4 + 0.2 = 0.6.
        self.assertEqual(ge.outcome("A", {"A": 0.4, "B": 0.5}, 0.4, {"A": 0.2, "C": 0.15}, 0.15), "undetermined")
        # B at most 0.5 + 0.1 = 0.6 < A's 0.7; C and unlisted classes at most 0.5.
        self.assertEqual(ge.outcome("A", {"A": 0.4, "B": 0.5}, 0.4, {"A": 0.3, "C": 0.1}, 0.1), "correct")

    def test_label_in_neither_list_is_wrong_when_a_listed_class_beats_its_bound(self):
        self.assertEqual(ge.outcome("A", {"B": 0.5, "C": 0.1}, 0.1, {"B": 0.4, "D": 0.1}, 0.1), "wrong")
        self.assertEqual(ge.outcome("A", {"B": 0.1, "C": 0.1}, 0.1, {"D": 0.1, "E": 0.1}, 0.1), "undetermined")

    def test_rounding_margin_leaves_near_ties_undetermined(self):
        self.assertEqual(ge.outcome("A", {"A": 0.5, "B": 0.4999999}, 0.4, {"A": 0.3, "B": 0.3}, 0.3),
                         "undetermined")


if __name__ == "__main__":
    unittest.main(verbosity=2)
