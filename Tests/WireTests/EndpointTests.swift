import Testing
import Wire

@Suite struct EndpointTests {
    @Test func hostsOfEndpoints() {
        #expect(Endpoint.host(of: "tcp://10.0.0.2:5555") == "10.0.0.2")
        #expect(Endpoint.host(of: "tcp://[::1]:5555") == "::1")
        #expect(Endpoint.host(of: "tcp://worker-0.nnsight:7") == "worker-0.nnsight")
        #expect(Endpoint.host(of: "ipc:///tmp/x") == nil)
    }

    @Test func aWildcardBindIsAdvertisedAtAReachableHost() {
        #expect(Endpoint.reachable("tcp://0.0.0.0:5557", at: "10.77.1.2") == "tcp://10.77.1.2:5557")
        #expect(Endpoint.reachable("tcp://*:5557", at: "worker-1") == "tcp://worker-1:5557")
        #expect(Endpoint.reachable("tcp://0.0.0.0:5557", at: "fd00::2") == "tcp://[fd00::2]:5557")
        #expect(Endpoint.reachable("tcp://10.0.0.2:5557", at: "elsewhere") == "tcp://10.0.0.2:5557")
        #expect(Endpoint.reachable("ipc:///tmp/x", at: "elsewhere") == "ipc:///tmp/x")
    }
}
