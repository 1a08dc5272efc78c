import CZMQ
import Foundation

/// The wire protocol's identity and the generated message types under short names.
public enum WireProtocol {
    /// Bumped on every incompatible schema change; checked on every message received.
    public static let version: UInt32 = 2

    /// Default ceiling for one message (a GPT-2 small prompt pass of 1024 tokens is 3 MB of
    /// hidden states; full logits for 1024 tokens are 200 MB and never travel).
    public static let defaultMaxMessageBytes = 512 << 20

    /// Wall-clock nanoseconds since 1970, as `sent_unix_ns` fields carry them.
    public static func unixNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// The linked libzmq's version, e.g. "4.3.4".
    public static var zmqVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}

public typealias Envelope = Nnsight_V1_Envelope
public typealias WireErrorCode = Nnsight_V1_ErrorCode
