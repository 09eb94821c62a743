@_exported import DistillCore
