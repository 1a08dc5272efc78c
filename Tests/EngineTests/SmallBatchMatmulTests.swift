import Engine
import EngineKernels
import Testing

/// The AVX2 small-batch kernels against a plain triple loop, on shapes that exercise every
/// remainder path (rows not a multiple of 4, columns not a multiple of 16, odd inner sizes).
@Suite struct SmallBatchMatmulTests {
    static let hasKernels = BLASRuntime.cpuFlags.isSuperset(of: ["avx2", "fma"])

    func random(_ count: Int, _ rng: inout SplitMix64) -> [Float] { (0..<count).map { _ in rng.nextUnitFloat() - 0.5 } }

    @Test(.enabled(if: hasKernels), arguments: [(2, 8, 16), (3, 37, 50), (5, 64, 33), (16, 100, 200), (7, 9, 1)])
    func matmulMatchesNaive(shape: (Int, Int, Int)) {
        let (M, K, N) = shape
        var rng = SplitMix64(seed: UInt64(M * 1000 + K * 10 + N))
        let x = random(M * K, &rng), w = random(K * N, &rng), bias = random(N, &rng)
        var out = [Float](repeating: .nan, count: M * N)
        // Whole, and in two column ranges as the pool splits them (the first a multiple of 16).
        for ranges in [[0..<N], [0..<(N / 32 * 16), (N / 32 * 16)..<N]] {
            out = [Float](repeating: .nan, count: M * N)
            for columns in ranges { smallMatmul(&out, x, w, bias, m: M, k: K, n: N, columns: columns) }
            for r in 0..<M {
                for c in 0..<N {
                    var s = bias[c]
                    for k in 0..<K { s += x[r * K + k] * w[k * N + c] }
                    #expect(abs(out[r * N + c] - s) <= 1e-4, "(\(r), \(c)) of \(shape)")
                }
            }
        }
    }

    @Test(.enabled(if: hasKernels), arguments: [(2, 8, 70), (3, 37, 129), (16, 64, 200), (1, 20, 5)])
    func transposedMatchesNaive(shape: (Int, Int, Int)) {
        let (M, C, V) = shape
        var rng = SplitMix64(seed: UInt64(M * 1000 + C * 10 + V))
        let x = random(M * C, &rng), table = random(V * C, &rng)
        var out = [Float](repeating: .nan, count: M * V)
        for ranges in [[0..<V], [0..<(V / 2), (V / 2)..<V]] {
            out = [Float](repeating: .nan, count: M * V)
            for rows in ranges { smallMatmulTransposed(&out, x, table, m: M, k: C, n: V, rows: rows) }
            for r in 0..<M {
                for v in 0..<V {
                    var s: Float = 0
                    for c in 0..<C { s += x[r * C + c] * table[v * C + c] }
                    #expect(abs(out[r * V + v] - s) <= 1e-4, "(\(r), \(v)) of \(shape)")
                }
            }
        }
    }
}
