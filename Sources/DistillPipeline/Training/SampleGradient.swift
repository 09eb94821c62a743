import DistillCore

/// A loss term of the samples `x`, with its exact gradient in them: `body` runs once on a
/// detached copy of `x` and is differentiated there, and the returned loss has the same value
/// and, in `x`, the same gradient (`value + Σ (x − sg(x))·∂body/∂x`), so the generator gets
/// what autodiff through `body` would give. Networks inside `body` get their parameter
/// gradients as usual (the trainer zeroes them before each update).
///
/// - Returns: the loss and ‖∂loss/∂x‖, the diagnostic every term logs as
///   `<prefix>/sample-gradient-norm`.
public func lossWithSampleGradient(
  _ x: Tensor, _ body: (Tensor) throws -> Tensor
) rethrows -> (loss: Tensor, gradientNorm: Double) {
  let (value, gradients) = try valueWithGradients(at: [x.detached()]) { try body($0[0]) }
  let g = gradients[0]
  let norm = Double(g.square().sum().sqrt().item)
  guard x.requiresGrad else { return (value, norm) }
  return (value + ((x - x.detached()) * g).sum(), norm)
}
