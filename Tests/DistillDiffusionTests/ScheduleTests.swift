import Testing
@testable import DistillDiffusion
