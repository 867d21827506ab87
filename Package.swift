// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "payments",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "payments", targets: ["payments"]),
        .library(name: "PaymentsCore", targets: ["PaymentsCore"]),
        .library(name: "PaymentsHTTP", targets: ["PaymentsHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // Domain and database logic: queue, intake, reads, gateway, schema.
        .target(
            name: "PaymentsCore",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // Compiles the top-level Migrations/*.sql into the binary.
            plugins: ["EmbedFiles"]
        ),
        // The HTTP API: buildRouter / buildApplication over PaymentsCore, and the client of a
        // payment provider's API (HTTPGateway).
        .target(
            name: "PaymentsHTTP",
            dependencies: [
                "PaymentsCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // openapi.yaml and the dashboard's page are compiled into the binary, not shipped as a bundle.
            exclude: ["openapi.yaml", "Dashboard/dashboard.html"],
            plugins: ["EmbedFiles"]
        ),
        // The simulated payment provider (`payments gateway`, and the in-process gateway of
        // benchmarks): its store, journal, faults and routes. The product libraries never
        // import it: they know a gateway by its protocol (PaymentsCore) and HTTP client.
        .target(
            name: "PaymentsSimulator",
            dependencies: [
                "PaymentsCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // What the demo and the tests use to prove a run correct; not part of serving.
        .target(
            name: "PaymentsProof",
            dependencies: [
                "PaymentsCore",
                "PaymentsSimulator",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `payments bench`: the application's figures beside ceilings measured in the same run.
        .target(
            name: "PaymentsBench",
            dependencies: [
                "PaymentsCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Thin CLI: parses flags, builds, runs.
        .executableTarget(
            name: "payments",
            dependencies: [
                "PaymentsCore",
                "PaymentsHTTP",
                "PaymentsProof",
                "PaymentsBench",
                "PaymentsSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Build tool: turns text files into Swift string constants.
        .executableTarget(name: "EmbedFilesTool"),
        .plugin(
            name: "EmbedFiles",
            capability: .buildTool(),
            dependencies: ["EmbedFilesTool"]
        ),
        .testTarget(
            name: "PaymentsCoreTests",
            dependencies: ["PaymentsCore", "PaymentsSimulator", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "PaymentsSimulatorTests",
            dependencies: [
                "PaymentsSimulator",
                "PaymentsHTTP",
                "PaymentsCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "PaymentsBenchTests",
            dependencies: ["PaymentsBench"]
        ),
        .testTarget(
            name: "PaymentsProofTests",
            dependencies: ["PaymentsProof", "PaymentsCore"]
        ),
        .testTarget(
            name: "PaymentsHTTPTests",
            dependencies: [
                "PaymentsHTTP",
                "PaymentsCore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PaymentsBench",
                "PaymentsCore",
                "PaymentsSimulator",
                "PaymentsProof",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
    ]
)
