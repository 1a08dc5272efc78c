/// Keys and values of every position seen so far, for the layers of one stage and one batch of
/// sequences, plus which positions are real tokens (left padding is not).
///
/// Layout per layer: `(B, NH, capacity, HD)`, so one head's keys are contiguous for the
/// attention matmuls.
public final class KVCache {
    public let batch: Int
    public let capacity: Int
    public private(set) var length = 0
    let heads: Int, headDim: Int
    private let layerCount: Int
    private let keys: UnsafeMutablePointer<Float>
    private let values: UnsafeMutablePointer<Float>
    /// (B, capacity): 1 where the position holds a real token.
    let mask: UnsafeMutablePointer<UInt8>
    /// Per stage-local layer, its own mask once a step skipped the layer (nnsight's `skip`): a
    /// skipped layer stores no keys, so its later steps do not attend to those positions.
    private var layerMasks: [UnsafeMutablePointer<UInt8>?]

    public init(config: GPT2Config, layers: Int, batch: Int, capacity: Int? = nil) {
        self.batch = batch
        self.capacity = capacity ?? config.nPositions
        heads = config.nHead
        headDim = config.headDim
        layerCount = layers
        let size = layers * batch * config.nEmbd * self.capacity
        keys = .allocate(capacity: max(size, 1))
        values = .allocate(capacity: max(size, 1))
        mask = .allocate(capacity: max(batch * self.capacity, 1))
        mask.initialize(repeating: 0, count: max(batch * self.capacity, 1))
        layerMasks = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: layers)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
        mask.deallocate()
        for m in layerMasks { m?.deallocate() }
    }

    /// The mask attention in stage-local layer `l` uses: `(B, capacity)`.
    func mask(layer l: Int) -> UnsafeMutablePointer<UInt8> { layerMasks[l] ?? mask }

    /// Stage-local layer `l` does not run this step: its keys for the step's `count` positions
    /// stay unwritten and hidden from its later steps.
    func skip(layer l: Int, count: Int) {
        let own: UnsafeMutablePointer<UInt8>
        if let existing = layerMasks[l] {
            own = existing
        } else {
            own = .allocate(capacity: max(batch * capacity, 1))
            own.initialize(from: mask, count: max(batch * capacity, 1))
            layerMasks[l] = own
        }
        for b in 0..<batch { (own + b * capacity + length).update(repeating: 0, count: count) }
    }

    /// Bytes held by keys and values.
    public var byteCount: Int { Self.byteCount(channels: heads * headDim, layers: layerCount, batch: batch, capacity: capacity) }

    /// What a cache of this shape takes, in bytes (keys and values).
    public static func byteCount(config: GPT2Config, layers: Int, batch: Int, capacity: Int) -> Int {
        byteCount(channels: config.nEmbd, layers: layers, batch: batch, capacity: capacity)
    }

    private static func byteCount(channels: Int, layers: Int, batch: Int, capacity: Int) -> Int { 2 * layers * batch * channels * capacity * 4 }

    /// Starts a step of `count` new positions with their padding mask `(B, count)`.
    func beginStep(count: Int, mask newMask: [UInt8]) throws {
        guard length + count <= capacity else {
            throw EngineError.promptTooLong(length: length + count, limit: capacity)
        }
        for b in 0..<batch {
            for t in 0..<count { mask[b * capacity + length + t] = newMask[b * count + t] }
        }
        for case let own? in layerMasks {
            for b in 0..<batch { (own + b * capacity + length).update(from: mask + b * capacity + length, count: count) }
        }
    }

    /// Commits the step's positions once every layer has stored them.
    func endStep(count: Int) { length += count }

    /// Start of head `h`'s keys for sequence `b` in stage-local layer `l`: `(capacity, HD)`.
    func keys(layer l: Int, batch b: Int, head h: Int) -> UnsafeMutablePointer<Float> {
        keys + (((l * batch + b) * heads + h) * capacity) * headDim
    }

    func values(layer l: Int, batch b: Int, head h: Int) -> UnsafeMutablePointer<Float> {
        values + (((l * batch + b) * heads + h) * capacity) * headDim
    }

    /// Forgets everything (the buffers are kept for reuse).
    public func reset() {
        length = 0
        mask.update(repeating: 0, count: batch * capacity)
        for m in layerMasks { m?.deallocate() }
        layerMasks = layerMasks.map { _ in nil }
    }
}
