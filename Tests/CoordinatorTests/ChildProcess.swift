import Foundation

/// A process a test starts (a coordinator, a worker, a client), its stderr collected as it comes.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var text = ""

    /// `stdout`: a file for the process's standard output (else it is discarded).
    init(_ executable: URL, _ arguments: [String], stdout: URL? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        let err = Pipe()
        process.standardError = err
        if let stdout {
            _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: stdout)
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            lock.withLock { text += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    /// An executable beside the test bundle (`nnsight`, `nnsight-worker`).
    static func beside(_ name: String) -> URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name)
    }

    var stderr: String { lock.withLock { text } }
    var pid: Int32 { process.processIdentifier }
    func signal(_ s: Int32) { kill(pid, s) }

    func waitForStderr(_ fragment: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stderr.contains(fragment) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// Whether it exited within `seconds`.
    func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return !process.isRunning
    }

    /// SIGKILL (SIGTERM may be blocked: children inherit the spawning thread's signal mask).
    func stop() {
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}
