//! Simulated controllers on pseudo-terminals, for tests.
