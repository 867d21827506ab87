# The two commands: `make demo` and `make test`. Everything else is a helper.
.PHONY: test test-release test-ha test-restore test-dashboard chaos scale demo demo-failover up up-ha down down-ha status status-ha build release bench

test:
	scripts/run-tests

# Every suite on the release binary (the one the Dockerfile builds): about 20 minutes from nothing.
test-release:
	BUILD=release scripts/run-tests

# Seeded chaos on the debug build and the test topology (offset 100): SEED= (random by
# default) MINUTES= (5 by default). A failure prints the seed that replays it.
chaos:
	scripts/run-chaos

# The topology suite with 10,000 clients open at once through pgbouncer-read (make test
# uses 2,000), on the test topology (offset 100), started and stopped here.
scale:
	scripts/run-scale

# The HA fault suite (suites/ha) on a fresh HA topology (offset 100): RUNS= (1 by
# default; docs/ha.md's figures are RUNS=5), scenario names as SCENARIOS=.
test-ha:
	scripts/run-ha $(SCENARIOS)

# The restore drill (suites/restore: a TRUNCATE undone to the moment before it, every data
# directory lost and restored to the last archived WAL, both under load, then payments
# reconcile --adopt and the money proofs) on a fresh test topology (offset 100). RUNS=.
test-restore:
	scripts/run-restore $(SCENARIOS)

# The dashboard in headless Chromium (suites/dashboard) against the running topology
# (`make up` first; PORT_OFFSET= for another one); SHOTS=dir keeps the screenshots.
test-dashboard:
	suites/dashboard/run.sh

demo:
	scripts/demo

# The demo on the HA topology with the leader killed a third of the way through.
demo-failover:
	FAILOVER=1 scripts/demo

up:
	scripts/topology up

down:
	scripts/demo down

up-ha:
	scripts/topology --ha up

down-ha:
	FAILOVER=1 scripts/demo down

status-ha:
	scripts/topology --ha status

status:
	scripts/topology status

build:
	swift build

release:
	swift build -c release --product payments

# Every figure beside its ceiling in the same run (payments bench, release build, the
# running topology: `make up` first). ARGS= for more (--json, --compare FILE, --quick).
bench: release
	.build/release/payments bench $(ARGS)
