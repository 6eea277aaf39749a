"""Test support: a fake OpenAI-compatible server (no network, no API key)."""
