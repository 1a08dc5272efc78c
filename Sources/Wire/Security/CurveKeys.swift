import CZMQ
import Foundation

/// A CURVE keypair as ZeroMQ writes it: 40-character Z85 text for each 32-byte key.
///
/// ```swift
/// let pair = try CurveKeyPair.generate()
/// try KeyDirectory.write(pair, name: "alice", to: "keys/alice")   // alice.key (0600), alice.pub
/// ```
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    /// A new keypair from libzmq's `zmq_curve_keypair`.
    public static func generate() throws(SecurityError) -> CurveKeyPair {
        guard zmq_has("curve") != 0 else { throw .noCurve }
        var pub = [CChar](repeating: 0, count: 41), secret = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &secret) == 0 else { throw .noCurve }
        return CurveKeyPair(publicKey: Self.text(pub), secretKey: Self.text(secret))
    }

    /// The keypair of `secretKey` (its public half derived, as `zmq_curve_public` does).
    public init(secretKey: String) throws(SecurityError) {
        guard CurveKeyPair.isKey(secretKey) else { throw .badKey("a secret key is 40 characters of Z85 text") }
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, secretKey) == 0 else { throw .badKey("not a CURVE secret key") }
        self.init(publicKey: Self.text(pub), secretKey: secretKey)
    }

    init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Whether `text` is a 40-character Z85 key.
    public static func isKey(_ text: String) -> Bool {
        guard text.utf8.count == 40 else { return false }
        var bytes = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&bytes, text) != nil
    }

    /// 32 raw key bytes as Z85 text.
    static func z85(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&out, bytes, 32) != nil else { return nil }
        return text(out)
    }

    private static func text(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why keys could not be used.
public enum SecurityError: Error, CustomStringConvertible, Equatable {
    case noCurve
    case badKey(String)
    case directory(String)

    public var description: String {
        switch self {
        case .noCurve: "this libzmq was built without CURVE (zmq_has(\"curve\") is false)"
        case let .badKey(m): "bad CURVE key: \(m)"
        case let .directory(m): m
        }
    }
}

/// `--keys DIR`: this party's keypair (`NAME.key`, mode 0600, and `NAME.pub`), the coordinator's
/// public key for clients and workers (`coordinator.pub`), and for the coordinator the public keys
/// of the clients and workers it accepts (`authorized/*.pub`).
///
/// ```text
/// nnsight keygen --out keys/coordinator --name coordinator
/// nnsight keygen --out keys/alice --name alice
/// cp keys/alice/alice.pub keys/coordinator/authorized/
/// cp keys/coordinator/coordinator.pub keys/alice/
/// ```
public struct KeyDirectory: Sendable {
    public let path: String
    /// The name of this party's key (`NAME.key`).
    public let name: String
    public let own: CurveKeyPair
    /// `coordinator.pub`, when this party is not the coordinator.
    public let coordinatorKey: String?
    /// `authorized/NAME.pub` by name.
    public let authorized: [String: String]

    public static func load(_ path: String) throws(SecurityError) -> KeyDirectory {
        let fm = FileManager.default
        guard let files = try? fm.contentsOfDirectory(atPath: path) else {
            throw .directory("--keys \(path): not a readable directory (make one with `nnsight keygen --out \(path) --name NAME`)")
        }
        let secrets = files.filter { $0.hasSuffix(".key") }.sorted()
        guard secrets.count == 1, let secretFile = secrets.first else {
            throw .directory(secrets.isEmpty
                ? "--keys \(path): no NAME.key secret key in it (make one with `nnsight keygen --out \(path) --name NAME`)"
                : "--keys \(path): more than one secret key (\(secrets.joined(separator: ", "))); keep one per directory")
        }
        let secretPath = path + "/" + secretFile
        // The file's own mode, not a symlink's (a Kubernetes Secret volume links every key into place).
        let target = URL(fileURLWithPath: secretPath).resolvingSymlinksInPath().path
        if let mode = (try? fm.attributesOfItem(atPath: target))?[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw .directory("\(secretPath): a secret key must be readable by its owner only (chmod 600 \(secretPath))")
        }
        let own = try CurveKeyPair(secretKey: try readKey(secretPath))
        let name = String(secretFile.dropLast(4))
        let coordinatorKey = name == "coordinator" || !files.contains("coordinator.pub") ? nil : try readKey(path + "/coordinator.pub")
        var authorized: [String: String] = [:]
        let authorizedPath = path + "/authorized"
        for file in ((try? fm.contentsOfDirectory(atPath: authorizedPath)) ?? []).sorted() where file.hasSuffix(".pub") {
            authorized[String(file.dropLast(4))] = try readKey(authorizedPath + "/" + file)
        }
        return KeyDirectory(path: path, name: name, own: own, coordinatorKey: coordinatorKey, authorized: authorized)
    }

    /// The coordinator's public key, required of clients and workers.
    public func requireCoordinatorKey() throws(SecurityError) -> String {
        guard let coordinatorKey else {
            throw .directory("--keys \(path): no coordinator.pub (copy the coordinator's public key there)")
        }
        return coordinatorKey
    }

    /// Writes `NAME.key` (mode 0600) and `NAME.pub` into `directory` (made if missing) and an
    /// empty `authorized/`; refuses to overwrite an existing key.
    public static func write(_ pair: CurveKeyPair, name: String, to directory: String) throws(SecurityError) {
        let fm = FileManager.default
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw .directory("key name '\(name)': use letters, digits, '-', '_' and '.'")
        }
        let secretPath = directory + "/" + name + ".key", publicPath = directory + "/" + name + ".pub"
        guard !fm.fileExists(atPath: secretPath) else { throw .directory("\(secretPath) exists; not overwriting a key") }
        do {
            try fm.createDirectory(atPath: directory + "/authorized", withIntermediateDirectories: true)
            guard fm.createFile(atPath: secretPath, contents: Data((pair.secretKey + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw SecurityError.directory("cannot write \(secretPath)")
            }
            try Data((pair.publicKey + "\n").utf8).write(to: URL(fileURLWithPath: publicPath))
        } catch let error as SecurityError {
            throw error
        } catch {
            throw .directory("cannot write keys into \(directory): \(error.localizedDescription)")
        }
    }

    /// A whole cluster's keys, as an operator would lay them out under `root`: `root/coordinator`
    /// with every party's public key in its `authorized/`, and `root/PARTY` for each of `parties`
    /// with the coordinator's `coordinator.pub`. For tests and local clusters.
    public static func makeCluster(at root: String, parties: [String]) throws(SecurityError) {
        let coordinator = try CurveKeyPair.generate()
        try write(coordinator, name: "coordinator", to: root + "/coordinator")
        for party in parties {
            let pair = try CurveKeyPair.generate()
            try write(pair, name: party, to: root + "/" + party)
            do {
                try Data((pair.publicKey + "\n").utf8).write(to: URL(fileURLWithPath: root + "/coordinator/authorized/\(party).pub"))
                try Data((coordinator.publicKey + "\n").utf8).write(to: URL(fileURLWithPath: root + "/\(party)/coordinator.pub"))
            } catch {
                throw .directory("cannot write the keys of \(party) under \(root): \(error.localizedDescription)")
            }
        }
    }

    private static func readKey(_ path: String) throws(SecurityError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .directory("cannot read \(path)") }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard CurveKeyPair.isKey(key) else { throw .badKey("\(path) does not hold a 40-character Z85 key") }
        return key
    }
}
