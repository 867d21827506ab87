"""One report for every suite: one verdict per scenario (a scenario that records none, or
more than one, fails), a table, and "LABEL: n of m scenarios passed, k failed"."""


class Scenario:
    """One scenario's run: its verdict, and whether its fault (and its own measurements)
    really happened. A fault that did not happen fails the scenario, whatever else held."""

    def __init__(self, name: str):
        self.name = name
        self.fault_ok = True
        self.probes_ok = True
        self.verdicts = []
        self.not_injected = []

    def missing(self, why: str):
        self.fault_ok = False
        self.not_injected.append(why)
        log(f"FAULT NOT INJECTED: {why}")

    def record(self, title: str, ok: bool, recovery, notes: str):
        passed = bool(ok) and self.fault_ok and self.probes_ok
        rec = recovery if isinstance(recovery, str) else ("none" if recovery is None else f"{recovery}s")
        self.verdicts.append((title, passed, rec, notes))
        return passed


class Report:
    def __init__(self, label: str):
        self.label = label
        self.rows = []      # (title, passed, recovery, notes, seconds)
        self.extra_failures = []

    def add(self, scenario: Scenario, seconds: float):
        if len(scenario.verdicts) == 1:
            title, passed, rec, notes = scenario.verdicts[0]
            self.rows.append((title, passed, rec, notes, seconds))
        else:
            self.rows.append((scenario.name, False, "-", f"recorded {len(scenario.verdicts)} verdicts", seconds))

    def fail(self, line: str):
        """A failure of the whole run beside the scenarios' (a serve that ignored SIGTERM)."""
        self.extra_failures.append(line)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.rows if r[1])

    @property
    def failed(self) -> int:
        return len(self.rows) - self.passed + len(self.extra_failures)

    def print(self):
        print()
        print(f"{'SCENARIO':<30} {'RESULT':<6} {'RECOVERY':<10} NOTES")
        for title, passed, rec, notes, seconds in self.rows:
            print(f"{title:<30} {'PASS' if passed else 'FAIL':<6} {rec:<10} {notes} ({seconds:.0f} s)")
        for line in self.extra_failures:
            print(f"FAIL  {line}")
        print(f"{self.label}: {self.passed} of {len(self.rows)} scenarios passed, {self.failed} failed", flush=True)


def log(message: str):
    print(f"    {message}", flush=True)
