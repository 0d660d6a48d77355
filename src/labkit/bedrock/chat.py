"""One conversation shape for every text model: what a request asks and what a model answers.

Each family's InvokeModel body (:mod:`labkit.bedrock.formats`) and the Converse API
(:mod:`labkit.bedrock.converse`) are translated into a :class:`ChatRequest`; a generator
(the deterministic stand-in, or a local OpenAI-compatible model: :mod:`labkit.bedrock.generation`)
answers it with a :class:`Generation`, which is translated back into the family's or
Converse's response shape. Content blocks follow the Converse API's vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Image:
    format: str  # png | jpeg | gif | webp
    data: bytes


@dataclass
class Document:
    name: str
    text: str


@dataclass
class ToolUse:
    """The model asks for a tool to be run (Converse ``toolUse``, Anthropic ``tool_use``)."""

    tool_use_id: str
    name: str
    input: Any


@dataclass
class ToolResult:
    """What the caller's tool returned (Converse ``toolResult``, Anthropic ``tool_result``)."""

    tool_use_id: str
    content: list[dict[str, Any]]  # Converse-shaped: {"text": ...} | {"json": ...} | {"image"|"document": ...}
    status: str | None = None  # "success" | "error" | None

    def text(self) -> str:
        parts = []
        for c in self.content:
            if "text" in c:
                parts.append(str(c["text"]))
            elif "json" in c:
                parts.append(json.dumps(c["json"], sort_keys=False))
        return "\n".join(parts)


@dataclass
class Reasoning:
    text: str


Block = str | Image | Document | ToolUse | ToolResult | Reasoning


@dataclass
class Message:
    role: str  # user | assistant
    content: list[Block]

    def text(self) -> str:
        """The message's readable text: text, documents and tool results (for prompts and token counts)."""
        parts = []
        for b in self.content:
            if isinstance(b, str):
                parts.append(b)
            elif isinstance(b, Document):
                parts.append(b.text)
            elif isinstance(b, ToolResult):
                parts.append(b.text())
            elif isinstance(b, ToolUse):
                parts.append(f"{b.name} {json.dumps(b.input)}")
        return "\n".join(p for p in parts if p)


@dataclass
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]  # a JSON Schema for the tool's input (type object)


@dataclass
class ChatRequest:
    system: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    max_tokens: int = 512
    stop_sequences: list[str] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | any | tool | none
    forced_tool: str | None = None  # the tool's name when tool_choice is "tool"
    reasoning: bool = False  # the model shows its reasoning (DeepSeek-R1)
    native: dict[str, Any] = field(default_factory=dict)  # what a family's response needs of its request

    def text(self) -> str:
        """Everything the model reads, for input token counts."""
        parts = [*self.system, *(m.text() for m in self.messages)]
        parts += [f"{t.name} {t.description} {json.dumps(t.schema)}" for t in self.tools]
        return "\n".join(p for p in parts if p)

    @staticmethod
    def of_text(prompt: str, max_tokens: int = 512, stop_sequences: list[str] | None = None,
                system: list[str] | None = None) -> ChatRequest:
        return ChatRequest(system=list(system or []), messages=[Message("user", [prompt])], max_tokens=max_tokens,
                           stop_sequences=list(stop_sequences or []))


@dataclass
class Generation:
    """A model's answer: content blocks (text, tool uses, reasoning), tokens, why it stopped."""

    content: list[Block]
    input_tokens: int
    output_tokens: int
    stop_reason: str  # end_turn | max_tokens | stop_sequence | tool_use | guardrail_intervened | content_filtered
    stop_sequence: str | None = None
    label: str = ""  # who answered, for the x-labkit-stand-in response header
    found: bool = False  # the stand-in found an answer in the context
    sources: list[str] = field(default_factory=list)  # the context sentences the stand-in quoted

    @property
    def text(self) -> str:
        return "".join(b for b in self.content if isinstance(b, str))

    @property
    def tool_uses(self) -> list[ToolUse]:
        return [b for b in self.content if isinstance(b, ToolUse)]

    @property
    def reasoning(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, Reasoning))

    def with_text(self, text: str, stop_reason: str | None = None) -> Generation:
        """The same answer with its text replaced (a guardrail's masked or blocked message)."""
        return Generation([text], self.input_tokens, self.output_tokens, stop_reason or self.stop_reason,
                          self.stop_sequence, self.label, self.found, self.sources)
