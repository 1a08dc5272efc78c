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
        guard let status = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return kilobytes(field, in: status).map { $0 * 1024 }
    }

    /// A `/proc/PID/status` field's kB: "VmHWM:\t 6324000 kB", or with no space once the number
    /// fills its 8 columns ("VmHWM:\t12633912 kB", past 10 GB).
    static func kilobytes(_ field: String, in status: String) -> Int? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }) else { return nil }
        return Int(line.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    }
}
