import Foundation
import SwiftProtobuf

/// One logical message on the wire is one ZeroMQ frame holding a protobuf `Envelope` (tensors
/// inside as raw bytes), after any routing frames a ROUTER socket adds.
///
/// ```swift
/// let frame = try Framing.encode(envelope)
/// let received = try Framing.decode(frame)            // size, version, body and tensors checked
/// ```
public enum Framing {
    /// The frame of `envelope`; a message over `maxBytes` (which its receiver would drop, and
    /// disconnect the sender) is refused here, where the sender can still say why.
    public static func encode(_ envelope: Envelope, maxBytes: Int = WireProtocol.defaultMaxMessageBytes) throws(WireError) -> Data {
        let frame: Data
        do { frame = try envelope.serializedData() } catch { throw .malformed("cannot encode: \(error)") }
        guard frame.count <= maxBytes else { throw .tooLarge(bytes: frame.count, limit: maxBytes) }
        return frame
    }

    /// Builds an envelope with the current protocol version.
    public static func envelope(requestId: UInt64 = 0, _ fill: (inout Envelope) -> Void) -> Envelope {
        var e = Envelope()
        e.protocolVersion = WireProtocol.version
        e.requestID = requestId
        fill(&e)
        return e
    }

    /// Decodes and validates one frame. The size limit is checked before any parsing.
    public static func decode(_ frame: Data, maxBytes: Int = WireProtocol.defaultMaxMessageBytes,
                              tensorLimits: HostTensor.Limits = HostTensor.Limits()) throws(WireError) -> Envelope {
        guard frame.count <= maxBytes else { throw .tooLarge(bytes: frame.count, limit: maxBytes) }
        let envelope: Envelope
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 32
            envelope = try Envelope(serializedBytes: frame, options: options)
        } catch {
            throw .malformed("\(error)")
        }
        guard envelope.protocolVersion == WireProtocol.version else {
            throw .versionMismatch(received: envelope.protocolVersion, expected: WireProtocol.version)
        }
        guard let body = envelope.body else { throw .unknownMessage }
        for tensor in tensors(in: body) { try HostTensor.validate(tensor, limits: tensorLimits) }
        return envelope
    }

    /// Every tensor a message carries, for validation.
    static func tensors(in body: Envelope.OneOf_Body) -> [Nnsight_V1_Tensor] {
        switch body {
        case let .activations(a):
            return [a.hidden, a.tokens, a.positions, a.mask].filter { $0.dtype != .unspecified || !$0.data.isEmpty || !$0.shape.isEmpty }
                + a.values.map(\.value)
        case let .saved(s): return s.skipped ? [] : [s.value]
        case let .submit(s): return s.graph.nodes.compactMap { node in
                if case let .constant(c)? = node.kind { return c.value }
                return nil
            }
        default: return []
        }
    }
}
