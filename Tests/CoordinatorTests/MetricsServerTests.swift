import Foundation
import Prometheus
@testable import Telemetry
import Testing

/// The HTTP side of `--metrics`: addresses, the three endpoints and their probes.
@Suite struct MetricsServerTests {
    @Test func aBarePortIsLoopbackAndPortZeroPicksAFreeOne() throws {
        let server = try MetricsServer(address: "0", registry: PrometheusCollectorRegistry())
        defer { server.stop() }
        #expect(server.address.hasPrefix("127.0.0.1:"))
        #expect(server.address != "127.0.0.1:0")
    }

    @Test func badAddressesAreTypedErrorsNamingTheFlag() {
        for bad in ["", "host:", "127.0.0.1:99999", "abc", "1.2.3.4:x"] {
            #expect(throws: MetricsServerError.invalidAddress(bad)) { try MetricsServer(address: bad, registry: PrometheusCollectorRegistry()) }
        }
        let error = MetricsServerError.invalidAddress("abc")
        #expect(error.description == "--metrics 'abc' is not HOST:PORT or PORT")
    }

    @Test func aPortInUseIsATypedError() throws {
        let first = try MetricsServer(address: "127.0.0.1:0", registry: PrometheusCollectorRegistry())
        defer { first.stop() }
        #expect {
            try MetricsServer(address: first.address, registry: PrometheusCollectorRegistry())
        } throws: { error in
            guard case let .cannotBind(address, _)? = error as? MetricsServerError else { return false }
            return address == first.address
        }
    }

    @Test func metricsAreTheRegistrysTextAndRefreshRunsBeforeEachScrape() throws {
        let registry = PrometheusCollectorRegistry()
        let counter = registry.makeCounter(descriptor: .named("test_things_total", help: "Things."))
        let gauge = registry.makeGauge(descriptor: .named("test_scrapes", help: "Scrapes."))
        final class Scrapes: @unchecked Sendable { let lock = NSLock(); var n = 0 }
        let scrapes = Scrapes()
        var probes = MetricsServer.Probes()
        probes.refresh = {
            let n = scrapes.lock.withLock { scrapes.n += 1; return scrapes.n }
            gauge.set(to: Double(n))
        }
        let server = try MetricsServer(address: "127.0.0.1:0", registry: registry, probes: probes)
        defer { server.stop() }
        counter.increment(by: Int64(3))
        let first = HTTPGet.fetch("http://\(server.address)/metrics")
        #expect(first.status == 200)
        #expect(first.body.contains("# HELP test_things_total Things."))
        #expect(HTTPGet.sample(first.body, "test_things_total") == 3)
        #expect(HTTPGet.sample(first.body, "test_scrapes") == 1)
        counter.increment()
        let second = HTTPGet.fetch("http://\(server.address)/metrics")
        #expect(HTTPGet.sample(second.body, "test_things_total") == 4)
        #expect(HTTPGet.sample(second.body, "test_scrapes") == 2)
    }

    @Test func healthAndReadinessFollowTheirProbesAndOtherPathsAre404() throws {
        final class State: @unchecked Sendable { let lock = NSLock(); var live = true, ready = false }
        let state = State()
        var probes = MetricsServer.Probes()
        probes.isLive = { state.lock.withLock { state.live } }
        probes.isReady = { state.lock.withLock { state.ready } }
        let server = try MetricsServer(address: "127.0.0.1:0", registry: PrometheusCollectorRegistry(), probes: probes)
        defer { server.stop() }
        let base = "http://\(server.address)"
        #expect(HTTPGet.fetch(base + "/healthz").status == 200)
        #expect(HTTPGet.fetch(base + "/readyz").status == 503)
        state.lock.withLock { state.ready = true; state.live = false }
        #expect(HTTPGet.fetch(base + "/readyz").status == 200)
        #expect(HTTPGet.fetch(base + "/healthz").status == 503)
        let other = HTTPGet.fetch(base + "/admin")
        #expect(other.status == 404)
        #expect(other.body.contains("/metrics"))
    }

    @Test func livenessFailsOnlyAfterTheLoopStalls() throws {
        let liveness = Liveness(stallSeconds: 0.2)
        #expect(liveness.isLive)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!liveness.isLive)
        liveness.tick()
        #expect(liveness.isLive)
    }
}

/// Memory figures read from /proc, for metrics and the benchmarks.
@Suite struct ProcessMemoryTests {
    @Test func statusFieldsParseWithAndWithoutPadding() {
        let status = "Name:\tnnsight-worker\nVmHWM:\t12633912 kB\nVmRSS:\t 6324000 kB\n"
        #expect(ProcessMemory.kilobytes("VmHWM:", in: status) == 12_633_912)
        #expect(ProcessMemory.kilobytes("VmRSS:", in: status) == 6_324_000)
        #expect(ProcessMemory.kilobytes("VmSwap:", in: status) == nil)
    }

    @Test func thisProcessHasAResidentAndAPeakFigure() throws {
        let resident = try #require(ProcessMemory.resident())
        let peak = try #require(ProcessMemory.peak())
        #expect(resident > 1 << 20 && peak >= resident / 2)
        #expect(try #require(ProcessMemory.resident(pid: getpid())) > 1 << 20)
    }
}
