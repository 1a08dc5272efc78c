import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import Synchronization

/// Serves a Prometheus registry over HTTP on its own thread (`--metrics ADDR`):
/// `GET /metrics` (text format 0.0.4), `GET /healthz` (200 while the serving loop turns) and
/// `GET /readyz` (200 once the process serves: the coordinator has every stage, a worker its
/// layers). Nothing else is served; no activation data is ever in a metric.
///
/// ```swift
/// let server = try MetricsServer(address: "127.0.0.1:9100", registry: metrics.registry)
/// print(server.address)   // 127.0.0.1:9100
/// ```
public final class MetricsServer: Sendable {
    /// What the endpoints answer, asked on the server's thread at every request.
    public struct Probes: Sendable {
        /// Called before every scrape, to set the gauges read on demand (RSS, in-flight counts).
        public var refresh: @Sendable () -> Void = {}
        public var isLive: @Sendable () -> Bool = { true }
        public var isReady: @Sendable () -> Bool = { true }
        public init() {}
    }

    /// The address actually bound, `host:port`.
    public let address: String
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let stopped = Atomic<Bool>(false)

    /// - Parameter address: `HOST:PORT`, or a bare `PORT` for loopback; port 0 picks a free one.
    public init(address requested: String, registry: PrometheusCollectorRegistry, probes: Probes = Probes()) throws {
        let (host, port) = try Self.parse(requested)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry, probes: probes))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsServerError.cannotBind(requested, "\(error)")
        }
        address = "\(host):\(channel.localAddress?.port ?? port)"
    }

    /// A server at `address` when one is given (`--metrics`), announced on stderr as
    /// "metrics on http://HOST:PORT/metrics"; nil when metrics are off.
    public static func start(_ address: String?, registry: PrometheusCollectorRegistry, probes: Probes) throws -> MetricsServer? {
        guard let address else { return nil }
        let server = try MetricsServer(address: address, registry: registry, probes: probes)
        FileHandle.standardError.write(Data("metrics on http://\(server.address)/metrics\n".utf8))
        return server
    }

    /// Closes the listener and its thread (once; later calls do nothing).
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    deinit { stop() }

    /// "9100" -> ("127.0.0.1", 9100); "0.0.0.0:9100" -> ("0.0.0.0", 9100); "[::1]:9100" -> ("::1", 9100).
    static func parse(_ address: String) throws(MetricsServerError) -> (host: String, port: Int) {
        let text = address.hasPrefix("http://") ? String(address.dropFirst(7)) : address
        let host: String, portText: Substring
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            portText = text[text.index(after: colon)...]
        } else {
            host = "127.0.0.1"
            portText = Substring(text)
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty || text.first == ":" else {
            throw .invalidAddress(address)
        }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}

public enum MetricsServerError: Error, CustomStringConvertible, Equatable {
    case invalidAddress(String)
    case cannotBind(String, String)

    public var description: String {
        switch self {
        case let .invalidAddress(a): "--metrics '\(a)' is not HOST:PORT or PORT"
        case let .cannotBind(a, why): "--metrics \(a): cannot listen there (\(why))"
        }
    }
}

/// One HTTP/1.1 connection: answers each request when its end arrives.
private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let probes: MetricsServer.Probes
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, probes: MetricsServer.Probes) {
        self.registry = registry
        self.probes = probes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let (status, type, body): (HTTPResponseStatus, String, [UInt8])
        switch (head.method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            probes.refresh()
            (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            let live = probes.isLive()
            (status, type, body) = (live ? .ok : .serviceUnavailable, "text/plain", Array((live ? "ok\n" : "stalled\n").utf8))
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            let ready = probes.isReady()
            (status, type, body) = (ready ? .ok : .serviceUnavailable, "text/plain", Array((ready ? "ready\n" : "not ready\n").utf8))
        case (.GET, _), (.HEAD, _):
            (status, type, body) = (.notFound, "text/plain", Array("not found: /metrics, /healthz and /readyz are served\n".utf8))
        default:
            (status, type, body) = (.methodNotAllowed, "text/plain", Array("only GET and HEAD\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}
