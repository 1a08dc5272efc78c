import Coordinator
import Engine
import Foundation
import Testing
import Wire

/// Bad peers under CURVE, against a cluster of real worker processes: a client with a valid key
/// that sends garbage, oversized frames or absurd graphs gets errors and the cluster keeps
/// serving; bytes captured from one encrypted connection and replayed on another do nothing.
@Suite(.serialized) struct AuthenticatedPeerTests {
    static let workerExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("nnsight-worker")

    static func cluster() throws -> ProcessCluster {
        try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: workerExecutable, threadsPerWorker: 1, curve: true)
    }

    /// A DEALER with the cluster's client keys.
    static func rawClient(_ cluster: ProcessCluster, _ context: ZMQContext, endpoint: String? = nil) throws -> ZMQSocket {
        let keys = try #require(cluster.clientKeys)
        let socket = try context.socket(.dealer)
        try socket.makeCurveClient(keys.own, serverKey: try keys.requireCoordinatorKey())
        try socket.connect(endpoint ?? cluster.endpoint)
        return socket
    }

    static func generate(_ cluster: ProcessCluster) throws -> [Int] {
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model, keys: cluster.clientKeys)
        var output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { _ in output = model.generator.output.save() }
        return try output.value.ints
    }

    @Test func garbageAndAbsurdRequestsFromAnAcceptedKeyGetErrorsAndTheClusterServes() throws {
        let cluster = try Self.cluster()
        defer { cluster.stop() }
        let expected = try Self.generate(cluster)
        let context = ZMQContext()
        let socket = try Self.rawClient(cluster, context)
        func answer(_ frames: [Data]) throws -> Nnsight_V1_Error? {
            try socket.send(frames)
            guard let reply = try socket.receive(timeoutMs: 5000) else { return nil }
            return try Framing.decode(reply.last ?? Data()).error
        }
        #expect(try answer([Data("not a protobuf at all".utf8)])?.code == .errorMalformed)
        #expect(try answer([Data(), Data([1, 2, 3])])?.code == .errorMalformed)
        // A graph that asks for 2^32-1 new tokens.
        let absurd = Framing.envelope(requestId: 7) {
            $0.submit = .with {
                $0.model = (try? GPT2Config.load(directory: Oracle.model).architectureId) ?? ""
                $0.graph = .with { $0.invokes = [.with { $0.tokenIds = [Int64](repeating: 1, count: 10) }]; $0.generation.maxNewTokens = .max }
            }
        }
        let refused = try answer([try Framing.encode(absurd)])
        #expect(refused?.code == .errorInvalidGraph && refused?.message.contains("n_positions") == true, "\(String(describing: refused))")
        // An oversized frame: libzmq drops it and the connection, before anything is buffered.
        let big = try Self.rawClient(cluster, context)
        try? big.send([Data(count: WireProtocol.defaultMaxMessageBytes + 1)], dontWait: true)
        #expect(try big.receive(timeoutMs: 1000) == nil)
        #expect(try Self.generate(cluster) == expected)
    }

    @Test func bytesCapturedFromOneConnectionAndReplayedOnAnotherDoNothing() throws {
        let cluster = try Self.cluster()
        defer { cluster.stop() }
        // A client talks to the coordinator through a relay that records what it sends.
        let port = try #require(Int(cluster.endpoint.split(separator: ":").last ?? ""))
        let relay = try Relay(upstreamPort: port)
        let keys = try #require(cluster.clientKeys)
        let model = try LanguageModel.connect("tcp://127.0.0.1:\(relay.port)", model: Oracle.model, keys: keys)
        var output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { _ in output = model.generator.output.save() }
        let expected = try output.value.ints
        let captured = relay.captured
        #expect(captured.count > 100)
        let submissions = cluster.submissions
        // The same bytes, on a connection of their own: the handshake's keys are per connection,
        // so the coordinator sees no valid message (and says so in its log at most).
        for _ in 0..<3 { try Relay.send(captured, toPort: port) }
        Thread.sleep(forTimeInterval: 1)
        #expect(cluster.submissions == submissions, "a replayed connection submitted a trace")
        #expect(try Self.generate(cluster) == expected)
    }
}

/// A TCP relay on 127.0.0.1: one client connection forwarded to `upstreamPort`, the client's
/// bytes recorded.
final class Relay: @unchecked Sendable {
    let port: Int
    private let lock = NSLock()
    private var bytes = Data()
    var captured: Data { lock.withLock { bytes } }

    init(upstreamPort: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: 0)
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, size) } }) == 0,
              listen(listener, 4) == 0,
              withUnsafeMutablePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &size) } }) == 0
        else { throw TraceError.transport("relay: cannot listen") }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in
            let client = accept(listener, nil, nil)
            close(listener)
            guard client >= 0, let upstream = try? Self.connect(toPort: upstreamPort) else { return }
            Thread { Self.pump(from: upstream, to: client, record: nil) }.start()
            Self.pump(from: client, to: upstream) { data in self.lock.withLock { self.bytes.append(data) } }
        }.start()
    }

    static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return a
    }

    static func connect(toPort port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: port)
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); throw TraceError.transport("relay: cannot connect to \(port)") }
        return fd
    }

    static func pump(from source: Int32, to sink: Int32, record: ((Data) -> Void)?) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(source, &buffer, buffer.count)
            guard n > 0 else { break }
            record?(Data(buffer[0..<n]))
            guard write(sink, buffer, n) == n else { break }
        }
        shutdown(sink, Int32(SHUT_WR))
    }

    /// Opens a new connection to `port`, writes `data`, reads whatever comes back for a moment, closes.
    static func send(_ data: Data, toPort port: Int) throws {
        let fd = try connect(toPort: port)
        defer { close(fd) }
        _ = data.withUnsafeBytes { write(fd, $0.baseAddress, data.count) }
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while read(fd, &buffer, buffer.count) > 0 {}
    }
}
