// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "payments",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "payments", targets: ["payments"]),
        .library(name: "PaymentsCore", targets: ["PaymentsCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Domain and database logic: everything the CLI and HTTP layer call into.
        .target(
            name: "PaymentsCore",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Migrations")]
        ),
        // Thin CLI + HTTP layer.
        .executableTarget(
            name: "payments",
            dependencies: [
                "PaymentsCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [.copy("openapi.yaml")]
        ),
        .testTarget(
            name: "PaymentsCoreTests",
            dependencies: ["PaymentsCore"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PaymentsCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
    ]
)
