import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens come from PyTorch 2.15 (CPU, float32): the `python3 -c` line above each golden array
// printed it (values rounded to 8 significant digits). The inputs are permutations of evenly
// spaced values (7 is coprime with 24 and 120), so there are no ties unless a test wants them.

@Suite struct ReductionTests {
  /// `[2, 3, 4]`: `((i * 7) % 24) / 4 - 2.875`.
  static let x = Tensor(shape: [2, 3, 4], scalars: (0..<24).map { Float(($0 * 7) % 24) / 4 - 2.875 })
  /// `[2, 3, 4, 5]`: `((i * 7) % 120) / 16 - 3.75`.
  static let y = Tensor(shape: [2, 3, 4, 5], scalars: (0..<120).map { Float(($0 * 7) % 120) / 16 - 3.75 })

  // MARK: sum

  @Test func sumOverOneAxis() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=1)).flatten().tolist())"
    let middle: [Float] = [-5.625, -0.375, 4.875, -1.875, 3.375, 2.625, -4.125, 1.125]
    expectClose(Self.x.sum(axes: [1]), Tensor(shape: [2, 4], scalars: middle))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=-1,keepdim=True)).flatten().tolist())"
    let last: [Float] = [-1.0, -3.0, 1.0, -1.0, 3.0, 1.0]
    expectClose(Self.x.sum(axes: [-1], keepDims: true), Tensor(shape: [2, 3, 1], scalars: last))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=0)).flatten().tolist())"
    let first: [Float] = [
      -2.75, 0.75, -1.75, 1.75, -0.75, 2.75, 0.25, -2.25,
      1.25, -1.25, 2.25, -0.25,
    ]
    expectClose(Self.x.sum(axes: [0]), Tensor(shape: [3, 4], scalars: first))
  }

  @Test func sumOverSeveralAxes() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=(1,2))).flatten().tolist())"
    let contiguous: [Float] = [-3.0, 3.0]
    expectClose(Self.x.sum(axes: [1, 2]), Tensor(shape: [2], scalars: contiguous))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=(0,1),keepdim=True)).flatten().tolist())"
    let leading: [Float] = [-2.25, 2.25, 0.75, -0.75]
    expectClose(Self.x.sum(axes: [0, 1], keepDims: true), Tensor(shape: [1, 1, 4], scalars: leading))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=(0,2))).flatten().tolist())"
    let outer: [Float] = [-2.0, 0.0, 2.0]
    expectClose(Self.x.sum(axes: [0, 2]), Tensor(shape: [3], scalars: outer))
    expectClose(Self.x.sum(axes: [2, 0, -1]), Tensor(shape: [3], scalars: outer))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.sum(dim=(0,2),keepdim=True)).flatten().tolist())"
    let outerKept: [Float] = [-2.0, 0.0, 2.0]
    expectClose(Self.x.sum(axes: [0, 2], keepDims: true), Tensor(shape: [1, 3, 1], scalars: outerKept))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.sum(dim=(1,3))).flatten().tolist())"
    let gaps: [Float] = [-24.375, 8.4375, 18.75, -15.9375, 16.875, -10.3125, -15.0, 17.8125]
    expectClose(Self.y.sum(axes: [1, 3]), Tensor(shape: [2, 4], scalars: gaps))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.sum(dim=(0,2,3),keepdim=True)).flatten().tolist())"
    let gapsKept: [Float] = [-6.25, -1.25, 3.75]
    expectClose(Self.y.sum(axes: [0, 2, 3], keepDims: true), Tensor(shape: [1, 3, 1, 1], scalars: gapsKept))
  }

  @Test func sumOverAllAxes() {
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.sum()).flatten().tolist())"
    let all: [Float] = [-3.75]
    expectClose(Self.y.sum(), Tensor(shape: [], scalars: all))
    expectClose(Self.y.sum(axes: [0, 1, 2, 3], keepDims: true), Tensor(shape: [1, 1, 1, 1], scalars: all))
    expectClose(Tensor(scalar: 2.5).sum(), Tensor(scalar: 2.5))
  }

  @Test func sumOverDegenerateAxes() {
    let t = testTensor([2, 1, 3], seed: 7)
    expectClose(t.sum(axes: [1]), t.reshaped([2, 3]))
    expectClose(t.sum(axes: [1], keepDims: true), t)
    #expect(Tensor.zeros([2, 0, 3]).sum(axes: [1]) == Tensor.zeros([2, 3]))
    #expect(Tensor.zeros([2, 0]).sum(axes: [1]) == Tensor.zeros([2]))
    #expect(Tensor.zeros([0, 3]).sum(axes: [1]) == Tensor.zeros([0]))
  }

  @Test func sumGradients() {
    let t = testTensor([2, 3, 4], seed: 1)
    for axes in [[0], [1], [2], [0, 1], [1, 2], [0, 2], [], [0, 1, 2]] {
      for keepDims in [false, true] {
        checkGradients([t]) { $0[0].sum(axes: axes, keepDims: keepDims) }
      }
    }
    checkGradients([testTensor([2, 3, 4, 5], seed: 2)]) { $0[0].sum(axes: [1, 3]) }
  }

  // MARK: mean

  @Test func meanOverAxes() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.mean(dim=1,keepdim=True)).flatten().tolist())"
    let single: [Float] = [-1.875, -0.125, 1.625, -0.625, 1.125, 0.875, -1.375, 0.375]
    expectClose(Self.x.mean(axes: [1], keepDims: true), Tensor(shape: [2, 1, 4], scalars: single))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.mean(dim=(1,2))).flatten().tolist())"
    let contiguous: [Float] = [-0.25, 0.25]
    expectClose(Self.x.mean(axes: [1, 2]), Tensor(shape: [2], scalars: contiguous))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.mean(dim=(0,2))).flatten().tolist())"
    let outer: [Float] = [-0.25, 0.0, 0.25]
    expectClose(Self.x.mean(axes: [0, 2]), Tensor(shape: [3], scalars: outer), atol: 1e-6)
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.mean(dim=(1,3),keepdim=True)).flatten().tolist())"
    let gaps: [Float] = [-1.625, 0.5625, 1.25, -1.0625, 1.125, -0.6875, -1.0, 1.1875]
    expectClose(Self.y.mean(axes: [1, 3], keepDims: true), Tensor(shape: [2, 1, 4, 1], scalars: gaps), atol: 1e-6)
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.mean()).flatten().tolist())"
    let all: [Float] = [-0.03125]
    expectClose(Self.y.mean(), Tensor(shape: [], scalars: all), atol: 1e-6)
  }

  @Test func meanGradients() {
    let t = testTensor([2, 3, 4], seed: 3)
    for axes in [[1], [-1], [1, 2], [0, 2], []] {
      for keepDims in [false, true] {
        checkGradients([t]) { $0[0].mean(axes: axes, keepDims: keepDims) }
      }
    }
  }

  // MARK: max

  @Test func maxOverAxes() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.amax(dim=-1)).flatten().tolist())"
    let last: [Float] = [2.375, 1.625, 2.625, 1.875, 2.875, 2.125]
    expectClose(Self.x.max(axes: [-1]), Tensor(shape: [2, 3], scalars: last))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.amax(dim=1,keepdim=True)).flatten().tolist())"
    let middle: [Float] = [-0.875, 0.875, 2.625, 2.375, 2.125, 2.875, -0.375, 1.375]
    expectClose(Self.x.max(axes: [1], keepDims: true), Tensor(shape: [2, 1, 4], scalars: middle))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.amax(dim=(1,2))).flatten().tolist())"
    let contiguous: [Float] = [2.625, 2.875]
    expectClose(Self.x.max(axes: [1, 2]), Tensor(shape: [2], scalars: contiguous))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.amax(dim=(0,2),keepdim=True)).flatten().tolist())"
    let outer: [Float] = [2.375, 2.875, 2.625]
    expectClose(Self.x.max(axes: [0, 2], keepDims: true), Tensor(shape: [1, 3, 1], scalars: outer))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.amax(dim=(1,3))).flatten().tolist())"
    let gaps: [Float] = [0.5, 2.6875, 3.625, 3.6875, 3.375, 3.5, 1.125, 3.3125]
    expectClose(Self.y.max(axes: [1, 3]), Tensor(shape: [2, 4], scalars: gaps))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.amax()).flatten().tolist())"
    let all: [Float] = [3.6875]
    expectClose(Self.y.max(), Tensor(shape: [], scalars: all))
    expectClose(Tensor([-5, -3, -4]).max(), Tensor(scalar: -3))
  }

  @Test func maxGradients() {
    for axes in [[0], [1], [2], [1, 2], [0, 2], []] {
      for keepDims in [false, true] {
        checkGradients([Self.x]) { $0[0].max(axes: axes, keepDims: keepDims) }
      }
    }
    checkGradients([Self.y]) { $0[0].max(axes: [1, 3]) }
  }

  @Test func maxSharesTheGradientAmongTies() {
    // torch: x=torch.tensor([[1.,3.,3.,2.],[4.,0.,4.,4.]],requires_grad=True); x.amax(1).sum().backward(); x.grad
    let (value, grads) = valueWithGradients(at: [Tensor([[1, 3, 3, 2], [4, 0, 4, 4]])]) { v in v[0].max(axes: [1]).sum() }
    #expect(value.item == 7)
    expectClose(grads[0], Tensor([[0, 0.5, 0.5, 0], [1.0 / 3, 0, 1.0 / 3, 1.0 / 3]]))
  }

  // MARK: variance

  @Test func varianceOverAxes() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.var(dim=1)).flatten().tolist())"
    let unbiased: [Float] = [1.0, 1.0, 1.0, 7.0, 1.0, 7.0, 1.0, 1.0]
    expectClose(Self.x.variance(axes: [1]), Tensor(shape: [2, 4], scalars: unbiased))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.var(dim=1,correction=0,keepdim=True)).flatten().tolist())"
    let biased: [Float] = [0.66666669, 0.66666669, 0.66666669, 4.6666665, 0.66666669, 4.6666665, 0.66666669, 0.66666669]
    expectClose(Self.x.variance(axes: [1], keepDims: true, correction: 0), Tensor(shape: [2, 1, 4], scalars: biased))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.var(dim=(1,2),correction=0)).flatten().tolist())"
    let contiguous: [Float] = [3.2447917, 2.6197917]
    expectClose(Self.x.variance(axes: [1, 2], correction: 0), Tensor(shape: [2], scalars: contiguous))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.var(dim=(0,2))).flatten().tolist())"
    let outer: [Float] = [3.5178571, 3.5178571, 3.0892856]
    expectClose(Self.x.variance(axes: [0, 2]), Tensor(shape: [3], scalars: outer))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((x.var(dim=(0,2),correction=0,keepdim=True)).flatten().tolist())"
    let outerBiased: [Float] = [3.078125, 3.078125, 2.703125]
    expectClose(Self.x.variance(axes: [0, 2], keepDims: true, correction: 0), Tensor(shape: [1, 3, 1], scalars: outerBiased))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.var(dim=(1,3))).flatten().tolist())"
    let gaps: [Float] = [1.5262277, 1.5262277, 5.7449775, 5.7449775, 4.4056921, 7.6869421, 1.5262277, 1.5262277]
    expectClose(Self.y.variance(axes: [1, 3]), Tensor(shape: [2, 4], scalars: gaps))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.var()).flatten().tolist())"
    let all: [Float] = [4.7265625]
    expectClose(Self.y.variance(), Tensor(shape: [], scalars: all))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((y.var(correction=0)).flatten().tolist())"
    let allBiased: [Float] = [4.6871743]
    expectClose(Self.y.variance(correction: 0), Tensor(shape: [], scalars: allBiased))
  }

  @Test func varianceGradients() {
    let t = testTensor([2, 3, 4], seed: 4)
    for axes in [[1], [-1], [1, 2], [0, 2], []] {
      for correction in [0, 1] {
        checkGradients([t]) { $0[0].variance(axes: axes, keepDims: false, correction: correction) }
        checkGradients([t]) { $0[0].variance(axes: axes, keepDims: true, correction: correction) }
      }
    }
  }

  // MARK: softmax

  @Test func softmaxAlongTheLastAndAMiddleAxis() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((torch.softmax(x,dim=-1)).flatten().tolist())"
    let last: [Float] = [
      0.0043395935, 0.024972638, 0.1437076, 0.82698017, 0.024787802, 0.14264394, 0.82085925, 0.011708928,
      0.024787802, 0.14264394, 0.82085925, 0.011708928, 0.13681659, 0.78732514, 0.01123059, 0.06462758,
      0.13681659, 0.78732514, 0.01123059, 0.06462758, 0.63746411, 0.0090929372, 0.05232624, 0.3011167,
    ]
    expectClose(Self.x.softmax(), Tensor(shape: [2, 3, 4], scalars: last))
    expectClose(Self.x.softmax(axis: 2), Tensor(shape: [2, 3, 4], scalars: last))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((torch.softmax(x,dim=1)).flatten().tolist())"
    let middle: [Float] = [
      0.090030573, 0.090030573, 0.090030573, 0.9755587, 0.24472848, 0.24472848, 0.24472848, 0.0065732631,
      0.66524094, 0.66524094, 0.66524094, 0.017867982, 0.090030573, 0.26762316, 0.090030573, 0.090030573,
      0.24472848, 0.72747517, 0.24472848, 0.24472848, 0.66524094, 0.004901689, 0.66524094, 0.66524094,
    ]
    expectClose(Self.x.softmax(axis: 1), Tensor(shape: [2, 3, 4], scalars: middle))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((torch.softmax(x,dim=0)).flatten().tolist())"
    let first: [Float] = [
      0.047425874, 0.047425874, 0.95257413, 0.95257413, 0.047425874, 0.047425874, 0.95257413, 0.047425874,
      0.047425874, 0.95257413, 0.95257413, 0.047425874, 0.95257413, 0.95257413, 0.047425874, 0.047425874,
      0.95257413, 0.95257413, 0.047425874, 0.95257413, 0.95257413, 0.047425874, 0.047425874, 0.95257413,
    ]
    expectClose(Self.x.softmax(axis: 0), Tensor(shape: [2, 3, 4], scalars: first))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((torch.softmax(y,dim=2)).flatten().tolist())"
    let deep: [Float] = [
      0.0012540879, 0.0012540879, 0.0012540879, 0.011142763, 0.011142763, 0.011177564, 0.011177564, 0.011177564,
      0.099314369, 0.099314369, 0.099624544, 0.099624544, 0.099624544, 0.88517934, 0.88517934, 0.88794386,
      0.88794386, 0.88794386, 0.0043635685, 0.0043635685, 0.011142763, 0.011142763, 0.011142763, 0.011142763,
      0.011142763, 0.099314369, 0.099314369, 0.099314369, 0.099314369, 0.099314369, 0.88517934, 0.88517934,
      0.88517934, 0.88517934, 0.88517934, 0.0043635685, 0.0043635685, 0.0043635685, 0.0043635685, 0.0043635685,
      0.011142763, 0.011142763, 0.096632868, 0.096632868, 0.096632868, 0.099314369, 0.099314369, 0.86127937,
      0.86127937, 0.86127937, 0.88517934, 0.88517934, 0.004245752, 0.004245752, 0.004245752, 0.0043635685,
      0.0043635685, 0.037841976, 0.037841976, 0.037841976, 0.096632868, 0.096632868, 0.096632868, 0.096632868,
      0.69421685, 0.86127937, 0.86127937, 0.86127937, 0.86127937, 0.0034222025, 0.004245752, 0.004245752,
      0.004245752, 0.004245752, 0.030501759, 0.037841976, 0.037841976, 0.037841976, 0.037841976, 0.2718592,
      0.096632868, 0.69421685, 0.69421685, 0.69421685, 0.69421685, 0.86127937, 0.0034222025, 0.0034222025,
      0.0034222025, 0.0034222025, 0.004245752, 0.030501759, 0.030501759, 0.030501759, 0.030501759, 0.037841976,
      0.2718592, 0.2718592, 0.2718592, 0.2718592, 0.69421685, 0.69421685, 0.69421685, 0.0012540879,
      0.0012540879, 0.0034222025, 0.0034222025, 0.0034222025, 0.011177564, 0.011177564, 0.030501759, 0.030501759,
      0.030501759, 0.099624544, 0.099624544, 0.2718592, 0.2718592, 0.2718592, 0.88794386, 0.88794386,
    ]
    expectClose(Self.y.softmax(axis: -2), Tensor(shape: [2, 3, 4, 5], scalars: deep))
  }

  @Test func softmaxGradients() {
    let t = testTensor([2, 3, 4], seed: 5, range: -2...2)
    for axis in [-1, 1, 0] { checkGradients([t]) { $0[0].softmax(axis: axis) } }
  }

  @Test func softmaxOfLongContiguousRowsMatchesTheStridedPath() {
    // Rows of 37 run through the vectorised last-axis kernels (16 lanes and a tail); the
    // same rows along a middle axis take the strided path.
    let t = testTensor([3, 5, 37], seed: 21, range: -6...6)
    let g = testTensor([3, 5, 37], seed: 22)
    let viaMiddle = t.transposed(1, 2).softmax(axis: 1).transposed(1, 2)
    expectClose(t.softmax(), viaMiddle)
    expectClose(t.logSoftmax(), t.transposed(1, 2).logSoftmax(axis: 1).transposed(1, 2))
    let (_, last) = valueWithGradients(at: [t]) { ($0[0].softmax() * g).sum() }
    let (_, middle) = valueWithGradients(at: [t]) { ($0[0].transposed(1, 2).softmax(axis: 1).transposed(1, 2) * g).sum() }
    expectClose(last[0], middle[0])
  }

  @Test func logSoftmaxAlongTheLastAndAMiddleAxis() {
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((torch.log_softmax(x,dim=-1)).flatten().tolist())"
    let last: [Float] = [
      -5.4399748, -3.6899745, -1.9399745, -0.18997458, -3.6974037, -1.9474036, -0.19740359, -4.4474034,
      -3.6974037, -1.9474036, -0.19740359, -4.4474034, -1.9891139, -0.23911394, -4.4891138, -2.739114,
      -1.9891139, -0.23911394, -4.4891138, -2.739114, -0.45025733, -4.7002573, -2.9502573, -1.2002573,
    ]
    expectClose(Self.x.logSoftmax(), Tensor(shape: [2, 3, 4], scalars: last))
    // python3 -c "import torch; x=((torch.arange(24)*7)%24).float().reshape(2,3,4)/4-2.875; print((torch.log_softmax(x,dim=1)).flatten().tolist())"
    let middle: [Float] = [
      -2.4076059, -2.4076059, -2.4076059, -0.024744924, -1.4076059, -1.4076059, -1.4076059, -5.024745,
      -0.40760595, -0.40760595, -0.40760595, -4.024745, -2.4076059, -1.3181754, -2.4076059, -2.4076059,
      -1.4076059, -0.31817541, -1.4076059, -1.4076059, -0.40760595, -5.3181753, -0.40760595, -0.40760595,
    ]
    expectClose(Self.x.logSoftmax(axis: 1), Tensor(shape: [2, 3, 4], scalars: middle))
    // python3 -c "import torch; y=((torch.arange(120)*7)%120).float().reshape(2,3,4,5)/16-3.75; print((torch.log_softmax(y,dim=1)).flatten().tolist())"
    let deep: [Float] = [
      -2.813781, -2.813781, -2.813781, -2.813781, -2.813781, -2.813781, -2.813781, -2.813781,
      -2.813781, -2.813781, -2.813781, -2.813781, -1.5034285, -1.5034285, -1.5034285, -0.0086310674,
      -0.0086310674, -0.0086310674, -2.813781, -2.813781, -1.5637809, -1.5637809, -1.5637809, -1.5637809,
      -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809,
      -0.25342849, -0.25342849, -0.25342849, -6.2586312, -6.2586312, -6.2586312, -1.5637809, -1.5637809,
      -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093,
      -0.31378093, -0.31378093, -0.31378093, -0.31378093, -6.5034285, -6.5034285, -6.5034285, -5.0086312,
      -5.0086312, -5.0086312, -0.31378093, -0.31378093, -2.813781, -2.813781, -2.813781, -1.5034285,
      -1.5034285, -1.5034285, -0.0086310674, -0.0086310674, -0.0086310674, -2.813781, -2.813781, -2.813781,
      -2.813781, -2.813781, -2.813781, -2.813781, -2.813781, -2.813781, -2.813781, -2.813781,
      -1.5637809, -1.5637809, -1.5637809, -0.25342849, -0.25342849, -0.25342849, -6.2586312, -6.2586312,
      -6.2586312, -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809, -1.5637809,
      -1.5637809, -1.5637809, -1.5637809, -1.5637809, -0.31378093, -0.31378093, -0.31378093, -6.5034285,
      -6.5034285, -6.5034285, -5.0086312, -5.0086312, -5.0086312, -0.31378093, -0.31378093, -0.31378093,
      -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093, -0.31378093,
    ]
    expectClose(Self.y.logSoftmax(axis: 1), Tensor(shape: [2, 3, 4, 5], scalars: deep))
  }

  @Test func logSoftmaxGradients() {
    let t = testTensor([2, 3, 4], seed: 6, range: -2...2)
    for axis in [-1, 1, 0] { checkGradients([t]) { $0[0].logSoftmax(axis: axis) } }
  }

  @Test func softmaxIsStableForLargeInputs() {
    let t = Tensor([1000, 1001, 1002, -1000])
    // python3 -c "import torch; t=torch.tensor([1000.0,1001.0,1002.0,-1000.0]); print((torch.softmax(t,dim=0)).flatten().tolist())"
    let soft: [Float] = [0.090030573, 0.24472848, 0.66524094, 0.0]
    expectClose(t.softmax(), Tensor(soft))
    // python3 -c "import torch; t=torch.tensor([1000.0,1001.0,1002.0,-1000.0]); print((torch.log_softmax(t,dim=0)).flatten().tolist())"
    let logSoft: [Float] = [-2.4076059, -1.4076059, -0.40760595, -2002.4076]
    expectClose(t.logSoftmax(), Tensor(logSoft))
  }
}
