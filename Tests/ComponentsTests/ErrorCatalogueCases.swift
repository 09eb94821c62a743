import DistillCore
import DistillDiffusion
import DistillTestSupport
import Foundation

/// The setup of each catalogue row of docs/errors.md: files in the row's scratch folder, and
/// the `pipeline` arguments to run there. The expected message and exit code are the doc's.
enum CatalogueCases {
  typealias Setup = (CatalogueScratch) throws -> [String]

  static var all: [(id: String, setup: Setup)] {
    manifestFile + manifestValues + references + overrides + flags + teacherFolder + diffusersConfig + safetensors
      + images + pairs + runFolder + textToImage + weightFormat
  }

  // MARK: J: the manifest file and its JSON

  static var manifestFile: [(id: String, setup: Setup)] {
    [
      ("J1", { _ in ["validate", "nope.json"] }),
      ("J2", { s in try s.write("folder/x", ""); return ["validate", "folder"] }),
      ("J3", { s in try s.write("m.json", ""); return ["validate", "m.json"] }),
      ("J4", { s in try s.write("m.json", #"{"seed": }"#); return ["validate", "m.json"] }),
      ("J5", { s in try s.write("m.json", "{} trailing"); return ["run", "m.json"] }),
      ("J6", { s in try s.write("m.json", #"{"seed": 1, "seed": 2}"#); return ["validate", "m.json"] }),
      ("J7", { s in
        try s.write("m.json", String(repeating: "[", count: 200) + String(repeating: "]", count: 200))
        return ["validate", "m.json"]
      }),
      ("J8", { s in try s.write("m.json", #"{"seed": 1e400}"#); return ["validate", "m.json"] }),
      ("J9", { s in try s.write("m.json", Data([0xFF, 0xFE, 0x7B, 0x7D])); return ["validate", "m.json"] }),
      ("J10", { s in try s.write("m.json", #"{"name": "\ud800"}"#); return ["validate", "m.json"] }),
      ("J11", { s in try s.write("m.json", "[1, 2]"); return ["validate", "m.json"] }),
    ]
  }

  // MARK: M: manifest keys, types and ranges

  static func validate(_ overrides: [String], removing: [String] = []) -> Setup {
    { s in ["validate", try s.manifest("m.json", overrides, removing: removing)] }
  }

  static var manifestValues: [(id: String, setup: Setup)] {
    [
      ("M1", validate(["trainig.steps=3"])),
      ("M2", validate(["training.stepz=3"])),
      ("M3", validate(["generator.widht=3"])),
      ("M4", validate(["teacher.type=\"gauss\""])),
      ("M5", validate(["teacher.type=3"])),
      ("M6", validate(["losses[0]={\"weight\": 1}"])),
      ("M7", validate(["teacher=\"x\""])),
      ("M8", validate([], removing: ["generator"])),
      ("M9", validate(["training.steps=\"ten\""])),
      ("M10", validate(["training.steps=1.5"])),
      ("M11", validate(["training.steps=0"])),
      ("M12", validate(["training.ema=1"])),
      ("M13", validate(["seed=-1"])),
      ("M14", validate(["training.updateOrder=\"random\""])),
      ("M15", validate(["optimizer.betas=[0.9]"])),
      ("M16", validate(["name=3"])),
      ("M17", validate(["losses=[]"])),
      ("M18", validate(["losses={}"])),
      ("M19", validate(["teacher.means=[[0,0],[1]]"])),
      ("M20", validate(["evaluation.metrics=[\"energy-distanse\"]"])),
      ("M21", validate(["evaluation.metrics=\"energy-distance\""])),
      ("M22", validate(["training.stepz=3", "seed=-1"])),
      ("M23", validate(["teacher.weights=[0.2,0.2]"])),
      ("M24", validate([], removing: ["teacher"])),
      ("M25", validate([
        "data={\"type\": \"gaussian-mixture\", \"means\": [[0, 0]]}",
        "losses[1]={\"type\": \"denoising\"}",
      ])),
      ("M26", validate(["evaluation.gridSize=5000"])),
      (
        "M27",
        validate([
          "generator={\"type\": \"denoiser\", \"init\": \"new\", \"stepping\": \"sideways\", \"network\": "
            + "{\"type\": \"mlp\", \"inputSize\": 2, \"width\": 16, \"depth\": 2, \"outputSize\": 2}}"
        ])
      ),
      (
        "M28",
        validate([
          "schedule={\"type\": \"ddpm\", \"rescaleZeroTerminalSNR\": true}",
          "generator={\"type\": \"denoiser\", \"init\": \"new\", \"prediction\": \"epsilon\", \"network\": "
            + "{\"type\": \"mlp\", \"inputSize\": 2, \"width\": 16, \"depth\": 2, \"outputSize\": 2}}",
        ])
      ),
      ("M29", validate(["generator={\"type\": \"autoencoder\"}"])),
      ("M30", validate(["losses[1]={\"type\": \"autoencoder\"}"])),
    ]
  }

  // MARK: R: references between entries and files the manifest names

  static let mixtureData = "data={\"type\": \"gaussian-mixture\", \"means\": [[-2, 0], [2, 0]], \"std\": 0.3}"

  static var references: [(id: String, setup: Setup)] {
    [
      ("R1", validate(["losses[0].fake=\"fak\""])),
      ("R2", validate([], removing: ["scores"])),
      ("R3", validate(["teacher={\"type\": \"folder\", \"path\": \"missing\"}"])),
      ("R4", validate(["teacher={\"type\": \"folder\"}"])),
      ("R5", validate(["losses[1]={\"type\": \"regression\", \"pairs\": \"nopairs\"}"])),
      ("R7", validate([mixtureData, "losses[1]={\"type\": \"dmd2-gan\", \"fake\": \"real\"}"])),
      ("R8", validate([mixtureData, "losses[1]={\"type\": \"adversarial-distillation\"}"])),
      ("R9", validate(["losses[1]={\"type\": \"dmd2-gan\"}"])),
      ("R6", { s in
        try s.copy(s.fixtures.teacher, to: "teacher")
        let overrides = [
          "teacher={\"type\": \"folder\", \"path\": \"teacher\"}", "evaluation.metrics=[\"mode-coverage\"]",
        ]
        return ["validate", try s.manifest("m.json", overrides)]
      }),
    ]
  }

  // MARK: O: --set overrides

  static func override(_ text: String) -> Setup {
    { s in ["validate", try s.manifest(), "--set", text] }
  }

  static var overrides: [(id: String, setup: Setup)] {
    [
      ("O1", override("training.steps")),
      ("O2", override("=3")),
      ("O3", override("losses[x]=3")),
      ("O4", override("losses[-1]=3")),
      ("O5", override("losses[0]..weight=3")),
      ("O6", override("losses[5].weight=3")),
      ("O7", override("seed.x=3")),
      ("O8", override("training[0]=3")),
      ("O9", override("training.steps=\"ten\"")),
      ("O10", override("training.steps=[1")),
      ("O11", { s in ["run", try s.manifest(), "--set", "training.steps=0", "--output", "elsewhere"] }),
    ]
  }

  // MARK: F: command-line flags and arguments

  static var flags: [(id: String, setup: Setup)] {
    [
      ("F1", { _ in ["frobnicate"] }),
      ("F2", { _ in ["run"] }),
      ("F3", { s in ["run", try s.manifest(), "--bogus"] }),
      ("F4", { s in ["run", try s.manifest(), "--resume", "--force"] }),
      ("F5", { s in ["run", try s.manifest(), "--output"] }),
      ("F6", { _ in ["sample", "--run", "run", "--count", "abc", "--out", "x.png"] }),
      ("F7", { _ in ["sample", "--run", "run", "--count", "0", "--out", "x.png"] }),
      ("F8", { _ in ["sample", "--run", "run", "--count", "3", "--out", "x.jpg"] }),
      ("F9", { _ in ["components", "--kind", "losses"] }),
      ("F10", { s in ["precompute", try s.manifest(), "--out", "pairs", "--count", "0"] }),
      ("F11", { s in ["precompute", try s.manifest(), "--out", "pairs", "--count", "4", "--sampler", "dpm"] }),
      ("F12", { s in ["precompute", try s.manifest(), "--out", "pairs", "--count", "4", "--steps", "5000"] }),
      ("F13", { s in
        ["lpips", "--net", "resnet", "--weights", s.fixtures.lpipsWeights, s.fixtures.image, s.fixtures.image]
      }),
      ("F14", { _ in ["bench", "--workload", "nope"] }),
      ("F15", { s in
        try s.write("m.json", #"{"generator": {"type": "mlp"}, "losses": [{"type": "denoising"}]}"#)
        return ["precompute", "m.json", "--out", "pairs", "--count", "4"]
      }),
    ]
  }

  // MARK: T: teacher folders and denoiser.json

  /// The trained MLP teacher, changed by `body`, with a manifest naming it.
  static func teacher(_ body: @escaping (CatalogueScratch) throws -> Void) -> Setup {
    { s in
      try s.copy(s.fixtures.teacher, to: "teacher")
      try body(s)
      return ["validate", try s.teacherManifest()]
    }
  }

  static var teacherFolder: [(id: String, setup: Setup)] {
    [
      ("T1", { s in
        try FileManager.default.createDirectory(atPath: s.file("teacher"), withIntermediateDirectories: true)
        return ["validate", try s.teacherManifest()]
      }),
      ("T2", { s in try s.write("teacher", "not a folder"); return ["validate", try s.teacherManifest()] }),
      ("T3", teacher { s in try s.write("teacher/denoiser.json", #"{"format":"#) }),
      ("T4", teacher { s in try s.editJSON("teacher/denoiser.json", ["format=\"other\""]) }),
      ("T5", teacher { s in try s.editJSON("teacher/denoiser.json", ["version=2"]) }),
      ("T6", teacher { s in try s.editJSON("teacher/denoiser.json", ["network.dropout=0.1"]) }),
      ("T7", teacher { s in try s.editJSON("teacher/denoiser.json", ["prediction=\"eps\""]) }),
      ("T8", teacher { s in try s.editJSON("teacher/denoiser.json", ["schedule.trainSteps=1"]) }),
      ("T9", teacher { s in try s.editJSON("teacher/denoiser.json", ["network.width=64"]) }),
      ("T10", teacher { s in try FileManager.default.removeItem(atPath: s.file("teacher/weights.safetensors")) }),
      ("T11", teacher { s in try s.truncate("teacher/weights.safetensors", to: 3000) }),
      ("T12", teacher { s in
        try s.editSafetensors("teacher/weights.safetensors") { tensors in
          var bias = tensors["mlp.0.bias"]!.scalars
          bias[3] = .nan
          tensors["mlp.0.bias"] = Tensor(shape: [bias.count], scalars: bias)
        }
      }),
      ("T13", teacher { s in
        try s.editSafetensors("teacher/weights.safetensors") { tensors in
          tensors["mlp.0.bias2"] = tensors.removeValue(forKey: "mlp.0.bias")
        }
      }),
      ("T14", { s in
        try s.copy(s.fixtures.teacher, to: "teacher")
        return ["predict", "--teacher", "teacher", "--input", "missing.safetensors", "--output", "out.safetensors"]
      }),
    ]
  }

  // MARK: D: diffusers config.json and scheduler_config.json

  /// The small diffusers UNet fixture as the teacher folder, changed by `body`.
  static func unet(_ body: @escaping (CatalogueScratch) throws -> Void) -> Setup {
    { s in
      try FileManager.default.createDirectory(atPath: s.file("teacher"), withIntermediateDirectories: true)
      for name in ["config.json", "diffusion_pytorch_model.safetensors"] {
        try s.copy(s.fixtures.unet + "/" + name, to: "teacher/" + name)
      }
      try body(s)
      return ["validate", try s.teacherManifest()]
    }
  }

  static var diffusersConfig: [(id: String, setup: Setup)] {
    [
      ("D1", unet { s in try s.editJSON("teacher/config.json", ["_class_name=\"UNet2DConditionModel\""]) }),
      ("D2", unet { s in try s.editJSON("teacher/config.json", ["cross_attention_dim=8"]) }),
      ("D3", unet { s in try s.editJSON("teacher/config.json", ["down_block_types[0]=\"CrossAttnDownBlock2D\""]) }),
      ("D4", unet { s in try s.editJSON("teacher/config.json", ["act_fn=\"mish\""]) }),
      ("D5", unet { s in try s.editJSON("teacher/config.json", ["layers_per_block=\"two\""]) }),
      ("D6", unet { s in try s.editJSON("teacher/config.json", ["norm_num_groups=3"]) }),
      ("D7", unet { s in try s.editJSON("teacher/config.json", ["block_out_channels=[100000, 100000]"]) }),
      ("D8", unet { s in try s.editJSON("teacher/config.json", ["norm_eps=1e40"]) }),
      ("D9", unet { s in try s.write("teacher/config.json", "{\"_class_name\": ") }),
      ("D10", unet { s in try s.write("teacher/scheduler_config.json", #"{"_class_name": "DPMSolverSDEScheduler"}"#) }),
      ("D11", unet { s in try s.write("teacher/scheduler_config.json", #"{"num_train_timesteps": 1}"#) }),
      ("D12", unet { s in try s.write("teacher/scheduler_config.json", #"{"prediction_type": "flow"}"#) }),
      ("D13", unet { s in try s.editJSON("teacher/config.json", ["block_out_channels=[64, 64]"]) }),
    ]
  }

  // MARK: S: safetensors files (here the UNet teacher's weights)

  static let weights = "teacher/diffusion_pytorch_model.safetensors"

  static var safetensors: [(id: String, setup: Setup)] {
    [
      ("S1", unet { s in try FileManager.default.removeItem(atPath: s.file(weights)) }),
      ("S2", unet { s in try s.truncate(weights, to: 5000) }),
      ("S3", unet { s in try s.write(weights, "short") }),
      // A header length larger than the file, the size kept (so the size check passes).
      ("S4", unet { s in try s.patch(weights, at: 0, [0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]) }),
      ("S5", unet { s in try s.patch(weights, at: 8, Array("[".utf8)) }),
      ("S6", unet { s in
        let size = try FileManager.default.attributesOfItem(atPath: s.file(weights))[.size] as! Int
        try s.truncate(weights, to: size - 4)
      }),
      ("S7", unet { s in
        try s.editSafetensors(weights) { tensors in
          var bias = tensors["conv_in.bias"]!.scalars
          bias[1] = .infinity
          tensors["conv_in.bias"] = Tensor(shape: [bias.count], scalars: bias)
        }
      }),
      ("S8", unet { s in
        try s.editSafetensors(weights) { tensors in tensors["extra.weight"] = Tensor(shape: [1], scalars: [0]) }
      }),
      ("S9", unet { s in
        try s.editSafetensors(weights) { tensors in
          tensors["conv_in.bias"] = Tensor(shape: [31], scalars: Array(repeating: 0, count: 31))
        }
      }),
      ("S10", { s in
        try s.copy(s.fixtures.teacher, to: "teacher")
        try s.write("in.safetensors", "\u{8}\0\0\0\0\0\0\0{\"a\": 1}")
        return ["predict", "--teacher", "teacher", "--input", "in.safetensors", "--output", "out.safetensors"]
      }),
    ]
  }

  // MARK: I: images (pipeline lpips reads PNG and JPEG)

  static func lpips(_ body: @escaping (CatalogueScratch) throws -> String) -> Setup {
    { s in ["lpips", "--net", "alex", "--weights", s.fixtures.lpipsWeights, try body(s), s.fixtures.image] }
  }

  static var images: [(id: String, setup: Setup)] {
    [
      ("I1", lpips { _ in "missing.png" }),
      ("I2", lpips { s in try s.write("a.png", "hello"); return "a.png" }),
      ("I3", lpips { s in
        try s.copy(s.fixtures.image, to: "a.png")
        try s.truncate("a.png", to: 100)
        return "a.png"
      }),
      ("I4", lpips { s in s.fixtures.imageFixtures + "/bad_zlib.png" }),
      ("I5", lpips { s in
        try s.copy(s.fixtures.imageFixtures + "/rgb.jpg", to: "a.jpg")
        try s.truncate("a.jpg", to: 300)
        return "a.jpg"
      }),
      ("I6", lpips { s in s.fixtures.imageFixtures + "/huge.png" }),
      ("I7", lpips { s in s.fixtures.imageFixtures + "/huge.jpg" }),
      ("I8", lpips { s in s.fixtures.imageFixtures + "/rgb8.png" }),
      ("I9", lpips { s in
        try FileManager.default.createDirectory(atPath: s.file("dir.png"), withIntermediateDirectories: true)
        return "dir.png"
      }),
    ]
  }

  // MARK: P: pairs folders

  static func pairsFolder(_ body: @escaping (CatalogueScratch) throws -> Void) -> Setup {
    { s in
      try s.copy(s.fixtures.pairs, to: "pairs")
      try body(s)
      return ["validate", try s.pairsManifest()]
    }
  }

  static var pairs: [(id: String, setup: Setup)] {
    [
      ("P1", pairsFolder { s in try FileManager.default.removeItem(atPath: s.file("pairs/pairs.json")) }),
      ("P2", pairsFolder { s in try s.write("pairs/pairs.json", "{") }),
      ("P3", pairsFolder { s in try s.editJSON("pairs/pairs.json", ["format=\"other\""]) }),
      ("P4", pairsFolder { s in try s.editJSON("pairs/pairs.json", ["count=11"]) }),
      ("P5", pairsFolder { s in try s.editJSON("pairs/pairs.json", ["sampleShape=[3]"]) }),
      ("P6", pairsFolder { s in try FileManager.default.removeItem(atPath: s.file("pairs/shard-00001.safetensors")) }),
      ("P7", pairsFolder { s in try s.truncate("pairs/shard-00001.safetensors", to: 100) }),
      ("P8", pairsFolder { s in
        try FileManager.default.removeItem(atPath: s.file("pairs/shard-00001.safetensors"))
        try s.copy(s.file("pairs/shard-00000.safetensors"), to: "pairs/shard-00001.safetensors")
      }),
      ("P9", pairsFolder { s in
        try s.editSafetensors("pairs/shard-00000.safetensors") { tensors in
          tensors["samples"] = Tensor(shape: [4, 3], scalars: Array(repeating: 0, count: 12))
        }
      }),
      ("P10", pairsFolder { s in
        try s.editSafetensors("pairs/shard-00000.safetensors") { tensors in tensors["noise"] = nil }
      }),
      ("P11", { s in
        try s.copy(s.fixtures.pairs, to: "pairs")
        return ["precompute", try s.manifest(), "--out", "pairs", "--count", "10", "--steps", "5", "--seed", "9"]
      }),
      ("P12", { s in
        try s.write("pairs/notes.txt", "mine")
        return ["precompute", try s.manifest(), "--out", "pairs", "--count", "10", "--force"]
      }),
    ]
  }

  // MARK: W: run folders

  /// The finished toy run in `run`, and its manifest as `m.json`.
  static func finishedRun(_ body: @escaping (CatalogueScratch) throws -> [String]) -> Setup {
    { s in
      try s.copy(s.fixtures.run, to: "run")
      try s.manifest()
      return try body(s)
    }
  }

  static var runFolder: [(id: String, setup: Setup)] {
    [
      ("W1", finishedRun { _ in ["run", "m.json"] }),
      ("W2", { s in try s.write("run/notes.txt", "mine"); return ["run", try s.manifest()] }),
      ("W3", { s in try s.write("run/notes.txt", "mine"); return ["run", try s.manifest(), "--force"] }),
      ("W4", { s in try s.write("run/notes.txt", "mine"); return ["run", try s.manifest(), "--resume"] }),
      ("W5", { s in ["run", try s.manifest(), "--resume"] }),
      ("W6", { s in try s.write("run", "a file"); return ["run", try s.manifest()] }),
      ("W7", finishedRun { _ in ["run", "m.json", "--resume", "--set", "seed=3"] }),
      ("W8", finishedRun { _ in ["run", "m.json", "--resume", "--set", "training.batchSize=3"] }),
      ("W9", finishedRun { s in
        try s.truncate("run/checkpoints/step-00000020/state.safetensors", to: 1000)
        return ["run", "m.json", "--resume"]
      }),
      ("W10", finishedRun { s in
        try FileManager.default.removeItem(atPath: s.file("run/checkpoints"))
        return ["run", "m.json", "--resume"]
      }),
      ("W11", finishedRun { s in try s.write("run/manifest.json", "{\"x\": "); return ["run", "m.json", "--resume"] }),
      ("W12", { _ in ["sample", "--run", "nothing", "--count", "4", "--out", "s.png"] }),
      ("W13", finishedRun { _ in ["sample", "--run", "run", "--count", "4", "--out", "s.png", "--checkpoint", "7"] }),
      ("W14", finishedRun { s in
        try s.write("run/generator.safetensors", "junk")
        return ["sample", "--run", "run", "--count", "4", "--out", "s.png"]
      }),
      ("W15", finishedRun { s in
        try s.truncate("run/checkpoints/step-00000020/state.safetensors", to: 1000)
        return ["checkpoints", "run"]
      }),
      ("W16", { _ in ["checkpoints", "nothing"] }),
      ("W17", finishedRun { s in
        try s.write("s.png", "a good grid")
        try s.write("run/generator.safetensors", "junk")
        return ["sample", "--run", "run", "--count", "4", "--out", "s.png"]
      }),
    ]
  }

  // MARK: X: captions and text-to-image teachers

  /// `validate` of a manifest distilling sd-tiny on the captions file `captions`, written by `write`.
  static func captions(_ captions: String, _ write: @escaping (CatalogueScratch) throws -> Void)
    -> Setup
  {
    { s in
      try write(s)
      try s.write(
        "x.json",
        """
        {"teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
         "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
         "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
         "scores": {"real": {"type": "teacher", "guidanceScale": 3}, "fake": {"type": "trained", "init": "teacher"}},
         "losses": [{"type": "distribution-matching"}], "training": {"steps": 1, "batchSize": 2},
         "evaluation": {"metrics": []}}
        """)
      return ["validate", "x.json"]
    }
  }

  /// A manifest training a new "stable-diffusion" network (`network`, JSON) on captions (`data`).
  static func newTextToImage(_ network: String, data: String = #"{"type": "captions", "path": "c.txt"}"#) -> Setup {
    { s in
      try s.write("c.txt", "a red disc\n")
      try s.write(
        "x.json",
        """
        {"schedule": {"type": "ddpm", "prediction": "v_prediction"}, "data": \(data),
         "generator": {"type": "denoiser", "init": "new", "network": \(network)},
         "losses": [{"type": "denoising"}], "training": {"steps": 1, "batchSize": 2}, "evaluation": {"metrics": []}}
        """)
      return ["validate", "x.json"]
    }
  }

  /// The keys of a new "stable-diffusion" network on sd-tiny's text encoder, with `unet` keys.
  static func sdTinyNetwork(text: String = sdTinyFixture, unet: String) -> String {
    #"{"type": "stable-diffusion", "text": \#(JSONValue.quoted(text)), "vae": \#(JSONValue.quoted(sdTinyFixture + "/vae")), "unet": {"sample_size": 8, "block_out_channels": [32], "down_block_types": ["CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D"], "norm_num_groups": 8, \#(unet)}}"#
  }

  static var textToImage: [(id: String, setup: Setup)] {
    [
      (
        "X1",
        { s in
          try s.write("c.txt", "a red disc\n")
          return [
            "validate", try s.manifest("m.json", [#"data={"type": "captions", "path": "c.txt"}"#]),
          ]
        }
      ),
      ("X2", captions("c.txt") { s in try s.write("c.txt", "\n  \n") }),
      (
        "X3",
        captions("c.jsonl") { s in
          try s.write("c.jsonl", "{\"prompt\": \"a\"}\n{\"text\": \"b\"}\n")
        }
      ),
      ("X4", captions("c.jsonl") { s in try s.write("c.jsonl", "{\"image\": \"a.png\"}\n") }),
      (
        "X5",
        captions("c.jsonl") { s in
          try s.write("c.jsonl", "{\"prompt\": \"a\", \"image\": \"a.png\"}\n{\"prompt\": \"b\"}\n")
        }
      ),
      (
        "X6",
        captions("c.jsonl") { s in
          try s.copy(s.fixtures.imageFixtures + "/rgb8.png", to: "a.png")
          try s.write("c.jsonl", "{\"prompt\": \"a\", \"image\": \"a.png\"}\n")
        }
      ),
      (
        "X7",
        { s in
          try s.write(
            "x.json",
            """
            {"teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
             "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
             "scores": {"real": {"type": "teacher", "guidanceScale": 3}, "fake": {"type": "trained", "init": "teacher"}},
             "losses": [{"type": "distribution-matching"}], "training": {"steps": 1, "batchSize": 2}}
            """)
          return ["validate", "x.json"]
        }
      ),
      (
        "X8",
        { s in
          try s.write(
            "x.json",
            """
            {"teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
             "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
             "losses": [{"type": "knowledge-distillation"}]}
            """)
          return ["precompute", "x.json", "--out", "pairs", "--count", "2", "--steps", "2"]
        }
      ),
      (
        "X9",
        { s in
          // Pairs of sd-tiny's latent shape without prompts, for the text-conditional student.
          try FileManager.default.createDirectory(atPath: s.file("p"), withIntermediateDirectories: true)
          try SafetensorsFile.write(
            ["noise": Tensor.zeros([2, 4, 8, 8]), "samples": Tensor.zeros([2, 4, 8, 8])], to: s.file("p/shard-00000.safetensors"))
          try s.write(
            "p/pairs.json",
            """
            {"format": "distillery-pairs", "version": 1, "sampleShape": [4, 8, 8], "count": 2, "teacher": "t",
             "sampler": "ddim", "steps": 2, "seed": 0, "shards": [{"file": "shard-00000.safetensors", "count": 2}]}
            """)
          try s.write("c.txt", "a red disc\n")
          try s.write(
            "x.json",
            """
            {"teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
             "data": {"type": "captions", "path": "c.txt"},
             "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
             "losses": [{"type": "regression", "pairs": "p"}], "training": {"steps": 1, "batchSize": 2}}
            """)
          return ["validate", "x.json"]
        }
      ),
      ("X10", newTextToImage(sdTinyNetwork(unet: #""cross_attention_dim": 16"#))),
      ("X11", newTextToImage(sdTinyNetwork(text: sdTinyFixture + "/vae", unet: #""cross_attention_dim": 32"#))),
      ("X12", newTextToImage(sdTinyNetwork(unet: #""cross_attention_dim": 32"#), data: #"{"type": "captions", "path": "c.txt", "count": 5}"#)),
    ]
  }

  // MARK: B: weights held in bfloat16

  /// A Distillery denoiser folder `teacher` holding a Gaussian mixture (no network).
  static func mixtureTeacher(_ s: CatalogueScratch) throws {
    let mixture = try GaussianMixtureDenoiser(
      means: [[0, 0], [1, 1]], std: 0.5, weights: nil, schedule: ScheduleConfig().schedule, prediction: .epsilon,
      location: "test")
    try mixture.save(folder: s.file("teacher"))
  }

  static var weightFormat: [(id: String, setup: Setup)] {
    [
      ("B4", { _ in ["bench", "--workload", "w1", "--weight-format", "bf16"] }),
      ("B5", { s in
        try mixtureTeacher(s)
        return ["sample-teacher", "--teacher", "teacher", "--out", "x.safetensors", "--weight-format", "bf16"]
      }),
    ]
  }
}
