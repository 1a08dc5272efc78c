import CZMQ
import Foundation
import Synchronization

/// ZeroMQ's authentication handler (ZAP, RFC 27) for one context: every CURVE handshake on a
/// server socket of the context asks it, and only peers whose public key is accepted get in.
/// Refused peers never reach a decoder; each refusal is reported (address and key) to `onRefusal`.
///
/// ```swift
/// let zap = try ZAPHandler(context: context, accepted: Set(keys.authorized.values)) { print($0) }
/// let server = try context.socket(.router)
/// try server.makeCurveServer(keys.own)
/// try server.bind("tcp://0.0.0.0:5555")
/// ```
public final class ZAPHandler: Sendable {
    static let domain = "nnsight"
    /// What the handler's thread shares with its owner.
    final class Shared: Sendable {
        let accepted: Mutex<Set<String>>
        let stopping = Atomic<Bool>(false)
        let finished = DispatchSemaphore(value: 0)
        init(_ accepted: Set<String>) { self.accepted = Mutex(accepted) }
    }
    private let shared: Shared

    /// Binds the context's ZAP endpoint (one handler per context) and answers on a thread of its own.
    public init(context: ZMQContext, accepted: Set<String>, onRefusal: @escaping @Sendable (String) -> Void) throws(ZMQError) {
        let shared = Shared(accepted)
        self.shared = shared
        let socket = try context.socket(.rep)
        try socket.bind("inproc://zeromq.zap.01")
        // The socket moves to the handler's thread; this one never touches it again.
        nonisolated(unsafe) let owned = socket
        let thread = Thread {
            defer { shared.finished.signal() }
            while !shared.stopping.load(ordering: .relaxed) {
                guard let request = try? owned.receive(timeoutMs: 100) else { continue }
                let isAccepted = { (key: String) in shared.accepted.withLock { $0.contains(key) } }
                _ = try? owned.send(Self.reply(to: request, isAccepted: isAccepted, onRefusal: onRefusal))
            }
            owned.close()
        }
        thread.name = "nnsight-zap"
        thread.start()
    }

    /// Replaces the accepted keys (a worker learns its senders from its assignment).
    public func accept(_ keys: Set<String>) { shared.accepted.withLock { $0 = keys } }

    public func stop() {
        guard !shared.stopping.exchange(true, ordering: .relaxed) else { return }
        shared.finished.wait()
    }

    deinit { stop() }

    /// RFC 27: version, request id, domain, address, identity, mechanism, credentials ->
    /// version, request id, status code, status text, user id (the key), metadata.
    static func reply(to request: [Data], isAccepted: (String) -> Bool, onRefusal: (String) -> Void) -> [Data] {
        guard request.count >= 6 else { return [] }
        let version = request[0], id = request[1], address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        func answer(_ code: String, _ text: String, user: String = "") -> [Data] {
            [version, id, Data(code.utf8), Data(text.utf8), Data(user.utf8), Data()]
        }
        guard mechanism == "CURVE", request.count >= 7, let key = CurveKeyPair.z85(Array(request[6])) else {
            onRefusal("refused \(address): mechanism \(mechanism), not CURVE")
            return answer("400", "CURVE keys required")
        }
        guard isAccepted(key) else {
            onRefusal("refused \(address): key \(key) is not accepted")
            return answer("400", "key not accepted")
        }
        return answer("200", "OK", user: key)
    }
}
