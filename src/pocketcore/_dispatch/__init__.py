"""Layer 4, dispatch: the one place where a batch's items meet an executor."""
