# syntax=docker/dockerfile:1
# `payments` as a container: built with the official Swift image, run on its slim
# variant (the Swift runtime libraries, no compiler) with nothing but the binary:
# migrations and the OpenAPI document are compiled in. Used by compose/docker-compose.yml:
#   docker compose -f compose/docker-compose.yml up -d --build
ARG SWIFT_VERSION=6.3

# ---- build
FROM swift:${SWIFT_VERSION}-noble AS build
WORKDIR /build
# Dependencies first, so a source change does not fetch them again.
COPY Package.swift ./
RUN swift package resolve
COPY . .
# The same release build command as `make test` and `make demo` (scripts/lib.sh,
# RELEASE_BUILD); the topology suite checks that this line matches it.
RUN swift build -c release --product payments
RUN install -D "$(swift build -c release --show-bin-path)/payments" /staging/payments

# ---- run
FROM swift:${SWIFT_VERSION}-noble-slim
RUN useradd --system --uid 10001 --home-dir /app --create-home payments \
    && install -d -o payments -g payments /data
COPY --from=build --chown=payments:payments /staging/payments /app/payments
USER payments
WORKDIR /app
# /data holds the simulated gateway's journal (a volume in Compose).
VOLUME /data
EXPOSE 8080
# SIGTERM is the graceful stop: in-flight jobs finish or are released.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/payments"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
