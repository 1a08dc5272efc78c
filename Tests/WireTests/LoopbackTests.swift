import Foundation
import Testing
import Wire

/// Two endpoints in separate processes: this test process and `nnsight-wire-echo`.
@Suite struct LoopbackTests {
    /// Starts the echo server and returns it with the endpoint it bound.
    static func startEcho(bind: String, maxBytes: Int = WireProtocol.defaultMaxMessageBytes) throws -> (Process, String) {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let process = Process()
        process.executableURL = directory.appendingPathComponent("nnsight-wire-echo")
        process.arguments = ["--bind", bind, "--idle-timeout", "20", "--max-bytes", String(maxBytes)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        return (process, String(decoding: line, as: UTF8.self))
    }

    static func shutdown(_ client: ZMQSocket, _ process: Process) throws {
        try client.send(try Framing.encode(Samples.envelope(.cancel(.with { $0.reason = "shutdown" }))))
        _ = try client.receive(timeoutMs: 2000)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test(arguments: ["tcp://127.0.0.1:*", "ipc:///tmp/nnsight-echo-\(UUID().uuidString)"])
    func tenThousandRequestsAreEchoedExactly(bind: String) throws {
        let (process, endpoint) = try Self.startEcho(bind: bind)
        defer { if process.isRunning { process.terminate() } }
        let context = ZMQContext()
        let client = try context.socket(.dealer)
        try client.connect(endpoint)
        let bodies = Samples.bodies
        for i in 0..<10_000 {
            var envelope = Samples.envelope(bodies[i % bodies.count], requestId: UInt64(i))
            if case var .activations(a)? = envelope.body {
                a.hidden = HostTensor(shape: [1, 1, 768], floats: (0..<768).map { Float($0 ^ i) }).wire  // 3 KB, distinct per request
                envelope.activations = a
            }
            try client.send(try Framing.encode(envelope))
            let reply = try #require(try client.receive(timeoutMs: 5000), "no reply to request \(i)")
            #expect(reply.count == 1)
            let decoded = try Framing.decode(reply[0])
            if decoded != envelope {
                Issue.record("request \(i): reply differs")
                break
            }
        }
        try Self.shutdown(client, process)
    }

    @Test func badInputGetsAnErrorReplyAndTheServerKeepsServing() throws {
        let (process, endpoint) = try Self.startEcho(bind: "tcp://127.0.0.1:*", maxBytes: 100_000)
        defer { if process.isRunning { process.terminate() } }
        let context = ZMQContext()
        let client = try context.socket(.dealer)
        try client.connect(endpoint)
        func exchange(_ frames: [Data]) throws -> Envelope {
            try client.send(frames)
            let reply = try #require(try client.receive(timeoutMs: 3000))
            return try Framing.decode(reply[0])
        }
        func expectError(_ frames: [Data], _ code: WireErrorCode, _ what: String) throws {
            let reply = try exchange(frames)
            #expect(reply.error.code == code, "\(what): \(reply)")
            #expect(!reply.error.message.isEmpty)
        }
        let valid = try Framing.encode(Samples.envelope(Samples.bodies[0]))
        try expectError([Data([0xde, 0xad, 0xbe, 0xef, 0xff])], .errorMalformed, "garbage")
        try expectError([valid.prefix(valid.count / 2)], .errorMalformed, "truncated")
        try expectError([valid, valid], .errorMalformed, "two payload frames")
        var old = Samples.envelope(Samples.bodies[0])
        old.protocolVersion = 7
        try expectError([try Framing.encode(old)], .errorVersionMismatch, "wrong version")
        var tensor = HostTensor(shape: [3], floats: [1, 2, 3]).wire
        tensor.shape = [4]
        try expectError([try Framing.encode(Samples.envelope(.saved(.with { $0.value = tensor })))], .errorInvalidTensor, "tensor length")
        try expectError([try Framing.encode(Framing.envelope { _ in })], .errorUnknownMessage, "no body")
        let big = Samples.envelope(.saved(.with { $0.value = HostTensor(shape: [25_100], floats: [Float](repeating: 1, count: 25_100)).wire }))
        try expectError([try Framing.encode(big)], .errorTooLarge, "over the size limit")
        // Still serving.
        #expect(try exchange([valid]) == Samples.envelope(Samples.bodies[0]))
        try Self.shutdown(client, process)
    }
}
