"""Layer 5, PocketFlow's node and flow classes and their lifecycle."""
