import CZMQ
import Foundation

/// A ZeroMQ socket, owned by one thread: it is deliberately not `Sendable`.
/// Closed with linger 0 when released, so shutdown never blocks on unsent messages.
///
/// ```swift
/// let server = try context.socket(.router)
/// try server.bind("ipc:///tmp/stage0")
/// if let frames = try server.receive(timeoutMs: 1000) { try server.send(frames) }  // echo
/// ```
public final class ZMQSocket {
    public enum Kind: Int32, Sendable {
        case pair = 0, pub = 1, sub = 2, req = 3, rep = 4, dealer = 5, router = 6, pull = 7, push = 8
    }

    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    let context: ZMQContext  // keeps the context alive while the socket lives
    private var closed = false
    private var receiveTimeoutMs = -1
    /// A CURVE server socket (`makeCurveServer`): each message carries its sender's public key.
    var authenticates = false
    /// The public key (Z85) of the sender of the last message received, on a CURVE server socket.
    public private(set) var lastSenderKey: String?

    init(handle: UnsafeMutableRawPointer, kind: Kind, context: ZMQContext) {
        self.handle = handle
        self.kind = kind
        self.context = context
        try? setOption(ZMQ_LINGER, Int32(0))
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("zmq_bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("zmq_connect \(endpoint)") }
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*` to the chosen port).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    public func setOption(_ option: Int32, _ value: Int64) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    public func setOption(_ option: Int32, bytes: [UInt8]) throws(ZMQError) {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }
        guard rc == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    /// Refuses (drops, and disconnects the peer of) any message larger than `bytes`, inside
    /// libzmq, before it is buffered: the first size check a message meets.
    public func setMaxMessageSize(_ bytes: Int) throws(ZMQError) { try setOption(ZMQ_MAXMSGSIZE, Int64(bytes)) }

    /// ROUTER sockets: a send to a peer whose pipe is full fails with EAGAIN (with `dontWait`)
    /// and one to a peer that is gone with EHOSTUNREACH, instead of the message being dropped.
    public func reportUnroutable() throws(ZMQError) { try setOption(ZMQ_ROUTER_MANDATORY, Int32(1)) }

    /// The routing id a DEALER presents to a ROUTER.
    public func setIdentity(_ id: String) throws(ZMQError) { try setOption(ZMQ_ROUTING_ID, bytes: Array(id.utf8)) }

    /// SUB sockets: receive messages starting with `prefix` ("" for all).
    public func subscribe(_ prefix: String = "") throws(ZMQError) { try setOption(ZMQ_SUBSCRIBE, bytes: Array(prefix.utf8)) }

    /// Sends one multipart message.
    public func send(_ frames: [Data], dontWait: Bool = false) throws(ZMQError) {
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, frame.count, flags) }
            guard rc >= 0 else { throw ZMQError.last("zmq_send") }
        }
    }

    public func send(_ frame: Data) throws(ZMQError) { try send([frame]) }

    /// Receives one multipart message; nil when nothing arrives within `timeoutMs`
    /// (-1 waits forever).
    public func receive(timeoutMs: Int = -1) throws(ZMQError) -> [Data]? {
        // A receive timeout on the socket rather than a zmq_poll first: one call per message.
        if timeoutMs != receiveTimeoutMs {
            try setOption(ZMQ_RCVTIMEO, Int32(clamping: timeoutMs))
            receiveTimeoutMs = timeoutMs
        }
        var frames: [Data] = []
        lastSenderKey = nil
        repeat {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            guard zmq_msg_recv(&message, handle, 0) >= 0 else {
                let error = ZMQError.last("zmq_msg_recv")
                // Frames of one message arrive together, so a timeout can only hit the first.
                if error.isTimeout && frames.isEmpty { return nil }
                throw error
            }
            // (a ROUTER's first frame is the routing id it made itself: no metadata)
            if authenticates, let key = zmq_msg_gets(&message, "User-Id") { lastSenderKey = String(cString: key) }
            frames.append(Data(bytes: zmq_msg_data(&message), count: zmq_msg_size(&message)))
        } while hasMore
        return frames
    }

    private var hasMore: Bool {
        var more: Int32 = 0
        var size = MemoryLayout<Int32>.size
        zmq_getsockopt(handle, ZMQ_RCVMORE, &more, &size)
        return more != 0
    }

    /// Whether a message can be received within `timeoutMs`.
    public func poll(timeoutMs: Int) throws(ZMQError) -> Bool {
        try ZMQSocket.poll([self], timeoutMs: timeoutMs).first ?? false
    }

    /// Waits until any of `sockets` has a message or `timeoutMs` passes; returns which are readable.
    public static func poll(_ sockets: [ZMQSocket], timeoutMs: Int) throws(ZMQError) -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let rc = zmq_poll(&items, Int32(items.count), timeoutMs)
        guard rc >= 0 else { throw ZMQError.last("zmq_poll") }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
