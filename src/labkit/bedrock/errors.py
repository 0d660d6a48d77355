"""Errors of the offline Bedrock models, carrying AWS's error code and HTTP status."""

from __future__ import annotations


class BedrockError(Exception):
    """An error AWS would answer with: ``code`` (``ValidationException``...) and ``status``."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def malformed(detail: str) -> BedrockError:
    """A model body that fails the model's JSON schema, worded as Bedrock words it."""
    return validation(f"Malformed input request: {detail}, please reformat your input and try again.")


def not_found(message: str) -> BedrockError:
    return BedrockError("ResourceNotFoundException", message, 404)


def throttled(message: str = "Too many requests, please wait before trying again.") -> BedrockError:
    return BedrockError("ThrottlingException", message, 429)
