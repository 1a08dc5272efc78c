import CZMQ

/// The wire protocol's identity. The schema, codec and transport arrive with the Wire issue;
/// this much already proves the package links libzmq.
public enum WireProtocol {
    /// Bumped on every incompatible schema change; checked on every connection.
    public static let version: UInt32 = 1

    /// The linked libzmq's version, e.g. "4.3.4".
    public static var zmqVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
