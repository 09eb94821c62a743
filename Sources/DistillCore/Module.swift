/// A network with named parameters and named submodules.
///
/// A subclass creates its parameters and submodules in `init` and registers each under the
/// key it has in a PyTorch state dict, so that names are data, fixed at construction, and a
/// checkpoint written by PyTorch loads by name:
///
/// ```swift
/// final class Block: Module {
///   let proj: Linear
///   init(rng: inout RandomGenerator) {
///     proj = Linear(inputSize: 4, outputSize: 4, using: &rng)
///     super.init()
///     register("proj", proj)
///   }
/// }
/// Block(rng: &rng).namedParameters().map(\.name)  // ["proj.weight", "proj.bias"]
/// ```
open class Module {
  public private(set) var localParameters: [NamedParameter] = []
  public private(set) var children: [(name: String, module: Module)] = []
  /// Training or evaluation mode; layers whose behaviour differs read it.
  public private(set) var isTraining = true

  public init() {}

  /// Registers `parameter` under `name` (unique among this module's parameters and children).
  @discardableResult
  public func register(_ name: String, _ parameter: Parameter) -> Parameter {
    precondition(!hasEntry(name), "'\(name)' is registered twice in \(type(of: self))")
    localParameters.append((name, parameter))
    return parameter
  }

  /// Registers `module` under `name`; its parameters appear as `name.<key>`.
  @discardableResult
  public func register<M: Module>(_ name: String, _ module: M) -> M {
    precondition(!hasEntry(name), "'\(name)' is registered twice in \(type(of: self))")
    children.append((name, module))
    return module
  }

  private func hasEntry(_ name: String) -> Bool {
    localParameters.contains { $0.name == name } || children.contains { $0.name == name }
  }

  /// Every parameter with its dotted state-dict key, depth first in registration order.
  public func namedParameters() -> [NamedParameter] {
    var result: [NamedParameter] = []
    collect(prefix: "", into: &result)
    return result
  }

  private func collect(prefix: String, into result: inout [NamedParameter]) {
    for (name, parameter) in localParameters { result.append((prefix + name, parameter)) }
    for (name, child) in children { child.collect(prefix: prefix + name + ".", into: &result) }
  }

  /// Every parameter, in the order of ``namedParameters()``.
  public func parameters() -> [Parameter] { namedParameters().map(\.parameter) }

  /// The number of trainable scalars.
  public var parameterCount: Int { parameters().reduce(0) { $0 + $1.value.count } }

  /// The bytes the parameters' values take (4 per scalar, 2 per scalar held in bfloat16).
  public var parameterBytes: Int { parameters().reduce(0) { $0 + $1.value.storageBytes } }

  /// Holds the weight of every product and convolution in this tree (the parameters that are
  /// ``Parameter/isProductWeight``) in `format`, releasing the previous copy where nothing else
  /// shares it. For a frozen network only: `bf16` rounds each weight to bfloat16 (2 bytes
  /// instead of 4) and its products then run on the bfloat16 kernels
  /// (``ComputePrecision/bf16``, float32 accumulation); biases, norms and embeddings stay
  /// float32, and gradients still flow to the inputs. `fp32` widens them back (to the rounded
  /// values). Copy a trainable network from this one before, not after:
  /// ``load(_:strict:)`` refuses bfloat16 weights for a float32 parameter, and optimizers and
  /// EMA refuse bfloat16 parameters.
  ///
  /// `bf16` traps where ``WeightFormat/isSupported`` is false (no AVX512-BF16): callers that
  /// take the format from a user check that first.
  public func holdProductWeights(in format: WeightFormat) {
    precondition(format.isSupported, "bf16 weights need a CPU with AVX512-BF16 and Distillery's kernel")
    for parameter in parameters() where parameter.isProductWeight {
      parameter.value = format == .bf16 ? parameter.value.bfloat16Rounded() : parameter.value.float32()
    }
  }

  /// Sets training (`true`) or evaluation mode here and in every submodule.
  public func train(_ training: Bool = true) {
    isTraining = training
    for (_, child) in children { child.train(training) }
  }

  /// Evaluation mode: `train(false)`.
  public func eval() { train(false) }

  /// Drops the gradients of every parameter.
  public func zeroGrad() { for p in parameters() { p.zeroGrad() } }

  /// The current weights by state-dict key (values share storage until either side writes;
  /// a weight held in bfloat16 is a bfloat16 tensor).
  public func stateDict() -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.name, $0.parameter.value.detached()) })
  }

  /// Copies weights from `tensors` by key.
  ///
  /// - Parameter strict: when `true`, a key of the module missing from `tensors` or a key of
  ///   `tensors` the module does not have is an error. A shape mismatch is always an error.
  /// A parameter held in bfloat16 takes its weights rounded to bfloat16; bfloat16 weights for
  /// a float32 parameter are refused (a trainable copy of a frozen bfloat16 network would
  /// start from rounded weights).
  ///
  /// - Throws: ``DistillError/stateDictMismatch(problems:)`` naming every offending key; on
  ///   error no weight has been changed.
  /// - Returns: the keys that were missing and unexpected (empty lists when strict).
  @discardableResult
  public func load(_ tensors: [String: Tensor], strict: Bool = true) throws -> (missing: [String], unexpected: [String]) {
    let named = namedParameters()
    let own = Set(named.map(\.name))
    let missing = named.map(\.name).filter { tensors[$0] == nil }
    let unexpected = tensors.keys.filter { !own.contains($0) }.sorted()
    var problems: [String] = []
    for (name, parameter) in named {
      if let t = tensors[name], t.shape != parameter.shape {
        problems.append("'\(name)': shape \(t.shape) in the weights, the module expects \(parameter.shape)")
      }
      if let t = tensors[name], t.isBFloat16, !parameter.isBFloat16 {
        problems.append(
          "'\(name)': bfloat16 weights for a float32 parameter (copy a network before holding its weights in bf16)")
      }
    }
    if strict {
      problems += missing.map { "'\($0)': missing from the weights" }
      problems += unexpected.map { "'\($0)': unexpected key, the module has no such parameter" }
    }
    guard problems.isEmpty else { throw DistillError.stateDictMismatch(problems: problems) }
    for (name, parameter) in named {
      if let t = tensors[name] { parameter.value = parameter.isBFloat16 ? t.bfloat16Rounded() : t.detached() }
    }
    return (missing, unexpected)
  }
}

/// A module that maps one tensor to one tensor, so it can sit in a ``Sequential``.
public protocol UnaryLayer: Module {
  func callAsFunction(_ x: Tensor) -> Tensor
}
