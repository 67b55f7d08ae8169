"""The LangChain side of `pae-bench overhead --vs-langchain`.

The same workload as pae's `overhead` suite, tool variant: LangChain's
plan_and_execute (load_chat_planner + load_agent_executor, as shipped in
langchain-experimental) over a fake chat model that answers instantly. The
planner gets a plan of N steps; in every step the model first calls a
trivial calculator tool, then gives the final answer. Prints one JSON line:
wall time (median of the repeats; imports and setup not included), model
calls, prompt characters (every message of every request, counted in the
first run), the largest prompt, and the peak RSS of this process.

Run by pae-bench with one argument, a JSON object:
{"steps": N, "repeat": R, "answer": "...", "objective": "..."}.
"""

import json
import resource
import statistics
import sys
import time
import warnings

# langchain-experimental says it is being sunset; the benchmark knows.
warnings.filterwarnings("ignore", category=DeprecationWarning)

cfg = json.loads(sys.argv[1])
STEPS = int(cfg["steps"])
REPEAT = max(1, int(cfg["repeat"]))
ANSWER_TEXT = cfg["answer"]
OBJECTIVE = cfg["objective"]

import_started = time.perf_counter()
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_experimental.plan_and_execute import (  # noqa: E402
    PlanAndExecute,
    load_agent_executor,
    load_chat_planner,
)

import_s = time.perf_counter() - import_started

# The same texts pae's scripted model sends (crates/pae-bench/src/overhead.rs).
PLAN = (
    "Plan:\n"
    + "".join(f"{i}. Compute the subtotal for item {i} and note it.\n" for i in range(1, STEPS))
    + f"{STEPS}. Given the above steps taken, respond to the user's original question.\n"
    + "<END_OF_PLAN>"
)
TOOL_ACTION = (
    "Thought: I need the product first.\nAction:\n```json\n"
    + json.dumps({"action": "calculator", "action_input": {"expression": "6 * 7"}})
    + "\n```"
)
ANSWER = (
    "Thought: I can answer now.\nAction:\n```json\n"
    + json.dumps({"action": "Final Answer", "action_input": ANSWER_TEXT})
    + "\n```"
)

counts = {"enabled": True, "chars": 0, "largest": 0, "calls": 0}


def has_observation(text):
    return "\nObservation: " in text[-256:]


class FakeModel(BaseChatModel):
    """Answers instantly: the plan to the planner, then a tool call and a
    final answer in every step. Honours stop sequences."""

    @property
    def _llm_type(self):
        return "fake-instant"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        counts["calls"] += 1
        if counts["enabled"]:
            chars = sum(len(m.content) for m in messages)
            counts["chars"] += chars
            counts["largest"] = max(counts["largest"], chars)
        if stop and "<END_OF_PLAN>" in stop:
            text = PLAN
        elif has_observation(messages[-1].content):
            text = ANSWER
        else:
            text = TOOL_ACTION
        for s in stop or []:
            at = text.find(s)
            if at >= 0:
                text = text[:at]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


@tool
def calculator(expression: str) -> str:
    """Multiplies two whole numbers written as `a * b`."""
    a, b = expression.split("*")
    return str(int(a) * int(b))


def run_once():
    model = FakeModel()
    planner = load_chat_planner(model)
    executor = load_agent_executor(model, [calculator])
    agent = PlanAndExecute(planner=planner, executor=executor)
    counts["calls"] = 0
    started = time.perf_counter()
    result = agent.invoke({"input": OBJECTIVE})
    wall = time.perf_counter() - started
    return wall, result["output"], counts["calls"]


walls = []
for i in range(REPEAT):
    wall, output, calls = run_once()
    if output != ANSWER_TEXT:
        sys.exit(f"expected the answer {ANSWER_TEXT!r}, got {output!r}")
    expected_calls = 1 + 2 * STEPS
    if calls != expected_calls:
        sys.exit(f"expected {expected_calls} model calls, got {calls}")
    walls.append(wall)
    counts["enabled"] = False

peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(
    json.dumps(
        {
            "engine": "langchain",
            "steps": STEPS,
            "wall_s": statistics.median(walls),
            "walls_s": walls,
            "model_calls": 1 + 2 * STEPS,
            "prompt_chars": counts["chars"],
            "largest_prompt_chars": counts["largest"],
            "peak_rss_kib": peak_kib,
            "import_s": import_s,
            "python": sys.version.split()[0],
        }
    ),
    flush=True,
)
