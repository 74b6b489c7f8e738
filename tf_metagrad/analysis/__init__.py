"""Reading finished runs: curves, bands over seeds, tables and plots."""
