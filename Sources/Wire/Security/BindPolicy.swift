import Foundation

/// Whether an endpoint may be bound without CURVE: only this machine can reach loopback TCP,
/// `ipc://` and `inproc://`; anything else needs `--keys` (or an explicit `--insecure`).
///
/// ```swift
/// try BindPolicy.check("tcp://0.0.0.0:5555", keys: nil, insecure: false, flag: "--listen")  // throws
/// ```
public enum BindPolicy {
    public static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard let host = Endpoint.host(of: endpoint) else { return false }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses a non-local bind without keys, saying how to make them; with `insecure`, warns.
    public static func check(_ endpoint: String, keys: KeyDirectory?, insecure: Bool, flag: String) throws(SecurityError) {
        guard keys == nil, !isLocal(endpoint) else { return }
        guard insecure else {
            throw .directory("""
                refusing to bind \(flag) \(endpoint) without CURVE keys: anyone who can reach it could submit traces, \
                register as a worker and read prompts and activations. Make keys with `nnsight keygen --out DIR --name NAME` \
                and pass --keys DIR (see the README's "Security"), bind 127.0.0.1, or pass --insecure on a network you trust
                """)
        }
        FileHandle.standardError.write(Data("warning: \(flag) \(endpoint) is bound without authentication or encryption (--insecure)\n".utf8))
    }
}
