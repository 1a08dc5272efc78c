/// Where a hook runs: a module's input (before it runs) or output (after).
public struct HookPoint: Hashable, Sendable, CustomStringConvertible {
    public enum Port: Sendable { case input, output }
    public var module: ModuleID
    public var port: Port

    public init(_ module: ModuleID, _ port: Port) {
        self.module = module
        self.port = port
    }

    public var description: String { "\(module).\(port == .input ? "input" : "output")" }

    /// Every hook point of a model in forward order: the order hooks fire in one step.
    public static func forwardOrder(layers: Int) -> [HookPoint] { ModuleTree.hookOrder(layers: layers) }
}

/// The tensor at a hook point, mutable in place: edits flow on into the rest of the forward pass,
/// exactly as an in-place edit of the PyTorch tensor would (aliasing included: `h[i].input` and
/// `h[i].ln_1.input` are the same residual-stream buffer, as in Hugging Face's GPT2Block).
public enum HookValue {
    /// Float activations, row-major with `shape` (e.g. `[B, T, C]`).
    case floats(UnsafeMutableBufferPointer<Float>, shape: [Int])
    /// Token or position ids `[B, T]` (inputs of `wte` and `wpe`).
    case ids(UnsafeMutableBufferPointer<Int32>, shape: [Int])

    public var shape: [Int] {
        switch self {
        case let .floats(_, shape), let .ids(_, shape): shape
        }
    }
}

/// Receives the tensors at hook points during a forward pass.
///
/// `wants` is asked first; a point it declines costs one call and nothing else. Asking for
/// `lm_head.output` makes the stage compute logits at every position instead of the last only.
///
/// ```swift
/// final class ZeroLayer0: HookHandler {
///     func wants(_ point: HookPoint) -> Bool { point == HookPoint(.block(0), .output) }
///     func visit(_ point: HookPoint, _ value: HookValue) throws {
///         if case let .floats(buffer, _) = value { buffer.update(repeating: 0) }
///     }
/// }
/// ```
public protocol HookHandler: AnyObject {
    func wants(_ point: HookPoint) -> Bool
    func visit(_ point: HookPoint, _ value: HookValue) throws
    /// Asked after a module's input hook ran (only when that hook was wanted): whether the module
    /// does not run this step (nnsight's `skip`). Its output hook then receives a buffer to fill
    /// with the module's output. For blocks, `attn` and `mlp`.
    func skips(_ module: ModuleID) -> Bool
    /// Asked before a wanted hook: whether the handler replaces the value rather than editing it
    /// (`ln_1.input = x`), so the module gets a buffer of its own and the tensor it shares with
    /// others (the residual stream under `ln_1` and `ln_2`) is untouched.
    func replaces(_ point: HookPoint) -> Bool
    /// Whether lm_head runs at every position of a multi-token step (a forward pass that reads
    /// it: `model.trace`), rather than at each row's last (a generation's prompt pass, as
    /// transformers' generate computes it).
    var wantsAllLogits: Bool { get }
}

extension HookHandler {
    public var wantsAllLogits: Bool { readsHead }
    /// Whether the handler reads lm_head's input or output this step.
    public var readsHead: Bool { wants(HookPoint(.lmHead, .output)) || wants(HookPoint(.lmHead, .input)) }
    public func skips(_ module: ModuleID) -> Bool { false }
    public func replaces(_ point: HookPoint) -> Bool { false }
}
