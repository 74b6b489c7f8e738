"""The training system: the host loop, its data plane, reports and finish."""
