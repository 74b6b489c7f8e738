"""Distribution helpers every layer may use: cross-replica maths
(`replicas`), which strategies compile the replica step with XLA (`xla`),
the strategy itself (`strategies`), and the processes of a multi-worker
learner (`cluster`)."""
