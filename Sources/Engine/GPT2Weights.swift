import Foundation

/// One transformer block's parameters, pointers into `GPT2Weights`'s single allocation.
/// Conv1D weights are stored `[in, out]` as in the checkpoint (y = x @ W + b).
struct BlockWeights {
    var ln1W, ln1B: UnsafeMutablePointer<Float>          // (C)
    var qkvW, qkvB: UnsafeMutablePointer<Float>          // (C, 3C), (3C)
    var attnProjW, attnProjB: UnsafeMutablePointer<Float> // (C, C), (C)
    var ln2W, ln2B: UnsafeMutablePointer<Float>          // (C)
    var fcW, fcB: UnsafeMutablePointer<Float>            // (C, 4C), (4C)
    var fcProjW, fcProjB: UnsafeMutablePointer<Float>    // (4C, C), (C)
}

/// The parameters one pipeline stage needs: blocks `layers`, plus the embeddings when the stage
/// owns layer 0 and `ln_f`/`lm_head` when it owns the last layer. One allocation holds them all.
///
/// ```swift
/// let config = try GPT2Config.load(directory: dir)
/// let lastStage = try GPT2Weights.load(directory: dir, config: config, layers: 2..<4)
/// ```
public final class GPT2Weights: @unchecked Sendable {
    public let config: GPT2Config
    public let layers: Range<Int>
    public var hasEmbeddings: Bool { layers.lowerBound == 0 }
    public var hasHead: Bool { layers.upperBound == config.nLayer }
    /// Number of float32 parameters held (tied weights counted once).
    public let parameterCount: Int

    /// The one allocation holding every tensor, in layout order.
    let memory: UnsafeMutablePointer<Float>
    let wte: UnsafeMutablePointer<Float>?     // (V, C), first stage
    let wpe: UnsafeMutablePointer<Float>?     // (maxT, C), first stage
    let lnFW, lnFB: UnsafeMutablePointer<Float>? // (C), last stage
    let lmHead: UnsafeMutablePointer<Float>?  // (V, C), last stage: wte, or lm_head.weight if stored
    let blocks: [BlockWeights]                // blocks[i - layers.lowerBound]

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

    /// Allocates the stage's parameters and lets `fill` write each tensor, in layout order.
    init(config: GPT2Config, layers: Range<Int>, untiedHead: Bool,
         fill: (_ name: String, _ shape: [Int], _ destination: UnsafeMutablePointer<Float>) throws -> Void) throws {
        guard layers.lowerBound >= 0, layers.upperBound <= config.nLayer, !layers.isEmpty else {
            throw EngineError.invalidArgument("layer range \(layers) is not within [0, \(config.nLayer))")
        }
        self.config = config
        self.layers = layers
        let layout = Self.layout(config, layers: layers, untiedHead: untiedHead)
        let total = layout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        parameterCount = total
        memory = Self.allocateHugePageBacked(floats: total)
        var pointers: [String: UnsafeMutablePointer<Float>] = [:]
        var offset = 0
        do {
            for (name, shape) in layout {
                pointers[name] = memory + offset
                try fill(name, shape, memory + offset)
                offset += shape.reduce(1, *)
            }
        } catch {
            free(memory)
            throw error
        }
        wte = pointers["wte.weight"]
        wpe = pointers["wpe.weight"]
        lnFW = pointers["ln_f.weight"]
        lnFB = pointers["ln_f.bias"]
        lmHead = layers.upperBound == config.nLayer ? (pointers["lm_head.weight"] ?? pointers["wte.weight"]) : nil
        blocks = layers.map { l in
            let p = "h.\(l)."
            return BlockWeights(
                ln1W: pointers[p + "ln_1.weight"]!, ln1B: pointers[p + "ln_1.bias"]!,
                qkvW: pointers[p + "attn.c_attn.weight"]!, qkvB: pointers[p + "attn.c_attn.bias"]!,
                attnProjW: pointers[p + "attn.c_proj.weight"]!, attnProjB: pointers[p + "attn.c_proj.bias"]!,
                ln2W: pointers[p + "ln_2.weight"]!, ln2B: pointers[p + "ln_2.bias"]!,
                fcW: pointers[p + "mlp.c_fc.weight"]!, fcB: pointers[p + "mlp.c_fc.bias"]!,
                fcProjW: pointers[p + "mlp.c_proj.weight"]!, fcProjB: pointers[p + "mlp.c_proj.bias"]!)
        }
    }

    deinit { free(memory) }

    /// 2 MB-aligned memory with transparent huge pages requested: the matmul kernels walk weight
    /// columns at a stride of a whole row, which with 4 KB pages costs a TLB miss per row.
    private static func allocateHugePageBacked(floats: Int) -> UnsafeMutablePointer<Float> {
        let hugePage = 2 << 20
        let bytes = (floats * MemoryLayout<Float>.size + hugePage - 1) / hugePage * hugePage
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, hugePage, bytes) == 0, let raw else { fatalError("out of memory: \(bytes) bytes of weights") }
        _ = madvise(raw, bytes, MADV_HUGEPAGE)
        return raw.bindMemory(to: Float.self, capacity: floats)
    }

    /// Loads a stage's tensors from a Hugging Face GPT-2 directory (`model.safetensors`), accepting
    /// both the `transformer.`-prefixed names that `save_pretrained` writes and the bare names of
    /// openai-community/gpt2. Causal-mask buffers (`attn.bias`, `attn.masked_bias`) are ignored.
    public static func load(directory: String, config: GPT2Config, layers: Range<Int>? = nil) throws -> GPT2Weights {
        let path = (directory as NSString).appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(path: path)
        let prefix = file.entry("transformer.wte.weight") != nil ? "transformer." : ""
        let untiedHead = file.entry("lm_head.weight") != nil
        return try GPT2Weights(config: config, layers: layers ?? 0..<config.nLayer, untiedHead: untiedHead) { name, shape, destination in
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
    public static func random(config: GPT2Config, seed: UInt64 = 0, layers: Range<Int>? = nil) throws -> GPT2Weights {
        try GPT2Weights(config: config, layers: layers ?? 0..<config.nLayer, untiedHead: false) { name, shape, destination in
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
