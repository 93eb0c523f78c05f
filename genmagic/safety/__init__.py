"""Safety checks: PII detection and redaction, prompt and output moderation, image safety,
human review. See docs/ARCHITECTURE.md ("Safety")."""
