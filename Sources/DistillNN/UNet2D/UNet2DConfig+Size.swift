extension UNet2DConfig {
  /// The most parameters a config may describe: 8 billion (32 GB of float32), three times
  /// SDXL's UNet. A larger count in a `config.json` is an error, found before anything is allocated.
  public static let maximumParameterCount = 8_000_000_000
  /// The most resolution levels (`block_out_channels` entries): an input must be divisible by
  /// 2^(levels - 1), so 16 levels already need 32768-pixel sides.
  public static let maximumLevels = 16

  /// The number of parameters of ``UNet2DModel`` for this config, computed without building it.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` when the count exceeds
  ///   ``maximumParameterCount`` (including counts too large for `Int`).
  public func parameterCount(source: String = "config") throws -> Int {
    // In Double, so absurd sizes cannot overflow: when the total is within the limit (< 2^53),
    // every term and partial sum is an integer below it, so the sum is exact.
    let embed = Double(timeEmbeddingDimension ?? 4 * blockOutChannels[0])
    func conv(_ i: Double, _ o: Double, _ k: Double) -> Double { o * i * k * k + o }
    func linear(_ i: Double, _ o: Double) -> Double { i * o + o }
    func norm(_ c: Double) -> Double { 2 * c }
    func resnet(_ i: Double, _ o: Double) -> Double {
      norm(i) + conv(i, o, 3) + linear(embed, scaleShift ? 2 * o : o) + norm(o) + conv(o, o, 3)
        + (i == o ? 0 : conv(i, o, 1))
    }
    func attention(_ c: Double, normed: Bool) -> Double { (normed ? norm(c) : 0) + 4 * linear(c, c) }

    let channels = blockOutChannels.map(Double.init)
    let levels = channels.count
    let layers = Double(layersPerBlock)
    var total = conv(Double(inChannels), channels[0], 3) + linear(channels[0], embed) + linear(embed, embed)
    switch classEmbedding {
    case .table(let classes)?: total += Double(classes) * embed
    case .timestep?: total += linear(channels[0], embed) + linear(embed, embed)
    case .identity?, nil: break
    }
    for (i, kind) in downBlocks.enumerated() {
      let (input, output) = (i == 0 ? channels[0] : channels[i - 1], channels[i])
      total += resnet(input, output) + (layers - 1) * resnet(output, output)
      if kind == .attention { total += layers * attention(output, normed: true) }
      if i < levels - 1 { total += conv(output, output, 3) }
    }
    if hasMidBlock, let c = channels.last {
      total += 2 * resnet(c, c)
      if addAttention { total += attention(c, normed: attentionNormGroups != nil || !scaleShift) }
    }
    let reversed = Array(channels.reversed())
    for (i, kind) in upBlocks.enumerated() {
      let (previous, output) = (i == 0 ? reversed[0] : reversed[i - 1], reversed[i])
      let skip = reversed[Swift.min(i + 1, levels - 1)]
      // Resnets j = 0...layers: the first takes the previous level, the last the skip.
      total += resnet(previous + output, output) + (layers - 1) * resnet(2 * output, output)
        + resnet(output + skip, output)
      if kind == .attention { total += (layers + 1) * attention(output, normed: true) }
      if i < levels - 1 { total += conv(output, output, 3) }
    }
    total += norm(channels[0]) + conv(channels[0], Double(outChannels), 3)
    guard total <= Double(Self.maximumParameterCount) else {
      throw DistillError.invalidValue(
        location: "\(source): block_out_channels", expected: "a model of at most \(Self.maximumParameterCount) parameters",
        found: total < 1e18 ? "\(Int64(total)) parameters" : "\(total) parameters")
    }
    return Int(total)
  }
}
