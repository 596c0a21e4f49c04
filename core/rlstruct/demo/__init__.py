"""``rlstruct demo``: the main job as one command.

Build the tiny model, warm-start it with SFT, evaluate it, train it with GRPO from the SFT model,
evaluate again, and write a report (report.json, report.md, training_dynamics.png) next to the run
directories. Each stage calls the same engine function as the command a user would run by hand.

Modules: :mod:`.command` (arguments, error handling; imports no torch), :mod:`.pipeline` (the
stages), :mod:`.report` (metrics and report files), :mod:`.threads` (torch thread counts).
"""
