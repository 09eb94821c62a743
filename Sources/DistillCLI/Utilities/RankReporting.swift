import ArgumentParser
import DistillDistributed

/// How `pipeline run` reports errors on several ranks: each message once, with the exit
/// code it has in one process, and no rank left waiting for another.
struct RankReporting {
  let communicator: any Communicator

  /// Runs `body` on every rank. When it fails on any rank, every rank stops: a failing rank
  /// prints its error (rank 0's alone when rank 0 failed, since the ranks read the same
  /// files), the others exit silently with the same code.
  func together<T>(_ body: () throws -> T) throws -> T {
    var result: Result<T, any Error>
    do { result = .success(try body()) } catch { result = .failure(error) }
    guard communicator.size > 1 else { return try report(result) }
    let failed: Double = if case .failure = result { 1 } else { 0 }
    let verdict = try communicator.allreduceSum([failed, communicator.isMain ? failed : 0])
    if verdict[0] == 0, case .success(let value) = result { return value }
    if case .failure(let error) = result {
      try exit(reporting: error, printed: communicator.isMain || verdict[1] == 0)
    }
    // Another rank failed; its message says why. Bad input is the likely cause (exit 2).
    throw ExitCode(2)
  }

  /// Runs `body` on rank 0 alone and gives its result (an `Int?`) to every rank; when it
  /// fails, rank 0 prints the error and every rank exits with its code.
  func mainDecides(_ body: () throws -> Int?) throws -> Int? {
    var result: Result<Int?, any Error> = .success(nil)
    if communicator.isMain {
      do { result = .success(try body()) } catch { result = .failure(error) }
    }
    guard communicator.size > 1 else { return try report(result) }
    // [failed, exit code, has value, value]
    var message: [Double] = [0, 0, 0, 0]
    switch result {
    case .success(let value): message = [0, 0, value == nil ? 0 : 1, Double(value ?? 0)]
    case .failure(let error): message = [1, Double(exitCode(for: error).rawValue), 0, 0]
    }
    message = try communicator.allreduceSum(communicator.isMain ? message : [0, 0, 0, 0])
    if message[0] > 0 {
      if case .failure(let error) = result {
        _ = try report(Result<Int?, any Error>.failure(error))
      }
      throw ExitCode(Int32(message[1]))
    }
    return message[2] > 0 ? Int(message[3]) : nil
  }

  /// Exits with `error`'s code, printing it when `printed`.
  func exit(reporting error: any Error, printed: Bool) throws -> Never {
    if printed { try runReportingErrors { throw error } }
    throw exitCode(for: error)
  }

  /// Prints this rank's own failure and ends every rank of the job with its exit code.
  func abort(reporting error: any Error) -> Never {
    printError("error: rank \(communicator.rank) of \(communicator.size): \(message(for: error))")
    communicator.abort(exitCode: exitCode(for: error).rawValue)
  }

  private func report<T>(_ result: Result<T, any Error>) throws -> T {
    switch result {
    case .success(let value): return value
    case .failure(let error):
      try runReportingErrors { throw error }
      fatalError("runReportingErrors rethrows")
    }
  }
}
