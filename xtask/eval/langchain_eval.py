"""LangChain's PlanAndExecute on the eval objectives, for `cargo xtask eval`.

Runs load_chat_planner + load_agent_executor (langchain-experimental) with
ChatOpenAI pointed at llama-cpp-python's OpenAI-compatible server, one
objective at a time, with tools that match pae's built-in ones (calculator,
current_time with the same fixed clock, read_file confined to the eval's
files). Prints one JSON line per objective:
{"id", "answer", "error", "seconds", "tools", "model_calls", "tokens"}.

Usage: python langchain_eval.py OBJECTIVES.json BASE_URL MODEL_ALIAS [ID ...]
"""

import ast
import re
import datetime as dt
import json
import math
import operator
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.tools import StructuredTool  # noqa: E402
from langchain_experimental.plan_and_execute import (  # noqa: E402
    PlanAndExecute,
    load_agent_executor,
    load_chat_planner,
)
from langchain_openai import ChatOpenAI  # noqa: E402

OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
FUNCS = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil,
    "min": min, "max": max, "sum": lambda *a: sum(a), "avg": lambda *a: sum(a) / len(a), "count": lambda *a: len(a),
    "pow": pow, "log": math.log10, "ln": math.log, "exp": math.exp,
}


def evaluate(node):
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return OPS[type(node.op)](evaluate(node.left), evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPS:
        return OPS[type(node.op)](evaluate(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCS:
        return FUNCS[node.func.id](*[evaluate(a) for a in node.args])
    if isinstance(node, ast.Name) and node.id in ("pi", "e"):
        return math.pi if node.id == "pi" else math.e
    raise ValueError("unsupported expression")


def calculator(expression: str) -> str:
    """Evaluates an arithmetic expression written with the numbers of the current step and
    returns the result. Supports + - * / % ^, parentheses, decimals, pi, e, and sqrt, abs,
    round, floor, ceil, ln, log, exp, min, max, pow, and sum, avg, count of a list of numbers."""
    text = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    # Thousands separators (1,200) go; commas between arguments stay.
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    value = evaluate(ast.parse(text.strip().strip("="), mode="eval"))
    value = round(float(value), 10)
    return str(int(value)) if value == int(value) else repr(value)


def make_time_tool(now: dt.datetime):
    def current_time(until: str = "") -> str:
        """Returns today's date, the time and the weekday in UTC; give `until` a date
        (YYYY-MM-DD, or MM-DD for its next occurrence) to also get the number of days from
        today to it."""
        text = now.strftime("%Y-%m-%dT%H:%M:%SZ (%A)")
        if until:
            parts = [int(p) for p in until.replace("/", "-").split("-")]
            today = now.date()
            if len(parts) == 3:
                date = dt.date(parts[0], parts[1], parts[2])
            else:
                date = dt.date(today.year, parts[0], parts[1])
                if date < today:
                    date = dt.date(today.year + 1, parts[0], parts[1])
            days = (date - today).days
            text += f"; {date.isoformat()} ({date.strftime('%A')}) is {days} days from today"
        return text

    return current_time


def make_file_tool(root: str):
    def read_file(path: str) -> str:
        """Reads a UTF-8 text file. The path is relative to the working directory; absolute
        paths and ".." are refused."""
        path = path.strip().strip("\"'`")
        if os.path.isabs(path) or ".." in path.split("/"):
            raise ValueError("absolute paths and .. are refused")
        with open(os.path.join(root, path), encoding="utf-8") as f:
            return f.read()

    return read_file


class Counter(BaseCallbackHandler):
    def __init__(self):
        self.tools, self.model_calls, self.tokens = [], 0, 0

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.model_calls += 1

    def on_llm_start(self, serialized, prompts, **kwargs):
        self.model_calls += 1

    def on_llm_end(self, response, **kwargs):
        usage = (response.llm_output or {}).get("token_usage") or {}
        self.tokens += int(usage.get("total_tokens") or 0)

    def on_tool_start(self, serialized, input_str, **kwargs):
        self.tools.append((serialized or {}).get("name", "?"))


def main():
    objectives_path, base_url, alias, *ids = sys.argv[1:]
    with open(objectives_path, encoding="utf-8") as f:
        spec = json.load(f)
    root = os.path.join(os.path.dirname(os.path.abspath(objectives_path)), spec["files"])
    now = dt.datetime.fromisoformat(spec["now"].replace("Z", "+00:00"))
    tools = [
        StructuredTool.from_function(calculator),
        StructuredTool.from_function(make_time_tool(now), name="current_time"),
        StructuredTool.from_function(make_file_tool(root), name="read_file"),
    ]
    llm = ChatOpenAI(
        base_url=base_url, api_key="none", model=alias, temperature=0, seed=42,
        max_tokens=512, timeout=600, max_retries=0,
    )
    wanted = set(ids)
    for objective in spec["objectives"]:
        if wanted and objective["id"] not in wanted:
            continue
        counter = Counter()
        agent = PlanAndExecute(
            planner=load_chat_planner(llm),
            executor=load_agent_executor(llm, tools, verbose=False),
        )
        started = time.monotonic()
        answer, error = "", None
        try:
            answer = agent.invoke(
                {"input": objective["objective"]}, config={"callbacks": [counter]}
            )["output"]
        except Exception as exc:  # the reference aborts a run on many errors
            error = f"{type(exc).__name__}: {exc}"[:500]
        print(json.dumps({
            "id": objective["id"],
            "answer": answer if isinstance(answer, str) else json.dumps(answer),
            "error": error,
            "seconds": time.monotonic() - started,
            "tools": counter.tools,
            "model_calls": counter.model_calls,
            "tokens": counter.tokens,
        }), flush=True)


if __name__ == "__main__":
    main()
