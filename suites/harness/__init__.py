"""The fault, HA, chaos and restore suites' one harness: the topology as the suites talk to
it (topology.py), one way to wait (wait.py), the payments processes (processes.py), the
steady load and its clients (load.py), the HA probes (probes.py), one fault library
(faults.py), the money proofs (proof.py) and one report (report.py). Each suite's
scenarios live in its own folder (suites/NAME/scenarios.py); `python3 -m harness NAME`
runs them (suites/NAME/run.sh does just that).

Shell stays where it supervises processes: scripts/topology starts and stops every
server; this harness asks it to."""
