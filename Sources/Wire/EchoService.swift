import Foundation

/// A diagnostic service: answers every valid envelope with itself and every invalid one with
/// an `Error` envelope, and keeps serving. Used by the loopback tests, the wire benchmark, and
/// operators checking that two hosts can talk (`nnsight-wire-echo --bind tcp://...`).
///
/// ```swift
/// let socket = try context.socket(.router)
/// try socket.bind("tcp://127.0.0.1:5555")
/// let stats = try EchoService(socket: socket).serve(idleTimeoutMs: 30_000)
/// ```
public final class EchoService {
    public struct Stats: Sendable, Equatable {
        public var echoed = 0
        public var refused = 0
    }

    private let socket: ZMQSocket
    private let maxBytes: Int

    /// `socket` must be a ROUTER.
    public init(socket: ZMQSocket, maxBytes: Int = WireProtocol.defaultMaxMessageBytes) {
        self.socket = socket
        self.maxBytes = maxBytes
    }

    /// Serves until no message arrives for `idleTimeoutMs`, or `shouldStop` says so (checked
    /// every 100 ms). A Cancel envelope whose reason is "shutdown" also stops it, after the reply.
    @discardableResult
    public func serve(idleTimeoutMs: Int = 30_000, shouldStop: () -> Bool = { false }) throws(ZMQError) -> Stats {
        var stats = Stats()
        var idle = 0
        while idle < idleTimeoutMs && !shouldStop() {
            guard let frames = try socket.receive(timeoutMs: 100) else {
                idle += 100
                continue
            }
            idle = 0
            // ROUTER: [peer id, payload]; anything else is a framing error.
            guard frames.count == 2 else {
                stats.refused += 1
                if let peer = frames.first {
                    let reply = WireError.malformed("expected 1 payload frame, got \(frames.count - 1)").reply()
                    try socket.send([peer, (try? Framing.encode(reply)) ?? Data()])
                }
                continue
            }
            let reply: Envelope
            var stop = false
            do throws(WireError) {
                reply = try Framing.decode(frames[1], maxBytes: maxBytes)
                stats.echoed += 1
                if case let .cancel(c)? = reply.body, c.reason == "shutdown" { stop = true }
            } catch {
                stats.refused += 1
                reply = error.reply()
            }
            try socket.send([frames[0], (try? Framing.encode(reply)) ?? Data()])
            if stop { break }
        }
        return stats
    }
}
