# The two commands: `make demo` and `make test`. Everything else is a helper.
.PHONY: test test-release demo up down status build release bench

test:
	scripts/run-tests

# Every suite on the release binary (the one the Dockerfile builds): about 20 minutes from nothing.
test-release:
	BUILD=release scripts/run-tests

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
