import EngineKernels
import Foundation

/// How a stage stores its large matrices (the Conv1D weights and the embedding table, which are
/// what a decode step reads): f32, or 16 bits (bfloat16 / IEEE half) widened to f32 inside the
/// kernels. Layernorms, biases and position embeddings stay f32; activations and the KV cache
/// are always f32.
public enum WeightType: String, Sendable, CaseIterable {
    case f32, bf16, f16

    var panelType: PanelType {
        switch self {
        case .f32: .f32
        case .bf16: .bf16
        case .f16: .f16
        }
    }

    /// Stores `value` as this type (round to nearest even), in `destination`'s element `i`.
    @inline(__always)
    func store(_ value: Float, _ destination: UnsafeMutableRawPointer, _ i: Int) {
        switch self {
        case .f32: destination.storeBytes(of: value, toByteOffset: 4 * i, as: Float.self)
        case .f16: destination.storeBytes(of: Float16(value).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
        case .bf16:
            let bits = value.bitPattern
            let rounded = value.isNaN ? (bits >> 16) | 0x40 : (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
            destination.storeBytes(of: UInt16(truncatingIfNeeded: rounded), toByteOffset: 2 * i, as: UInt16.self)
        }
    }

    /// Element `i` of `source`, widened to f32.
    @inline(__always)
    func load(_ source: UnsafeRawPointer, _ i: Int) -> Float {
        switch self {
        case .f32: source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
        case .f16: Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .bf16: Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        }
    }

    var size: Int { panelType.size }
}

/// A Conv1D weight W (K,N) (y = x @ W + b) stored in panels of 16 output columns, each a (K,16)
/// row-major block, the last zero-padded: the layout the matmul kernels stream (see EngineKernels).
struct PackedMatrix {
    let base: UnsafeMutableRawPointer
    let k: Int, n: Int
    let type: WeightType

    var panels: Int { (n + panelWidth - 1) / panelWidth }
    static func bytes(k: Int, n: Int, type: WeightType) -> Int { (n + panelWidth - 1) / panelWidth * panelWidth * k * type.size }

    /// Writes a row-major (K,N) matrix into the panels.
    func pack(_ w: UnsafePointer<Float>) {
        for p in 0..<panels {
            for row in 0..<k {
                for c in 0..<panelWidth {
                    let j = p * panelWidth + c
                    type.store(j < n ? w[row * n + j] : 0, base, (p * k + row) * panelWidth + c)
                }
            }
        }
    }

    /// The matrix, row-major (K,N), as f32.
    func unpack(into w: UnsafeMutablePointer<Float>) {
        for row in 0..<k {
            for j in 0..<n { w[row * n + j] = type.load(base, (j / panelWidth * k + row) * panelWidth + j % panelWidth) }
        }
    }
}

/// A row-major (rows, C) table (wte, an untied lm_head) stored as `type`.
struct WeightTable {
    let base: UnsafeMutableRawPointer
    let rows: Int, columns: Int
    let type: WeightType

    /// Row `i` as f32.
    @inline(__always)
    func row(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        if type == .f32 { return out.update(from: base.assumingMemoryBound(to: Float.self) + i * columns, count: columns) }
        for c in 0..<columns { out[c] = type.load(base, i * columns + c) }
    }
}

/// One transformer block's parameters, pointers into `GPT2Weights`'s single allocation.
struct BlockWeights {
    var ln1W, ln1B: UnsafeMutablePointer<Float>  // (C)
    var qkvW: PackedMatrix                       // (C, 3C)
    var qkvB: UnsafeMutablePointer<Float>        // (3C)
    var attnProjW: PackedMatrix                  // (C, C)
    var attnProjB: UnsafeMutablePointer<Float>   // (C)
    var ln2W, ln2B: UnsafeMutablePointer<Float>  // (C)
    var fcW: PackedMatrix                        // (C, 4C)
    var fcB: UnsafeMutablePointer<Float>         // (4C)
    var fcProjW: PackedMatrix                    // (4C, C)
    var fcProjB: UnsafeMutablePointer<Float>     // (C)
}

/// The parameters one pipeline stage needs: blocks `layers`, plus the embeddings when the stage
/// owns layer 0 and `ln_f`/`lm_head` when it owns the last layer. One allocation holds them all:
/// Conv1D weights packed for the kernels and, like the embedding table, stored as `type`.
///
/// ```swift
/// let config = try GPT2Config.load(directory: dir)
/// let lastStage = try GPT2Weights.load(directory: dir, config: config, layers: 2..<4, type: .bf16)
/// ```
public final class GPT2Weights: @unchecked Sendable {
    public let config: GPT2Config
    public let layers: Range<Int>
    public let type: WeightType
    public var hasEmbeddings: Bool { layers.lowerBound == 0 }
    public var hasHead: Bool { layers.upperBound == config.nLayer }
    /// Number of parameters held (tied weights counted once).
    public let parameterCount: Int
    /// Bytes they take.
    public let parameterBytes: Int

    /// The one allocation holding every tensor, in layout order.
    let memory: UnsafeMutableRawPointer
    let wte: WeightTable?                        // (V, C), first stage
    let wpe: UnsafeMutablePointer<Float>?        // (maxT, C), first stage
    let lnFW, lnFB: UnsafeMutablePointer<Float>? // (C), last stage
    let lmHead: WeightTable?                     // (V, C), last stage: wte, or lm_head.weight if stored
    let blocks: [BlockWeights]                   // blocks[i - layers.lowerBound]
    /// Each tensor's place in `memory` and checkpoint shape, by checkpoint name (no prefix).
    private let places: [String: (offset: Int, shape: [Int])]
    let untiedHead: Bool

    /// How a tensor is stored: plain f32, packed for the kernels, or a table of `type`.
    enum Form { case floats, packed, table }

    static func form(_ name: String) -> Form {
        if name == "wte.weight" || name == "lm_head.weight" { return .table }
        return name.hasSuffix("c_attn.weight") || name.hasSuffix("c_proj.weight") || name.hasSuffix("c_fc.weight") ? .packed : .floats
    }

    static func bytes(_ name: String, _ shape: [Int], _ type: WeightType) -> Int {
        let count = shape.reduce(1, *)
        let raw = switch form(name) {
        case .floats: count * 4
        case .table: count * type.size
        case .packed: PackedMatrix.bytes(k: shape[0], n: shape[1], type: type)
        }
        return (raw + 63) / 64 * 64
    }

    /// The tensors of one stage, in allocation order, with their shapes.
    static func layout(_ c: GPT2Config, layers: Range<Int>, untiedHead: Bool) -> [(name: String, shape: [Int])] {
        let (C, V, I) = (c.nEmbd, c.vocabSize, c.innerDim)
        var list: [(String, [Int])] = []
        if layers.lowerBound == 0 || layers.upperBound == c.nLayer && !untiedHead { list.append(("wte.weight", [V, C])) }
        if layers.lowerBound == 0 { list.append(("wpe.weight", [c.nPositions, C])) }
        for l in layers {
            let p = "h.\(l)."
            list += [(p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]),
                     (p + "attn.c_attn.weight", [C, 3 * C]), (p + "attn.c_attn.bias", [3 * C]),
                     (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
                     (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
                     (p + "mlp.c_fc.weight", [C, I]), (p + "mlp.c_fc.bias", [I]),
                     (p + "mlp.c_proj.weight", [I, C]), (p + "mlp.c_proj.bias", [C])]
        }
        if layers.upperBound == c.nLayer {
            list += [("ln_f.weight", [C]), ("ln_f.bias", [C])]
            if untiedHead { list.append(("lm_head.weight", [V, C])) }
        }
        return list
    }

    /// Allocates the stage's parameters and lets `fill` write each tensor as f32, in layout order
    /// (packed and converted to `type` where it is stored so).
    init(config: GPT2Config, layers: Range<Int>, untiedHead: Bool, type: WeightType = .f32,
         fill: (_ name: String, _ shape: [Int], _ destination: UnsafeMutablePointer<Float>) throws -> Void) throws {
        guard layers.lowerBound >= 0, layers.upperBound <= config.nLayer, !layers.isEmpty else {
            throw EngineError.invalidArgument("layer range \(layers) is not within [0, \(config.nLayer))")
        }
        self.config = config
        self.layers = layers
        self.type = type
        self.untiedHead = untiedHead
        let layout = Self.layout(config, layers: layers, untiedHead: untiedHead)
        parameterCount = layout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        parameterBytes = layout.reduce(0) { $0 + Self.bytes($1.name, $1.shape, type) }
        memory = Self.allocateHugePageBacked(bytes: parameterBytes)
        var places: [String: (offset: Int, shape: [Int])] = [:]
        var offset = 0
        // Tensors stored other than as plain f32 are filled through one staging buffer.
        let largest = layout.filter { Self.form($0.name) != .floats || type != .f32 }.map { $0.shape.reduce(1, *) }.max() ?? 0
        let staging = UnsafeMutablePointer<Float>.allocate(capacity: max(largest, 1))
        defer { staging.deallocate() }
        do {
            for (name, shape) in layout {
                let destination = memory + offset
                places[name] = (offset, shape)
                let form = Self.form(name)
                if form == .floats || form == .table && type == .f32 {
                    try fill(name, shape, destination.assumingMemoryBound(to: Float.self))
                } else {
                    try fill(name, shape, staging)
                    if form == .packed {
                        PackedMatrix(base: destination, k: shape[0], n: shape[1], type: type).pack(staging)
                    } else {
                        for i in 0..<shape.reduce(1, *) { type.store(staging[i], destination, i) }
                    }
                }
                offset += Self.bytes(name, shape, type)
            }
        } catch {
            free(memory)
            throw error
        }
        self.places = places
        let memory = self.memory
        func at(_ name: String) -> UnsafeMutableRawPointer? { places[name].map { memory + $0.offset } }
        func floats(_ name: String) -> UnsafeMutablePointer<Float>? { at(name)?.assumingMemoryBound(to: Float.self) }
        func table(_ name: String) -> WeightTable? {
            at(name).map { WeightTable(base: $0, rows: config.vocabSize, columns: config.nEmbd, type: type) }
        }
        func packed(_ name: String, _ k: Int, _ n: Int) -> PackedMatrix { PackedMatrix(base: at(name)!, k: k, n: n, type: type) }
        wte = table("wte.weight")
        wpe = floats("wpe.weight")
        lnFW = floats("ln_f.weight")
        lnFB = floats("ln_f.bias")
        lmHead = layers.upperBound == config.nLayer ? (table("lm_head.weight") ?? table("wte.weight")) : nil
        let (C, I) = (config.nEmbd, config.innerDim)
        blocks = layers.map { l in
            let p = "h.\(l)."
            return BlockWeights(
                ln1W: floats(p + "ln_1.weight")!, ln1B: floats(p + "ln_1.bias")!,
                qkvW: packed(p + "attn.c_attn.weight", C, 3 * C), qkvB: floats(p + "attn.c_attn.bias")!,
                attnProjW: packed(p + "attn.c_proj.weight", C, C), attnProjB: floats(p + "attn.c_proj.bias")!,
                ln2W: floats(p + "ln_2.weight")!, ln2B: floats(p + "ln_2.bias")!,
                fcW: packed(p + "mlp.c_fc.weight", C, I), fcB: floats(p + "mlp.c_fc.bias")!,
                fcProjW: packed(p + "mlp.c_proj.weight", I, C), fcProjB: floats(p + "mlp.c_proj.bias")!)
        }
    }

    deinit { free(memory) }

    /// Tensor `name` (a checkpoint name without prefix, e.g. `h.0.mlp.c_fc.weight`) in place,
    /// when it is stored as plain f32 in its checkpoint layout; nil otherwise.
    func liveFloats(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let (offset, shape) = places[name], Self.form(name) == .floats || type == .f32 && Self.form(name) == .table else { return nil }
        return UnsafeMutableBufferPointer(start: (memory + offset).assumingMemoryBound(to: Float.self), count: shape.reduce(1, *))
    }

    /// Tensor `name` as f32 in its checkpoint layout (unpacked and widened where stored
    /// otherwise) and its shape; nil when this stage does not hold it.
    func floats(_ name: String) -> (values: [Float], shape: [Int])? {
        guard let (offset, shape) = places[name] else { return nil }
        let count = shape.reduce(1, *)
        let base = memory + offset
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            switch Self.form(name) {
            case .floats: buffer.baseAddress!.update(from: base.assumingMemoryBound(to: Float.self), count: count)
            case .table: for i in 0..<count { buffer[i] = type.load(base, i) }
            case .packed: PackedMatrix(base: base, k: shape[0], n: shape[1], type: type).unpack(into: buffer.baseAddress!)
            }
            initialized = count
        }
        return (values, shape)
    }

    /// 2 MB-aligned memory with transparent huge pages requested: a decode step streams all of
    /// it, and with 4 KB pages the TLB misses add up.
    private static func allocateHugePageBacked(bytes needed: Int) -> UnsafeMutableRawPointer {
        let hugePage = 2 << 20
        let bytes = (max(needed, 1) + hugePage - 1) / hugePage * hugePage
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, hugePage, bytes) == 0, let raw else { fatalError("out of memory: \(bytes) bytes of weights") }
        _ = madvise(raw, bytes, MADV_HUGEPAGE)
        return raw
    }

    /// Loads a stage's tensors from a Hugging Face GPT-2 directory (`model.safetensors`), accepting
    /// both the `transformer.`-prefixed names that `save_pretrained` writes and the bare names of
    /// openai-community/gpt2. Causal-mask buffers (`attn.bias`, `attn.masked_bias`) are ignored.
    public static func load(directory: String, config: GPT2Config, layers: Range<Int>? = nil, type: WeightType = .f32) throws -> GPT2Weights {
        let path = (directory as NSString).appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(path: path)
        let prefix = file.entry("transformer.wte.weight") != nil ? "transformer." : ""
        let untiedHead = file.entry("lm_head.weight") != nil
        return try GPT2Weights(config: config, layers: layers ?? 0..<config.nLayer, untiedHead: untiedHead, type: type) { name, shape, destination in
            let stored = name == "lm_head.weight" ? name : prefix + name
            guard let entry = file.entry(stored) else { throw EngineError.missingTensor(path: path, name: stored) }
            guard entry.shape == shape else {
                throw EngineError.tensorShape(path: path, name: stored, expected: shape, found: entry.shape)
            }
            try file.read(stored, into: destination)
        }
    }

    /// A model of `config`'s shape with seeded random weights (N(0, 0.02)-like, LayerNorm at 1/0):
    /// what the benchmark runs when no checkpoint is needed.
    public static func random(config: GPT2Config, seed: UInt64 = 0, layers: Range<Int>? = nil, type: WeightType = .f32) throws -> GPT2Weights {
        try GPT2Weights(config: config, layers: layers ?? 0..<config.nLayer, untiedHead: false, type: type) { name, shape, destination in
            let count = shape.reduce(1, *)
            if name.hasSuffix("ln_1.weight") || name.hasSuffix("ln_2.weight") || name == "ln_f.weight" {
                destination.update(repeating: 1, count: count)
                return
            }
            var rng = SplitMix64(seed: seed &+ UInt64(truncatingIfNeeded: name.hashValueStable))
            let scale: Float = name.hasSuffix(".bias") ? 0.01 : 0.02
            for i in 0..<count { destination[i] = rng.nextSymmetricFloat() * scale * 1.7320508 }
        }
    }
}

extension String {
    /// FNV-1a: a hash that is the same in every process (Swift's `hashValue` is seeded per run).
    var hashValueStable: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h
    }
}
