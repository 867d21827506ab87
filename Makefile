# The two commands: `make demo` and `make test`. Everything else is a helper.
.PHONY: test demo up down status build release bench

test:
	scripts/run-tests

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
