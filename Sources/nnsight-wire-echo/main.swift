import ArgumentParser
import Foundation
import Wire

/// Answers every wire envelope with itself (and malformed ones with an error): a peer for
/// loopback tests, the wire benchmark, and connectivity checks between hosts.
@main
struct WireEcho: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nnsight-wire-echo",
        abstract: "Echo nnsight wire envelopes on a ZeroMQ ROUTER socket (diagnostics).",
        discussion: "No authentication: bind to 127.0.0.1 (the default) unless the network is trusted.")

    @Option(name: .long, help: "Endpoint to bind, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/echo.")
    var bind: String = "tcp://127.0.0.1:*"

    @Option(name: .long, help: "Exit after this many seconds without a message.")
    var idleTimeout: Int = 30

    @Option(name: .long, help: "Largest message accepted, in bytes.")
    var maxBytes: Int = WireProtocol.defaultMaxMessageBytes

    func run() throws {
        ProcessTuning.keepLargeAllocationsInHeap()
        let context = ZMQContext()
        let socket = try context.socket(.router)
        try socket.setMaxMessageSize(maxBytes + 1024)
        try socket.bind(bind)
        // The bound endpoint, for a parent process that asked for port *.
        FileHandle.standardOutput.write(Data((socket.lastEndpoint + "\n").utf8))
        let stats = try EchoService(socket: socket, maxBytes: maxBytes).serve(idleTimeoutMs: idleTimeout * 1000)
        FileHandle.standardError.write(Data("echoed \(stats.echoed), refused \(stats.refused)\n".utf8))
    }
}
