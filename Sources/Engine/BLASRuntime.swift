import CBLAS
import Foundation

/// OpenBLAS's kernel choice and threads.
///
/// Debian 12's OpenBLAS 0.3.21 picks its kernels in the library constructor, before `main`, and
/// falls back to the slow SSE3 "Prescott" kernels on CPUs it does not know. An executable calls
/// `ensureFastKernels()` first thing: if the generic kernel is running on a CPU with AVX2 or
/// AVX-512, it re-executes itself once with `OPENBLAS_CORETYPE` set from the CPU's features.
///
/// ```swift
/// BLASRuntime.ensureFastKernels()      // may not return: re-execs with the right core type
/// BLASRuntime.threads = 2
/// print(BLASRuntime.coreName)          // "SkylakeX", "Haswell", "Zen", ...
/// ```
public enum BLASRuntime {
    /// The kernel family OpenBLAS runs.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Threads a forward pass uses: the size of `ComputePool.shared`, which splits the products
    /// (OpenBLAS itself runs single-threaded inside each part).
    public static var threads: Int {
        get { ComputePool.shared.threads }
        set { ComputePool.shared.threads = newValue }
    }

    /// Kernels OpenBLAS falls back to when it does not recognise a modern x86 CPU.
    static let genericCores: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                            "Katmai", "Coppermine", "Northwood", "Banias", "Atom",
                                            "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Generic"]

    public static var isGenericCore: Bool { genericCores.contains(coreName) }

    /// The CPU's feature flags (from /proc/cpuinfo; empty elsewhere).
    public static let cpuFlags: Set<String> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }()

    /// The OpenBLAS core type a CPU with these flags should run, or nil without AVX2 or AVX-512.
    public static func recommendedCore(flags: Set<String>) -> String? {
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// The core type to re-execute with, or nil to keep the running kernels: only when OpenBLAS
    /// chose a generic kernel, the CPU has a fast one, and the user has not set the variable.
    public static func coreToReexec(running core: String, flags: Set<String>, environment: String?) -> String? {
        guard environment == nil, genericCores.contains(core) else { return nil }
        return recommendedCore(flags: flags)
    }

    /// Re-executes the process with `OPENBLAS_CORETYPE` set when OpenBLAS chose a generic kernel
    /// on a CPU that has a fast one. Does nothing if the variable is already set (a user's choice,
    /// or the second run).
    public static func ensureFastKernels() {
        let environment = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        guard let core = coreToReexec(running: coreName, flags: cpuFlags, environment: environment) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        var arguments = CommandLine.arguments.map { strdup($0) }
        arguments.append(nil)
        execv("/proc/self/exe", &arguments)
        // execv returned: keep running on the slow kernels rather than fail.
        for p in arguments { free(p) }
    }
}
