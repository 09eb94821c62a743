import DistillCLI
import MomentMatching

// The same CLI as Distillery's `pipeline` (run, validate, components, schema, sample,
// precompute, ...), with this package's components registered beside the built-in ones.
PipelineCLI.main(extraComponents: myComponents)
