import DistillPipeline
import Foundation

/// The registry the commands use: set once at start-up, read-only afterwards.
final class RegistryHolder: @unchecked Sendable {
  static let shared = RegistryHolder()
  private let lock = NSLock()
  private var value: ComponentRegistry?

  func set(_ registry: ComponentRegistry) { lock.withLock { value = registry } }

  var registry: ComponentRegistry {
    lock.withLock {
      if value == nil { value = ComponentRegistry.standard() }
      return value!
    }
  }
}
