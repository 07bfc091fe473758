"""A custom agent in a few lines: any object with act(messages) -> str plugs into rlvr.

This one plays GuessNumber by bisection, reading the env's replies from the conversation.
Run: python examples/custom_agent.py
"""

import json
import re

from rlvr.agents.rollout import rollout, summarize


class BisectionAgent:
    def act(self, messages: list[dict]) -> str:
        lo, hi = map(int, re.findall(r"between (\d+) and (\d+)", messages[0]["content"])[0])
        for call, reply in zip(messages, messages[1:]):  # replay what we learned
            if call["role"] == "assistant" and reply["role"] == "tool":
                n = json.loads(re.search(r"<tool_call>(.*)</tool_call>", call["content"]).group(1))["arguments"]["number"]
                if reply["content"] == "correct":
                    return f"<answer>{n}</answer>"
                lo, hi = (n + 1, hi) if reply["content"] == "higher" else (lo, n - 1)
        guess = (lo + hi) // 2
        return f'<tool_call>{{"name": "guess", "arguments": {{"number": {guess}}}}}</tool_call>'


if __name__ == "__main__":
    trajectories = rollout("rlvr/GuessNumber-v0", BisectionAgent(), episodes=8, seed=0)
    print(summarize(trajectories))
