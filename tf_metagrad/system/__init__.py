"""The distributed training system: Reverb tables, actors, learner input."""
