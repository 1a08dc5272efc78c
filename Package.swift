// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "nnsight-swift",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "nnsight", targets: ["nnsight"]),
        .executable(name: "nnsight-worker", targets: ["nnsight-worker"]),
        .executable(name: "nnsight-wire-echo", targets: ["nnsight-wire-echo"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "Coordinator", targets: ["Coordinator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // No pkgConfig for CZMQ: `pkg-config libzmq` adds `-isystem /usr/include/mit-krb5`, which SwiftPM
        // rejects with a warning on every build; zmq.h is in /usr/include, so the module map suffices.
        .systemLibrary(name: "CZMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // glibc's malloc tuning (mallopt), which Swift's Glibc module does not export.
        .systemLibrary(name: "CMalloc"),
        // The CPU's spin-wait hint and CPU affinity, for the compute pool's threads.
        .systemLibrary(name: "CThread"),
        // The cache prefetch hint, for the matmul kernels.
        .systemLibrary(name: "CPrefetch"),
        .target(name: "Wire", dependencies: [
            "CZMQ", "CMalloc",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        // Small-batch matmul kernels compiled for AVX2 + FMA; Engine calls them only on CPUs
        // that have both (checked at run time), so the rest of the binary stays portable x86-64.
        .target(name: "EngineKernels", dependencies: ["CPrefetch"], swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"])]),
        // Long prompts' products with AVX-512 (checked at run time as well).
        .target(name: "EngineKernelsAVX512", dependencies: ["EngineKernels"], swiftSettings: [.unsafeFlags(["-target-cpu", "skylake-avx512"])]),
        .target(name: "Engine", dependencies: ["CBLAS", "CThread", "EngineKernels", "EngineKernelsAVX512"]),
        // The intervention graph's own types: IR, typed tensors, the op registry, static types.
        .target(name: "Graph", dependencies: ["Engine"]),
        // The graph at the edge: the IR, tensors and errors to and from the protobuf.
        .target(name: "GraphWire", dependencies: ["Graph", "Wire", "Engine"]),
        // What an operator sees: Prometheus metrics over HTTP, process figures.
        .target(name: "Telemetry", dependencies: [
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Worker", dependencies: [
            "Wire", "Engine", "Graph", "GraphWire", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The coordinator runs in-process workers in local mode, hence Worker.
        .target(name: "Coordinator", dependencies: [
            "Wire", "Engine", "Worker", "Graph", "GraphWire", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Script", dependencies: ["Coordinator", "Engine", "Graph", "Telemetry"]),
        .executableTarget(name: "nnsight", dependencies: [
            "Coordinator", "Engine", "Wire", "Script", "Telemetry",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "nnsight-worker", dependencies: [
            "Worker", "Engine", "Wire", "Telemetry",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "nnsight-wire-echo", dependencies: [
            "Wire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "GraphTests", dependencies: ["Graph", "GraphWire", "Engine", "Wire", "Worker"]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Script", "Engine", "Worker", "Wire", "Graph", "GraphWire", "Telemetry", "nnsight", "nnsight-worker"]),
        .testTarget(name: "ScriptTests", dependencies: ["Script", "Coordinator", "Engine", "Graph", "nnsight", "nnsight-worker"]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "nnsight-wire-echo"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "EngineKernels", "nnsight"]),
    ],
    swiftLanguageModes: [.v6]
)
