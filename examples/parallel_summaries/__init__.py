"""The parallel-summaries example: summarise text files with a (simulated) slow LLM."""
