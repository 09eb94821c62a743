/// The VGG16 trunk of LPIPS: `torchvision.models.vgg16().features` cut as the `lpips`
/// package's `pretrained_networks.vgg16` cuts it, `[0:4]`, `[4:9]`, `[9:16]`, `[16:23]`,
/// `[23:30]`: the taps are relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 with 64, 128, 256,
/// 512, 512 channels. Every convolution is 3x3 with padding 1; every pool is 2x2, stride 2.
enum VGG16Features {
  static let slices: [[FeatureLayer]] = [
    [conv(0, 3, 64), conv(2, 64, 64)],
    [pool, conv(5, 64, 128), conv(7, 128, 128)],
    [pool, conv(10, 128, 256), conv(12, 256, 256), conv(14, 256, 256)],
    [pool, conv(17, 256, 512), conv(19, 512, 512), conv(21, 512, 512)],
    [pool, conv(24, 512, 512), conv(26, 512, 512), conv(28, 512, 512)],
  ]

  private static func conv(_ index: Int, _ input: Int, _ output: Int) -> FeatureLayer {
    .conv(index: index, input: input, output: output, kernel: 3, padding: 1)
  }

  private static let pool = FeatureLayer.maxPool(kernel: 2, stride: 2)
}
