"""Targeted distillation: the teacher client, conversation building and reviewed feedback."""
