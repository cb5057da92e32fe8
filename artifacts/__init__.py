"""Pretrained bnnzoo artifacts: artifacts/<name>/<tag>/{weights, card.json}."""
