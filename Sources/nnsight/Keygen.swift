import ArgumentParser
import Foundation
import Wire

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a CURVE keypair for a coordinator, worker or client (--keys DIR).",
        discussion: """
        Writes DIR/NAME.key (the secret key, mode 0600) and DIR/NAME.pub (the public key), Z85 text
        as ZeroMQ's zmq_curve_keypair makes it, and an empty DIR/authorized/. Then:
          - the coordinator's directory (NAME coordinator) holds in authorized/ the .pub of every
            client and worker it accepts;
          - each client's and worker's directory holds the coordinator's coordinator.pub.
          nnsight keygen --out keys/coordinator --name coordinator
          nnsight keygen --out keys/alice --name alice
          cp keys/alice/alice.pub keys/coordinator/authorized/ && cp keys/coordinator/coordinator.pub keys/alice/
        """)

    @Option(name: .long, help: "The directory to write the keys into (made if missing).")
    var out: String

    @Option(name: .long, help: "The key's name: NAME.key and NAME.pub.")
    var name: String

    func run() throws {
        do {
            let pair = try CurveKeyPair.generate()
            try KeyDirectory.write(pair, name: name, to: out)
            print("\(out)/\(name).pub \(pair.publicKey)")
        } catch {
            throw CLIError(description: "\(error)")
        }
    }
}
