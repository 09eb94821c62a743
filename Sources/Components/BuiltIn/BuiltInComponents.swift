import AdversarialDistillation
import AutoencoderGenerator
import AutoencoderLoss
import CaptionsData
import ConsistencyDistillation
import ConsistencyGenerator
import DenoiserGenerator
import DenoisingLoss
import DMD2GAN
import DistillPipeline
import DistributionMatching
import EnergyDistance
import FeatureDistances
import FolderTeacher
import GaussianMixtureData
import GaussianMixtureTeacher
import KnowledgeDistillation
import MLPGenerator
import ModeCoverage
import PairsData
import ProgressiveDistillation
import ShapesData
import ImageFolderData
import TensorData
import Regression
import TeacherScore
import TeacherStudentDistance
import TrainedScore

extension ComponentRegistry {
  /// Every component Distillery ships: the core schedule and optimizers, and one target
  /// per component under Sources/Components. A new built-in component is added here.
  public static var builtInComponents: [any ComponentDescribing.Type] {
    coreComponents + [
      // Teachers
      FolderTeacher.self, GaussianMixtureTeacher.self,
      // Generators
      AutoencoderGeneratorComponent.self, ConsistencyGeneratorComponent.self, DenoiserGeneratorComponent.self,
      MLPGenerator.self,
      // Scores
      TeacherScore.self, TrainedScore.self,
      // Losses
      AdversarialDistillation.self, AutoencoderLossComponent.self, ConsistencyDistillation.self, DenoisingLoss.self, DistributionMatching.self, DMD2GAN.self, KnowledgeDistillation.self,
      ProgressiveDistillation.self, RealScoreAscent.self, Regression.self,
      // Data
      CaptionsData.self, GaussianMixtureData.self, PairsData.self, ShapesData.self, ImageFolderData.self, TensorData.self, IDXData.self,
      // Metrics
      EnergyDistance.self, FeatureDistances.self, ModeCoverage.self, TeacherStudentDistance.self,
    ]
  }

  /// A registry of the built-in components plus `extra` (a user's own).
  public static func standard(adding extra: [any ComponentDescribing.Type] = []) -> ComponentRegistry {
    var registry = ComponentRegistry()
    registry.register(builtInComponents + extra)
    return registry
  }
}
