/// Why a message was refused. Each maps to the `Error` message sent back to its sender.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case tooLarge(bytes: Int, limit: Int)
    case malformed(String)
    case versionMismatch(received: UInt32, expected: UInt32)
    case unknownMessage
    case invalidTensor(String)

    public var description: String {
        switch self {
        case let .tooLarge(bytes, limit): "message of \(bytes) bytes exceeds the limit of \(limit) bytes"
        case let .malformed(detail): "malformed message: \(detail)"
        case let .versionMismatch(received, expected):
            "protocol version \(received) is not supported (this side speaks version \(expected))"
        case .unknownMessage: "envelope carries no message type this side knows"
        case let .invalidTensor(detail): "invalid tensor: \(detail)"
        }
    }

    public var code: WireErrorCode {
        switch self {
        case .tooLarge: .errorTooLarge
        case .malformed: .errorMalformed
        case .versionMismatch: .errorVersionMismatch
        case .unknownMessage: .errorUnknownMessage
        case .invalidTensor: .errorInvalidTensor
        }
    }

    /// The reply that tells the sender what was wrong.
    public func reply(requestId: UInt64 = 0) -> Envelope {
        var error = Nnsight_V1_Error()
        error.code = code
        error.message = description
        return Envelope.with {
            $0.protocolVersion = WireProtocol.version
            $0.requestID = requestId
            $0.error = error
        }
    }
}
