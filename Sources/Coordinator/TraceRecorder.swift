import Engine
import Wire
import Worker

/// Records a trace into graph nodes while the user's closure runs: every module access, tensor
/// op, edit and save becomes a node tagged with the current generation step and invoke.
final class TraceRecorder {
    let layers: Int
    let maxNewTokens: Int
    var nodes: [Nnsight_V1_Node] = []
    var invokes: [Nnsight_V1_Invoke] = []
    /// The step that module accesses refer to outside loops (`tracer.next()` advances it).
    var cursor = 0
    /// The step of the loop iteration running now, if any.
    var loopStep: Int?
    var currentInvoke: Int32 = -1
    /// The source line being recorded (trace scripts set it), for error messages.
    var currentLine: UInt32 = 0
    var currentStep: Int { loopStep ?? cursor }

    /// Saves and list appends, by the id their values stream back under.
    var saves: [UInt32: Saved] = [:]
    var appends: [UInt32: (list: SavedList, node: UInt32)] = [:]
    /// Problems found while recording (bad module paths), reported when the trace compiles.
    var problems: [String] = []
    private var nextId: UInt32 = 1

    init(layers: Int, maxNewTokens: Int) {
        self.layers = layers
        self.maxNewTokens = maxNewTokens
    }

    @discardableResult
    func add(_ fill: (inout Nnsight_V1_Node) -> Void) -> UInt32 {
        var node = Nnsight_V1_Node()
        node.id = nextId
        nextId += 1
        node.steps = [UInt32(currentStep)]
        node.invoke = currentInvoke
        node.line = currentLine
        fill(&node)
        nodes.append(node)
        return node.id
    }

    func read(_ path: String, _ port: Nnsight_V1_Port, tuple: Bool) -> TraceValue {
        let id = add { $0.read = .with { $0.path = path; $0.port = port } }
        return TraceValue(recorder: self, node: id, isTuple: tuple)
    }

    func op(_ code: Nnsight_V1_OpCode, _ inputs: [UInt32], _ fill: (inout Nnsight_V1_Op) -> Void = { _ in }) -> TraceValue {
        let id = add { node in
            node.op = .with {
                $0.code = code
                $0.inputs = inputs
                fill(&$0)
            }
        }
        return TraceValue(recorder: self, node: id, isTuple: false)
    }

    func constant(_ value: Double) -> UInt32 {
        add { $0.constant = .with { $0.value = HostTensor(shape: [], floats: [Float(value)]).wire } }
    }

    func save(_ value: TraceValue) -> Saved {
        let node = value.materialize()
        let saved = Saved(step: currentStep)
        let id = add { $0.save = .with { $0.node = node } }
        nodes[nodes.count - 1].save.saveID = id
        saves[id] = saved
        return saved
    }

    func append(_ value: TraceValue, to list: SavedList) {
        let node = value.materialize()
        let id = add { $0.append = .with { $0.node = node } }
        nodes[nodes.count - 1].append.listID = id
        appends[id] = (list, id)
        list.expect(slot: id, step: currentStep)
    }
}
