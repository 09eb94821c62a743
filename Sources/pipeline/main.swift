import DistillCLI

PipelineCLI.main()
