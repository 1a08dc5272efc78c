import Foundation
import Graph

/// The modules a script can import and what their names are: `torch` (and `torch.nn`,
/// `torch.nn.functional`), `nnsight` and `math`. Their functions are evaluated by the runner
/// (`ScriptRunner+Torch`), tensors and traced values alike.
enum Namespaces {
    static let modules: Set<String> = ["torch", "torch.nn", "torch.nn.functional", "nnsight", "math"]

    static func known(_ path: String) -> Bool { modules.contains(path) }

    static let dtypes: [String: DType] = [
        "float32": .float32, "float": .float32, "int64": .int64, "long": .int64, "bool": .bool,
    ]

    /// `from module import name`.
    static func member(_ module: String, _ name: String) -> PyValue? {
        if known(module + "." + name) { return .object(.namespace(module + "." + name)) }
        guard known(module) else { return nil }
        return attribute(module, name)
    }

    /// `module.name`: a submodule, a constant or a function (a method of the namespace).
    static func attribute(_ module: String, _ name: String) -> PyValue? {
        if known(module + "." + name) { return .object(.namespace(module + "." + name)) }
        switch (module, name) {
        case ("torch", "Tensor"): return .object(.namespace("torch.Tensor"))
        case ("nnsight", "LanguageModel"): return .builtin("LanguageModel")
        case ("nnsight", "TransformersModel"): return .builtin("TransformersModel")
        case ("torch", "Size"): return .builtin("torch.Size")
        case let ("torch", n) where dtypes[n] != nil: return .dtype(dtypes[n]!)
        case ("math", "pi"): return .float(Double.pi)
        case ("math", "e"): return .float(M_E)
        case ("math", "inf"): return .float(.infinity)
        case ("math", "nan"): return .float(.nan)
        case ("torch", "inf"): return .float(.infinity)
        case ("torch", "nan"): return .float(.nan)
        case ("torch", "pi"): return .float(Double.pi)
        default: return .method(.object(.namespace(module)), name)
        }
    }
}

/// torch's CPU random numbers after `torch.manual_seed(n)`: a 32-bit Mersenne Twister, as torch
/// seeds it. `rand` takes 24-bit uniforms like torch's float path; `randn` uses Box-Muller in
/// torch's order for tensors of 16 or more elements and per element below that. Deterministic
/// for a seed; bit-for-bit agreement with torch is checked in the tests.
struct TorchRandom {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624
    private var cachedNormal: Double?

    init(seed: UInt64) { reseed(seed) }

    mutating func reseed(_ seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
        cachedNormal = nil
    }

    mutating func next32() -> UInt32 {
        if index >= 624 {
            for i in 0..<624 {
                let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7fff_ffff)
                state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_b0df : 0)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    mutating func next64() -> UInt64 {
        let hi = UInt64(next32()), lo = UInt64(next32())
        return (hi << 32) | lo
    }

    /// A float in [0, 1) from 24 random bits.
    mutating func uniformFloat() -> Float { Float(next32() & ((1 << 24) - 1)) * Float(1.0 / 16_777_216.0) }

    /// A double in [0, 1) from 53 random bits.
    mutating func uniformDouble() -> Double { Double(next64() & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0) }

    mutating func rand(_ count: Int) -> [Float] { (0..<count).map { _ in uniformFloat() } }

    /// `torch.randint(low, high, ...)`: a 32-bit draw modulo the range (64-bit past 2^32).
    mutating func integers(_ count: Int, low: Int, high: Int) -> [Int64] {
        let range = UInt64(high - low)
        return (0..<count).map { _ in
            let draw = range >= 1 << 32 ? next64() % range : UInt64(next32()) % range
            return Int64(low) + Int64(draw)
        }
    }

    /// `torch.randperm(n)`: Fisher-Yates over 0..<n with a 32-bit draw per swap, as torch's CPU kernel.
    mutating func permutation(_ n: Int) -> [Int64] {
        var r = (0..<n).map(Int64.init)
        guard n > 1 else { return r }
        for i in 0..<(n - 1) {
            let z = Int(UInt64(next32()) % UInt64(n - i))
            r.swapAt(i, z + i)
        }
        return r
    }

    mutating func randn(_ count: Int) -> [Float] {
        guard count >= 16 else {
            // torch's per-element normal in double: each pair gives cos now and sin next time.
            return (0..<count).map { _ in
                if let cached = cachedNormal {
                    cachedNormal = nil
                    return Float(cached)
                }
                let u1 = uniformDouble(), u2 = uniformDouble()
                let r = (-2.0 * Foundation.log1p(-u2)).squareRoot()
                let theta = 2.0 * Double.pi * u1
                cachedNormal = r * Foundation.sin(theta)
                return Float(r * Foundation.cos(theta))
            }
        }
        var data = (0..<count).map { _ in uniformFloat() }
        func fill16(_ base: Int) {
            for j in 0..<8 {
                let u1 = 1 - data[base + j], u2 = data[base + j + 8]
                let radius = (-2 * Foundation.logf(u1)).squareRoot()
                let theta = Float(2.0 * Double.pi * Double(u2))
                data[base + j] = radius * Foundation.cosf(theta)
                data[base + j + 8] = radius * Foundation.sinf(theta)
            }
        }
        for base in Swift.stride(from: 0, to: count - 15, by: 16) { fill16(base) }
        if count % 16 != 0 {
            // torch recomputes the last 16 from fresh uniforms.
            for k in (count - 16)..<count { data[k] = uniformFloat() }
            fill16(count - 16)
        }
        return data
    }
}
