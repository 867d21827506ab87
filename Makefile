# The two commands: `make demo` and `make test`. Everything else is a helper.
.PHONY: test demo up down status build release

test:
	scripts/run-tests

up:
	scripts/topology up

down:
	scripts/topology down

status:
	scripts/topology status

build:
	swift build

release:
	swift build -c release
