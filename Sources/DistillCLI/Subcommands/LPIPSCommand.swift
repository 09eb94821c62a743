import ArgumentParser
import DistillNN

/// `pipeline lpips`: LPIPS distances between pairs of images.
struct LPIPSCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lpips",
    abstract: "Print the LPIPS distance of each pair of images, one per line.",
    discussion: """
      A and B are each a PNG or JPEG image (one pair; [0, 1] is mapped to [-1, 1]) or a \
      .safetensors batch [N, 3, H, W] in [-1, 1] (the first tensor stored in the file, or --key). \
      The weights are a safetensors state dict in the lpips package's key names; docs/lpips.md \
      shows how to convert the package's trained weights. Exit status 2 for bad input (missing \
      file, shape mismatch, weights of another network), 1 otherwise.
      """)

  @Option(help: "The trunk.")
  var net: LPIPS.Network

  @Option(help: "The LPIPS weights (.safetensors, the lpips package's state-dict names).")
  var weights: String

  @Option(help: "The tensor to read from a safetensors input (both A and B unless --key-b is given).")
  var key: String?

  @Option(name: .customLong("key-b"), help: "The tensor to read from B when it differs from --key.")
  var keyB: String?

  @Argument(help: "The first images: an image file or a .safetensors batch.")
  var a: String

  @Argument(help: "The second images, of the same shape as A.")
  var b: String

  func run() throws {
    try runReportingErrors {
      let distances = try LPIPSComparison.distances(
        network: net, weightsPath: weights, pathA: a, pathB: b, keyA: key, keyB: keyB ?? key)
      for d in distances { print(d) }
    }
  }
}
