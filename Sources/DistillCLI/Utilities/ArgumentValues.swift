import ArgumentParser
import DistillDiffusion
import DistillNN
import DistillPipeline

// The library's choices as option values: ArgumentParser lists them in --help and refuses any
// other value with its usage error (exit 2).
extension ActivationRecompute: ExpressibleByArgument {}
extension WeightFormat: ExpressibleByArgument {}
extension ComponentKind: ExpressibleByArgument {}
extension LPIPS.Network: ExpressibleByArgument {}
extension TeacherSamplerKind: ExpressibleByArgument {}
extension TimestepSpacing: ExpressibleByArgument {}
