# The two commands: `make demo` and `make test`. Everything else is a helper.
.PHONY: test test-release chaos scale demo up down status build release bench

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

demo:
	scripts/demo

up:
	scripts/topology up

down:
	scripts/demo down

status:
	scripts/topology status

build:
	swift build

release:
	swift build -c release --product payments

bench:
	scripts/bench all
