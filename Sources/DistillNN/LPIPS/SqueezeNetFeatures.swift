/// The SqueezeNet 1.1 trunk of LPIPS: `torchvision.models.squeezenet1_1().features` cut as
/// the `lpips` package's `pretrained_networks.squeezenet` cuts it, `[0:2]`, `[2:5]`, `[5:8]`,
/// `[8:10]`, `[10:11]`, `[11:12]`, `[12:13]`: seven taps with 64, 128, 256, 384, 384, 512, 512
/// channels. Its pools round up (`ceil_mode=True`).
enum SqueezeNetFeatures {
  static let slices: [[FeatureLayer]] = [
    [.conv(index: 0, input: 3, output: 64, kernel: 3, stride: 2)],
    [pool, .fire(index: 3, input: 64, squeeze: 16, expand: 64), .fire(index: 4, input: 128, squeeze: 16, expand: 64)],
    [pool, .fire(index: 6, input: 128, squeeze: 32, expand: 128), .fire(index: 7, input: 256, squeeze: 32, expand: 128)],
    [pool, .fire(index: 9, input: 256, squeeze: 48, expand: 192)],
    [.fire(index: 10, input: 384, squeeze: 48, expand: 192)],
    [.fire(index: 11, input: 384, squeeze: 64, expand: 256)],
    [.fire(index: 12, input: 512, squeeze: 64, expand: 256)],
  ]

  private static let pool = FeatureLayer.maxPool(kernel: 3, stride: 2, ceilMode: true)
}
