import CZMQ
import Foundation

/// A ZeroMQ context. Thread-safe (libzmq's contexts are), so it may be shared across threads
/// and tasks; sockets are not, and each belongs to the one thread that uses it.
///
/// ```swift
/// let context = ZMQContext()
/// let socket = try context.socket(.dealer)
/// try socket.connect("tcp://127.0.0.1:5555")
/// ```
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        handle = zmq_ctx_new()
    }

    /// Terminates the context: blocks until every socket is closed (sockets default to linger 0).
    deinit { zmq_ctx_term(handle) }

    public func socket(_ type: ZMQSocket.Kind) throws(ZMQError) -> ZMQSocket {
        guard let socket = zmq_socket(handle, type.rawValue) else { throw ZMQError.last("zmq_socket") }
        return ZMQSocket(handle: socket, kind: type, context: self)
    }
}

/// A failed libzmq call: the call, errno and libzmq's message.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let code: Int32
    public var description: String { "\(call): \(String(cString: zmq_strerror(code))) (errno \(code))" }

    static func last(_ call: String) -> ZMQError { ZMQError(call: call, code: zmq_errno()) }

    /// A receive or send that timed out or would block.
    public var isTimeout: Bool { code == EAGAIN }
    /// A ROUTER_MANDATORY send to a peer that is not connected.
    public var isUnreachable: Bool { code == EHOSTUNREACH }
}
