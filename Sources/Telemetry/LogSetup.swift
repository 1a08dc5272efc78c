import Logging

/// Logs go to stderr (stdout is a script's output), at one level for the whole process
/// (`--log-level`). Log lines carry ids, counts and durations, never activation data.
public enum LogSetup {
    /// Call once, before any `Logger` is made.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// `--log-level`'s values, quietest last.
    public static let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
}
