import ArgumentParser
import Engine
import Foundation
import Wire

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the BLAS kernels, threads and libraries this machine runs with.")

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        let figures: [(String, Any)] = [
            ("blas_core", BLASRuntime.coreName),
            ("blas_core_generic", BLASRuntime.isGenericCore),
            ("compute_threads", BLASRuntime.threads),
            ("recommended_core", BLASRuntime.recommendedCore(flags: BLASRuntime.cpuFlags) ?? "none"),
            ("openblas_coretype", ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? ""),
            ("cores", ComputePool.usableCores),  // the ones this process may use
            ("machine_cores", ProcessInfo.processInfo.activeProcessorCount),
            ("zmq", WireProtocol.zmqVersion),
            ("protocol_version", Int(WireProtocol.version)),
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: figures.map { ($0.0, $0.1) }),
                                                  options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (key, value) in figures { print("\(key): \(value)") }
        }
    }
}
