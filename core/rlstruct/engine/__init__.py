"""The GRPO training engine: loss math, log-probs, rollouts, the training loop and evaluation."""
