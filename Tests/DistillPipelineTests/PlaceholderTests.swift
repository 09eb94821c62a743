import Testing

@testable import DistillPipeline
