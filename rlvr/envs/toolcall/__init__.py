"""Tool calling: BFCL v4 cases, synthetic multi-step tasks and FTRL / ToolHop-style JSON in one task
format, executed by :class:`ToolCallEnv` (``rlvr/ToolCall-v0``) with MatchTIR turn rewards.

Heavy pieces load lazily: importing this package reads no data; BFCL files are parsed on the first
reset that needs them and cached for the process.
"""

from rlvr.envs.toolcall.bfcl import BFCL_CATEGORIES, UNSUPPORTED_CATEGORIES, ast_check, bfcl_report, load_bfcl
from rlvr.envs.toolcall.code import CodeBackend
from rlvr.envs.toolcall.env import ToolCallEnv
from rlvr.envs.toolcall.ftrl import load_json_tasks, task_from_record
from rlvr.envs.toolcall.synthetic import SyntheticConfig, generate_task, to_record
from rlvr.envs.toolcall.task import FunctionRuntime, Request, Runtime, ToolTask

__all__ = [
    "BFCL_CATEGORIES",
    "UNSUPPORTED_CATEGORIES",
    "CodeBackend",
    "FunctionRuntime",
    "Request",
    "Runtime",
    "SyntheticConfig",
    "ToolCallEnv",
    "ToolTask",
    "ast_check",
    "bfcl_report",
    "generate_task",
    "load_bfcl",
    "load_json_tasks",
    "task_from_record",
    "to_record",
]
