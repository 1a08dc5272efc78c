import Foundation

/// A process's memory as Linux reports it (`/proc/PID/status`); nil where it cannot be read.
public enum ProcessMemory {
    /// Resident memory now (VmRSS), in bytes. This process's is read from `statm` (one number, cheap
    /// enough to read every few thousand script statements).
    public static func resident(pid: Int32? = nil) -> Int? {
        if let pid { return statusBytes(pid: pid, field: "VmRSS:") }
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The most resident memory so far (VmHWM), in bytes.
    public static func peak(pid: Int32? = nil) -> Int? { statusBytes(pid: pid, field: "VmHWM:") }

    private static func statusBytes(pid: Int32?, field: String) -> Int? {
        let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
        guard let status = try? String(contentsOfFile: path, encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }
}
