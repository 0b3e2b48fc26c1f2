"""Reading inputs and writing outputs atomically (the run directory itself: cfgen.run)."""
