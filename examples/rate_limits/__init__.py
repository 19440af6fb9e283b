"""Rate limits and partial results: a fake model API, a shared limiter, on_error="collect"."""
