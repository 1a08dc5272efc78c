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
        try printFigures(figures, json: json)
    }
}
