"""Reading inputs, writing outputs atomically, and the per-unit run ledger."""
