import Engine
import EngineKernels
import Testing

/// The AVX2 kernels over packed weights against a plain loop, in every stored type, on shapes
/// that exercise each path (row blocks of 1, 4 and 6 and their remainders, a short last panel,
/// odd inner sizes), and the property batching relies on: a row's result does not depend on
/// the rows it is computed with or on how the panels are split.
@Suite struct PackedMatmulTests {
    static let hasKernels = BLASRuntime.cpuFlags.isSuperset(of: ["avx2", "fma", "f16c"])

    func random(_ count: Int, _ rng: inout SplitMix64) -> [Float] { (0..<count).map { _ in rng.nextUnitFloat() - 0.5 } }

    /// `w` (K,N) rounded to `type`, and its panels as raw bytes.
    func pack(_ w: [Float], k K: Int, n N: Int, _ type: PanelType) -> (rounded: [Float], panels: [UInt8]) {
        let rounded = w.map { v -> Float in
            switch type {
            case .f32: v
            case .f16: Float(Float16(v))
            case .bf16: Float(bitPattern: (v.bitPattern &+ 0x7FFF &+ ((v.bitPattern >> 16) & 1)) & 0xFFFF_0000)
            }
        }
        let panels = (N + 15) / 16
        var bytes = [UInt8](repeating: 0, count: panels * K * 16 * type.size)
        bytes.withUnsafeMutableBytes { raw in
            for p in 0..<panels {
                for k in 0..<K {
                    for c in 0..<16 where p * 16 + c < N {
                        let v = rounded[k * N + p * 16 + c], i = (p * K + k) * 16 + c
                        switch type {
                        case .f32: raw.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                        case .f16: raw.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
                        case .bf16: raw.storeBytes(of: UInt16(v.bitPattern >> 16), toByteOffset: 2 * i, as: UInt16.self)
                        }
                    }
                }
            }
        }
        return (rounded, bytes)
    }

    func product(_ x: [Float], _ panels: [UInt8], _ type: PanelType, _ bias: [Float]?, m M: Int, k K: Int, n N: Int,
                 splits: [Range<Int>]) -> [Float] {
        var out = [Float](repeating: .nan, count: M * N)
        panels.withUnsafeBytes { w in
            for range in splits { packedMatmul(&out, x, w.baseAddress!, type, bias, m: M, k: K, n: N, panels: range) }
        }
        return out
    }

    @Test(.enabled(if: hasKernels), arguments: [PanelType.f32, .bf16, .f16])
    func matmulMatchesNaive(type: PanelType) {
        for (M, K, N) in [(1, 8, 16), (1, 40, 130), (2, 37, 50), (5, 64, 33), (7, 9, 1), (9, 20, 48), (16, 100, 200), (13, 33, 17)] {
            var rng = SplitMix64(seed: UInt64(M * 1000 + K * 10 + N))
            let x = random(M * K, &rng), w = random(K * N, &rng), bias = random(N, &rng)
            let (rounded, panels) = pack(w, k: K, n: N, type)
            let count = (N + 15) / 16
            for splits in [[0..<count], [0..<(count / 2), (count / 2)..<count]] {
                let out = product(x, panels, type, bias, m: M, k: K, n: N, splits: splits)
                for r in 0..<M {
                    for c in 0..<N {
                        var s = bias[c]
                        for k in 0..<K { s += x[r * K + k] * rounded[k * N + c] }
                        #expect(abs(out[r * N + c] - s) <= 1e-4, "(\(r), \(c)) of \((M, K, N)) in \(type)")
                    }
                }
            }
        }
    }

    @Test(.enabled(if: hasKernels))
    func aRowsResultDoesNotDependOnTheRowsBesideIt() {
        let (K, N) = (96, 80)
        var rng = SplitMix64(seed: 3)
        let x = random(13 * K, &rng), w = random(K * N, &rng), bias = random(N, &rng)
        for type in [PanelType.f32, .bf16] {
            let panels = pack(w, k: K, n: N, type).panels
            let together = product(x, panels, type, bias, m: 13, k: K, n: N, splits: [0..<5])
            for r in 0..<13 {
                for splits in [[0..<5], [0..<2, 2..<5]] {
                    let alone = product(Array(x[(r * K)..<((r + 1) * K)]), panels, type, bias, m: 1, k: K, n: N, splits: splits)
                    #expect(alone == Array(together[(r * N)..<((r + 1) * N)]), "row \(r) in \(type), panels \(splits)")
                }
            }
        }
    }

    @Test(.enabled(if: hasKernels), arguments: [PanelType.f32, .bf16, .f16])
    func tableProductMatchesNaive(type: PanelType) {
        for (M, C, V) in [(1, 20, 5), (2, 8, 70), (3, 37, 129), (6, 64, 200)] {
            var rng = SplitMix64(seed: UInt64(M * 1000 + C * 10 + V))
            let x = random(M * C, &rng)
            // A (V,C) table is a (1, V*C) matrix as far as rounding and storage go.
            let (rounded, _) = pack(random(V * C, &rng), k: 1, n: V * C, type)
            var bytes = [UInt8](repeating: 0, count: V * C * type.size)
            bytes.withUnsafeMutableBytes { raw in
                for (i, v) in rounded.enumerated() {
                    switch type {
                    case .f32: raw.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                    case .f16: raw.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
                    case .bf16: raw.storeBytes(of: UInt16(v.bitPattern >> 16), toByteOffset: 2 * i, as: UInt16.self)
                    }
                }
            }
            var out = [Float](repeating: .nan, count: M * V)
            var alone = [Float](repeating: .nan, count: V)
            bytes.withUnsafeBytes { t in
                for rows in [0..<(V / 2), (V / 2)..<V] { tableProduct(&out, x, t.baseAddress!, type, m: M, k: C, n: V, rows: rows) }
                tableProduct(&alone, Array(x[((M - 1) * C)...]), t.baseAddress!, type, m: 1, k: C, n: V, rows: 0..<V)
            }
            #expect(alone == Array(out[((M - 1) * V)...]), "the last row alone, \((M, C, V)) in \(type)")
            for r in 0..<M {
                for v in 0..<V {
                    var s: Float = 0
                    for c in 0..<C { s += x[r * C + c] * rounded[v * C + c] }
                    #expect(abs(out[r * V + v] - s) <= 1e-4, "(\(r), \(v)) of \((M, C, V)) in \(type)")
                }
            }
        }
    }
}
