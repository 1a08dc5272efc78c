import Engine
import Foundation
import Testing

@Suite struct BLASRuntimeTests {
    @Test func genericKernelsOnModernCPUsAreReplaced() {
        let avx512: Set<String> = ["avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
        #expect(BLASRuntime.coreToReexec(running: "Prescott", flags: avx512, environment: nil) == "SkylakeX")
        #expect(BLASRuntime.coreToReexec(running: "Prescott", flags: ["avx2", "fma"], environment: nil) == "Haswell")
        #expect(BLASRuntime.coreToReexec(running: "Prescott", flags: ["sse3"], environment: nil) == nil)
        #expect(BLASRuntime.coreToReexec(running: "Cooperlake", flags: avx512, environment: nil) == nil)
        #expect(BLASRuntime.coreToReexec(running: "Prescott", flags: avx512, environment: "Prescott") == nil)
    }

    /// The shipped executable runs fast kernels wherever the CPU has them.
    @Test func executableRunsAFastKernel() throws {
        let output = try runExecutable("nnsight", ["info", "--json"], environment: ["OPENBLAS_CORETYPE": nil])
        let info = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let core = try #require(info["blas_core"] as? String)
        if BLASRuntime.recommendedCore(flags: BLASRuntime.cpuFlags) != nil {
            #expect(info["blas_core_generic"] as? Bool == false, "OpenBLAS runs the generic kernel \(core)")
        }
    }
}

/// Runs a product built next to the test bundle and returns its standard output.
func runExecutable(_ name: String, _ arguments: [String], environment changes: [String: String?] = [:]) throws -> String {
    let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let process = Process()
    process.executableURL = directory.appendingPathComponent(name)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in changes { environment[key] = value }
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw EngineError.invalidArgument("\(name) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}
