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

  /// Sets training (`true`) or evaluation mode here and in every submodule.
  public func train(_ training: Bool = true) {
    isTraining = training
    for (_, child) in children { child.train(training) }
  }

  /// Evaluation mode: `train(false)`.
  public func eval() { train(false) }

  /// Drops the gradients of every parameter.
  public func zeroGrad() { for p in parameters() { p.zeroGrad() } }

  /// The current weights by state-dict key (values share storage until either side writes).
  public func stateDict() -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.name, $0.parameter.value.detached()) })
  }

  /// Copies weights from `tensors` by key.
  ///
  /// - Parameter strict: when `true`, a key of the module missing from `tensors` or a key of
  ///   `tensors` the module does not have is an error. A shape mismatch is always an error.
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
    }
    if strict {
      problems += missing.map { "'\($0)': missing from the weights" }
      problems += unexpected.map { "'\($0)': unexpected key, the module has no such parameter" }
    }
    guard problems.isEmpty else { throw DistillError.stateDictMismatch(problems: problems) }
    for (name, parameter) in named {
      if let t = tensors[name] { parameter.value = t.detached() }
    }
    return (missing, unexpected)
  }
}

/// A module that maps one tensor to one tensor, so it can sit in a ``Sequential``.
public protocol UnaryLayer: Module {
  func callAsFunction(_ x: Tensor) -> Tensor
}
