// Regression losses for distillation objectives, composed from differentiable ops so autodiff
// is automatic. Each reduces to the mean over all elements (a 0-D tensor); the operands must
// have one shape, so a `[B, 1]` vs `[B]` slip fails loudly instead of broadcasting to `[B, B]`.

extension Tensor {
  /// Mean squared error: `mean((x - y)^2)`, as PyTorch's `F.mse_loss`.
  public static func mseLoss(_ x: Tensor, _ y: Tensor) -> Tensor {
    precondition(x.shape == y.shape, "mseLoss: shapes \(x.shape) and \(y.shape) differ")
    return (x - y).square().mean()
  }

  /// Mean absolute error: `mean(|x - y|)`, as PyTorch's `F.l1_loss` (zero gradient where `x == y`).
  public static func l1Loss(_ x: Tensor, _ y: Tensor) -> Tensor {
    precondition(x.shape == y.shape, "l1Loss: shapes \(x.shape) and \(y.shape) differ")
    return (x - y).abs().mean()
  }

  /// Pseudo-Huber loss of consistency models: `mean(sqrt((x - y)^2 + c^2) - c)`, with `c > 0`.
  ///
  /// Evaluated as `d^2 / (sqrt(d^2 + c^2) + c)`, the same value without the cancellation that
  /// `sqrt(...) - c` suffers in float32 when `|x - y|` is much smaller than `c`.
  public static func pseudoHuberLoss(_ x: Tensor, _ y: Tensor, c: Float) -> Tensor {
    precondition(x.shape == y.shape, "pseudoHuberLoss: shapes \(x.shape) and \(y.shape) differ")
    precondition(c > 0, "pseudoHuberLoss needs c > 0 (use l1Loss for c = 0), got \(c)")
    let squared = (x - y).square()
    return (squared / ((squared + c * c).sqrt() + c)).mean()
  }
}
