"""Stage 4: compositional benchmarks in their official formats, and the reports."""
