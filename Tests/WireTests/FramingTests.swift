import Foundation
import SwiftProtobuf
import Testing
@testable import Wire

@Suite struct FramingTests {
    @Test func everyMessageTypeRoundTrips() throws {
        #expect(Samples.bodies.count == 11)
        for body in Samples.bodies {
            let envelope = Samples.envelope(body)
            let decoded = try Framing.decode(try Framing.encode(envelope))
            #expect(decoded == envelope, "\(body)")
        }
    }

    /// Catches an accidental schema change: these bytes are what version 2 puts on the wire.
    @Test func goldenBytes() throws {
        let envelope = Samples.envelope(.saved(.with {
            $0.saveID = 3; $0.step = 1
            $0.value = HostTensor(shape: [1, 2], floats: [1, -2]).wire
        }), requestId: 7)
        let hex = try Framing.encode(envelope).map { String(format: "%02x", $0) }.joined()
        // version 2 | request 7 | saved (field 14, 22 bytes): save_id 3, step 1, tensor (16 bytes):
        // shape [1, 2] packed, dtype FLOAT32, data 1.0 -2.0 little-endian.
        #expect(hex == "0802" + "1007" + "7216" + "0803" + "1001" + "1a10" + "0a020102" + "1001" + "1a08" + "0000803f" + "000000c0")
    }

    /// The committed generated code was made from the committed schema (scripts/generate-proto.sh
    /// records the schema's sha256 in the generated file).
    @Test func generatedCodeIsNotStale() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let protoDir = root.appendingPathComponent("proto")
        let files = try FileManager.default.contentsOfDirectory(atPath: protoDir.path).filter { $0.hasSuffix(".proto") }.sorted()
        var schema = Data()
        for f in files { schema.append(try Data(contentsOf: protoDir.appendingPathComponent(f))) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(schema)
        try input.fileHandleForWriting.close()
        let hash = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        process.waitUntilExit()
        let generated = try String(contentsOf: root.appendingPathComponent("Sources/Wire/Generated/nnsight.pb.swift"), encoding: .utf8)
        #expect(generated.hasPrefix("// proto-sha256: \(hash)\n"), "proto/ changed: run scripts/generate-proto.sh")
    }

    // MARK: - bad input

    @Test func oversizedMessagesAreRefusedBeforeParsing() throws {
        let frame = try Framing.encode(Samples.envelope(Samples.bodies[3]))
        #expect(throws: WireError.tooLarge(bytes: frame.count, limit: 100)) { try Framing.decode(frame, maxBytes: 100) }
    }

    @Test func wrongProtocolVersionIsRefused() throws {
        var envelope = Samples.envelope(Samples.bodies[0])
        envelope.protocolVersion = 1
        #expect(throws: WireError.versionMismatch(received: 1, expected: 2)) { try Framing.decode(try Framing.encode(envelope)) }
    }

    @Test func envelopeWithoutAKnownBodyIsRefused() throws {
        // Field 99 is not in the schema: it parses as an unknown field, and the body is empty.
        var bytes = try Framing.encode(Framing.envelope { _ in })
        bytes.append(contentsOf: [0x98, 0x06, 0x01])  // field 99, varint 1
        #expect(throws: WireError.unknownMessage) { try Framing.decode(bytes) }
    }

    @Test func truncatedAndGarbageFramesAreMalformed() throws {
        let frame = try Framing.encode(Samples.envelope(Samples.bodies[2]))
        for cut in [1, frame.count / 3, frame.count - 1] {
            #expect(throws: WireError.self) { try Framing.decode(frame.prefix(cut)) }
        }
        #expect { try Framing.decode(Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF])) } throws: { error in
            if case .malformed? = error as? WireError { return true }
            return false
        }
    }

    @Test func tensorWhoseBytesDisagreeWithItsShapeIsRefused() throws {
        var tensor = HostTensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]).wire
        tensor.shape = [2, 4]
        let envelope = Samples.envelope(.saved(.with { $0.value = tensor }))
        #expect(throws: WireError.invalidTensor("shape [2, 4] of float32 needs 32 bytes, got 24")) {
            try Framing.decode(try Framing.encode(envelope))
        }
    }

    @Test func errorRepliesNameTheProblem() throws {
        let reply = WireError.versionMismatch(received: 9, expected: 2).reply(requestId: 5)
        #expect(reply.error.code == .errorVersionMismatch)
        #expect(reply.error.message.contains("protocol version 9"))
        #expect(try Framing.decode(try Framing.encode(reply)) == reply)
    }

    /// Thousands of random and mutated frames: each decodes or throws a WireError; none crashes.
    @Test func fuzzedFramesNeverCrashTheDecoder() throws {
        var rng = SystemRandomNumberGenerator()
        var seedRng = LCG(seed: 12345)
        let valid = try Samples.bodies.map { try Framing.encode(Samples.envelope($0)) }
        var outcomes = (ok: 0, refused: 0)
        for i in 0..<6000 {
            var frame: Data
            switch i % 3 {
            case 0:  // random bytes
                frame = Data((0..<Int(seedRng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: seedRng.next()) })
            case 1:  // flip bytes of a valid frame
                frame = valid[Int(seedRng.next() % UInt64(valid.count))]
                for _ in 0..<(1 + Int(seedRng.next() % 4)) where !frame.isEmpty {
                    let at = Int(seedRng.next() % UInt64(frame.count))
                    frame[frame.startIndex + at] ^= UInt8(truncatingIfNeeded: seedRng.next() | 1)
                }
            default:  // splice two valid frames at random points
                let a = valid[Int(seedRng.next() % UInt64(valid.count))], b = valid[Int(seedRng.next() % UInt64(valid.count))]
                frame = a.prefix(Int(seedRng.next() % UInt64(a.count))) + b.suffix(Int(seedRng.next() % UInt64(b.count)))
            }
            _ = rng.next()
            do {
                _ = try Framing.decode(frame, maxBytes: 1 << 16)
                outcomes.ok += 1
            } catch {
                outcomes.refused += 1
            }
        }
        #expect(outcomes.ok + outcomes.refused == 6000)
        #expect(outcomes.refused > 3000)
    }
}

/// A deterministic generator so a fuzz failure reproduces.
struct LCG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 11
    }
}
