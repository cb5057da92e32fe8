"""Pretrained bnnzoo artifacts: models/<name>/<tag>/{weights, card.json}."""
