import Foundation
import Testing
import Wire

@Suite struct ZMQSocketTests {
    @Test(arguments: ["inproc://t-\(UUID().uuidString)", "ipc:///tmp/nnsight-test-\(UUID().uuidString)", "tcp://127.0.0.1:*"])
    func routerDealerMultipartRoundTrip(endpoint: String) throws {
        let context = ZMQContext()
        let server = try context.socket(.router)
        try server.bind(endpoint)
        let client = try context.socket(.dealer)
        try client.setIdentity("client-1")
        try client.connect(server.lastEndpoint)
        try client.send([Data("a".utf8), Data(), Data(repeating: 7, count: 100_000)])
        let request = try #require(try server.receive(timeoutMs: 2000))
        #expect(request.count == 4)
        #expect(request[0] == Data("client-1".utf8))
        #expect(request[1] == Data("a".utf8) && request[2].isEmpty && request[3].count == 100_000)
        try server.send([request[0], Data("reply".utf8)])
        #expect(try client.receive(timeoutMs: 2000) == [Data("reply".utf8)])
    }

    @Test func receiveTimesOutWithNil() throws {
        let context = ZMQContext()
        let socket = try context.socket(.pull)
        try socket.bind("inproc://idle-\(UUID().uuidString)")
        let start = Date()
        #expect(try socket.receive(timeoutMs: 50) == nil)
        #expect(Date().timeIntervalSince(start) >= 0.04)
    }

    @Test func pushPullAndPubSub() throws {
        let context = ZMQContext()
        let pull = try context.socket(.pull)
        try pull.bind("inproc://pp")
        let push = try context.socket(.push)
        try push.connect("inproc://pp")
        try push.send(Data("work".utf8))
        #expect(try pull.receive(timeoutMs: 1000) == [Data("work".utf8)])

        let pub = try context.socket(.pub)
        try pub.bind("inproc://ps")
        let sub = try context.socket(.sub)
        try sub.subscribe("beat")
        try sub.connect("inproc://ps")
        // Subscriptions propagate asynchronously: publish until one arrives.
        var got: [Data]?
        for _ in 0..<100 where got == nil {
            try pub.send(Data("other".utf8))
            try pub.send(Data("beat 1".utf8))
            got = try sub.receive(timeoutMs: 10)
        }
        #expect(got == [Data("beat 1".utf8)])
    }

    @Test func pollReportsWhichSocketIsReadable() throws {
        let context = ZMQContext()
        let a = try context.socket(.pull), b = try context.socket(.pull)
        try a.bind("inproc://poll-a")
        try b.bind("inproc://poll-b")
        let push = try context.socket(.push)
        try push.connect("inproc://poll-b")
        try push.send(Data("x".utf8))
        var ready = [false, false]
        for _ in 0..<50 where !ready[1] { ready = try ZMQSocket.poll([a, b], timeoutMs: 20) }
        #expect(ready == [false, true])
    }

    @Test func badEndpointsAreErrors() throws {
        let context = ZMQContext()
        let socket = try context.socket(.router)
        #expect(throws: ZMQError.self) { try socket.bind("nonsense://x") }
        #expect(throws: ZMQError.self) { try socket.connect("tcp://") }
    }

    @Test func oversizedMessagesAreDroppedByTheSocketLimit() throws {
        let context = ZMQContext()
        let server = try context.socket(.router)
        try server.setMaxMessageSize(1000)
        try server.bind("tcp://127.0.0.1:*")
        let client = try context.socket(.dealer)
        try client.connect(server.lastEndpoint)
        // A message under the limit arrives (the connection works) ...
        try client.send(Data(count: 500))
        #expect(try server.receive(timeoutMs: 2000)?.last?.count == 500)
        // ... one over it does not.
        try client.send(Data(count: 5000))
        #expect(try server.receive(timeoutMs: 300) == nil)
    }
}
