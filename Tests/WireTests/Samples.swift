import Foundation
import Wire

/// One envelope of every message type, with every field set to something non-default.
enum Samples {
    static func tensor(_ shape: [Int], seed: Float = 1) -> Nnsight_V1_Tensor {
        HostTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { Float($0) * 0.25 + seed }).wire
    }

    static var graph: Nnsight_V1_Graph {
        var g = Nnsight_V1_Graph()
        g.nodes = [
            .with { $0.id = 1; $0.steps = [0, 1, 2]; $0.invoke = 0; $0.line = 3
                $0.read = .with { $0.path = "transformer.h.3"; $0.port = .output } },
            .with { $0.id = 2; $0.steps = [0]; $0.invoke = 0
                $0.op = .with { $0.name = "tuple_item"; $0.inputs = [1]; $0.attributes = [.with { $0.name = "item"; $0.int = 0 }] } },
            .with { $0.id = 3; $0.steps = [0]; $0.invoke = -1; $0.column = 9
                $0.op = .with { $0.name = "index"; $0.inputs = [2]
                    $0.attributes = [.with { $0.name = "index"; $0.index = .with {
                        $0.items = [.with { $0.at = 0 }, .with { $0.slice = .with { $0.start = -1 } }, .with { $0.ellipsis = true }] } }] } },
            .with { $0.id = 4; $0.steps = [1]; $0.op = .with { $0.name = "mul"; $0.inputs = [3, 8] } },
            .with { $0.id = 5; $0.steps = [1]; $0.set = .with { $0.target = 2; $0.index = [.with { $0.slice = .init() }]; $0.value = 8 } },
            .with { $0.id = 6; $0.steps = [2]; $0.save = .with { $0.node = 4; $0.saveID = 9 } },
            .with { $0.id = 7; $0.steps = [2]; $0.append = .with { $0.node = 3; $0.listID = 2 } },
            .with { $0.id = 8; $0.steps = [0]; $0.constant = .with { $0.value = tensor([2, 2]) } },
        ]
        g.invokes = [.with { $0.tokenIds = [748, 638, 1727] }, .init()]
        g.generation = .with {
            $0.maxNewTokens = 5; $0.eosTokenID = 1999; $0.padTokenID = 1999
            $0.sampling = .with { $0.temperature = 0.7; $0.topK = 40; $0.topP = 0.9; $0.seed = 7 }
        }
        g.limits = .with { $0.maxNodes = 1000; $0.maxTensorBytes = 1 << 20; $0.maxSteps = 64; $0.deadlineUnixMs = 1_800_000_000_000 }
        g.exports = [3, 4]
        return g
    }

    /// Every body the schema has.
    static var bodies: [Envelope.OneOf_Body] {
        [
            .hello(.with { $0.workerID = "w-1"; $0.address = "tcp://127.0.0.1:6001"; $0.capacity = 8; $0.model = "gpt2" }),
            .assignment(.with { $0.model = "gpt2"; $0.layerStart = 4; $0.layerEnd = 8; $0.stage = 1; $0.stageCount = 3; $0.nextAddress = "ipc:///tmp/s2" }),
            .submit(.with { $0.graph = graph; $0.model = "gpt2" }),
            .activations(.with {
                $0.step = 3; $0.rows = [0, 1]; $0.hidden = tensor([2, 1, 8])
                $0.tokens = HostTensor(shape: [2, 1], ints: [5, 6]).wire
                $0.positions = HostTensor(shape: [2, 1], ints: [12, 7]).wire
                $0.mask = HostTensor(shape: [2, 1], ints: [1, 1]).wire
                $0.values = [.with { $0.node = 4; $0.value = tensor([1], seed: 3) }]
            }),
            .saved(.with { $0.saveID = 9; $0.step = 2; $0.value = tensor([1, 12, 4]); $0.append = true }),
            .stepResult(.with { $0.step = 4; $0.nextTokens = [1052, 808] }),
            .finished(.with { $0.steps = 5 }),
            .cancel(.with { $0.reason = "client went away" }),
            .error(.with { $0.code = .errorInvalidGraph; $0.message = "no module h.40"; $0.node = 3; $0.module = "transformer.h.40"; $0.step = 1; $0.worker = "w-1"; $0.line = 4; $0.column = 7; $0.stage = 1 }),
            .shutdown(.with { $0.reason = "the coordinator stops" }),
            .heartbeat(.with { $0.sentUnixMs = 1_790_000_000_000; $0.sender = "coordinator" }),
        ]
    }

    static func envelope(_ body: Envelope.OneOf_Body, requestId: UInt64 = 42) -> Envelope {
        Framing.envelope(requestId: requestId) { $0.body = body }
    }
}
