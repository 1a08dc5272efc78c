import Foundation

/// Finds a GPT-2 checkpoint by what a user calls it: a local directory, or a Hugging Face hub
/// name (`openai-community/gpt2`) in the local hub cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`,
/// `~/.cache/huggingface/hub`; `models--ORG--NAME/snapshots/<rev>/`, `refs/main` first). It
/// never downloads.
///
/// ```swift
/// let dir = try ModelLocator.resolve("openai-community/gpt2")   // .../snapshots/<rev>
/// ```
public enum ModelLocator {
    /// The files a checkpoint directory must hold.
    public static let required = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]

    public struct NotFound: Error, CustomStringConvertible {
        public let description: String
    }

    /// The hub cache directories searched, in order.
    public static func cacheRoots(environment: [String: String]) -> [String] {
        var roots: [String] = []
        if let cache = environment["HF_HUB_CACHE"], !cache.isEmpty { roots.append(cache) }
        if let home = environment["HF_HOME"], !home.isEmpty { roots.append(home + "/hub") }
        if let user = environment["HOME"], !user.isEmpty { roots.append(user + "/.cache/huggingface/hub") }
        return roots
    }

    public static func resolve(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: name, isDirectory: &isDirectory), isDirectory.boolValue {
            try check(name, what: "the directory \(name)")
            return name
        }
        let parts = name.split(separator: "/")
        let roots = cacheRoots(environment: environment)
        guard parts.count == 2 || parts.count == 1, !name.hasPrefix("."), !name.hasPrefix("/") else {
            throw NotFound(description: "model '\(name)': no such directory, and not a hub name (ORG/NAME)")
        }
        let folder = "models--" + parts.joined(separator: "--")
        var looked: [String] = [name]
        for root in roots {
            let repo = root + "/" + folder
            looked.append(repo)
            guard fm.fileExists(atPath: repo + "/snapshots") else { continue }
            let revision = (try? String(contentsOfFile: repo + "/refs/main", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            let snapshots = ((try? fm.contentsOfDirectory(atPath: repo + "/snapshots")) ?? []).sorted()
            guard let chosen = revision.flatMap({ snapshots.contains($0) ? $0 : nil }) ?? (snapshots.count == 1 ? snapshots.first : nil) else {
                throw NotFound(description: "model '\(name)': \(repo) has \(snapshots.count) snapshots and no refs/main naming one of them")
            }
            let directory = repo + "/snapshots/" + chosen
            try check(directory, what: "the cached snapshot \(directory)")
            return directory
        }
        throw NotFound(description: """
            model '\(name)' was not found; looked in: \(looked.joined(separator: ", ")). \
            Pass --model DIR (a directory with \(required.joined(separator: ", "))), or put the files in the hub cache, \
            e.g. `huggingface-cli download \(name) \(required.joined(separator: " "))` on a machine with network access
            """)
    }

    static func check(_ directory: String, what: String) throws {
        let missing = required.filter { !FileManager.default.fileExists(atPath: directory + "/" + $0) }
        guard missing.isEmpty else {
            throw NotFound(description: "\(what) is not a complete GPT-2 checkpoint: missing \(missing.joined(separator: ", "))")
        }
    }
}
