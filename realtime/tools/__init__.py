"""Evaluation and benchmark tools: they measure the product and never run inside it."""
