/// The host part of a ZeroMQ TCP endpoint, and what peers should connect to when a socket was
/// bound to every interface (`tcp://0.0.0.0:5557`, `tcp://*:5557`): a wildcard is no address.
///
/// ```swift
/// Endpoint.host(of: "tcp://10.0.0.2:5555")                                  // "10.0.0.2"
/// Endpoint.reachable("tcp://0.0.0.0:5557", at: "worker-0.nnsight")         // "tcp://worker-0.nnsight:5557"
/// ```
public enum Endpoint {
    /// The host of a `tcp://HOST:PORT` endpoint (IPv6 without brackets), nil for other transports.
    public static func host(of endpoint: String) -> String? {
        guard endpoint.hasPrefix("tcp://") else { return nil }
        let rest = endpoint.dropFirst("tcp://".count)
        if rest.hasPrefix("[") { return String(rest.dropFirst().prefix { $0 != "]" }) }
        guard let colon = rest.lastIndex(of: ":") else { return String(rest) }
        return String(rest[..<colon])
    }

    /// Whether the endpoint was bound to every interface.
    public static func isWildcard(_ endpoint: String) -> Bool {
        guard let host = host(of: endpoint) else { return false }
        return host == "0.0.0.0" || host == "*" || host == "::"
    }

    /// `endpoint` with a wildcard host replaced by `host` (other endpoints unchanged).
    public static func reachable(_ endpoint: String, at host: String) -> String {
        guard isWildcard(endpoint), let colon = endpoint.lastIndex(of: ":") else { return endpoint }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return "tcp://" + bracketed + endpoint[colon...]
    }
}
