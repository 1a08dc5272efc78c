import ArgumentParser
import Foundation
import Wire

struct BenchWire: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-wire",
        abstract: "Measure wire round trips: encode, send, echo, receive, decode.",
        discussion: """
        A DEALER in this process sends activation envelopes (3 KB = one GPT-2 small token's hidden
        state, 30 KB, 200 KB) to an echo peer and decodes the reply: inproc (a thread of this
        process), ipc and tcp loopback (an nnsight-wire-echo process). Prints medians.
          swift build -c release && .build/release/nnsight bench-wire --json
        """)

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Round trips per measurement.")
    var count: Int = 2000

    func run() throws {
        let context = ZMQContext()
        var results: [String: Any] = [:]
        var lines: [String] = []
        // Codec alone, for the 3 KB message: what a hop costs besides the transport.
        let message3k = activation(floats: 768)
        var encodeTimes: [Double] = [], decodeTimes: [Double] = []
        for _ in 0..<count {
            var frame = Data()
            encodeTimes.append(try timed { frame = try Framing.encode(message3k) })
            decodeTimes.append(try timed { _ = try Framing.decode(frame) })
        }
        results["codec_3kb_encode_us"] = round3(median(encodeTimes) * 1e6)
        results["codec_3kb_decode_us"] = round3(median(decodeTimes) * 1e6)
        lines.append("codec 3 KB: encode \(results["codec_3kb_encode_us"]!) us, decode \(results["codec_3kb_decode_us"]!) us")

        for transport in ["inproc", "ipc", "tcp"] {
            let (endpoint, stop) = try startPeer(transport, context: context)
            defer { stop() }
            let client = try context.socket(.dealer)
            try client.connect(endpoint)
            for (label, floats) in [("3kb", 768), ("30kb", 7680), ("200kb", 51_200)] {
                let envelope = activation(floats: floats)
                let bytes = try Framing.encode(envelope).count
                var times: [Double] = []
                for i in 0..<(count + 100) {
                    let t = try timed {
                        try client.send(try Framing.encode(envelope))
                        guard let reply = try client.receive(timeoutMs: 5000) else { throw CLIError(description: "no reply over \(transport)") }
                        _ = try Framing.decode(reply[0])
                    }
                    if i >= 100 { times.append(t) }  // warm-up excluded
                }
                let rtt = median(times)
                results["\(transport)_\(label)_rtt_us"] = round3(rtt * 1e6)
                results["\(transport)_\(label)_mb_per_s"] = round3(Double(2 * bytes) / rtt / 1e6)
                lines.append("\(transport) \(label): round trip \(round3(rtt * 1e6)) us, \(round3(Double(2 * bytes) / rtt / 1e6)) MB/s both ways")
            }
            try client.send(try Framing.encode(Framing.envelope { $0.cancel = .with { $0.reason = "shutdown" } }))
            _ = try client.receive(timeoutMs: 2000)
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            lines.forEach { print($0) }
        }
    }

    func activation(floats: Int) -> Envelope {
        Framing.envelope(requestId: 1) {
            $0.activations = .with {
                $0.step = 1
                $0.hidden = HostTensor(shape: [1, 1, floats], floats: (0..<floats).map { Float($0) }).wire
            }
        }
    }

    /// An echo peer: a thread of this process for inproc, an nnsight-wire-echo process otherwise.
    func startPeer(_ transport: String, context: ZMQContext) throws -> (String, () -> Void) {
        if transport == "inproc" {
            // The socket is created on the thread that owns it (zmq sockets are not thread-safe);
            // inproc lets the client connect before the bind.
            let endpoint = "inproc://bench-echo"
            let thread = Thread {
                guard let server = try? context.socket(.router), (try? server.bind(endpoint)) != nil else { return }
                _ = try? EchoService(socket: server).serve(idleTimeoutMs: 10_000)
            }
            thread.start()
            return (endpoint, {})
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("nnsight-wire-echo")
        let bind = transport == "ipc" ? "ipc:///tmp/nnsight-bench-\(getpid())" : "tcp://127.0.0.1:*"
        process.arguments = ["--bind", bind, "--idle-timeout", "30"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line.append(byte) }
        return (String(decoding: line, as: UTF8.self), { process.waitUntilExit() })
    }
}
