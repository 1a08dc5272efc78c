import Foundation

/// What the coordinator sends its peers on the control ROUTER, in order per peer. A ROUTER drops
/// a message silently when its peer's pipe is at the high-water mark; with ROUTER_MANDATORY it
/// says so instead (EAGAIN), and the frame waits here until the peer has read enough. A peer's
/// waiting bytes are bounded (`limitBytes`): past it a send is refused, and the coordinator ends
/// the trace with an error that says the client is not reading. A peer that has disconnected is
/// reported, so its traces can be cancelled. I/O-free: the caller passes the socket's send.
///
/// ```swift
/// var outbox = PeerOutbox(limitBytes: 1 << 30)
/// switch outbox.send(frame, to: client, via: trySend) { case .overBudget: ...; default: break }
/// let gone = outbox.flush(via: trySend)   // each turn of the serving loop
/// ```
struct PeerOutbox {
    /// What one non-blocking send did.
    enum Attempt { case sent, full, unreachable }
    /// What became of a frame given to `send`.
    enum Outcome: Equatable { case sent, queued, overBudget, unreachable }

    /// Bytes that may wait for one peer.
    let limitBytes: Int
    private var queues: [Data: Queue] = [:]

    private struct Queue {
        var frames: [Data] = []
        var head = 0
        var bytes = 0
        var isEmpty: Bool { head == frames.count }
    }

    init(limitBytes: Int) { self.limitBytes = limitBytes }

    /// Bytes waiting for `peer`.
    func waiting(for peer: Data) -> Int { queues[peer]?.bytes ?? 0 }
    /// Bytes waiting for every peer (kept as frames come and go: the serving loop reads it each turn).
    private(set) var waitingBytes = 0

    /// Sends `frame` to `peer` now if nothing waits before it and its pipe has room, else queues
    /// it. `exempt` frames (a trace's final error) are queued past the limit: they are small and
    /// must arrive.
    mutating func send(_ frame: Data, to peer: Data, exempt: Bool = false, via attempt: (Data, Data) -> Attempt) -> Outcome {
        if queues[peer]?.isEmpty ?? true {
            switch attempt(peer, frame) {
            case .sent: return .sent
            case .unreachable:
                queues[peer] = nil
                return .unreachable
            case .full: break
            }
        }
        var queue = queues.removeValue(forKey: peer) ?? Queue()
        defer { queues[peer] = queue }
        guard exempt || queue.bytes + frame.count <= limitBytes else { return .overBudget }
        queue.frames.append(frame)
        queue.bytes += frame.count
        waitingBytes += frame.count
        return .queued
    }

    /// Sends what waits, per peer in order, until a pipe is full again. Returns the peers that
    /// are gone (their frames are dropped: nobody can read them).
    mutating func flush(via attempt: (Data, Data) -> Attempt) -> [Data] {
        var gone: [Data] = []
        for peer in Array(queues.keys) {
            var queue = queues.removeValue(forKey: peer)!
            loop: while !queue.isEmpty {
                let frame = queue.frames[queue.head]
                switch attempt(peer, frame) {
                case .sent:
                    queue.head += 1
                    queue.bytes -= frame.count
                    waitingBytes -= frame.count
                case .full: break loop
                case .unreachable:
                    gone.append(peer)
                    waitingBytes -= queue.bytes
                    queue = Queue()
                }
            }
            guard !queue.isEmpty else { continue }
            if queue.head > 1024, queue.head * 2 > queue.frames.count {
                queue.frames.removeFirst(queue.head)
                queue.head = 0
            }
            queues[peer] = queue
        }
        return gone
    }

    /// Forgets what waits for `peer`.
    mutating func drop(_ peer: Data) { waitingBytes -= queues.removeValue(forKey: peer)?.bytes ?? 0 }
}
