@testable import Coordinator
import Foundation
import Testing

/// The outbox's own rules, without sockets: order per peer, the byte limit (final messages past
/// it), gone peers reported, and the waiting bytes it keeps for the serving loop.
@Suite struct PeerOutboxTests {
    let a = Data("a".utf8), b = Data("b".utf8)

    @Test func framesWaitInOrderWithinTheLimitAndFlushWhenThereIsRoom() {
        var outbox = PeerOutbox(limitBytes: 14)
        var sent: [String] = []
        var room = false
        let attempt: (Data, Data) -> PeerOutbox.Attempt = { _, frame in
            guard room else { return .full }
            sent.append(String(decoding: frame, as: UTF8.self))
            return .sent
        }
        #expect(outbox.send(Data("1234".utf8), to: a, via: attempt) == .queued)
        #expect(outbox.send(Data("5678".utf8), to: a, via: attempt) == .queued)
        #expect(outbox.send(Data("90ab90ab".utf8), to: a, via: attempt) == .overBudget)   // 16 > 14
        #expect(outbox.send(Data("final".utf8), to: a, exempt: true, via: attempt) == .queued)
        #expect(outbox.waitingBytes == 13 && outbox.waiting(for: a) == 13)
        room = true
        // A new frame must not overtake those that wait.
        #expect(outbox.send(Data("x".utf8), to: a, via: attempt) == .queued)
        #expect(outbox.flush(via: attempt).isEmpty)
        #expect(sent == ["1234", "5678", "final", "x"])
        #expect(outbox.waitingBytes == 0)
        #expect(outbox.send(Data("y".utf8), to: a, via: attempt) == .sent)
    }

    @Test func aGonePeerIsReportedAndItsFramesDropped() {
        var outbox = PeerOutbox(limitBytes: 100)
        #expect(outbox.send(Data("1".utf8), to: a) { _, _ in .full } == .queued)
        #expect(outbox.send(Data("22".utf8), to: b) { _, _ in .full } == .queued)
        #expect(outbox.waitingBytes == 3)
        let gone = outbox.flush { peer, _ in peer == a ? .unreachable : .full }
        #expect(gone == [a])
        #expect(outbox.waitingBytes == 2)
        outbox.drop(b)
        #expect(outbox.waitingBytes == 0)
        #expect(outbox.send(Data("3".utf8), to: a) { _, _ in .unreachable } == .unreachable)
    }
}
