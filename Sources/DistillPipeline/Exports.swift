@_exported import DistillDiffusion
@_exported import DistillNN
