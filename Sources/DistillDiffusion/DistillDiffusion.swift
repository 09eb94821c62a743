import DistillNN
