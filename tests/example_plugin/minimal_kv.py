"""A complete rlstruct task plugin in one file: answer the requested facts as key=value lines."""

import random

from rlstruct import Parsed, Record, Task, hookimpl

VALUES = {
    "city": ["oslo", "lima", "perth", "kyoto", "quito"],
    "colour": ["red", "teal", "amber", "navy", "olive"],
    "fruit": ["mango", "plum", "lime", "fig", "pear"],
    "metal": ["tin", "zinc", "iron", "gold", "nickel"],
    "season": ["spring", "summer", "autumn", "winter"],
}


class KeyValueTask(Task):
    name = "key-value"
    description = "Answer the requested facts as key=value lines, one per line."
    system_prompt = "Answer with one line key=value for each requested key, using the facts given."

    def random_record(self, rng: random.Random) -> Record:
        facts = {key: rng.choice(values) for key, values in VALUES.items()}
        return {"facts": facts, "keys": rng.sample(sorted(facts), rng.randint(1, 3))}

    def user_prompt(self, record: Record) -> str:
        facts = "\n".join(f"- {key}: {value}" for key, value in record["facts"].items())
        return f"Facts:\n{facts}\n\nKeys: {', '.join(record['keys'])}"

    def reference_completion(self, record: Record) -> str:
        return "\n".join(f"{key}={record['facts'][key]}" for key in record["keys"])

    def structure(self, record: Record, completion: str) -> Parsed:
        if len(completion) > 10_000:  # untrusted output: bound it before doing any work
            return Parsed(0.0)
        lines = [line for line in completion.splitlines() if line.strip()]
        pairs = [[part.strip() for part in line.split("=", 1)] for line in lines if "=" in line]
        return Parsed(len(pairs) / len(lines), dict(pairs)) if pairs else Parsed(0.0)

    def content(self, record: Record, parsed: dict[str, str]) -> float:
        right = [parsed.get(key) == record["facts"][key] for key in record["keys"]]
        return sum(right) / len(right)


@hookimpl
def register_tasks(register):
    register(KeyValueTask())
