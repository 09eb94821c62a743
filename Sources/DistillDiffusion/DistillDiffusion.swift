/// DistillDiffusion: noise schedules, model parameterisations and samplers (DDPM, DDIM, Euler,
/// EDM Heun) that reproduce diffusers' schedulers, for training and distilling diffusion models.
@_exported import DistillCore
