import Engine
import Foundation
import Graph

/// Records a trace into graph nodes while the user's closure runs: every module access, tensor
/// op, edit and save becomes a node tagged with the current generation step, invoke and source
/// position.
final class TraceRecorder {
    let layers: Int
    let maxNewTokens: Int
    var nodes: [GraphNode] = []
    var invokes: [[Int]] = []
    /// The step that module accesses refer to outside loops (`tracer.next()` advances it).
    var cursor = 0
    /// The step of the loop iteration running now, if any.
    var loopStep: Int?
    var currentInvoke = -1
    /// The source position being recorded (trace scripts set it), for error messages.
    var currentLine = 0
    var currentColumn = 0
    var currentStep: Int { loopStep ?? cursor }

    /// Saves and list appends, by the id their values stream back under.
    var saves: [UInt32: Saved] = [:]
    var appends: [UInt32: (list: SavedList, node: UInt32)] = [:]
    /// Problems found while recording (bad module paths, values of other traces), reported when
    /// the trace compiles.
    var problems: [TraceError] = []
    private var nextId: UInt32 = 1

    init(layers: Int, maxNewTokens: Int) {
        self.layers = layers
        self.maxNewTokens = maxNewTokens
    }

    func problem(_ message: String) {
        problems.append(TraceError(.invalidGraph, message, line: currentLine > 0 ? currentLine : nil,
                                   column: currentColumn > 0 ? currentColumn : nil))
    }

    @discardableResult
    func add(_ kind: NodeKind) -> UInt32 {
        let id = nextId
        nextId += 1
        nodes.append(GraphNode(id: id, steps: [currentStep], invoke: currentInvoke, line: currentLine, column: currentColumn, kind: kind))
        return id
    }

    func read(_ read: ModuleRead) -> TraceValue {
        TraceValue(recorder: self, node: add(.read(read)), isTuple: read.port == .output && ModuleTree.spec(read.module).outputTuple != nil)
    }

    func op(_ name: String, _ inputs: [UInt32], _ attributes: Attributes = Attributes()) -> TraceValue {
        TraceValue(recorder: self, node: add(.op(name: name, inputs: inputs, attributes: attributes)), isTuple: false)
    }

    func constant(_ tensor: Tensor) -> UInt32 { add(.constant(tensor)) }

    func save(_ value: TraceValue) -> Saved {
        let saved = Saved(step: currentStep)
        guard let node = value.node(in: self) else {
            saved.result = .failure(problems.last ?? .invalidGraph("save() of a value this trace cannot use"))
            return saved
        }
        let id = nextId
        add(.save(node: node, saveID: id))
        saves[id] = saved
        return saved
    }

    func append(_ value: TraceValue, to list: SavedList) {
        guard let node = value.node(in: self) else { return }
        let id = nextId
        add(.append(node: node, listID: id))
        appends[id] = (list, id)
        list.expect(slot: id, step: currentStep)
    }
}

extension TraceRecorder {
    private static let key = "nnsight.TraceRecorder.active"

    /// The recorder of the trace being recorded on this thread (module envoys and literals need
    /// one to become nodes). Thread-local, so models tracing on different threads do not mix.
    static var active: TraceRecorder? {
        get { Thread.current.threadDictionary[key] as? TraceRecorder }
        set { Thread.current.threadDictionary[key] = newValue }
    }
}
