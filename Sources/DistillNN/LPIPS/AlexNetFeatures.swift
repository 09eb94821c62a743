/// The AlexNet trunk of LPIPS: `torchvision.models.alexnet().features` cut as the `lpips`
/// package's `pretrained_networks.alexnet` cuts it, `[0:2]`, `[2:5]`, `[5:8]`, `[8:10]`,
/// `[10:12]`: the taps are relu1 ... relu5 with 64, 192, 384, 256, 256 channels.
enum AlexNetFeatures {
  static let slices: [[FeatureLayer]] = [
    [.conv(index: 0, input: 3, output: 64, kernel: 11, stride: 4, padding: 2)],
    [.maxPool(kernel: 3, stride: 2), .conv(index: 3, input: 64, output: 192, kernel: 5, padding: 2)],
    [.maxPool(kernel: 3, stride: 2), .conv(index: 6, input: 192, output: 384, kernel: 3, padding: 1)],
    [.conv(index: 8, input: 384, output: 256, kernel: 3, padding: 1)],
    [.conv(index: 10, input: 256, output: 256, kernel: 3, padding: 1)],
  ]
}
