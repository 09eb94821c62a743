import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens come from PyTorch 2.15 (CPU, float32): the `python3 -c` line above each golden array
// printed it. Shape ops move values without arithmetic, so results are compared exactly.

@Suite struct ShapeTests {
  /// `[2, 3, 4]` holding 0..<24.
  static let x = Tensor.arange(0, 24).reshaped([2, 3, 4])

  // MARK: reshape and friends

  @Test func reshapeInfersTheMinusOneDimensionAndSharesStorage() {
    let r = Self.x.reshaped([4, -1])
    #expect(r.shape == [4, 6])
    #expect(r.scalars == Self.x.scalars)
    #expect(r.sharesStorage(with: Self.x))
    #expect(Self.x.reshaped([-1]).shape == [24])
    #expect(Self.x.reshaped([2, -1, 3]).shape == [2, 4, 3])
    #expect(Tensor(scalar: 3).reshaped([1, 1]).shape == [1, 1])
    checkGradients([testTensor([2, 3, 4], seed: 1)]) { $0[0].reshaped([-1, 8]) }
  }

  @Test func flattenedUnsqueezedAndSqueezed() {
    #expect(Self.x.flattened().shape == [24])
    #expect(Self.x.flattened(from: 1).shape == [2, 12])
    #expect(Self.x.flattened(from: 2).shape == [2, 3, 4])
    #expect(Self.x.unsqueezed(at: 0).shape == [1, 2, 3, 4])
    #expect(Self.x.unsqueezed(at: 1).shape == [2, 1, 3, 4])
    #expect(Self.x.unsqueezed(at: -1).shape == [2, 3, 4, 1])
    #expect(Self.x.unsqueezed(at: -2).shape == [2, 3, 1, 4])
    #expect(Self.x.unsqueezed(at: 1).squeezed(at: 1).shape == [2, 3, 4])
    #expect(Self.x.unsqueezed(at: -1).squeezed(at: -1).shape == [2, 3, 4])
    #expect(Self.x.flattened(from: 1).scalars == Self.x.scalars)
    let t = testTensor([2, 3, 4], seed: 2)
    checkGradients([t]) { $0[0].flattened(from: 1) }
    checkGradients([t]) { $0[0].unsqueezed(at: -1) }
    checkGradients([t.unsqueezed(at: 0)]) { $0[0].squeezed(at: 0) }
  }

  // MARK: permute and transpose

  @Test func permute() {
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x.permute(2,0,1)).flatten().tolist())"
    let expected: [Float] = [
      0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0, 5.0,
      9.0, 13.0, 17.0, 21.0, 2.0, 6.0, 10.0, 14.0,
      18.0, 22.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0,
    ]
    #expect(Self.x.permuted([2, 0, 1]) == Tensor(shape: [4, 2, 3], scalars: expected))
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x.permute(1,0,2)).flatten().tolist())"
    let swapped: [Float] = [
      0.0, 1.0, 2.0, 3.0, 12.0, 13.0, 14.0, 15.0,
      4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0,
      8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0,
    ]
    #expect(Self.x.permuted([1, 0, 2]) == Tensor(shape: [3, 2, 4], scalars: swapped))
    let y = Tensor.arange(0, 120).reshaped([2, 3, 4, 5])
    // python3 -c "import torch; y=torch.arange(120.).reshape(2,3,4,5); print((y.permute(0,2,3,1)).flatten().tolist())"
    let channelsLast: [Float] = [
      0.0, 20.0, 40.0, 1.0, 21.0, 41.0, 2.0, 22.0,
      42.0, 3.0, 23.0, 43.0, 4.0, 24.0, 44.0, 5.0,
      25.0, 45.0, 6.0, 26.0, 46.0, 7.0, 27.0, 47.0,
      8.0, 28.0, 48.0, 9.0, 29.0, 49.0, 10.0, 30.0,
      50.0, 11.0, 31.0, 51.0, 12.0, 32.0, 52.0, 13.0,
      33.0, 53.0, 14.0, 34.0, 54.0, 15.0, 35.0, 55.0,
      16.0, 36.0, 56.0, 17.0, 37.0, 57.0, 18.0, 38.0,
      58.0, 19.0, 39.0, 59.0, 60.0, 80.0, 100.0, 61.0,
      81.0, 101.0, 62.0, 82.0, 102.0, 63.0, 83.0, 103.0,
      64.0, 84.0, 104.0, 65.0, 85.0, 105.0, 66.0, 86.0,
      106.0, 67.0, 87.0, 107.0, 68.0, 88.0, 108.0, 69.0,
      89.0, 109.0, 70.0, 90.0, 110.0, 71.0, 91.0, 111.0,
      72.0, 92.0, 112.0, 73.0, 93.0, 113.0, 74.0, 94.0,
      114.0, 75.0, 95.0, 115.0, 76.0, 96.0, 116.0, 77.0,
      97.0, 117.0, 78.0, 98.0, 118.0, 79.0, 99.0, 119.0,
    ]
    #expect(y.permuted([0, 2, 3, 1]) == Tensor(shape: [2, 4, 5, 3], scalars: channelsLast))
    #expect(Self.x.permuted([0, 1, 2]) == Self.x)
    #expect(Self.x.permuted([2, 0, 1]).permuted([1, 2, 0]) == Self.x)
    let t = testTensor([2, 3, 4], seed: 3)
    checkGradients([t]) { $0[0].permuted([2, 0, 1]) }
    checkGradients([t]) { $0[0].permuted([1, 2, 0]) }
    checkGradients([testTensor([2, 3, 4, 5], seed: 4)]) { $0[0].permuted([0, 2, 3, 1]) }
  }

  /// Every permutation of shapes that are not multiples of the 8 x 8 transpose blocks and
  /// large enough to be split across threads, against the index arithmetic.
  @Test(arguments: [[3, 5, 7, 2], [2, 9, 11, 13], [16, 64, 256], [1, 37, 19]])
  func permuteMatchesIndexArithmetic(shape: [Int]) {
    let x = Tensor.arange(0, Float(shape.reduce(1, *))).reshaped(shape)
    func permutations(_ axes: [Int]) -> [[Int]] {
      axes.count <= 1 ? [axes] : axes.flatMap { a in permutations(axes.filter { $0 != a }).map { [a] + $0 } }
    }
    let strides = contiguousStrides(shape)
    for permutation in permutations(Array(shape.indices)) {
      let y = x.permuted(permutation)
      let outShape = permutation.map { shape[$0] }
      let outStrides = contiguousStrides(outShape)
      let values = y.scalars
      var ok = true
      for flat in 0..<values.count {
        var source = 0
        for d in outShape.indices { source += (flat / outStrides[d] % outShape[d]) * strides[permutation[d]] }
        if values[flat] != Float(source) { ok = false }
      }
      #expect(ok, "permutation \(permutation) of \(shape)")
    }
  }

  @Test func transpose() {
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x.transpose(-2,-1)).flatten().tolist())"
    let last: [Float] = [
      0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0,
      10.0, 3.0, 7.0, 11.0, 12.0, 16.0, 20.0, 13.0,
      17.0, 21.0, 14.0, 18.0, 22.0, 15.0, 19.0, 23.0,
    ]
    #expect(Self.x.transposed() == Tensor(shape: [2, 4, 3], scalars: last))
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x.transpose(0,2)).flatten().tolist())"
    let outer: [Float] = [
      0.0, 12.0, 4.0, 16.0, 8.0, 20.0, 1.0, 13.0,
      5.0, 17.0, 9.0, 21.0, 2.0, 14.0, 6.0, 18.0,
      10.0, 22.0, 3.0, 15.0, 7.0, 19.0, 11.0, 23.0,
    ]
    #expect(Self.x.transposed(0, 2) == Tensor(shape: [4, 3, 2], scalars: outer))
    #expect(Self.x.transposed(2, 0) == Tensor(shape: [4, 3, 2], scalars: outer))
    let t = testTensor([2, 3, 4], seed: 5)
    checkGradients([t]) { $0[0].transposed() }
    checkGradients([t]) { $0[0].transposed(0, 2) }
  }

  // MARK: expand

  @Test func expand() {
    let column = Tensor(shape: [3, 1], scalars: [1, 2, 3])
    // python3 -c "import torch; c=torch.tensor([[1.0],[2.0],[3.0]]); print((c.expand(2,3,4)).flatten().tolist())"
    let expected: [Float] = [
      1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0,
      3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0,
      2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0,
    ]
    #expect(column.expand(to: [2, 3, 4]) == Tensor(shape: [2, 3, 4], scalars: expected))
    let row = Tensor([1, 2, 3, 4])
    // python3 -c "import torch; r=torch.tensor([1.0,2.0,3.0,4.0]); print((r.expand(2,3,4)).flatten().tolist())"
    let rows: [Float] = [
      1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0,
      1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0,
      1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0,
    ]
    #expect(row.expand(to: [2, 3, 4]) == Tensor(shape: [2, 3, 4], scalars: rows))
    let middle = Tensor(shape: [2, 1, 4], scalars: (0..<8).map(Float.init))
    // python3 -c "import torch; m=torch.arange(8.).reshape(2,1,4); print((m.expand(2,3,4)).flatten().tolist())"
    let inner: [Float] = [
      0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0,
      0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
      4.0, 5.0, 6.0, 7.0, 4.0, 5.0, 6.0, 7.0,
    ]
    #expect(middle.expand(to: [2, 3, 4]) == Tensor(shape: [2, 3, 4], scalars: inner))
    #expect(Tensor(scalar: 7).expand(to: [2, 2]) == Tensor.full([2, 2], 7))
    checkGradients([testTensor([3, 1], seed: 6)]) { $0[0].expand(to: [2, 3, 4]) }
    checkGradients([testTensor([4], seed: 7)]) { $0[0].expand(to: [2, 3, 4]) }
    checkGradients([testTensor([2, 1, 4], seed: 8)]) { $0[0].expand(to: [2, 3, 4]) }
    checkGradients([testTensor([1, 3, 1], seed: 9)]) { $0[0].expand(to: [2, 2, 3, 4]) }
    checkGradients([Tensor(scalar: 0.5)]) { $0[0].expand(to: [2, 3]) }
  }

  @Test func sumToShapeUndoesExpand() {
    let g = Tensor.ones([2, 3, 4])
    #expect(g.sum(toShape: [3, 1]) == Tensor.full([3, 1], 8))
    #expect(g.sum(toShape: [4]) == Tensor.full([4], 6))
    #expect(g.sum(toShape: [2, 1, 4]) == Tensor.full([2, 1, 4], 3))
    #expect(g.sum(toShape: []) == Tensor(scalar: 24))
  }

  // MARK: slice, split, concat, stack

  @Test func slice() {
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x[:,1:3,:]).flatten().tolist())"
    let middle: [Float] = [
      4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0,
      16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0,
    ]
    #expect(Self.x.sliced(axis: 1, 1..<3) == Tensor(shape: [2, 2, 4], scalars: middle))
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x[...,1:2]).flatten().tolist())"
    let last: [Float] = [1.0, 5.0, 9.0, 13.0, 17.0, 21.0]
    #expect(Self.x.sliced(axis: -1, 1..<2) == Tensor(shape: [2, 3, 1], scalars: last))
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x[1:]).flatten().tolist())"
    let first: [Float] = [
      12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0,
      20.0, 21.0, 22.0, 23.0,
    ]
    #expect(Self.x.sliced(axis: 0, 1..<2) == Tensor(shape: [1, 3, 4], scalars: first))
    #expect(Self.x.sliced(axis: 1, 0..<3) == Self.x)
    #expect(Self.x.sliced(axis: 1, 2..<2).shape == [2, 0, 4])
    let t = testTensor([2, 3, 4], seed: 10)
    checkGradients([t]) { $0[0].sliced(axis: 1, 1..<3) }
    checkGradients([t]) { $0[0].sliced(axis: -1, 3..<4) }
    checkGradients([t]) { $0[0].sliced(axis: 0, 0..<1) }
  }

  @Test func split() {
    let pieces = Self.x.split([1, 3], axis: -1)
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x.split([1,3],dim=-1)[0]).flatten().tolist())"
    let a: [Float] = [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    #expect(pieces[0] == Tensor(shape: [2, 3, 1], scalars: a))
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4); print((x.split([1,3],dim=-1)[1]).flatten().tolist())"
    let b: [Float] = [
      1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0,
      11.0, 13.0, 14.0, 15.0, 17.0, 18.0, 19.0, 21.0,
      22.0, 23.0,
    ]
    #expect(pieces[1] == Tensor(shape: [2, 3, 3], scalars: b))
    let thirds = Self.x.split([1, 1, 1], axis: 1)
    #expect(thirds.map(\.shape) == [[2, 1, 4], [2, 1, 4], [2, 1, 4]])
    #expect(Tensor.concat(thirds, axis: 1) == Self.x)
    let t = testTensor([2, 3, 4], seed: 11)
    checkGradients([t]) { $0[0].split([1, 2, 1], axis: 2)[1] }
    checkGradients([t]) { xs in
      let p = xs[0].split([2, 1], axis: 1)
      return p[0].sum(axes: [1], keepDims: true) * p[1]
    }
  }

  @Test func concat() {
    let a = Tensor.arange(0, 6).reshaped([2, 3])
    let b = Tensor.arange(10, 14).reshaped([2, 2])
    let c = Tensor.arange(20, 22).reshaped([2, 1])
    // python3 -c "import torch; a=torch.arange(6.).reshape(2,3); b=torch.arange(10.,14.).reshape(2,2); c=torch.arange(20.,22.).reshape(2,1); print((torch.cat([a,b,c],dim=1)).flatten().tolist())"
    let columns: [Float] = [
      0.0, 1.0, 2.0, 10.0, 11.0, 20.0, 3.0, 4.0,
      5.0, 12.0, 13.0, 21.0,
    ]
    #expect(Tensor.concat([a, b, c], axis: 1) == Tensor(shape: [2, 6], scalars: columns))
    #expect(Tensor.concat([a, b, c], axis: -1) == Tensor(shape: [2, 6], scalars: columns))
    // python3 -c "import torch; a=torch.arange(6.).reshape(2,3); d=torch.arange(30.,33.).reshape(1,3); print((torch.cat([a,d],dim=0)).flatten().tolist())"
    let rows: [Float] = [
      0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 30.0, 31.0,
      32.0,
    ]
    #expect(Tensor.concat([a, Tensor.arange(30, 33).reshaped([1, 3])], axis: 0) == Tensor(shape: [3, 3], scalars: rows))
    let u = Tensor.arange(0, 12).reshaped([2, 3, 2])
    let v = Tensor.arange(50, 54).reshaped([2, 1, 2])
    // python3 -c "import torch; u=torch.arange(12.).reshape(2,3,2); v=torch.arange(50.,54.).reshape(2,1,2); print((torch.cat([u,v,u],dim=1)).flatten().tolist())"
    let middle: [Float] = [
      0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 50.0, 51.0,
      0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
      8.0, 9.0, 10.0, 11.0, 52.0, 53.0, 6.0, 7.0,
      8.0, 9.0, 10.0, 11.0,
    ]
    #expect(Tensor.concat([u, v, u], axis: 1) == Tensor(shape: [2, 7, 2], scalars: middle))
    #expect(Tensor.concat([u], axis: 1) == u)
    checkGradients([testTensor([2, 3], seed: 12), testTensor([2, 2], seed: 13), testTensor([2, 1], seed: 14)]) {
      Tensor.concat($0, axis: 1)
    }
    checkGradients([testTensor([2, 3, 2], seed: 15), testTensor([2, 1, 2], seed: 16)]) { Tensor.concat($0, axis: 1) }
    checkGradients([testTensor([1, 3], seed: 17), testTensor([2, 3], seed: 18)]) { Tensor.concat($0, axis: 0) }
  }

  @Test func concatGradientSkipsInputsThatNeedNone() {
    let a = testTensor([2, 3], seed: 19).requiringGrad()
    let b = testTensor([2, 2], seed: 20)
    let weights = testTensor([2, 5], seed: 21)
    (Tensor.concat([b, a], axis: 1) * weights).sum().backward()
    #expect(a.grad == weights.sliced(axis: 1, 2..<5))
  }

  @Test func stack() {
    let a = Tensor.arange(0, 6).reshaped([2, 3])
    let b = Tensor.arange(10, 16).reshaped([2, 3])
    // python3 -c "import torch; a=torch.arange(6.).reshape(2,3); b=torch.arange(10.,16.).reshape(2,3); print((torch.stack([a,b],dim=0)).flatten().tolist())"
    let first: [Float] = [
      0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 11.0,
      12.0, 13.0, 14.0, 15.0,
    ]
    #expect(Tensor.stack([a, b]) == Tensor(shape: [2, 2, 3], scalars: first))
    // python3 -c "import torch; a=torch.arange(6.).reshape(2,3); b=torch.arange(10.,16.).reshape(2,3); print((torch.stack([a,b],dim=1)).flatten().tolist())"
    let middle: [Float] = [
      0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 3.0, 4.0,
      5.0, 13.0, 14.0, 15.0,
    ]
    #expect(Tensor.stack([a, b], axis: 1) == Tensor(shape: [2, 2, 3], scalars: middle))
    // python3 -c "import torch; a=torch.arange(6.).reshape(2,3); b=torch.arange(10.,16.).reshape(2,3); print((torch.stack([a,b],dim=-1)).flatten().tolist())"
    let last: [Float] = [
      0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0,
      4.0, 14.0, 5.0, 15.0,
    ]
    #expect(Tensor.stack([a, b], axis: -1) == Tensor(shape: [2, 3, 2], scalars: last))
    #expect(Tensor.stack([a, b], axis: 2) == Tensor(shape: [2, 3, 2], scalars: last))
    let inputs = [testTensor([2, 3], seed: 22), testTensor([2, 3], seed: 23), testTensor([2, 3], seed: 24)]
    for axis in [0, 1, 2, -1] { checkGradients(inputs) { Tensor.stack($0, axis: axis) } }
  }

  // MARK: pad

  @Test func padded() {
    let t = Tensor.arange(0, 6).reshaped([1, 2, 3]) + 1
    // python3 -c "import torch; t=torch.arange(6.).reshape(1,2,3)+1; print((torch.nn.functional.pad(t,(1,1,0,2,1,0))).flatten().tolist())"
    let zeros: [Float] = [
      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0,
      0.0, 0.0, 4.0, 5.0, 6.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ]
    #expect(t.padded([(1, 0), (0, 2), (1, 1)]) == Tensor(shape: [2, 4, 5], scalars: zeros))
    // python3 -c "import torch; t=torch.arange(6.).reshape(1,2,3)+1; print((torch.nn.functional.pad(t,(0,2,1,0),value=-1.0)).flatten().tolist())"
    let filled: [Float] = [
      -1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 2.0, 3.0,
      -1.0, -1.0, 4.0, 5.0, 6.0, -1.0, -1.0,
    ]
    #expect(t.padded([(0, 0), (1, 0), (0, 2)], value: -1) == Tensor(shape: [1, 3, 5], scalars: filled))
    // python3 -c "import torch; t=torch.arange(6.).reshape(1,2,3)+1; print((torch.nn.functional.pad(t,(0,0,0,0,2,1))).flatten().tolist())"
    let outer: [Float] = [
      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0,
      5.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ]
    #expect(t.padded([(2, 1), (0, 0), (0, 0)]) == Tensor(shape: [4, 2, 3], scalars: outer))
    #expect(t.padded([(0, 0), (0, 0), (0, 0)]) == t)
    let g = testTensor([2, 3, 4], seed: 25)
    checkGradients([g]) { $0[0].padded([(1, 0), (0, 2), (1, 1)]) }
    checkGradients([g]) { $0[0].padded([(0, 0), (2, 2), (0, 0)], value: 3) }
    checkGradients([g]) { $0[0].padded([(0, 1), (0, 0), (0, 3)]) }
  }
}
