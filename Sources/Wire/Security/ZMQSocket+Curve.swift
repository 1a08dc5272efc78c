import CZMQ
import Foundation

extension ZMQContext {
    /// A PUSH socket connected to `endpoint`: a CURVE client of the server with public key
    /// `serverKey` when `keys` are given (the coordinator's pushes to workers, a stage's to the next).
    public func push(connectingTo endpoint: String, keys: CurveKeyPair?, serverKey: String) throws(ZMQError) -> ZMQSocket {
        let socket = try self.socket(.push)
        if let keys { try socket.makeCurveClient(keys, serverKey: serverKey) }
        try socket.connect(endpoint)
        return socket
    }
}

extension ZMQSocket {
    /// Makes this socket a CURVE server with `keys` (before `bind`): every connection is
    /// encrypted, and the context's `ZAPHandler` decides who may connect. Start the handler
    /// first: libzmq lets every key in when none is bound (where libzmq has the draft option
    /// ZMQ_ZAP_ENFORCE_DOMAIN, it is set so that it refuses them instead).
    public func makeCurveServer(_ keys: CurveKeyPair) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
        try setOption(ZMQ_ZAP_DOMAIN, bytes: Array(ZAPHandler.domain.utf8))
        let enforceDomain: Int32 = 93  // ZMQ_ZAP_ENFORCE_DOMAIN, a draft option in 4.3's headers
        try? setOption(enforceDomain, Int32(1))
        authenticates = true
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey` (before
    /// `connect`).
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: Array(serverKey.utf8))
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: Array(keys.publicKey.utf8))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
    }

    /// Reports this socket's failed handshakes (a peer that refused our key, or that speaks
    /// another security mechanism) to `monitor`.
    public func monitorHandshakes() throws(ZMQError) -> HandshakeMonitor {
        let address = "inproc://nnsight-monitor-\(UUID().uuidString)"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        guard zmq_socket_monitor(handle, address, events) == 0 else { throw ZMQError.last("zmq_socket_monitor") }
        let pair = try context.socket(.pair)
        try pair.connect(address)
        return HandshakeMonitor(socket: pair)
    }
}

/// The handshake events of one socket (see `ZMQSocket.monitorHandshakes`).
public final class HandshakeMonitor {
    let socket: ZMQSocket
    /// Whether a handshake has ever succeeded.
    public private(set) var succeeded = false
    init(socket: ZMQSocket) { self.socket = socket }

    /// The latest failure since the last call, as a sentence, nil if none.
    public func failure() -> String? { failures().last ?? nil }

    /// Every handshake event since the last call, in order: nil for a success, else the failure
    /// as a sentence (a server's monitor: one per refused peer).
    public func failures() -> [String?] {
        var events: [String?] = []
        while let frames = try? socket.receive(timeoutMs: 0), let first = frames.first, first.count >= 6 {
            let event = Int32(first[first.startIndex]) | Int32(first[first.startIndex + 1]) << 8
            let value = first[(first.startIndex + 2)...].prefix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            switch event {
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                succeeded = true
                events.append(nil)
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: events.append("the peer refused this key (ZAP status \(value))")
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: events.append("the handshake failed (protocol error 0x\(String(value, radix: 16)): the two ends use different security, or the wrong server key)")
            default: events.append("the handshake failed (errno \(value))")
            }
        }
        return events
    }
}
