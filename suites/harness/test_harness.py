"""Unit tests of the harness's own logic (no topology): the probes' judgement of their own
samples, the one-verdict rule, the chaos schedule's determinism. python3 -m unittest
discover -s suites -p 'test_*.py' (make test runs it)."""
import importlib.util
import os
import re
import unittest

from harness.probes import Probes
from harness.report import Report, Scenario
from harness.topology import REPO
from harness.wait import seconds_until


def probes_with(writes, brain, t0=1000.0):
    p = Probes.__new__(Probes)
    p.writes, p.brain, p.errors, p.t0 = writes, brain, [], t0
    return p


class ProbeJudgement(unittest.TestCase):
    def test_a_probe_with_samples_throughout_passes(self):
        writes = [(1000 + i * 0.1, 1000 + i * 0.1 + 0.01, None) for i in range(100)]
        brain = [(1000 + i * 0.5, ["node-1"]) for i in range(20)]
        self.assertEqual(probes_with(writes, brain).check(True, 1010.0), [])

    def test_a_dead_or_silent_probe_fails_its_scenario(self):
        writes = [(1000 + i * 0.1, 1000 + i * 0.1, None) for i in range(10)]
        fails = probes_with(writes, [(1000.0, ["node-1"])]).check(False, 1020.0)
        self.assertTrue(any("write probe: died after its last sample" in f for f in fails))
        fails = probes_with([], []).check(True, 1010.0)
        self.assertEqual(len([f for f in fails if "0 samples" in f]), 2)

    def test_a_hole_longer_than_a_try_can_take_fails(self):
        writes = [(1000 + t, 1000 + t, None) for t in [x * 0.1 for x in range(50)] + [20 + x * 0.1 for x in range(100)]]
        brain = [(1000 + i * 0.5, ["node-1"]) for i in range(60)]
        fails = probes_with(writes, brain).check(True, 1030.0)
        self.assertTrue(any("no sample from" in f for f in fails), fails)

    def test_gaps_spans_and_split_brain(self):
        writes = [(1000.0, 1000.1, None), (1000.2, 1003.2, "timeout"), (1003.3, 1003.4, "refused"), (1003.5, 1003.6, None)]
        p = probes_with(writes, [(1000.0, ["node-1"]), (1000.5, ["node-1", "node-2"])])
        self.assertEqual(p.write_gap(1000.0), 3.5)
        self.assertEqual(p.failed_span(), 3.2)
        self.assertEqual(p.split_brain(), 1)
        self.assertEqual(p.ok_since(1000.0), 1003.6)


class OneVerdict(unittest.TestCase):
    def test_a_scenario_records_exactly_one_verdict(self):
        report = Report("t")
        none, two, good = Scenario("none"), Scenario("two"), Scenario("good")
        two.record("a", True, 1.0, "")
        two.record("b", True, 1.0, "")
        good.record("good", True, 0.5, "fine")
        for sc in (none, two, good):
            report.add(sc, 1.0)
        self.assertEqual((report.passed, report.failed), (1, 2))

    def test_a_fault_that_did_not_happen_fails_whatever_else_held(self):
        sc = Scenario("s")
        sc.missing("the process was not running")
        self.assertFalse(sc.record("s", True, None, ""))
        self.assertEqual(sc.verdicts[0][2], "none")


class Waiting(unittest.TestCase):
    def test_a_condition_that_raises_is_not_yet_true(self):
        calls = []

        def condition():
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError("not yet")
            return True

        self.assertIsNotNone(seconds_until(5, condition, interval=0.01))
        self.assertIsNone(seconds_until(0.05, lambda: False, interval=0.01))


def load_chaos():
    spec = importlib.util.spec_from_file_location("chaos_scenarios", os.path.join(REPO, "suites", "chaos", "scenarios.py"))
    chaos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chaos)
    return chaos


def plan(chaos, seed: int, minutes: float) -> list:
    """The schedule a chaos run with SEED and MINUTES draws (without starting anything)."""
    return type("C", (), {"seed": seed, "minutes": minutes, "schedule": chaos.Chaos.schedule})().schedule()


class ChaosSchedule(unittest.TestCase):
    def test_a_seed_replays_its_schedule_and_every_kind_runs_once_first(self):
        chaos = load_chaos()
        a, b, c = plan(chaos, 7, 2.0), plan(chaos, 7, 2.0), plan(chaos, 8, 2.0)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        kinds = [k for _, k, _, _ in a]
        self.assertEqual(sorted(kinds[:len(chaos.FAULTS)]), sorted(chaos.FAULTS))
        self.assertTrue(all(5 <= b_[0] - a_[0] <= 10 for a_, b_ in zip(a, a[1:])))

    def test_make_tests_seed_runs_every_kind_in_its_minute(self):
        chaos = load_chaos()
        with open(os.path.join(REPO, "scripts", "run-tests")) as f:
            seed = int(re.search(r"SEED=(\d+) MINUTES=1 ", f.read()).group(1))
        self.assertEqual(sorted({k for _, k, _, _ in plan(chaos, seed, 1.0)}), sorted(chaos.FAULTS))


if __name__ == "__main__":
    unittest.main()
