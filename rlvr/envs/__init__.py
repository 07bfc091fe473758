"""Environments: the agent-env contract, tool-call parsing, tools and the environments themselves."""

from rlvr.envs.core import AgentEnv, ChatMessages, Message, TextAction, TurnOutcome, render_tool_prompt
from rlvr.envs.parsers import HermesParser, JSONParser, ParsedAction, ToolCall, ToolCallParser
from rlvr.envs.tools import Tool, ToolResult, ToolSet, tool, truncate_text
from rlvr.envs import _shared_memory  # noqa: F401 - async vector envs: chat observations through shared memory

__all__ = [
    "AgentEnv", "ChatMessages", "Message", "TextAction", "TurnOutcome", "render_tool_prompt",
    "HermesParser", "JSONParser", "ParsedAction", "ToolCall", "ToolCallParser",
    "Tool", "ToolResult", "ToolSet", "tool", "truncate_text",
]
